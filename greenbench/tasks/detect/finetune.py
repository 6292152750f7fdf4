"""Stage ``finetune``: train the pruned module itself (network slimming, step 3).

``yolo.train()`` on a loaded pruned model rebuilds the full model from its YAML and copies the
weights that fit: the result is silently unpruned. This stage trains the module it was given
(``ultra_slim.module_trainer``), starts from the parent's fp32 copy when there is one, and fails
if the trained model has more parameters than the one it started from. ``hyp`` takes a YOLOv5
hyperparameter file or mapping (the study's ``hyp.finetune_prune.yaml``), translated by ``hyp``;
a model with YOLOv5's anchor-based head (``anchor_head``) also takes the file's loss settings
(box, cls, obj gains, BCE positive weights, anchor_t) into its loss, and the record says so.
"""

from __future__ import annotations

from typing import Any, ClassVar

from greenbench.errors import GreenbenchError
from greenbench.pipeline.base import StageContext, StageResult
from greenbench.tasks.base import Task
from greenbench.tasks.detect import hyp as hyperparams
from greenbench.tasks.detect.sparse_train import check_training

#: the study lowers lr0 from 0.01 to 0.001 for fine-tuning
DEFAULT_LR0 = 0.001


def _check_classes(model: Any, ctx: StageContext) -> None:
    """The module is trained as it is: its head must already have the data's class count."""
    import yaml

    from greenbench.tasks.detect.ultra_slim import detect_heads

    names = (yaml.safe_load(ctx.data_yaml.read_text(encoding="utf-8")) or {}).get("names") or {}
    heads = detect_heads(model)
    if heads and names and heads[0].nc != len(names):
        raise GreenbenchError(
            f"stage finetune{f' of variant {ctx.variant!r}' if ctx.variant else ''}: the model's head "
            f"predicts {heads[0].nc} classes and {ctx.data_yaml} has {len(names)}. finetune trains the "
            f"(pruned) module as it is; train, sparse_train or prune from a model trained on this data."
        )


class FinetuneStage:
    """Train the parent's (pruned) module on; ``lr0`` defaults to 0.001.

    Params: ``hyp`` (a YOLOv5 hyperparameter mapping, or a YAML file of one: ``hyp``) and any
    ultralytics training argument (``epochs``, ``lr0``, ...); they override the suite's
    ``defaults``, and a training argument given directly overrides ``hyp``.
    """

    name: ClassVar[str] = "finetune"
    variant_params: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def validate_params(cls, params: dict[str, Any], task: type[Task] | None = None) -> dict[str, Any]:
        """Ultralytics training arguments and ``hyp``; ``lr0`` filled in (0.001) unless ``hyp``
        gives it, so the cache key says it."""
        params = dict(params)
        hyp = hyperparams.check_hyp(params.pop("hyp")) if "hyp" in params else None
        lr0 = {} if hyp and "lr0" in hyp else {"lr0": DEFAULT_LR0}
        out = {**lr0, **params}
        check_training(out)
        return {**out, "hyp": hyp} if hyp else out

    def run(self, ctx: StageContext) -> StageResult:
        """Fine-tune; raise ``GreenbenchError`` if the parameter count grew."""
        from greenbench.measure.complexity import count_params
        from greenbench.tasks.detect.ultra_slim import load_fp32_copy, module_trainer

        params = self.validate_params(ctx.params)
        hyp = params.pop("hyp", None)
        task = ctx.task
        yolo = ctx.start_model()
        from greenbench.tasks.detect.anchor_head import AnchorDetectionModel, LossGains

        anchor = isinstance(yolo.model, AnchorDetectionModel)
        carried, not_carried = hyperparams.translate(hyp, anchor_loss=anchor)
        loss = hyperparams.loss_settings(hyp) if anchor else {}
        if anchor:  # YOLOv5's loss settings from the file, the rest YOLOv5's defaults (never a parent's)
            yolo.model.loss_gains = LossGains(**loss)
        fp32 = load_fp32_copy(yolo.model, ctx.input) if ctx.input else None
        _check_classes(yolo.model, ctx)
        params_before = count_params(yolo.model)
        args = {**ctx.defaults, **carried, **params}
        if args.get("optimizer", "auto") == "auto":  # 'auto' ignores lr0 (picks its own): say which
            args["optimizer"] = "SGD"
        checkpoint, energy = ctx.train(yolo, args, "finetune", trainer=module_trainer(yolo.model))
        params_after = count_params(task.load(checkpoint).model)
        if params_after > params_before:
            where = (
                f"variant {ctx.variant!r}, stage finetune"
                if ctx.variant
                else f"stage finetune ({ctx.out_dir})"
            )
            raise GreenbenchError(
                f"{where}: the fine-tuned model has {params_after:,} parameters, more than the "
                f"{params_before:,} it started from, so training rebuilt the unpruned model from "
                f"its YAML instead of training the pruned module. Its output {checkpoint} is not a "
                f"fine-tuned pruned model; report this as a greenbench bug."
            )
        info = {
            "train_args": args,
            "params_before": params_before,
            "params_after": params_after,
            "weights_from": f"fp32 copy {fp32}" if fp32 else "checkpoint as stored",
        }
        if carried or not_carried:
            info["hyp_carried"] = carried
            info["hyp_not_carried"] = not_carried
        if anchor:
            info["loss"] = {
                "kind": "YOLOv5 (anchor-based head)",
                **vars(yolo.model.loss_gains),
                "from_hyp": sorted(loss),
            }
        return StageResult(checkpoint, energy, info)
