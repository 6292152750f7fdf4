"""YOLOv5 hyperparameter files (``hyp.*.yaml``) as ultralytics training arguments.

A stage's ``hyp`` (a mapping, or a YAML file that the suite checks read into one:
``greenbench.suite.stage_files``) may hold YOLOv5's hyperparameter names: those whose meaning
ultralytics 8 keeps under the same name are carried over (``CARRIED``); the others are listed
with the reason (``NOT_CARRIED``) in the stage's record and are not applied. Any other key must
be an ultralytics training argument, carried as it is. A key the stage also gives directly wins
over ``hyp``.
"""

from __future__ import annotations

import math
from typing import Any

from greenbench.tasks.detect.ultra_args import check_train_args

#: YOLOv5 hyperparameters that ultralytics 8 takes under the same name and meaning
CARRIED: frozenset[str] = frozenset(
    {"lr0", "lrf", "momentum", "weight_decay", "warmup_epochs", "warmup_momentum", "warmup_bias_lr",
     "hsv_h", "hsv_s", "hsv_v", "degrees", "translate", "scale", "shear", "perspective", "flipud",
     "fliplr", "mosaic", "mixup", "copy_paste"}
)  # fmt: skip

_LOSS = (
    "a gain of YOLOv5's anchor-based loss; ultralytics' anchor-free loss weighs box, cls and dfl "
    "on another scale (defaults 7.5, 0.5, 1.5), so the value does not carry over"
)
_ANCHORS = "anchor-based target assignment; the anchor-free head assigns with its task-aligned assigner"
#: YOLOv5 hyperparameters with no ultralytics 8 equivalent, and why (for a model with the
#: anchor-free head; a model with YOLOv5's anchor-based head takes ``LOSS`` into its own loss)
NOT_CARRIED: dict[str, str] = {
    "box": _LOSS,
    "cls": _LOSS,
    "cls_pw": (
        "the positive weight of YOLOv5's class BCE; ultralytics' 'cls_pw' is a class-frequency "
        "weighting power, another thing under the same name"
    ),
    "obj": "objectness loss gain; the anchor-free head has no objectness",
    "obj_pw": "objectness BCE positive weight; the anchor-free head has no objectness",
    "iou_t": "a training IoU threshold that YOLOv5's own loss no longer reads (kept in its files)",
    "anchor_t": _ANCHORS,
    "anchors": "the anchor sizes: a model file's 'anchors', not a hyperparameter here",
    "fl_gamma": "focal loss gamma; neither loss here has a focal term (0, the YOLOv5 default, is none)",
}
#: the YOLOv5 loss settings a model with YOLOv5's anchor-based head takes (``anchor_head.LossGains``)
LOSS: frozenset[str] = frozenset({"box", "cls", "obj", "cls_pw", "obj_pw", "anchor_t"})


def check_hyp(value: Any) -> dict[str, Any]:
    """``value`` as a hyperparameter mapping, or a ``ValueError`` naming 'hyp' and the key. (A
    suite may name a YAML file instead: the suite checks read it into a mapping first.)"""
    if not isinstance(value, dict) or not value:
        raise ValueError(
            f"stage parameter 'hyp' must be a mapping of hyperparameters, or in a suite the name of "
            f"a YAML file of one beside it (e.g. the YOLOv5 study's hyp.finetune_prune.yaml), got {value!r}"
        )
    yolov5 = CARRIED | NOT_CARRIED.keys()
    for key, v in value.items():
        if key in yolov5:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"stage parameter 'hyp': {key!r} must be a finite number, got {v!r}")
    for _key, message in check_train_args({k: v for k, v in value.items() if k not in NOT_CARRIED}):
        raise ValueError(f"stage parameter 'hyp': {message}")
    return dict(value)


def translate(hyp: dict[str, Any] | None, anchor_loss: bool = False) -> tuple[dict[str, Any], dict[str, str]]:
    """(training arguments ``hyp`` carries over, {key: "value: why not"} for those it does not).
    ``anchor_loss``: the model has YOLOv5's anchor-based head, whose loss takes the ``LOSS`` keys
    (``loss_settings``): they are in neither."""
    hyp = hyp or {}
    own = LOSS if anchor_loss else frozenset()
    carried = {k: v for k, v in hyp.items() if k not in NOT_CARRIED}
    dropped = {k: f"{v}: {NOT_CARRIED[k]}" for k, v in hyp.items() if k in NOT_CARRIED and k not in own}
    return carried, dropped


def loss_settings(hyp: dict[str, Any] | None) -> dict[str, float]:
    """The YOLOv5 loss settings of ``hyp`` (box, cls, obj gains, BCE positive weights, anchor_t)."""
    return {k: float(v) for k, v in (hyp or {}).items() if k in LOSS}
