"""Custom layers for ultralytics model YAMLs: ``TimmBackbone`` (a real timm network, e.g.
GhostNet).

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

A checkpoint pickles ``TimmBackbone`` by its import path
(``greenbench.tasks.detect.ultra_modules.TimmBackbone``; checkpoints written before tasks were a
package name ``greenbench.adapters.ultra_modules``, kept as an alias of this module): loading it
back needs greenbench importable, not ``register``; building a model from a YAML (and
ultralytics' trainer, which rebuilds the model from the YAML stored in the checkpoint) needs
``register`` first. Such a checkpoint also pickles timm's own classes
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
        size = 64
        training = self.training
        self.eval()  # a train-mode pass would move the BatchNorm running statistics
        try:
            with torch.no_grad():
                maps = self(torch.zeros(1, 3, size, size))
        finally:
            self.train(training)
        return [int(t.shape[1]) for t in maps], [size // int(t.shape[-1]) for t in maps]

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


#: the layers ``register`` makes known to ultralytics' YAML parser, by their YAML name
CUSTOM_LAYERS: dict[str, type[nn.Module]] = {"TimmBackbone": TimmBackbone}


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
