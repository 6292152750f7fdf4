"""YOLOv5's anchor-based detection head and its loss, for ultralytics models: the head of the
YOLOv5 study's models (its Table 2 counts parameters with it).

A model YAML selects it with a top-level ``anchors:`` key, as YOLOv5's own configs do: three
rows of pixel (width, height) pairs, one row per Detect input, e.g. YOLOv5's COCO anchors
``[[10,13, 16,30, 33,23], [30,61, 62,45, 59,119], [116,90, 156,198, 373,326]]``. Its head row
stays ``[[P3, P4, P5], 1, Detect, [nc]]``: ultralytics builds its own ``Detect`` (which also finds
the strides) and ``to_anchor_head`` then puts an ``AnchorDetect`` in its place, taking its input
channels, strides and layer bookkeeping. The head cannot be a YAML layer of its own: ultralytics'
parser hands the input channels only to the ``Detect`` classes it lists by identity, and no
subclass of them.

What greenbench writes here, by hand, because neither ultralytics (which dropped the anchor-based
head in 8.0) nor any maintained package offers it for ultralytics models: the head (per level one
1x1 conv to ``anchors x (5 + classes)`` outputs), its decoding (centre ``(2·σ(t) − 0.5 + cell)·
stride``, size ``(2·σ(t))²·anchor``, class score ``σ(objectness)·σ(class)``) and the YOLOv5 loss
(``utils/loss.py`` of YOLOv5 v6/v7: each target matched to the anchors within a width/height
ratio of ``anchor_t`` and to its cell and the two nearest neighbouring cells; CIoU box loss;
objectness BCE towards the IoU, weighted 4.0/1.0/0.4 over P3/P4/P5; class BCE), with the
``hyp.scratch-low`` gains YOLOv5 trains with (box 0.05, obj 1.0, cls 0.5, anchor_t 4.0),
scaled by the number of levels, classes and image size as YOLOv5's ``train.py`` scales them.
No automatic anchor fitting (YOLOv5's ``autoanchor``): the YAML's anchors are used as written.

Inference output is ultralytics' ``Detect`` format, ``(batch, 4 + classes, boxes)`` with
``xywh`` pixel boxes and per-class scores: ultralytics' NMS, validator, exporter and
greenbench's end-to-end timing read it unchanged (25,200 candidate boxes at 640 px, where the
anchor-free head has 8,400). ``AnchorDetectionModel`` is a ``DetectionModel`` whose loss is
``AnchorLoss``; its losses are logged as ``box_loss``, ``obj_loss``, ``cls_loss``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from ultralytics.nn.modules.head import Detect
from ultralytics.nn.tasks import DetectionModel

from greenbench.errors import GreenbenchError

#: YOLOv5's default anchors (COCO, pixels at 640): P3/8, P4/16, P5/32
COCO_ANCHORS = ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326))


@dataclass(frozen=True)
class LossGains:
    """YOLOv5's ``hyp.scratch-low.yaml`` loss settings (also its ``hyp.scratch.yaml`` of v5/v6):
    before the per-model scaling ``AnchorLoss`` applies."""

    box: float = 0.05
    obj: float = 1.0
    cls: float = 0.5
    cls_pw: float = 1.0  # positive weight of the class BCE
    obj_pw: float = 1.0  # positive weight of the objectness BCE
    anchor_t: float = 4.0  # a target matches an anchor when neither side ratio exceeds this


#: objectness weights per level, YOLOv5's ``balance`` (P3, P4, P5)
BALANCE = {3: (4.0, 1.0, 0.4)}
BALANCE_OTHER = (4.0, 1.0, 0.25, 0.06, 0.02)


def check_anchors(anchors: Any, levels: int, where: str = "the model YAML") -> list[list[float]]:
    """``anchors`` as ``levels`` rows of the same even number of positive pixel sizes, or a clear
    error naming ``where``."""
    ok = (
        isinstance(anchors, (list, tuple))
        and len(anchors) == levels
        and all(isinstance(r, (list, tuple)) and r and len(r) % 2 == 0 for r in anchors)
        and len({len(r) for r in anchors}) == 1
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for r in anchors for v in r)
    )
    if not ok:
        raise GreenbenchError(
            f"'anchors' in {where} must be {levels} lists (one per Detect input) of the same even "
            f"number of positive pixel sizes (width, height pairs), e.g. YOLOv5's "
            f"{[list(r) for r in COCO_ANCHORS]}; got {anchors!r}."
        )
    return [[float(v) for v in r] for r in anchors]


class AnchorDetect(Detect):  # type: ignore[misc]
    """YOLOv5's anchor-based, coupled detection head: per level one 1x1 conv to
    ``na x (4 box + 1 objectness + nc classes)`` channels.

    A ``Detect`` subclass so that ultralytics treats it as its detection head (strides moved with
    the model, export flags, NMS format); nothing of ``Detect.__init__`` is kept.
    """

    def __init__(self, nc: int, anchors: Sequence[Sequence[float]], ch: Sequence[int]) -> None:
        nn.Module.__init__(self)
        self.nc = nc
        self.nl = len(ch)
        self.na = len(anchors[0]) // 2
        self.no = nc + 5
        self.reg_max = 1  # read by some ultralytics code paths; no DFL here
        self.stride = torch.zeros(self.nl)
        self.register_buffer(
            "anchor_px", torch.tensor(anchors, dtype=torch.float32).view(self.nl, self.na, 2)
        )
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch)
        # Detect's box and class branches, which ultralytics' code looks up by name: the box branches
        # are iterated (an empty list: none), the class branches tested for None
        self.cv2 = nn.ModuleList()
        self.cv3 = None  # type: ignore[assignment]

    @property
    def one2many(self) -> dict[str, Any]:
        return {"box_head": None, "cls_head": None}

    @property  # type: ignore[override]
    def end2end(self) -> bool:
        """Never: YOLOv5's head has no NMS-free branch (its boxes always go through NMS)."""
        return False

    @end2end.setter
    def end2end(self, value: bool) -> None:  # ultralytics' validator sets it from its 'nms' argument
        self._end2end = False

    def forward(self, x: list[torch.Tensor]) -> Any:  # type: ignore[override]
        raw = [conv(xi) for conv, xi in zip(self.m, x, strict=True)]
        if self.training:
            return {"feats": raw}
        y = self.decode(raw)
        return y if self.export else (y, {"feats": raw})

    def decode(self, raw: list[torch.Tensor]) -> torch.Tensor:
        """``(batch, 4 + nc, boxes)``: centre x, y and width, height in input pixels, then each
        class's score (objectness × class probability)."""
        out = []
        for i, p in enumerate(raw):
            b, _, h, w = p.shape
            p = p.view(b, self.na, self.no, h, w).permute(0, 1, 3, 4, 2).sigmoid()
            gy, gx = torch.meshgrid(
                torch.arange(h, device=p.device, dtype=p.dtype),
                torch.arange(w, device=p.device, dtype=p.dtype),
                indexing="ij",
            )
            grid = torch.stack((gx, gy), -1).view(1, 1, h, w, 2)
            xy = (p[..., :2] * 2 - 0.5 + grid) * self.stride[i]
            wh = (p[..., 2:4] * 2) ** 2 * self.anchors_px()[i].view(1, self.na, 1, 1, 2)
            if self.xyxy:  # the exporter's NMS wrapper asks for corners
                xy, wh = xy - wh / 2, xy + wh / 2
            out.append(torch.cat((xy, wh, p[..., 4:5] * p[..., 5:]), -1).view(b, -1, 4 + self.nc))
        return torch.cat(out, 1).permute(0, 2, 1)

    def anchors_px(self) -> torch.Tensor:
        """The anchors, (levels, anchors, 2) pixel widths and heights."""
        return self.get_buffer("anchor_px")

    def bias_init(self) -> None:
        """YOLOv5's prior: about 8 objects per 640 px image for objectness, 0.6 / nc per class."""
        convs: Any = self.m
        for conv, s in zip(convs, self.stride.tolist(), strict=True):
            b = conv.bias.view(self.na, -1)
            b.data[:, 4] += math.log(8 / (640 / s) ** 2)
            b.data[:, 5:] += math.log(0.6 / (self.nc - 0.99999))

    def fuse(self) -> None:  # nothing to fold: plain convs, no one-to-one branch
        return None


def is_anchor_yaml(cfg: Any) -> bool:
    """Whether a model config dict asks for the anchor-based head (it has ``anchors``)."""
    return isinstance(cfg, dict) and cfg.get("anchors") is not None


def to_anchor_head(model: Any) -> Any:
    """``model`` (an ultralytics ``DetectionModel`` built from a YAML with ``anchors``) with its
    ``Detect`` replaced by an ``AnchorDetect`` on the same inputs and strides, in place."""
    old: Any = model.model[-1]
    if isinstance(old, AnchorDetect):
        return model
    if type(old) is not Detect:
        raise GreenbenchError(
            f"'anchors' in a model YAML needs ultralytics' plain Detect as its last layer (the head "
            f"that the anchor-based one replaces); this model ends with {type(old).__name__}."
        )
    anchors = check_anchors(
        model.yaml.get("anchors"), old.nl, f"model YAML {model.yaml.get('yaml_file', '')}"
    )
    box_branches: Any = old.cv2  # one per input level: its first conv reads the level's channels
    head: Any = AnchorDetect(old.nc, anchors, [seq[0].conv.in_channels for seq in box_branches])
    head.stride = old.stride.clone()
    head.i, head.f = old.i, old.f
    head.type = f"{__name__}.AnchorDetect"
    head.inplace = getattr(old, "inplace", True)
    head.bias_init()
    head.np = sum(p.numel() for p in head.parameters())
    head.to(next(old.parameters()).device)
    model.model[-1] = head
    model.__class__ = AnchorDetectionModel
    model.criterion = None
    return model


class AnchorDetectionModel(DetectionModel):  # type: ignore[misc]
    """An ultralytics ``DetectionModel`` with YOLOv5's anchor-based head and loss."""

    def __init__(
        self, cfg: Any = "yolov5s.yaml", ch: int = 3, nc: int | None = None, verbose: bool = True
    ) -> None:
        super().__init__(cfg, ch=ch, nc=nc, verbose=False)
        to_anchor_head(self)
        if verbose:
            self.info()

    def init_criterion(self) -> AnchorLoss:
        return AnchorLoss(self)


def anchor_trainer(base: type[Any]) -> type[Any]:
    """``base`` (a ``DetectionTrainer`` class) training the anchor-based model: the model it
    builds from the YAML gets the anchor-based head, and a given checkpoint's weights are loaded
    into that head too. A trainer that trains a given module (``module_trainer``) already
    returns one."""

    class AnchorTrainer(base):  # type: ignore[misc,valid-type]
        def get_model(self, cfg: Any = None, weights: Any = None, verbose: bool = True) -> Any:
            model = super().get_model(cfg=cfg, weights=weights, verbose=False)
            if isinstance(model, AnchorDetectionModel):
                return model
            model = to_anchor_head(model)
            if weights:
                model.load(weights)
            return model

    AnchorTrainer.__name__ = AnchorTrainer.__qualname__ = f"Anchor{base.__name__}"
    return AnchorTrainer


def _imgsz(args: Any) -> float:
    value = args.get("imgsz") if isinstance(args, dict) else getattr(args, "imgsz", None)
    if isinstance(value, (list, tuple)):
        value = max(value)
    return float(value) if isinstance(value, (int, float)) and value > 0 else 640.0


class AnchorLoss:
    """YOLOv5's loss for ``AnchorDetect`` (see the module docstring); called as ultralytics calls
    its criteria: ``(predictions, batch) -> (loss × batch size, {name: loss})``. Its settings are
    the model's ``loss_gains`` attribute (a ``LossGains``, set by the finetune stage from a YOLOv5
    hyperparameter file), else YOLOv5's defaults."""

    def __init__(self, model: Any, gains: LossGains | None = None) -> None:
        gains = gains or getattr(model, "loss_gains", None) or LossGains()
        self.gains = gains
        head: Any = model.model[-1]
        self.head = head
        self.nc, self.nl, self.na = head.nc, head.nl, head.na
        self.anchor_t = gains.anchor_t
        per_level = 3 / self.nl
        self.box_gain = gains.box * per_level
        self.cls_gain = gains.cls * self.nc / 80 * per_level
        self.obj_gain = gains.obj * (_imgsz(getattr(model, "args", {})) / 640) ** 2 * per_level
        self.balance = BALANCE.get(self.nl, BALANCE_OTHER)
        self.bce_cls = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([gains.cls_pw]))
        self.bce_obj = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([gains.obj_pw]))

    def __call__(
        self, preds: Any, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        from ultralytics.utils.metrics import bbox_iou

        feats: list[torch.Tensor] = (preds[1] if isinstance(preds, tuple) else preds)["feats"]
        device = feats[0].device
        targets = torch.cat(
            (batch["batch_idx"].view(-1, 1), batch["cls"].view(-1, 1), batch["bboxes"].view(-1, 4)), 1
        ).to(device=device, dtype=torch.float32)
        tcls, tbox, indices, anchors = self.build_targets(feats, targets)
        self.bce_cls.to(device)
        self.bce_obj.to(device)
        lbox = torch.zeros(1, device=device)
        lobj = torch.zeros(1, device=device)
        lcls = torch.zeros(1, device=device)
        bs = feats[0].shape[0]
        for i, raw in enumerate(feats):
            _, _, h, w = raw.shape
            p = raw.view(bs, self.na, self.nc + 5, h, w).permute(0, 1, 3, 4, 2)
            b, a, gj, gi = indices[i]
            tobj = torch.zeros(p.shape[:4], dtype=p.dtype, device=device)
            n = b.shape[0]
            if n:
                ps = p[b, a, gj, gi]
                pxy = ps[:, :2].sigmoid() * 2 - 0.5
                pwh = (ps[:, 2:4].sigmoid() * 2) ** 2 * anchors[i]
                iou = bbox_iou(torch.cat((pxy, pwh), 1), tbox[i], xywh=True, CIoU=True).view(-1)
                lbox = lbox + (1.0 - iou).mean()
                tobj[b, a, gj, gi] = iou.detach().clamp(0).type(tobj.dtype)
                if self.nc > 1:
                    t = torch.zeros_like(ps[:, 5:])
                    t[torch.arange(n, device=device), tcls[i]] = 1.0
                    lcls = lcls + self.bce_cls(ps[:, 5:], t)
            lobj = lobj + self.bce_obj(p[..., 4], tobj) * self.balance[i]
        loss = torch.cat((lbox * self.box_gain, lobj * self.obj_gain, lcls * self.cls_gain))
        items = loss.detach()
        return loss * bs, {"box_loss": items[0], "obj_loss": items[1], "cls_loss": items[2]}

    def build_targets(
        self, feats: list[torch.Tensor], targets: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[tuple[torch.Tensor, ...]], list[torch.Tensor]]:
        """For each level: the classes, boxes (centre offset in its cell, size, in cells),
        indices (image, anchor, row, column) and anchors (in cells) of the predictions that learn
        a target. ``targets``: rows of (image, class, x, y, w, h), box normalised to the image."""
        device = targets.device
        na, nt = self.na, targets.shape[0]
        tcls: list[torch.Tensor] = []
        tbox: list[torch.Tensor] = []
        indices: list[tuple[torch.Tensor, ...]] = []
        anch: list[torch.Tensor] = []
        gain = torch.ones(7, device=device)
        ai = torch.arange(na, device=device, dtype=torch.float32).view(na, 1).repeat(1, nt)
        targets = torch.cat((targets.repeat(na, 1, 1), ai[..., None]), 2)  # (na, nt, 7): + anchor index
        g = 0.5  # a neighbouring cell joins when the centre is within half a cell of it
        off = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], device=device, dtype=torch.float32) * g
        for i, raw in enumerate(feats):
            h, w = raw.shape[-2:]
            anchors = (self.head.anchors_px()[i] / self.head.stride[i]).to(device=device, dtype=torch.float32)
            gain[2:6] = torch.tensor([w, h, w, h], device=device, dtype=torch.float32)
            t = targets * gain
            if nt:
                r = t[..., 4:6] / anchors[:, None]
                t = t[torch.max(r, 1 / r).max(2)[0] < self.anchor_t]
                gxy = t[:, 2:4]
                gxi = gain[[2, 3]] - gxy
                j, k = ((gxy % 1 < g) & (gxy > 1)).T
                left, m = ((gxi % 1 < g) & (gxi > 1)).T
                pick = torch.stack((torch.ones_like(j), j, k, left, m))
                t = t.repeat((5, 1, 1))[pick]
                offsets = (torch.zeros_like(gxy)[None] + off[:, None])[pick]
            else:
                t = targets[0]
                offsets = torch.zeros_like(t[:, 2:4])
            b, c = t[:, :2].long().T
            gxy, gwh = t[:, 2:4], t[:, 4:6]
            gij = (gxy - offsets).long()
            gi, gj = gij[:, 0].clamp(0, w - 1), gij[:, 1].clamp(0, h - 1)
            a = t[:, 6].long()
            indices.append((b, a, gj, gi))
            tbox.append(torch.cat((gxy - torch.stack((gi, gj), 1), gwh), 1))
            anch.append(anchors[a])
            tcls.append(c)
        return tcls, tbox, indices, anch
