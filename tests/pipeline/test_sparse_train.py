"""Stage ``sparse_train``: the BN-γ L1 subgradient inside real ultralytics training."""

from __future__ import annotations

import math

import pytest
import torch

from greenbench.pipeline import get_stage
from greenbench.pipeline.train import TrainStage
from greenbench.tasks.detect.bn_l1 import residual_bns
from greenbench.tasks.detect.sparse_train import SparseTrainStage
from greenbench.tasks.detect.ultra_slim import backbone_bns, fp32_path, load_fp32_copy
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
        ({"lambda": 1e-4, "lambda_schedule": "cosine"}, "lambda_schedule"),
        ({"lambda": 1e-4, "bn": "residual"}, "bn"),
        ({"lambda": 1e-4, "penalty": "l2"}, "penalty"),
        ({"lambda": 1e-4, "every": "epoch"}, "every"),
        ({"lambda": 1e-4, "beta_l1": -1}, "beta_l1"),
        ({"lambda": 1e-4, "beta_l1": True}, "beta_l1"),
        ({"lambda": 1e-4, "beta_l1": math.inf}, "beta_l1"),
    ],
)
def test_bad_params_are_rejected_naming_the_key(params: dict[str, object], key: str) -> None:
    with pytest.raises(ValueError, match=f"'{key}'"):
        SparseTrainStage.validate_params(params)


def test_params_are_cleaned_and_registered() -> None:
    assert get_stage("sparse_train", "detect") is SparseTrainStage
    assert SparseTrainStage.validate_params({"lambda": 1, "epochs": 2}) == {"lambda": 1.0, "epochs": 2}


def test_penalty_defaults_are_left_out_so_older_keys_stay() -> None:
    defaults = {"lambda_schedule": "constant", "beta_l1": 0, "bn": "all", "penalty": "subgradient"}
    assert SparseTrainStage.validate_params({"lambda": 1e-3, **defaults, "every": "optimizer_step"}) == {
        "lambda": 1e-3
    }
    authors = {"lambda_schedule": "linear_decay", "beta_l1": 10, "bn": "non_residual", "every": "batch"}
    cleaned = SparseTrainStage.validate_params({"lambda": 1e-3, **authors, "penalty": "proximal"})
    assert cleaned == {"lambda": 1e-3, **authors, "beta_l1": 10.0, "penalty": "proximal"}
    assert SparseTrainStage.validate_params(cleaned) == cleaned


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


@pytest.mark.slow
def test_proximal_per_batch_step_against_plain_training(slim: Slim) -> None:
    """One optimizer step for 4 accumulated batches (nbs = 4 × batch), SGD at lr0, from the same
    start as plain training: the residual BNs end as plain training leaves them, every other γ
    is soft-thresholded by lr·λ·4 and every other β by lr·10λ·4 (per batch, not per step)."""
    start = slim.untrained("prox-start")
    lam, lr0, batches = 0.05, TINY_TRAIN["lr0"], 4
    plain = slim.run(TrainStage, {"nbs": 16}, start, "prox-plain")
    options = {"lambda_schedule": "linear_decay", "beta_l1": 10, "bn": "non_residual", "every": "batch"}
    sparse = slim.run(
        SparseTrainStage, {"lambda": lam, "nbs": 16, "penalty": "proximal", **options}, start, "prox"
    )
    info = sparse.info
    assert info["optimizer_steps"] == 1 and info["penalised_batches"] == batches
    assert info["lambda_applies"] == "per batch" and info["penalty"] == "proximal"
    assert info["lambda_last_step"] == pytest.approx(lam)  # epoch 0 of 1: no decay yet
    assert info["bn"] == "non_residual" and "residual-path BNs excluded" in info["l1_scope"]

    models = {}
    for name, result in (("plain", plain), ("sparse", sparse)):
        model = slim.adapter.load(result.checkpoint).model
        assert load_fp32_copy(model, result.checkpoint) is not None
        models[name] = model
    residual = {id(bn) for bn in residual_bns(models["sparse"])}
    pairs = list(zip(backbone_bns(models["plain"]), backbone_bns(models["sparse"]), strict=True))
    assert 0 < len(residual) < len(pairs)
    # the checkpoint is the EMA: after one update it holds (1 − d) of the model's step, d ≈ 5e-4
    for p_bn, s_bn in pairs:
        g_plain, g_sparse = p_bn.weight.detach().double(), s_bn.weight.detach().double()
        b_plain, b_sparse = p_bn.bias.detach().double(), s_bn.bias.detach().double()
        if id(s_bn) in residual:
            assert torch.allclose(g_sparse, g_plain, atol=1e-6) and torch.allclose(
                b_sparse, b_plain, atol=1e-6
            )
        else:
            shrunk = torch.sign(g_plain) * torch.clamp(g_plain.abs() - lr0 * lam * batches, min=0)
            assert torch.allclose(g_sparse, shrunk, atol=2e-5)
            shrunk = torch.sign(b_plain) * torch.clamp(b_plain.abs() - lr0 * 10 * lam * batches, min=0)
            assert torch.allclose(b_sparse, shrunk, atol=2e-5)
