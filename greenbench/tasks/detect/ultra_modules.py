"""Custom layers for ultralytics model YAMLs: ``BlockStack`` (a backbone written as rows of
MobileNet / ShuffleNet blocks, the layouts of the YOLOv5 study's configs) and ``TimmBackbone`` (a
real timm network).

Ultralytics' YAML parser (``ultralytics.nn.tasks.parse_model``) resolves a layer name that has
no ``nn.`` or ``torchvision.ops.`` prefix with ``globals()[name]`` of ``ultralytics.nn.tasks``:
the only hook it offers for a layer it does not ship is a name in that module's namespace.
``register`` puts the classes of this module there; that is the one patch of ultralytics made
here.

For a layer it does not know, ``parse_model`` passes the YAML ``args`` to the constructor
unchanged and records the layer's output channels as its input's (3 for layer 0). Only a layer
reading this one's output would use that record, and the only layer that can read a list of
maps, ``Index``, takes its channels from its own first argument: no further patch of the parser
is needed (``TorchVision`` with ``split=True`` is handled the same way by ultralytics).

A checkpoint pickles these layers by their import path
(``greenbench.tasks.detect.ultra_modules.BlockStack``; checkpoints written before tasks were a
package name ``greenbench.adapters.ultra_modules``, kept as an alias of this module): loading it
back needs greenbench importable, not ``register``; building a model from a YAML (and
ultralytics' trainer, which rebuilds the model from the YAML stored in the checkpoint) needs
``register`` first. A ``TimmBackbone`` checkpoint also pickles timm's own classes
(``timm.models.ghostnet.GhostBottleneck``...), so it loads with a timm whose modules keep those
names, and not under ultralytics' opt-in ``ULTRALYTICS_SAFE_LOAD``, whose allow-list holds torch
and ultralytics classes only."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from greenbench.errors import GreenbenchError

#: the path checkpoints written by greenbench before its tasks were packages pickle this module by
LEGACY_PATH = "greenbench.adapters.ultra_modules"
sys.modules.setdefault(LEGACY_PATH, sys.modules[__name__])


_PROBE_PX = 64  # the side of the blank image a backbone is probed with


def _probe(module: nn.Module) -> list[torch.Tensor]:
    """``module``'s output maps for one blank ``_PROBE_PX`` image, in eval mode (a train-mode
    pass would move the BatchNorm running statistics), its mode restored after."""
    training = module.training
    module.eval()
    try:
        with torch.no_grad():
            return list(module(torch.zeros(1, 3, _PROBE_PX, _PROBE_PX)))
    finally:
        module.train(training)


class TimmBackbone(nn.Module):
    """A timm network as a backbone, returning the feature maps of its ``taps`` as a list.

    YAML row: ``[-1, 1, TimmBackbone, [c_out, name, taps]]``, then ``Index: [channels, n]`` to tap
    the n-th map of the list (0 = the first tap). ``taps`` is either

    - timm out indices (``[2, 3, 4]``): timm's own ``features_only`` extractor, whose maps for
      GhostNet come from the *first* block of each stride (``blocks.3``, ``blocks.5``,
      ``blocks.7``): the later blocks of a stride feed the next stride but no tap, and the four
      160-channel bottlenecks of stride 32 (``blocks.8``, 1.57 M of GhostNet's 2.7 M backbone
      parameters) are dropped; or
    - module names (``[blocks.4, blocks.6, blocks.8]``): the outputs of those modules, i.e. the
      *last* block of each stride, as the torchvision taps of the other backbones. The model's
      top-level children (with ``nn.Sequential`` children flattened one level, as timm's
      ``features_only`` does) are applied in order up to the last tap; modules after it (the
      classifier head) are not kept. That is only right for a model whose ``forward_features``
      is that sequence, as GhostNet's is (tests/models/test_backbone_yamls.py checks it).

    ``c_out`` (channels of the last map) is checked, so that a row with the wrong channels fails
    at build instead of at the first forward pass. The network is always created with
    ``pretrained=False``: nothing is fetched (pretrained weights come from a greenbench checkpoint
    instead). ``channels`` and ``strides`` (px) describe the outputs.
    """

    def __init__(self, c_out: int, name: str, taps: Sequence[int | str] = (2, 3, 4)) -> None:
        import timm

        super().__init__()
        taps = list(taps)
        by_name = all(isinstance(t, str) for t in taps)
        if not taps or not (by_name or all(isinstance(t, int) and not isinstance(t, bool) for t in taps)):
            raise GreenbenchError(
                f"model config: TimmBackbone {name!r}: taps must be a non-empty list of timm out indices "
                f"(integers) or of module names (strings), got {taps!r}"
            )
        try:
            if by_name:
                self.m: nn.Module = nn.Sequential()
                full = timm.create_model(str(name), pretrained=False)
                self.tap_positions = self._keep_until(full, [str(t) for t in taps])
            else:
                self.m = timm.create_model(
                    str(name), pretrained=False, features_only=True, out_indices=tuple(taps)
                )
                self.tap_positions = []
        except (RuntimeError, ValueError, IndexError, AssertionError) as e:  # unknown name, index
            raise GreenbenchError(
                f"model config: TimmBackbone could not build timm model {name!r} with taps {taps}: {e}. "
                f"Use a timm model name (timm.list_models()) and out indices or module names it has."
            ) from None
        self.channels, self.strides = self._describe()
        if int(c_out) != self.channels[-1]:
            raise GreenbenchError(
                f"model config: TimmBackbone {name!r} with taps {taps} ends with {self.channels[-1]} "
                f"channels, but the row says {c_out}. Its maps have channels {self.channels} at strides "
                f"{self.strides}: write those in the row and in its Index rows."
            )

    def _keep_until(self, model: nn.Module, taps: list[str]) -> list[int]:
        """Keep ``model``'s flattened children up to the last tap in ``self.m``; return the tap positions."""
        order: list[tuple[str, nn.Module]] = []
        for name, child in model.named_children():
            subs = list(child.named_children()) if isinstance(child, nn.Sequential) else [("", child)]
            order.extend((f"{name}.{sub}" if sub else name, module) for sub, module in subs)
        names = [n for n, _ in order]
        missing = [t for t in taps if t not in names]
        if missing:
            raise ValueError(f"no module named {missing} in its sequence of layers {names}")
        positions = [names.index(t) for t in taps]
        if positions != sorted(set(positions)):
            raise ValueError(f"taps {taps} are not in the order of its layers")
        for name, module in order[: positions[-1] + 1]:
            self.m.add_module(name.replace(".", "_"), module)
        return positions

    def _describe(self) -> tuple[list[int], list[int]]:
        """Channels and strides of the outputs, from one 64 px forward pass in eval mode."""
        maps = _probe(self)
        return [int(t.shape[1]) for t in maps], [_PROBE_PX // int(t.shape[-1]) for t in maps]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps (N, C_k, H/s_k, W/s_k) of the taps, in order."""
        if not self.tap_positions:
            return list(self.m(x))
        maps = []
        for i, module in enumerate(self.m.children()):
            x = module(x)
            if i in self.tap_positions:
                maps.append(x)
        return maps


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation of the YOLOv5 study's MobileNetV3 blocks: global average pool, two
    fully connected layers (``channels`` -> ``channels // 4`` -> ``channels``, with biases), ReLU
    between them and a hard sigmoid gate. torchvision's MobileNetV3 differs (1x1 convolutions and a
    squeeze width rounded to a multiple of 8)."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction),
            nn.ReLU(),
            nn.Linear(channels // reduction, channels),
            nn.Hardsigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (N, C, H, W) scaled per channel by its gate in [0, 1]."""
        return x * self.fc(x.mean((2, 3))).view(x.shape[0], -1, 1, 1)


class MobileNetV3Block(nn.Module):
    """The MobileNetV3 bottleneck as the YOLOv5 study's configs write it: ``(c_in, c_out, hidden,
    kernel, stride, squeeze_excite, hard_swish)``.

    A 1x1 expansion to ``hidden`` channels (left out when ``hidden == c_in``), a depthwise
    ``kernel``x``kernel`` convolution at ``stride``, squeeze-and-excitation when asked, a linear 1x1
    projection to ``c_out``, and the input added back when the stride is 1 and the channels stay.
    Activation: hard swish, or ReLU. With an expansion the study's block gates the depthwise
    output *before* its activation (conv, BN, SE, activation); without one, after it (conv, BN,
    activation, SE): both orders are kept. Convolutions are ultralytics' ``Conv`` (conv + BN +
    activation), so ``fuse()`` folds their BatchNorms as it does the neck's.
    """

    def __init__(
        self, c1: int, c2: int, hidden: int, kernel: int, stride: int, squeeze_excite: int, hard_swish: int
    ) -> None:
        from ultralytics.nn.modules import Conv

        super().__init__()

        def act() -> nn.Module:
            return nn.Hardswish() if hard_swish else nn.ReLU()

        gate: nn.Module = SqueezeExcite(hidden) if squeeze_excite else nn.Identity()
        layers: list[nn.Module] = []
        if hidden != c1:
            layers += [
                Conv(c1, hidden, 1, 1, act=act()),
                Conv(hidden, hidden, kernel, stride, g=hidden, act=False),
                gate,
                act(),
            ]
        else:
            layers += [Conv(hidden, hidden, kernel, stride, g=hidden, act=act()), gate]
        layers.append(Conv(hidden, c2, 1, 1, act=False))
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, c_in, H, W) -> (N, c_out, H / stride, W / stride)."""
        y = self.conv(x)
        return x + y if self.residual else y


def _conv(c1: int, c2: int, kernel: int = 1, stride: int = 1) -> nn.Module:
    """ultralytics' ``Conv`` (conv + BN + SiLU), YOLOv5's own layer."""
    from ultralytics.nn.modules import Conv

    return Conv(c1, c2, kernel, stride)


def _conv_hardswish(c1: int, c2: int, stride: int) -> nn.Module:
    """3x3 conv + BN + hard swish: the MobileNetV3 stem."""
    from ultralytics.nn.modules import Conv

    return Conv(c1, c2, 3, stride, act=nn.Hardswish())


def _conv_relu_maxpool(c1: int, c2: int) -> nn.Module:
    """3x3 stride-2 conv + BN + ReLU, then a 3x3 stride-2 max pool: the ShuffleNetV2 stem (stride 4)."""
    from ultralytics.nn.modules import Conv

    return nn.Sequential(Conv(c1, c2, 3, 2, act=nn.ReLU()), nn.MaxPool2d(3, 2, 1))


def _inverted_residual(c1: int, c2: int, stride: int, expand_ratio: int) -> nn.Module:
    """torchvision's MobileNetV2 block: 1x1 expansion (unless ``expand_ratio`` is 1), 3x3
    depthwise, linear 1x1 projection, ReLU6, residual when the stride is 1 and the channels stay."""
    from torchvision.models.mobilenetv2 import InvertedResidual

    return InvertedResidual(c1, c2, stride, expand_ratio)


def _shuffle_block(c1: int, c2: int, stride: int) -> nn.Module:
    """torchvision's ShuffleNetV2 unit: channel split (stride 1) or two branches (stride 2), then a
    channel shuffle of 2 groups."""
    from torchvision.models.shufflenetv2 import InvertedResidual

    return InvertedResidual(c1, c2, stride)


#: the blocks a ``BlockStack`` row may name: a constructor taking (c_in, c_out, *the row's other args)
BLOCKS: dict[str, Any] = {
    "Conv": _conv,
    "ConvHardswish": _conv_hardswish,
    "ConvReLUMaxPool": _conv_relu_maxpool,
    "InvertedResidual": _inverted_residual,
    "MobileNetV3Block": MobileNetV3Block,
    "ShuffleBlock": _shuffle_block,
}


class BlockStack(nn.Module):
    """A backbone written as rows of blocks, returning the maps of its taps as a list.

    YAML row: ``[-1, 1, BlockStack, [c_out, taps, rows]]``, then ``Index: [channels, n]`` to tap
    the n-th map of the list. ``rows`` are ``[number, block, [c_out, *args]]``, the form of a
    YOLOv5 backbone row without its ``from`` (each row reads the previous one): ``block`` is a name
    in ``BLOCKS``, its arguments leave out the input channels (the previous row's ``c_out``, 3 for
    the first), and ``number`` > 1 repeats the block (the repeats read and keep ``c_out``) as one
    row. Nothing is scaled by the YAML's depth or width multiples. ``taps`` are row indices, so a
    study config's backbone layer numbers carry over as they are. ``c_out`` (channels of the last
    tap) is checked, so that a wrong row fails at build instead of at the first forward pass;
    ``channels`` and ``strides`` (px) describe the outputs. Layers after the last tap are not
    built.
    """

    def __init__(self, c_out: int, taps: Sequence[int], rows: Sequence[Sequence[Any]], c_in: int = 3) -> None:
        super().__init__()
        taps = list(taps)
        if not taps or any(isinstance(t, bool) or not isinstance(t, int) for t in taps):
            raise GreenbenchError(
                f"model config: BlockStack taps must be a non-empty list of row indices, got {taps!r}"
            )
        if taps != sorted(set(taps)) or taps[0] < 0 or taps[-1] >= len(rows):
            raise GreenbenchError(
                f"model config: BlockStack taps {taps} must be increasing row indices in 0..{len(rows) - 1}"
            )
        self.taps = taps
        self.m = nn.Sequential()
        channels = [c_in]
        for i, row in enumerate(rows[: taps[-1] + 1]):
            self.m.append(self._block(i, row, channels[-1]))
            channels.append(int(row[2][0]))
        self.channels = [channels[t + 1] for t in taps]
        if int(c_out) != self.channels[-1]:
            raise GreenbenchError(
                f"model config: BlockStack with taps {taps} ends with {self.channels[-1]} channels, but "
                f"the row says {c_out}. Its tapped rows have channels {self.channels}: write those in the "
                f"row and in its Index rows."
            )
        self.strides = self._strides()

    @staticmethod
    def _block(i: int, row: Sequence[Any], c1: int) -> nn.Module:
        """Row ``i`` (``[number, block, [c_out, *args]]``) as a module reading ``c1`` channels."""
        shaped = (
            isinstance(row, (list, tuple))
            and len(row) == 3
            and isinstance(row[0], int)
            and row[0] >= 1
            and isinstance(row[2], (list, tuple))
            and len(row[2]) >= 1
            and isinstance(row[2][0], int)
        )
        if not shaped:
            raise GreenbenchError(
                f"model config: BlockStack row {i} is {row!r}; write it as [number, block, [c_out, ...]], "
                f"e.g. [1, InvertedResidual, [16, 1, 1]]."
            )
        number, name, args = row
        build = BLOCKS.get(str(name))
        if build is None:
            raise GreenbenchError(
                f"model config: BlockStack row {i} names the block {name!r}; "
                f"known blocks: {', '.join(BLOCKS)}."
            )
        c2, *rest = args
        try:
            blocks = [build(c1 if k == 0 else c2, c2, *rest) for k in range(number)]
        except (TypeError, ValueError, AssertionError) as e:  # wrong arity, a stride the block refuses
            raise GreenbenchError(
                f"model config: BlockStack row {i} ({name} reading {c1} channels, arguments {list(args)}) "
                f"could not be built: {e}"
            ) from None
        return blocks[0] if number == 1 else nn.Sequential(*blocks)

    def _strides(self) -> list[int]:
        """Stride (px) of each tap, from one 64 px forward pass in eval mode."""
        return [_PROBE_PX // int(t.shape[-1]) for t in _probe(self)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps (N, C_k, H/s_k, W/s_k) of the taps, in order."""
        maps = []
        for i, block in enumerate(self.m):
            x = block(x)
            if i in self.taps:
                maps.append(x)
        return maps


#: the layers ``register`` makes known to ultralytics' YAML parser, by their YAML name
CUSTOM_LAYERS: dict[str, type[nn.Module]] = {"BlockStack": BlockStack, "TimmBackbone": TimmBackbone}


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', repr(obj))}"


def register() -> None:
    """Make ``CUSTOM_LAYERS`` buildable from ultralytics model YAMLs (idempotent).

    Must run before a YAML that names them is parsed (``DetectAdapter.__init__`` calls it).
    """
    import ultralytics.nn.tasks as tasks

    namespace: dict[str, Any] = vars(tasks)
    for name, cls in CUSTOM_LAYERS.items():
        # parse_model looks layer names up in this namespace (see the module docstring); refuse to
        # shadow a layer ultralytics itself defines under the same name
        present = namespace.get(name)
        if present is not None and _qualname(present) != _qualname(cls):  # same class, maybe reloaded: fine
            raise GreenbenchError(
                f"ultralytics already defines a layer named {name!r}; greenbench's custom layer of "
                f"that name cannot be registered. Report this to greenbench's maintainers."
            )
        namespace[name] = cls
