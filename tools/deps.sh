#!/usr/bin/env bash
# The dependency lock (constraints.txt) and a drift check against it.
#
#   tools/deps.sh lock    re-resolve every dependency (runtime and dev) to the newest versions the
#                         ranges in pyproject.toml allow, in a fresh virtual environment, and write
#                         them to constraints.txt. Commit that file only after the tests pass on it.
#   tools/deps.sh drift   the same fresh, unconstrained install, then print what differs from
#                         constraints.txt and run the tests on it. Not part of CI: it tells you
#                         what a user installing without the lock gets, before they meet it.
#
# Both use the machine's python3 (the lock is made and tested on CPython 3.11, Linux x86_64) and a
# virtual environment in a temporary folder outside the checkout, removed at the end; set
# GREENBENCH_KEEP_VENV=1 to keep it (its path is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
lock="$root/constraints.txt"

mode=${1:-}
case "$mode" in
    lock|drift) ;;
    *) echo "usage: tools/deps.sh lock|drift" >&2; exit 2 ;;
esac

venv=$(mktemp -d "${TMPDIR:-/tmp}/greenbench-deps.XXXXXX")
if [ "${GREENBENCH_KEEP_VENV:-0}" != 1 ]; then
    trap 'rm -rf "$venv"' EXIT
fi
echo "deps: fresh virtual environment in $venv"
python3 -m venv "$venv"
# torch and torchvision are the only pins outside the ranges: pip takes these builds from this
# machine's disk (any other version downloads gigabytes).
"$venv/bin/python" -m pip install --quiet torch==2.14.1 torchvision==0.29.1 -e '.[dev]'

frozen="$venv/frozen.txt"
{
    echo "# Every package the README's two install commands bring, pinned to versions tested together."
    echo "# Made by 'tools/deps.sh lock' on $("$venv/bin/python" -c 'import platform; print(platform.python_implementation(), platform.python_version(), platform.system(), platform.machine())'), $(date -u +%Y-%m-%d)."
    echo "# Regenerating it is a deliberate commit: run the lock, then the tests (README, Development)."
    # --all: setuptools too (torch needs it at run time); pip itself is not a dependency
    "$venv/bin/python" -m pip freeze --all --exclude-editable | grep -v '^pip==' | LC_ALL=C sort -f
} >"$frozen"

if [ "$mode" = lock ]; then
    cp "$frozen" "$lock"
    echo "deps: wrote $lock ($(grep -vc '^#' "$lock") packages); now run the tests on it before committing"
    exit 0
fi

echo "deps: the newest versions the ranges allow, against constraints.txt (< locked, > newest):"
if diff <(grep -v '^#' "$lock") <(grep -v '^#' "$frozen") | grep '^[<>]'; then
    :
else
    echo "deps: no drift: the newest versions are the locked ones"
fi
echo "deps: running the tests on the newest versions"
set +e
PATH="$venv/bin:$PATH" "$venv/bin/python" -m pytest "${@:2}"
rc=$?
set -e
echo "deps: tests on the newest versions exited $rc (0: the lock can move; see the README, Development)"
exit $rc
