"""Stage ``finetune``: the pruned module is what gets trained, and a regrown model is an error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from greenbench.errors import GreenbenchError
from greenbench.measure.complexity import count_params
from greenbench.pipeline import get_stage
from greenbench.pipeline.prune import PruneStage
from greenbench.tasks.detect import ultra_slim
from greenbench.tasks.detect.finetune import FinetuneStage
from greenbench.tasks.detect.ultra_slim import fp32_path
from tests.pipeline.conftest import Slim

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("params", "key"),
    [({"lr0": 0}, "lr0"), ({"lr0": -0.1}, "lr0"), ({"epochz": 1}, "epochz"), ({"model": "x.pt"}, "model")],
)
def test_bad_params_are_rejected_naming_the_key(params: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=f"'{key}'"):
        FinetuneStage.validate_params(params)


def test_lr0_defaults_to_the_studys_value() -> None:
    assert get_stage("finetune", "detect") is FinetuneStage
    assert FinetuneStage.validate_params({"epochs": 2}) == {"lr0": 0.001, "epochs": 2}
    assert FinetuneStage.validate_params({"lr0": 0.01})["lr0"] == 0.01


@pytest.fixture(scope="module")
def pruned(slim: Slim) -> tuple[Path, int]:
    """A yolov5n pruned by 40 % (untrained: the stage does not care) and the unpruned count."""
    parent = slim.untrained("ft-parent")
    full = count_params(slim.adapter.load(parent).model)
    return Path(slim.run(PruneStage, {"ratio": 0.4}, parent, "ft-prune").checkpoint), full


def test_finetune_trains_the_pruned_module(slim: Slim, pruned: tuple[Path, int]) -> None:
    path, full = pruned
    result = slim.run(FinetuneStage, {"epochs": 1, "hyp": {"mixup": 0.2, "obj": 0.3}}, path, "ft")
    info = result.info
    assert info["train_args"]["mixup"] == 0.2 and "obj" not in info["train_args"]  # hyp translated
    assert info["hyp_carried"] == {"mixup": 0.2} and set(info["hyp_not_carried"]) == {"obj"}
    assert info["params_before"] == count_params(slim.adapter.load(path).model) < full
    assert info["params_after"] == info["params_before"]  # not regrown from the YAML
    assert count_params(slim.adapter.load(result.checkpoint).model) == info["params_before"]
    assert info["train_args"]["lr0"] == 0.001 and info["weights_from"].startswith("fp32 copy")
    assert fp32_path(result.checkpoint).is_file() and "finetune epoch 1/1" in slim.events
    assert result.energy.duration_s > 0
    metrics = slim.adapter.evaluate(
        slim.adapter.load(result.checkpoint), slim.data_yaml, 64, slim.root / "ftval"
    )
    assert all(0.0 <= metrics[k] <= 1.0 for k in ("precision", "recall", "map50", "map50_95"))


def test_a_finetune_that_regrows_the_model_fails_loudly(
    slim: Slim, pruned: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The naive route (ultralytics' own trainer) rebuilds the model from its YAML: caught."""
    path, full = pruned
    monkeypatch.setattr(ultra_slim, "module_trainer", lambda _module: None)
    with pytest.raises(GreenbenchError, match=r"variant 'v', stage finetune") as e:
        slim.run(FinetuneStage, {"epochs": 1}, path, "ft-naive")
    before = count_params(slim.adapter.load(path).model)
    assert f"{before:,}" in str(e.value) and f"{full:,}" in str(e.value)


def test_a_head_with_other_classes_is_refused(slim: Slim) -> None:
    coco = slim.adapter.save(
        slim.adapter.build("yolov5n.yaml"), slim.root / "coco" / "model.pt"
    )  # 80 classes
    with pytest.raises(GreenbenchError, match="80 classes"):
        slim.run(FinetuneStage, {"epochs": 1}, Path(coco), "ft-coco")
