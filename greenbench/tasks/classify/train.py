"""Training a classifier: freeze-and-train or fine-tune, an augmentation curriculum, and a
hook for distillation (``greenbench.tasks.classify.distill``).

Arguments (a suite's ``defaults`` and a ``train``/``distill`` stage's params)::

    epochs: 10            # ignored where ``augment`` gives each step its own
    batch: 32
    optimizer: adam       # adam (the study's), adamw or sgd (momentum 0.9 unless set)
    lr: 0.001
    lr_milestones: [8]    # epochs after which lr × lr_gamma (0.1): the study's 1e-3 then 1e-4
    weight_decay: 0
    freeze: none          # backbone: only the final layer trains (a fixed feature extractor)
    augment:              # the curriculum: steps in order, each with its own transforms
      - {epochs: 2}
      - {epochs: 2, hflip: true}
      - {epochs: 2, hflip: true, rotate: 15, translate: 0.1, scale: 0.1}
      - {patience: 2, epochs: 10, hflip: true, rotate: 15, color_jitter: 0.2}   # plateau rule
    seed: 0
    imgsz: 224

A step with ``patience`` runs up to ``epochs`` epochs and stops once validation top-1 has not
improved for ``patience`` epochs (the plateau rule). Frozen layers stay in eval mode, so their
BatchNorm running statistics do not move either; the checkpoint's ``info`` says how many
parameters trained.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from greenbench.errors import GreenbenchError

OPTIMIZERS = ("adam", "adamw", "sgd")
FREEZE = ("none", "backbone")
AUGMENT_KEYS = {"epochs": int, "patience": int, "hflip": bool, "rotate": float, "translate": float,
                "scale": float, "color_jitter": float}  # fmt: skip
#: training arguments and their types (a list: ``augment``, ``lr_milestones``)
TRAIN_ARGS: dict[str, type] = {
    "epochs": int, "batch": int, "lr": float, "optimizer": str, "momentum": float,
    "weight_decay": float, "freeze": str, "seed": int, "imgsz": int, "workers": int,
    "augment": list, "lr_milestones": list, "lr_gamma": float, "label_smoothing": float,
}  # fmt: skip


def _kind_ok(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def check_args(args: dict[str, Any], extra: dict[str, type] | None = None) -> list[tuple[str, str]]:
    """(key, what is wrong) for every argument the classifier's training refuses."""
    known = {**TRAIN_ARGS, **(extra or {})}
    found = []
    for key, value in args.items():
        kind = known.get(key)
        if kind is None:
            found.append(
                (key, f"unknown classify training argument {key!r}; expected one of {', '.join(known)}")
            )
        elif not _kind_ok(value, kind):
            found.append(
                (key, f"classify training argument {key!r} must be a {kind.__name__}, got {value!r}")
            )
    if args.get("optimizer", "adam") not in OPTIMIZERS:
        found.append(
            ("optimizer", f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {args['optimizer']!r}")
        )
    if args.get("freeze", "none") not in FREEZE:
        found.append(("freeze", f"freeze must be one of {', '.join(FREEZE)}, got {args['freeze']!r}"))
    for key in ("epochs", "batch", "imgsz"):
        if _kind_ok(args.get(key), int) and args[key] < 1:
            found.append((key, f"{key} must be at least 1, got {args[key]}"))
    for key in ("lr", "lr_gamma"):
        if _kind_ok(args.get(key), float) and not (0 < args[key] < math.inf):
            found.append((key, f"{key} must be a positive number, got {args[key]}"))
    milestones = args.get("lr_milestones", [])
    if isinstance(milestones, list) and not all(_kind_ok(m, int) and m > 0 for m in milestones):
        found.append(
            ("lr_milestones", f"lr_milestones must be a list of epochs (integers > 0), got {milestones!r}")
        )
    steps = args.get("augment", [])
    if isinstance(steps, list):
        for i, step in enumerate(steps):
            found += [("augment", f"augment step {i + 1}: {why}") for why in _check_step(step)]
    return found


def _check_step(step: Any) -> list[str]:
    if not isinstance(step, dict):
        return [f"expected a mapping such as {{epochs: 2, hflip: true}}, got {step!r}"]
    out = []
    for key, value in step.items():
        kind = AUGMENT_KEYS.get(key)
        if kind is None:
            out.append(f"unknown key {key!r}; expected {', '.join(AUGMENT_KEYS)}")
        elif not _kind_ok(value, kind) or (kind is not bool and value < 0):
            out.append(f"{key} must be a {kind.__name__} >= 0, got {value!r}")
    if not _kind_ok(step.get("epochs"), int) or step["epochs"] < 1:
        out.append("needs 'epochs' (at least 1; with 'patience', the most it may run)")
    if _kind_ok(step.get("color_jitter"), float) and step["color_jitter"] > 1:
        out.append(f"color_jitter is a fraction (0.2 = 20 %), got {step['color_jitter']}")
    return out


def _transform(step: dict[str, Any]) -> Callable[[Any], Any] | None:
    """The step's augmentation of a uint8 batch (N, 3, H, W), or None for none."""
    from torchvision.transforms import v2

    parts: list[Any] = []
    if step.get("hflip"):
        parts.append(v2.RandomHorizontalFlip())
    if step.get("rotate") or step.get("translate") or step.get("scale"):
        t, s = float(step.get("translate", 0)), float(step.get("scale", 0))
        parts.append(v2.RandomAffine(degrees=float(step.get("rotate", 0)), translate=(t, t) if t else None,
                                     scale=(1 - s, 1 + s) if s else None))  # fmt: skip
    if step.get("color_jitter"):
        j = float(step["color_jitter"])
        parts.append(v2.ColorJitter(brightness=j, contrast=j, saturation=j))
    if not parts:
        return None
    compose = v2.Compose(parts)
    return lambda batch: compose(batch)


def trainable(model: Any, freeze: str) -> tuple[list[Any], list[Any]]:
    """Set which parameters train: all, or (``backbone``) only the final layer's. Returns the
    trainable parameters and the frozen modules (kept in eval mode while training)."""
    from greenbench.tasks.classify.models import head

    if freeze == "none":
        for p in model.parameters():
            p.requires_grad_(True)
        return list(model.parameters()), []
    name, final = head(model)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in final.parameters():
        p.requires_grad_(True)
    frozen = [m for n, m in model.named_modules() if n and n != name and not n.startswith(name + ".")
              and not any(True for _ in m.children())]  # fmt: skip
    return list(final.parameters()), frozen


def _optimizer(params: list[Any], args: dict[str, Any]) -> Any:
    import torch

    lr, wd = float(args.get("lr", 1e-3)), float(args.get("weight_decay", 0.0))
    kind = args.get("optimizer", "adam")
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=float(args.get("momentum", 0.9)), weight_decay=wd)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.Adam(params, lr=lr, weight_decay=wd)


Loss = Callable[[Any, Any, Any], Any]  # (logits, labels, inputs) -> loss


def fit(
    model: Any,
    contents: Any,
    args: dict[str, Any],
    out_dir: Path,
    on_epoch: Callable[[int, int], None] | None = None,
    loss_fn: Loss | None = None,
    evaluate: Callable[[Any], float] | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place on ``contents``' train split; what happened, for the checkpoint.

    ``loss_fn``: the loss of a batch (default cross-entropy; distillation passes its own).
    ``evaluate``: validation top-1 of the model, for a plateau rule.
    """
    import torch

    from greenbench.tasks.classify.data import Images, normalize

    seed = int(args.get("seed", 0))
    torch.manual_seed(seed)
    images = Images(contents, "train", int(args.get("imgsz", 224)))
    steps = args.get("augment") or [{"epochs": int(args.get("epochs", 10))}]
    total = sum(int(s["epochs"]) for s in steps)
    params, frozen = trainable(model, str(args.get("freeze", "none")))
    optimizer = _optimizer(params, args)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(args.get("lr_milestones", [])), gamma=float(args.get("lr_gamma", 0.1))
    )
    smoothing = float(args.get("label_smoothing", 0.0))

    def cross_entropy(logits: Any, y: Any, _x: Any) -> Any:
        return torch.nn.functional.cross_entropy(logits, y, label_smoothing=smoothing)

    loss_fn = loss_fn or cross_entropy
    batch = int(args.get("batch", 32))
    generator = torch.Generator().manual_seed(seed)
    history: list[dict[str, Any]] = []
    epoch = 0
    for i, step in enumerate(steps):
        augment = _transform(step)
        patience = step.get("patience")
        best, stale, ran = -1.0, 0, 0
        for _ in range(int(step["epochs"])):
            model.train()
            for m in frozen:
                m.eval()  # frozen BatchNorm keeps its running statistics
            order = torch.randperm(len(images), generator=generator)
            losses = []
            for start in range(0, len(order), batch):
                idx = order[start : start + batch]
                if len(idx) < 2 and len(order) > 1:
                    continue  # a batch of one breaks BatchNorm in train mode
                x = images.pixels[idx]
                if augment is not None:
                    x = torch.stack([augment(img) for img in x])
                x = normalize(contents, x)
                loss = loss_fn(model(x), images.labels[idx], x)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
            scheduler.step()
            epoch += 1
            ran += 1
            mean_loss = sum(losses) / max(len(losses), 1)
            if not math.isfinite(mean_loss):
                raise GreenbenchError(
                    f"training diverged (loss {mean_loss}) at epoch {epoch} in {out_dir}; lower 'lr' "
                    f"(now {args.get('lr', 1e-3)}) or use optimizer: sgd."
                )
            entry: dict[str, Any] = {"epoch": epoch, "step": i + 1, "train_loss": round(mean_loss, 6)}
            if patience is not None and evaluate is not None:
                top1 = evaluate(model)
                entry["val_top1"] = round(top1, 6)
                best, stale = (top1, 0) if top1 > best else (best, stale + 1)
            history.append(entry)
            if on_epoch is not None:
                on_epoch(epoch, total)
            if patience is not None and stale >= int(patience):
                break
    model.eval()
    n_total = sum(p.numel() for p in model.parameters())
    n_trainable = sum(p.numel() for p in params)
    return {
        "freeze": args.get("freeze", "none"),
        "trainable_params": n_trainable,
        "total_params": n_total,
        "bn_running_stats": "frozen (frozen layers in eval mode)" if frozen else "updated",
        "epochs_run": epoch,
        "augment_steps": [
            {**s, "epochs_run": sum(1 for h in history if h["step"] == i + 1)} for i, s in enumerate(steps)
        ],
        "checkpoint": "last epoch",
        "history": history,
    }
