"""Stage ``prune``: real torch-pruning on a trained yolov5n, from an fp32 copy and from fp16."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from greenbench.measure.complexity import count_params
from greenbench.pipeline import get_stage
from greenbench.pipeline.prune import RATIO_TOLERANCE, PruneStage, protected_shapes
from greenbench.tasks.detect.bn_l1 import residual_bns
from greenbench.tasks.detect.sparse_train import SparseTrainStage
from greenbench.tasks.detect.ultra_slim import detect_heads, fp32_path, load_fp32_copy
from tests.pipeline.conftest import Slim, gammas

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({}, "ratio"),
        ({"ratio": 0}, "ratio"),
        ({"ratio": 1.0}, "ratio"),
        ({"ratio": True}, "ratio"),
        ({"ratio": "0.3"}, "ratio"),
        ({"ratio": 0.3, "importance": "taylor"}, "importance"),
        ({"ratio": 0.3, "global": "yes"}, "global"),
        ({"ratio": 0.3, "imgsz": 100}, "imgsz"),
        ({"ratio": 0.3, "ratios": 0.4}, "ratios"),
    ],
)
def test_bad_params_are_rejected_naming_the_key(params: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=f"'{key}'"):
        PruneStage.validate_params(params)


def test_defaults_are_filled_in() -> None:
    assert get_stage("prune", "detect") is PruneStage
    assert PruneStage.validate_params({"ratio": 0.3}) == {
        "ratio": 0.3,
        "importance": "bn_scale",
        "global": True,
    }


@pytest.fixture(scope="module")
def parent(slim: Slim) -> Path:
    """A sparse-trained yolov5n checkpoint (fp16, as ultralytics stores it) with its fp32 copy."""
    return Path(slim.run(SparseTrainStage, {"lambda": 1e-2}, slim.untrained("p0"), "sparse").checkpoint)


@pytest.fixture(scope="module")
def fp16_parent(parent: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same checkpoint without its fp32 copy, like a user's ultralytics checkpoint."""
    copy = tmp_path_factory.mktemp("fp16") / "user.pt"
    shutil.copyfile(parent, copy)
    assert not fp32_path(copy).exists()
    return copy


def _load(slim: Slim, path: Path) -> Any:
    return slim.adapter.load(path).model


def test_prune_from_fp32_copy(slim: Slim, parent: Path) -> None:
    result = slim.run(PruneStage, {"ratio": 0.3}, parent, "prune30")
    info = result.info
    assert info["weights_from"].startswith("fp32 copy")
    assert abs(info["ratio_achieved"] - 0.3) <= RATIO_TOLERANCE == info["ratio_tolerance"]
    assert info["ratio_within_tolerance"] is True
    assert info["channels_after"] < info["channels_before"]
    assert info["bn_channels_after"] < info["bn_channels_before"]
    assert info["params_after"] < info["params_before"] and info["gflops_after"] < info["gflops_before"]
    assert info["gflops_before"] == pytest.approx(2 * info["gmacs_before"])
    assert result.energy.duration_s > 0 and any("prune" in e for e in slim.events)

    before, after = _load(slim, parent), _load(slim, result.checkpoint)
    assert count_params(after) == info["params_after"] < count_params(before) == info["params_before"]
    stored = torch.load(result.checkpoint, map_location="cpu", weights_only=False)["model"]
    assert next(stored.parameters()).dtype == torch.float16 and fp32_path(result.checkpoint).is_file()
    # the Detect head untouched: every conv keeps its outputs; the output convs their weights
    assert protected_shapes(detect_heads(after)) == protected_shapes(detect_heads(before))
    (head_before,), (head_after,) = detect_heads(before), detect_heads(after)
    assert head_after.nc == head_before.nc == 2
    for branch in ("cv2", "cv3"):
        for b, a in zip(getattr(head_before, branch), getattr(head_after, branch), strict=True):
            torch.testing.assert_close(a[-1].weight, b[-1].weight)
    # the pruned model runs and gives the parent's output shape
    x = torch.zeros(1, 3, 64, 64)
    with torch.inference_mode():
        assert after.eval()(x)[0].shape == before.eval()(x)[0].shape
    metrics = slim.adapter.evaluate(
        slim.adapter.load(result.checkpoint), slim.data_yaml, 64, slim.root / "val"
    )
    assert set(metrics) == {"precision", "recall", "map50", "map50_95"}
    assert all(0.0 <= v <= 1.0 for v in metrics.values())


@pytest.mark.parametrize("ratio", [0.3, 0.5])
def test_prune_from_fp16_parent_keeps_the_ratio(slim: Slim, fp16_parent: Path, ratio: float) -> None:
    """fp16 γ tie (the premise, checked first); the tie-break keeps the ratio asked for."""
    g = gammas(_load(slim, fp16_parent)).abs()
    assert len(torch.unique(g)) < 0.5 * len(g)  # many channels share a γ value
    info = slim.run(PruneStage, {"ratio": ratio}, fp16_parent, f"fp16-{ratio}").info
    assert info["weights_from"].startswith("checkpoint as stored")
    assert abs(info["ratio_achieved"] - ratio) <= RATIO_TOLERANCE
    assert info["params_after"] < info["params_before"]


@pytest.mark.parametrize(
    "params", [{"importance": "l1"}, {"importance": "l2"}, {"importance": "random"}, {"global": False}]
)
def test_other_importances_and_local_pruning(slim: Slim, parent: Path, params: dict[str, Any]) -> None:
    name = "-".join(f"{k}{v}" for k, v in params.items())
    result = slim.run(PruneStage, {"ratio": 0.25, **params}, parent, f"prune-{name}")
    info = result.info
    assert info["importance"] == params.get("importance", "bn_scale") and info["global"] == params.get(
        "global", True
    )
    assert abs(info["ratio_achieved"] - 0.25) <= RATIO_TOLERANCE
    assert count_params(_load(slim, result.checkpoint)) == info["params_after"] < info["params_before"]


def test_bn_threshold_criterion_on_a_sparse_trained_detector(slim: Slim, parent: Path) -> None:
    """The authors' criterion: the channels below one global |γ| threshold go, residual BNs and
    the head keep theirs, every layer keeps a channel, and the record says what it counted."""
    result = slim.run(PruneStage, {"ratio": 0.3, "criterion": "bn_threshold"}, parent, "thr30")
    info = result.info
    assert info["criterion"] == "bn_threshold" and "global |γ| threshold" in info["ratio_basis"]
    assert info["threshold_abs_gamma"] == min(info["threshold_at_ratio"], info["threshold_cap"])
    layers = info["channels_per_layer"]
    assert sum(b for b, _ in layers.values()) == info["channels_before"]
    assert sum(a for _, a in layers.values()) == info["channels_after"]
    assert all(1 <= a <= b for b, a in layers.values())
    assert info["layers_kept_whole_coupled"] == [] and info["residual_bns_kept"] > 0

    before, after = _load(slim, parent), _load(slim, result.checkpoint)
    load_fp32_copy(before, parent)
    g = torch.cat([m.weight.detach().abs().double() for n, m in before.named_modules() if n in layers])
    threshold = info["threshold_abs_gamma"]
    assert info["channels_before"] - info["channels_after"] == int((g < threshold).sum())  # < goes, ≥ stays
    if not info["threshold_capped"]:  # the value at index int(N · ratio) of the sorted |γ| (ties stay)
        assert int((g < threshold).sum()) <= int(len(g) * 0.3) < int((g <= threshold).sum())
    sizes = {name: m.num_features for name, m in after.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert {name: sizes[name] for name in layers} == {name: a for name, (_, a) in layers.items()}
    names = {id(m): name for name, m in before.named_modules()}
    for bn in residual_bns(before):  # the residual BNs are not candidates and keep every channel
        assert names[id(bn)] not in layers and sizes[names[id(bn)]] == bn.num_features
    assert protected_shapes(detect_heads(after)) == protected_shapes(detect_heads(before))
    assert count_params(after) == info["params_after"] < info["params_before"]
    with torch.inference_mode():
        x = torch.zeros(1, 3, 64, 64)
        assert after.eval()(x)[0].shape == before.eval()(x)[0].shape
