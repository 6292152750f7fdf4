"""Stage ``sparse_train``: training with an L1 penalty on BatchNorm γ (network slimming, step 1).

The penalty λ·Σ|γ| (optionally + β_l1·λ·Σ|β|) on the BNs outside the Detect head enters as a
subgradient before, or a proximal step after, the optimizer step, once per step or once per
batch, with a constant or linearly decaying λ (``bn_l1``, applied by
``ultra_slim.sparse_trainer``). Channels whose γ it drives towards 0 are the ones ``prune``
removes. The stage starts from the variant's start: its parent's model, or the root ``model``
and ``weights`` (the YOLOv5 study's authors start from the COCO-pretrained weights).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from greenbench.pipeline.base import StageContext, StageResult
from greenbench.tasks.base import Task
from greenbench.tasks.detect.bn_l1 import BN_SETS, EVERY, PENALTIES, SCHEDULES, L1Penalty
from greenbench.tasks.detect.ultra_args import check_train_args


def positive_number(params: dict[str, Any], key: str) -> float:
    """``params[key]`` as a finite float > 0, or a ``ValueError`` naming the key."""
    value = params.get(key)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"stage parameter {key!r} must be a finite number > 0, got {value!r}")
    return float(value)


#: the penalty's options: (choices, default); a default is left out of the cleaned params, so
#: the cache keys of suites written before the option stay as they were
CHOICES: dict[str, tuple[tuple[str, ...], str]] = {
    "lambda_schedule": (SCHEDULES, "constant"),
    "bn": (BN_SETS, "all"),
    "penalty": (PENALTIES, "subgradient"),
    "every": (EVERY, "optimizer_step"),
}


def check_penalty(params: dict[str, Any]) -> dict[str, Any]:
    """The penalty's options of ``params`` checked, defaults left out; ``ValueError`` names the key."""
    out: dict[str, Any] = {}
    for key, (choices, default) in CHOICES.items():
        value = params.get(key, default)
        if value not in choices:
            raise ValueError(f"stage parameter {key!r} must be one of {', '.join(choices)}, got {value!r}")
        if value != default:
            out[key] = value
    beta = params.get("beta_l1", 0)
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta < 0:
        raise ValueError(
            f"stage parameter 'beta_l1' (the L1 weight on BN β as a multiple of lambda; the YOLOv5 "
            f"study's authors use 10, 0 for none) must be a finite number >= 0, got {beta!r}"
        )
    if beta:
        out["beta_l1"] = float(beta)
    return out


def penalty_of(params: dict[str, Any]) -> L1Penalty:
    """The ``L1Penalty`` that cleaned params describe."""
    return L1Penalty(
        lam=float(params["lambda"]),
        schedule=params.get("lambda_schedule", "constant"),
        beta_l1=float(params.get("beta_l1", 0.0)),
        bn=params.get("bn", "all"),
        penalty=params.get("penalty", "subgradient"),
        every=params.get("every", "optimizer_step"),
    )


def check_training(params: dict[str, Any]) -> None:
    """Raise ``ValueError`` for the first ultralytics training argument that is not acceptable."""
    for _key, message in check_train_args(params):
        raise ValueError(message)


class SparseTrainStage:
    """Ultralytics training plus an L1 penalty on the BN γ (and β) outside the Detect head.

    Params: ``lambda`` (required, > 0); ``lambda_schedule`` (``constant``; ``linear_decay``:
    λ·(1 − 0.9·epoch/epochs)); ``beta_l1`` (0; the L1 weight on β as a multiple of λ);
    ``bn`` (``all``; ``non_residual``: not the BNs on residual paths); ``penalty``
    (``subgradient``; ``proximal``: soft-threshold after the step by lr·λ); ``every``
    (``optimizer_step``; ``batch``: once per batch, whatever the gradient accumulation); and
    any ultralytics training argument (``epochs``, ...), which override the suite's ``defaults``.
    """

    name: ClassVar[str] = "sparse_train"
    variant_params: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def validate_params(cls, params: dict[str, Any], task: type[Task] | None = None) -> dict[str, Any]:
        """``lambda`` > 0; the other keys must be ultralytics training arguments."""
        if "lambda" not in params:
            raise ValueError("stage parameter 'lambda' (the L1 weight on BN γ, e.g. 5e-4) is required")
        lam = positive_number(params, "lambda")
        options = check_penalty(params)
        rest = {k: v for k, v in params.items() if k != "lambda" and k not in CHOICES and k != "beta_l1"}
        check_training(rest)
        return {"lambda": lam, **options, **rest}

    def run(self, ctx: StageContext) -> StageResult:
        """Sparse-train; record λ, how often it applied and mean |γ| before and after."""
        from greenbench.tasks.detect.ultra_slim import load_fp32_copy, mean_abs_gamma, sparse_trainer

        params = self.validate_params(ctx.params)
        penalty = penalty_of(params)
        for key in ("lambda", "beta_l1", *CHOICES):
            params.pop(key, None)
        task = ctx.task
        yolo = ctx.start_model()
        if ctx.input:
            load_fp32_copy(yolo.model, ctx.input)
        gamma_before = mean_abs_gamma(yolo.model)
        args = {**ctx.defaults, **params}
        checkpoint, energy = ctx.train(yolo, args, "sparse_train", trainer=sparse_trainer(penalty))
        trainer = yolo.trainer
        trained = task.load(checkpoint)
        fp32 = load_fp32_copy(trained.model, checkpoint)
        batch, nbs = int(trainer.batch_size), int(trainer.args.nbs)  # as ultralytics resolved them
        info = {
            "train_args": args,
            "start": f"parent {ctx.input}" if ctx.input else f"{ctx.model} with weights {ctx.weights}",
            "lambda": penalty.lam,
            "lambda_schedule": penalty.schedule,
            "lambda_last_step": float(trainer.l1_lambda_last),
            "beta_l1": penalty.beta_l1,
            "penalty": penalty.penalty,
            "lambda_applies": "per batch" if penalty.every == "batch" else "per optimizer step",
            # ultralytics steps once per round(nbs / batch) batches (fewer in warm-up, capped by
            # the batches of the whole run); per batch, a step carries one penalty per batch
            "batch": batch,
            "nbs": nbs,
            "accumulate_batches": max(round(nbs / batch), 1),
            "accumulate_batches_last": int(trainer.accumulate),
            "optimizer_steps": int(trainer.l1_steps),
            "penalised_batches": int(trainer.l1_batches),
            "bn": penalty.bn,
            "bn_layers_penalised": int(trainer.l1_bn_count),
            "l1_scope": (
                "BatchNorm2d weights (γ)"
                + (f" and biases (β, {penalty.beta_l1:g}·λ)" if penalty.beta_l1 else "")
                + " outside the Detect head"
                + (", residual-path BNs excluded" if penalty.bn == "non_residual" else "")
            ),
            "l1_as": (
                "γ soft-thresholded by lr·λ after the optimizer step"
                if penalty.penalty == "proximal"
                else "λ·sign(γ) added to the gradient before the optimizer step"
            ),
            # Adam-family optimizers divide the gradient by its running RMS: there a subgradient
            # λ sets a direction more than a shrinkage rate, unlike network slimming's SGD
            "optimizer": str(trainer.args.optimizer),
            "mean_abs_gamma_before": gamma_before,
            "mean_abs_gamma_after": mean_abs_gamma(trained.model),
            "gamma_after_from": "fp32 copy" if fp32 else "checkpoint as stored",
            "fp32_copy": str(fp32) if fp32 else None,
        }
        return StageResult(checkpoint, energy, info)
