"""Wall time of one small suite on the local executor and on a two-node Ray cluster started on
this machine with ``ray start`` (prints figures, asserts nothing).

The suite is the Ray test's (``tests/e2e/test_ray_executor.py``: three classifiers on synthetic
data, ``group: pairs``), with ``--epochs`` training epochs. Both nodes share this machine's
cores, so the cluster's gain here is the overlap of two variants' work, not more hardware. The
cluster is stopped by its process ids at the end, whatever happens.

    python benchmarks/ray_cluster.py [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from greenbench.store import Store  # noqa: E402
from tests.e2e.test_ray_executor import SUITE  # noqa: E402
from tests.raycluster import ENV, RayCluster  # noqa: E402


def run(args: list[str]) -> float:
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "greenbench", "run", *args], env=ENV, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    opts = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gb-ray-bench-"))
    suite = root / "ray-study.yaml"
    suite.write_text(textwrap.dedent(SUITE).replace("EPOCHS", str(opts.epochs)))
    local_s = run([str(suite), "--store", str(root / "local.db"), "--workdir", str(root / "local")])
    print(f"local executor: {local_s:.1f} s")
    cluster = RayCluster(root / "cluster")
    try:
        cluster.start(2)
        ray_s = run([str(suite), "--store", str(root / "ray.db"), "--workdir", str(root / "ray"),
                     "--executor", "ray", "--address", cluster.address])  # fmt: skip
    finally:
        cluster.stop()
    print(f"ray executor, 2 nodes on this machine: {ray_s:.1f} s ({local_s / ray_s:.2f}× the local speed)")
    with Store(root / "ray.db") as store:
        for r in store.records(suite="ray-study"):
            print(f"  {r.variant}: {r.status}, device {r.device_id}, node {r.device['node_id'][:16]}")
    for journal in root.glob("ray/**/ray-jobs.jsonl"):
        for line in journal.read_text().splitlines():
            j = json.loads(line)
            print(
                f"  job {j['kind']:<8} {j['label']:<8} node {j['node'][:12]} {j['end'] - j['start']:5.1f} s"
            )


if __name__ == "__main__":
    main()
