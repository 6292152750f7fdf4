"""Stage ``train``: train (from scratch, from weights, or on from the parent's checkpoint)."""

from __future__ import annotations

import difflib
from typing import Any, ClassVar

from greenbench.adapters.ultra_args import RESERVED, check_train_value, train_arg_names
from greenbench.pipeline.base import StageContext, StageResult


class TrainStage:
    """Ultralytics training with the suite's ``defaults`` overridden by the stage's params."""

    name: ClassVar[str] = "train"

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Params must be ultralytics training arguments that greenbench does not set itself."""
        known = train_arg_names() - RESERVED
        for key in params:
            if key in RESERVED:
                raise ValueError(f"'{key}' is set by greenbench itself and cannot be given here")
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ValueError(f"unknown training argument '{key}'{hint}")
            if (why := check_train_value(key, params[key])) is not None:
                raise ValueError(f"training argument '{key}': {why}")
        return dict(params)

    def run(self, ctx: StageContext) -> StageResult:
        """Train and return the best checkpoint with the energy of the whole training window."""
        adapter = ctx.adapter
        yolo = adapter.load(ctx.input) if ctx.input else adapter.build(ctx.model, ctx.weights)
        args = {**ctx.defaults, **ctx.params}
        window = ctx.meter.begin()
        checkpoint = adapter.train(
            yolo,
            ctx.data_yaml,
            ctx.out_dir,
            args,
            on_epoch=lambda epoch, epochs: ctx.emit(f"train epoch {epoch}/{epochs}"),
        )
        energy = ctx.meter.end(window)
        return StageResult(checkpoint, energy, {"train_args": args})
