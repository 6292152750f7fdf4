"""The executor registry: the built-in ``local``, executors from the ``greenbench.executors``
entry-point group (the toy one in ``tests/plugins/site`` is found as an installed package would
be), and clear errors for a name that is not there or cannot load."""

from __future__ import annotations

from pathlib import Path

import pytest

from greenbench.executors import ENTRY_POINT_GROUP, UnknownExecutor, available, factory
from greenbench.executors.local import LocalExecutor

SITE = Path(__file__).parent / "plugins" / "site"


def test_local_is_built_in() -> None:
    assert available()["local"] == "greenbench.executors.local:LocalExecutor"
    assert factory("local") is LocalExecutor


def test_an_installed_executor_is_found_by_its_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "toy" not in available()
    monkeypatch.syspath_prepend(str(SITE))  # as if pip had installed greenbench-toy-executor
    assert available()["toy"] == "greenbench_toy_executor:ToyExecutor"
    toy = factory("toy")
    assert toy.__name__ == "ToyExecutor" and issubclass(toy, LocalExecutor)
    executor = toy(logdir=Path("logs"), device={"device_id": "abc"}, idle=lambda: None, progress=print,
                   cwd=None, stall_s=None)  # fmt: skip
    assert executor.device["device_id"] == "toy-abc" and executor.name == "toy"


def test_unknown_and_broken_executors_are_usage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(UnknownExecutor) as e:
        factory("locl")
    text = str(e.value)
    assert "Did you mean 'local'?" in text and ENTRY_POINT_GROUP in text and e.value.exit_code == 2
    broken = tmp_path / "broken-0.1.dist-info"
    broken.mkdir()
    (broken / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (broken / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nbroken = no_such_module_here:Thing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UnknownExecutor, match=r"cannot be loaded .*ModuleNotFoundError"):
        factory("broken")
