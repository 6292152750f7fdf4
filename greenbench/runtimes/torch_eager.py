"""PyTorch eager mode: the module a task adapter loads, run as is under ``torch.inference_mode``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from greenbench.errors import GreenbenchError
from greenbench.measure.latency import cuda_sync
from greenbench.runtimes.base import (
    Artifact,
    ArtifactKind,
    Predictor,
    RuntimeSettings,
    check_kind,
    checked_options,
    no_options,
)

_PRECISION = {"torch.float32": "fp32", "torch.float16": "fp16", "torch.bfloat16": "bf16"}


def check_cuda(device: str) -> None:
    """Refuse a CUDA device torch cannot see, naming what it can."""
    import torch

    if not device.startswith("cuda"):
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = torch.device(device).index or 0
    if index >= count:
        raise GreenbenchError(
            f"device {device!r} requested but torch sees {count} CUDA device(s) (torch {torch.__version__}, "
            f"built for CUDA {torch.version.cuda}). Use device 'cpu' or one of cuda:0..cuda:{count - 1}."
            if count
            else f"device {device!r} requested but torch sees no CUDA device (torch {torch.__version__}, "
            f"built for CUDA {torch.version.cuda}). Use device 'cpu'."
        )


class TorchEager:
    """Eager PyTorch on the module returned by ``module_loader`` (fp32 unless the module is not)."""

    name: ClassVar[str] = "torch"
    kinds: ClassVar[tuple[ArtifactKind, ...]] = ("torch",)

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """No options (threads, batch and spinning come from ``measure.latency``)."""
        return no_options(cls.name, options)

    def load(
        self,
        artifact: Artifact,
        settings: RuntimeSettings,
        module_loader: Callable[[Path], Any] | None = None,
    ) -> Predictor:
        """Load the module and build a predictor on a fixed-seed random (batch, 3, imgsz, imgsz) input."""
        import torch

        check_kind(self, artifact)
        checked_options(self, settings.options)
        if module_loader is None:
            # A checkpoint's layout belongs to its task (the detection task's framework pickles
            # a model that must be fused and put in eval mode): only the task knows how to load it.
            raise GreenbenchError(
                f"runtime 'torch' needs the task adapter's module loader to load {artifact.path}; "
                "this is a bug in the caller, not in the file."
            )
        check_cuda(settings.device)
        torch.set_num_threads(settings.threads)
        device = torch.device(settings.device)
        module = module_loader(Path(artifact.path)).to(device)
        tensors = [*module.parameters(), *module.buffers()]
        dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.float32)
        generator = torch.Generator().manual_seed(0)
        x = torch.rand(settings.input_shape, generator=generator).to(device=device, dtype=dtype)

        def call() -> None:
            with torch.inference_mode():
                module(x)

        def forward(batch: Any) -> list[Any]:
            with torch.inference_mode():
                out = module(torch.from_numpy(batch).to(device=device, dtype=dtype))
            outs = out if isinstance(out, (list, tuple)) else [out]
            return [o.float().cpu().numpy() for o in outs if isinstance(o, torch.Tensor)]

        threads = int(torch.get_num_threads())
        description: dict[str, Any] = {
            "runtime": self.name,
            "version": torch.__version__,
            "mode": "eager",
            "device": settings.device,
            "intra_op_threads": threads,
            "inter_op_threads": int(torch.get_num_interop_threads()),
            "input_shape": list(settings.input_shape),
            "input_dtype": str(dtype).removeprefix("torch."),
            "precision": _PRECISION.get(str(dtype), str(dtype)),
            "grad_mode": "inference_mode",
        }
        if device.type == "cuda":
            description["cuda"] = torch.version.cuda
            description["device_name"] = torch.cuda.get_device_name(device)
            description["cudnn_benchmark"] = bool(torch.backends.cudnn.benchmark)
        return Predictor(
            call=call,
            sync=cuda_sync(settings.device),
            images_per_call=settings.batch,
            threads=threads,
            description=description,
            forward=forward,
        )
