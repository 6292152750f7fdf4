"""sparse_train → prune → finetune through the worker: a shared prefix is trained once."""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from greenbench.pipeline.prune import PruneStage
from greenbench.run import jobs
from greenbench.run.worker import Events, run_stages
from greenbench.suite import load_suite
from greenbench.suite.identity import stage_plan
from greenbench.tasks.detect.finetune import FinetuneStage
from greenbench.tasks.detect.sparse_train import SparseTrainStage
from tests.pipeline.conftest import Slim

pytestmark = pytest.mark.slow

SUITE = """\
name: slimchain
task: detect
dataset:
  synthetic: {classes: 2, images: 20, imgsz: 64, seed: 1}
defaults: {epochs: 1, imgsz: 64, batch: 4, workers: 0, optimizer: SGD, lr0: 0.01,
           warmup_epochs: 0, mosaic: 0.0, amp: false, val: false}
measure:
  energy: {meters: [estimate]}
baseline: sparse
variants:
  sparse: {model: yolov5n.yaml, stages: [{sparse_train: {lambda: 0.01}}]}
  p30:
    from: sparse
    stages: [{prune: {ratio: 0.3}}, {finetune: {epochs: 1}}]
  p50:
    from: sparse
    stages: [{prune: {ratio: 0.5}}, finetune]
"""


def test_two_prune_ratios_share_one_sparse_training(
    slim: Slim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent(SUITE))
    suite = load_suite(path)
    executed: Counter[str] = Counter()
    for stage in (SparseTrainStage, PruneStage, FinetuneStage):
        original = stage.run

        def counted(self: Any, ctx: Any, _run: Any = original, _name: str = stage.name) -> Any:
            executed[_name] += 1
            return _run(self, ctx)

        monkeypatch.setattr(stage, "run", counted)

    work = tmp_path / "work"
    results = {}
    for variant in ("p30", "p50"):
        plan = stage_plan(suite, variant, data_key="synthetic-test")
        assert [p.name for p in plan] == ["sparse_train", "prune", "finetune"]
        job = jobs.StagesJob(
            label=variant,
            task="detect",
            workdir=str(work),
            device="cpu",
            energy=jobs.MeterSpec(meters=("estimate",), watts_per_core=4.0),
            data_yaml=str(slim.data_yaml),
            defaults=dict(suite.defaults),
            model="yolov5n.yaml",
            weights=None,
            stages=tuple(plan),
        )
        results[variant] = run_stages(job, Events(None))

    assert executed == {"sparse_train": 1, "prune": 2, "finetune": 2}
    p30, p50 = results["p30"].stages, results["p50"].stages
    assert [s.cached for s in p30] == [False, False, False]
    assert [s.cached for s in p50] == [True, False, False]  # the sparse model came from the cache
    assert p30[0].key == p50[0].key and p30[0].checkpoint == p50[0].checkpoint
    assert p30[1].key != p50[1].key and p30[1].checkpoint != p50[1].checkpoint
    assert p30[0].variant == p50[0].variant == "sparse" and p50[1].variant == "p50"
    for stages, ratio in ((p30, 0.3), (p50, 0.5)):
        prune, finetune = stages[1].info, stages[2].info
        assert prune["ratio_asked"] == ratio and prune["weights_from"].startswith("fp32 copy")
        assert finetune["params_after"] == finetune["params_before"] == prune["params_after"]
    assert p50[1].info["params_after"] < p30[1].info["params_after"]
    assert results["p50"].checkpoint == p50[2].checkpoint
