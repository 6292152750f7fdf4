"""Stage ``sparse_train``: training with an L1 penalty on BatchNorm γ (network slimming, step 1).

The penalty λ·Σ|γ| enters as its subgradient λ·sign(γ), added to each BN weight gradient outside
the Detect head once per optimizer step (``greenbench.tasks.detect.ultra_slim.sparse_trainer``).
Channels whose γ it drives towards 0 are the ones ``prune`` removes.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from greenbench.pipeline.base import StageContext, StageResult
from greenbench.tasks.base import Task
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


def check_training(params: dict[str, Any]) -> None:
    """Raise ``ValueError`` for the first ultralytics training argument that is not acceptable."""
    for _key, message in check_train_args(params):
        raise ValueError(message)


class SparseTrainStage:
    """Ultralytics training plus λ·sign(γ) on every BN γ gradient outside the Detect head.

    Params: ``lambda`` (required, > 0) and any ultralytics training argument (``epochs``, ...),
    which override the suite's ``defaults``.
    """

    name: ClassVar[str] = "sparse_train"
    variant_params: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def validate_params(cls, params: dict[str, Any], task: type[Task] | None = None) -> dict[str, Any]:
        """``lambda`` > 0; the other keys must be ultralytics training arguments."""
        if "lambda" not in params:
            raise ValueError("stage parameter 'lambda' (the L1 weight on BN γ, e.g. 5e-4) is required")
        lam = positive_number(params, "lambda")
        rest = {k: v for k, v in params.items() if k != "lambda"}
        check_training(rest)
        return {"lambda": lam, **rest}

    def run(self, ctx: StageContext) -> StageResult:
        """Sparse-train; record λ, how often it applied and mean |γ| before and after."""
        from greenbench.tasks.detect.ultra_slim import load_fp32_copy, mean_abs_gamma, sparse_trainer

        params = self.validate_params(ctx.params)
        lam = params.pop("lambda")
        task = ctx.task
        yolo = ctx.start_model()
        if ctx.input:
            load_fp32_copy(yolo.model, ctx.input)
        gamma_before = mean_abs_gamma(yolo.model)
        args = {**ctx.defaults, **params}
        checkpoint, energy = ctx.train(yolo, args, "sparse_train", trainer=sparse_trainer(lam))
        trainer = yolo.trainer
        trained = task.load(checkpoint)
        fp32 = load_fp32_copy(trained.model, checkpoint)
        batch, nbs = int(trainer.batch_size), int(trainer.args.nbs)  # as ultralytics resolved them
        info = {
            "train_args": args,
            "lambda": lam,
            "lambda_applies": "per optimizer step",
            # ultralytics steps once per round(nbs / batch) batches (fewer in warm-up, capped by
            # the batches of the whole run): λ is not scaled by that, it is per step
            "batch": batch,
            "nbs": nbs,
            "accumulate_batches": max(round(nbs / batch), 1),
            "accumulate_batches_last": int(trainer.accumulate),
            "optimizer_steps": int(trainer.l1_steps),
            "l1_scope": "BatchNorm2d weights (γ) outside the Detect head",
            "l1_as": "λ·sign(γ) added to the gradient before the optimizer step",
            # Adam-family optimizers divide the gradient by its running RMS: there λ sets a
            # direction more than a shrinkage rate, unlike network slimming's SGD
            "optimizer": str(trainer.args.optimizer),
            "mean_abs_gamma_before": gamma_before,
            "mean_abs_gamma_after": mean_abs_gamma(trained.model),
            "gamma_after_from": "fp32 copy" if fp32 else "checkpoint as stored",
            "fp32_copy": str(fp32) if fp32 else None,
        }
        return StageResult(checkpoint, energy, info)
