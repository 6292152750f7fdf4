"""Model complexity: parameters, MACs (hence GFLOPs), file size.

MACs are counted with forward hooks on the layers that carry the arithmetic: ``Conv2d`` /
``ConvTranspose2d`` (output elements × input channels per group × kernel area; for the
transposed conv, input elements × output channels per group × kernel area) and ``Linear``
(output elements × input features). Normalisation, activations, pooling and resampling are not
counted (they are < 2 % of a CNN's MACs and conventions differ). **GFLOPs = 2 × GMACs** (one
multiply + one add), the convention of the YOLOv5 study and of ultralytics. Counted for one image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def count_params(module: Any) -> int:
    """Number of parameters."""
    return int(sum(p.numel() for p in module.parameters()))


def count_macs(module: Any, imgsz: int, channels: int = 3) -> int:
    """Multiply-accumulates of one forward pass on one ``imgsz``² image (see module docstring)."""
    import torch
    from torch import nn

    total = 0

    def conv_hook(m: Any, inp: Any, out: Any) -> None:
        nonlocal total
        k = 1
        for s in m.kernel_size:
            k *= s
        if isinstance(m, nn.ConvTranspose2d):  # every input element scatters to out/groups × k
            total += inp[0].numel() * (m.out_channels // m.groups) * k
        else:
            total += out.numel() * (m.in_channels // m.groups) * k

    def linear_hook(m: Any, _inp: Any, out: Any) -> None:
        nonlocal total
        total += out.numel() * m.in_features

    handles = []
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    try:
        device = next(module.parameters()).device
        with torch.inference_mode():
            module(torch.zeros(1, channels, imgsz, imgsz, device=device))
    finally:
        for h in handles:
            h.remove()
    if total == 0:
        raise RuntimeError("counted 0 MACs: the model has no Conv2d/Linear layer the counter knows")
    return total


def file_size_mb(path: Path) -> float:
    """Size on disk in MB (10⁶ bytes)."""
    return Path(path).stat().st_size / 1e6
