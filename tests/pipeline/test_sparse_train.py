"""Stage ``sparse_train``: the BN-γ L1 subgradient inside real ultralytics training."""

from __future__ import annotations

import math

import pytest
import torch

from greenbench.pipeline import get_stage
from greenbench.pipeline.train import TrainStage
from greenbench.tasks.detect.sparse_train import SparseTrainStage
from greenbench.tasks.detect.ultra_slim import fp32_path, load_fp32_copy
from tests.pipeline.conftest import TINY_TRAIN, Slim, gammas


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"epochs": 1}, "lambda"),  # missing
        ({"lambda": 0}, "lambda"),
        ({"lambda": -1e-4}, "lambda"),
        ({"lambda": True}, "lambda"),
        ({"lambda": math.nan}, "lambda"),
        ({"lambda": "1e-4"}, "lambda"),
        ({"lambda": 1e-4, "epochz": 3}, "epochz"),  # not an ultralytics argument
        ({"lambda": 1e-4, "epochs": 0}, "epochs"),
        ({"lambda": 1e-4, "data": "x.yaml"}, "data"),  # greenbench sets it
    ],
)
def test_bad_params_are_rejected_naming_the_key(params: dict[str, object], key: str) -> None:
    with pytest.raises(ValueError, match=f"'{key}'"):
        SparseTrainStage.validate_params(params)


def test_params_are_cleaned_and_registered() -> None:
    assert get_stage("sparse_train", "detect") is SparseTrainStage
    assert SparseTrainStage.validate_params({"lambda": 1, "epochs": 2}) == {"lambda": 1.0, "epochs": 2}


@pytest.mark.slow
def test_sparse_training_shrinks_gamma_against_plain_training(slim: Slim) -> None:
    """Same start, same seed, same data: the only difference is λ·sign(γ) at each step, so
    every step moves γ further towards 0 than plain training does."""
    start = slim.untrained("start")
    lam = 0.1
    plain = slim.run(TrainStage, {}, start, "plain")
    sparse = slim.run(SparseTrainStage, {"lambda": lam}, start, "sparse")

    info = sparse.info
    assert info["lambda"] == lam and info["lambda_applies"] == "per optimizer step"
    assert info["accumulate_batches"] == 1  # nbs == batch
    assert info["optimizer_steps"] == 4  # 16 train images / batch 4, one step per batch
    assert info["mean_abs_gamma_before"] == pytest.approx(1.0)  # BN init
    assert info["mean_abs_gamma_after"] < info["mean_abs_gamma_before"]
    assert sparse.energy.duration_s > 0 and sparse.energy.energy_j > 0
    assert "sparse_train epoch 1/1" in slim.events

    models = {}
    for name, result in (("plain", plain), ("sparse", sparse)):
        assert fp32_path(result.checkpoint).is_file()  # the fp32 copy beside the checkpoint
        model = slim.adapter.load(result.checkpoint).model
        assert load_fp32_copy(model, result.checkpoint) is not None
        models[name] = gammas(model)
    plain_g, sparse_g = models["plain"], models["sparse"]
    # at least lr0·λ per step (SGD's momentum only adds to it); plain training moves γ ≪ that
    shrink = float(plain_g.abs().mean() - sparse_g.abs().mean())
    assert shrink > 0.5 * info["optimizer_steps"] * TINY_TRAIN["lr0"] * lam
    # and channel by channel, in the direction of -sign(γ)
    moved = (sparse_g - plain_g) * torch.sign(plain_g)
    assert float((moved < 0).double().mean()) > 0.95


@pytest.mark.slow
def test_lambda_is_per_optimizer_step_with_accumulation(slim: Slim) -> None:
    """With nbs = 4 × batch, ultralytics accumulates 4 batches per step: λ applies once per 4."""
    result = slim.run(SparseTrainStage, {"lambda": 1e-3, "nbs": 16}, slim.untrained("acc"), "acc")
    info = result.info
    assert info["accumulate_batches"] == 4 and info["batch"] == 4 and info["nbs"] == 16
    assert info["optimizer_steps"] == 1  # 4 batches in the epoch
    stored = torch.load(result.checkpoint, map_location="cpu", weights_only=False)["model"]
    assert next(stored.parameters()).dtype == torch.float16  # ultralytics' own checkpoint, as usual
