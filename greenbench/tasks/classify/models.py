"""Classification models: torchvision (or timm) by name, pretrained weights from a file, the
final layer for the data's classes, and checkpoints that keep a changed structure.

A checkpoint is a dict read with ``torch.load(weights_only=True)`` (no code runs from it):
``arch`` (the model name), ``num_classes``, ``structure`` (every layer whose shape differs from
the freshly built model, as constructor arguments: a pruned conv's channels, a low-rank
factorisation) and ``state_dict``. ``load`` builds the architecture, replays the structure and
loads the weights strictly, so pruned and factorised models round-trip without pickles.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

from greenbench.errors import GreenbenchError

#: torchvision's classification models (``torchvision.models.list_models(module=torchvision.models)``
#: of torchvision 0.29; a test keeps it equal), so suites are checked without importing torch
TORCHVISION_MODELS = (
    "alexnet convnext_base convnext_large convnext_small convnext_tiny densenet121 densenet161 "
    "densenet169 densenet201 efficientnet_b0 efficientnet_b1 efficientnet_b2 efficientnet_b3 "
    "efficientnet_b4 efficientnet_b5 efficientnet_b6 efficientnet_b7 efficientnet_v2_l efficientnet_v2_m "
    "efficientnet_v2_s googlenet inception_v3 maxvit_t mnasnet0_5 mnasnet0_75 mnasnet1_0 mnasnet1_3 "
    "mobilenet_v2 mobilenet_v3_large mobilenet_v3_small regnet_x_16gf regnet_x_1_6gf regnet_x_32gf "
    "regnet_x_3_2gf regnet_x_400mf regnet_x_800mf regnet_x_8gf regnet_y_128gf regnet_y_16gf "
    "regnet_y_1_6gf regnet_y_32gf regnet_y_3_2gf regnet_y_400mf regnet_y_800mf regnet_y_8gf resnet101 "
    "resnet152 resnet18 resnet34 resnet50 resnext101_32x8d resnext101_64x4d resnext50_32x4d "
    "shufflenet_v2_x0_5 shufflenet_v2_x1_0 shufflenet_v2_x1_5 shufflenet_v2_x2_0 squeezenet1_0 "
    "squeezenet1_1 swin_b swin_s swin_t swin_v2_b swin_v2_s swin_v2_t vgg11 vgg11_bn vgg13 vgg13_bn "
    "vgg16 vgg16_bn vgg19 vgg19_bn vit_b_16 vit_b_32 vit_h_14 vit_l_16 vit_l_32 wide_resnet101_2 "
    "wide_resnet50_2"
).split()
TIMM_PREFIX = "timm:"
CHECKPOINT_FORMAT = "greenbench-classify-1"


def is_known(name: str) -> bool:
    """A torchvision model name, or ``timm:<name>`` (checked when built: timm may be absent)."""
    return name in TORCHVISION_MODELS or (name.startswith(TIMM_PREFIX) and len(name) > len(TIMM_PREFIX))


def architecture(name: str, num_classes: int | None = None) -> Any:
    """A freshly initialised model ``name`` (torchvision's default head unless ``num_classes``)."""
    import torch

    torch.manual_seed(0)  # the same initial weights in every process: the stage cache depends on it
    kw: dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes}
    if name.startswith(TIMM_PREFIX):
        try:
            import timm
        except ImportError:
            raise GreenbenchError(f"model {name!r} needs timm: pip install timm") from None
        try:
            return timm.create_model(name[len(TIMM_PREFIX) :], pretrained=False, **kw)
        except RuntimeError as e:
            raise GreenbenchError(f"timm has no model {name[len(TIMM_PREFIX) :]!r} ({e}).") from None
    from torchvision.models import get_model

    if name not in TORCHVISION_MODELS:
        raise GreenbenchError(f"{name!r} is not a torchvision classification model; e.g. resnet18.")
    if name in ("googlenet", "inception_v3"):
        kw["aux_logits"], kw["init_weights"] = False, True  # one output: what is timed and exported
    return get_model(name, weights=None, **kw)


def torchvision_file(name: str) -> str | None:
    """The file name torchvision gives ``name``'s default pretrained weights (in
    ``$TORCH_HOME/hub/checkpoints``), or None for a model torchvision has no weights for."""
    if name.startswith(TIMM_PREFIX):
        return None
    from torchvision.models import get_model_weights

    try:
        return str(get_model_weights(name).DEFAULT.url.rsplit("/", 1)[-1])
    except (ValueError, KeyError, AttributeError):
        return None


def head(model: Any) -> tuple[str, Any]:
    """The final layer (the last ``nn.Linear``, or a 1×1 conv classifier as SqueezeNet's): its
    dotted name and module."""
    from torch import nn

    found: list[tuple[str, Any]] = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not found:
        found = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and "classifier" in n]
    if not found:
        raise GreenbenchError(
            f"{type(model).__name__}: no final Linear layer to replace for the data's classes."
        )
    return found[-1]


def num_classes(model: Any) -> int:
    """How many classes the model predicts."""
    _, m = head(model)
    return int(getattr(m, "out_features", 0) or m.out_channels)


def set_module(model: Any, name: str, module: Any) -> None:
    """Replace the submodule at dotted ``name``."""
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def replace_head(model: Any, classes: int, seed: int = 0) -> bool:
    """Give the model a freshly initialised final layer for ``classes`` (True if it changed)."""
    import torch
    from torch import nn

    name, old = head(model)
    if num_classes(model) == classes:
        return False
    torch.manual_seed(seed)
    if isinstance(old, nn.Linear):
        new: Any = nn.Linear(old.in_features, classes, bias=old.bias is not None)
    else:
        new = nn.Conv2d(
            old.in_channels, classes, old.kernel_size, old.stride, old.padding, bias=old.bias is not None
        )
    set_module(model, name, new)
    return True


def layer_spec(m: Any) -> dict[str, Any] | None:
    """Constructor arguments of a layer whose shape a stage may change."""
    from torch import nn

    from greenbench.tasks.classify.layers import LowRankConv2d, LowRankLinear

    if isinstance(m, (LowRankLinear, LowRankConv2d)):
        return m.spec()
    if isinstance(m, nn.Conv2d):
        return {
            "type": "conv2d", "in": m.in_channels, "out": m.out_channels, "k": list(m.kernel_size),
            "stride": list(m.stride),
            "padding": m.padding if isinstance(m.padding, str) else list(m.padding),
            "dilation": list(m.dilation), "groups": m.groups, "bias": m.bias is not None,
        }  # fmt: skip
    if isinstance(m, nn.Linear):
        return {"type": "linear", "in": m.in_features, "out": m.out_features, "bias": m.bias is not None}
    if isinstance(m, nn.BatchNorm2d):
        return {"type": "bn2d", "n": m.num_features, "eps": m.eps, "momentum": m.momentum}
    return None


def _make(spec: dict[str, Any]) -> Any:
    from torch import nn

    from greenbench.tasks.classify.layers import LowRankConv2d, LowRankLinear

    kind = spec["type"]
    if kind == "conv2d":
        pad = spec["padding"] if isinstance(spec["padding"], str) else tuple(spec["padding"])
        return nn.Conv2d(spec["in"], spec["out"], tuple(spec["k"]), tuple(spec["stride"]), pad,
                         tuple(spec["dilation"]), spec["groups"], spec["bias"])  # fmt: skip
    if kind == "linear":
        return nn.Linear(spec["in"], spec["out"], spec["bias"])
    if kind == "bn2d":
        return nn.BatchNorm2d(spec["n"], eps=spec["eps"], momentum=spec["momentum"])
    if kind == "lowrank_linear":
        return LowRankLinear.from_spec(spec)
    if kind == "lowrank_conv2d":
        return LowRankConv2d.from_spec(spec)
    raise GreenbenchError(f"unknown layer type {kind!r} in a classify checkpoint")


def structure(model: Any, arch: str, classes: int) -> dict[str, dict[str, Any]]:
    """Every layer of ``model`` whose constructor arguments differ from a fresh ``arch``."""
    fresh = {n: layer_spec(m) for n, m in architecture(arch, classes).named_modules()}
    out: dict[str, dict[str, Any]] = {}
    inside: tuple[str, ...] = ()
    for n, m in model.named_modules():
        if inside and n.startswith(inside):
            continue  # the layers a low-rank block made for itself
        spec = layer_spec(m)
        if spec is not None and spec != fresh.get(n):
            out[n] = spec
        if spec is not None and spec["type"].startswith("lowrank"):
            inside = (n + ".",)
    return out


def save(model: Any, arch: str, path: Path, info: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a classify checkpoint (see the module doc)."""
    import torch

    classes = num_classes(model)
    sd = model.state_dict()
    state = {
        "format": CHECKPOINT_FORMAT,
        "arch": arch,
        "num_classes": classes,
        "structure": structure(model, arch, classes),
        "state_dict": {k: v.detach().cpu() for k, v in sd.items()},
        # the per-module versions load_state_dict reads (MNASNet refuses a state without them)
        "state_metadata": {k: dict(v) for k, v in getattr(sd, "_metadata", {}).items()},
        "info": info or {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's dict (weights only: no code runs); a clear error for anything else."""
    import pickle

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError) as e:
        raise GreenbenchError(
            f"{path}: not a weights file torch can read with weights_only=True ({type(e).__name__}: "
            f"{str(e)[:200]}); classify reads state dicts (torchvision's .pth files or its own checkpoints)."
        ) from None
    if not isinstance(state, dict):
        raise GreenbenchError(f"{path}: expected a state dict, found a {type(state).__name__}.")
    return state


def load(path: Path) -> tuple[Any, dict[str, Any]]:
    """A model from a classify checkpoint, and the checkpoint's ``info``."""
    state = read_checkpoint(path)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise GreenbenchError(
            f"{path}: not a greenbench classify checkpoint; a pretrained state dict goes in a "
            "variant's 'weights:' beside 'model: <torchvision name>'."
        )
    model = architecture(state["arch"], int(state["num_classes"]))
    for name in sorted(state["structure"], key=lambda n: n.count(".")):
        set_module(model, name, _make(state["structure"][name]))
    weights = OrderedDict(state["state_dict"])
    weights._metadata = OrderedDict(state.get("state_metadata") or {})  # type: ignore[attr-defined]
    model.load_state_dict(weights)
    model.greenbench_arch = state["arch"]
    return model, dict(state.get("info") or {})


def with_weights(name: str, weights: Path) -> tuple[Any, str]:
    """``name`` with pretrained ``weights`` (a torchvision state dict or a classify checkpoint)
    and what was loaded, in words. A final layer of another width is left fresh (the data's
    classes replace it anyway)."""
    state = read_checkpoint(weights)
    if state.get("format") == CHECKPOINT_FORMAT:
        model, _ = load(weights)
        return model, f"classify checkpoint {weights.name}"
    sd = state.get("state_dict", state) if isinstance(state.get("state_dict"), dict) else state
    model = architecture(name)
    head_name, _ = head(model)
    own = model.state_dict()
    skipped = [k for k in sd if k.startswith(head_name + ".") and k in own and sd[k].shape != own[k].shape]
    missing, unexpected = model.load_state_dict(
        {k: v for k, v in sd.items() if k not in skipped}, strict=False
    )
    missing = [k for k in missing if k not in skipped]
    if missing or unexpected:
        raise GreenbenchError(
            f"{weights}: these weights do not fit {name} (missing {len(missing)} tensors, e.g. "
            f"{(missing or ['-'])[0]!r}; unexpected {len(unexpected)}, e.g. {(unexpected or ['-'])[0]!r}); "
            f"use the file torchvision gives {name} ({torchvision_file(name) or 'none'})."
        )
    note = f"pretrained {weights.name}" + (f" (its {head_name} of another width left out)" if skipped else "")
    return model, note
