"""A toy task from outside greenbench, registered only through its entry point (the
``greenbench_toy_task-0.1.dist-info`` beside it): a two-layer classifier (one conv, one linear
layer) on random image-shaped tensors, with a dataset format of its own (one ``.npz`` file of
``x_<split>``/``y_<split>`` arrays and ``names``) and a top-1 metric of its own. It knows
nothing of ultralytics and uses only greenbench's public task protocol."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from greenbench.errors import GreenbenchError
from greenbench.metric_def import MetricDef, accuracy_metric
from greenbench.tasks.base import DatasetRef, Prunable, Synthetic

SPLITS = ("train", "val", "test")
TRAIN_ARGS = {"epochs": int, "lr": float, "batch": int, "seed": int, "imgsz": int}
MAX_CLASSES = 10  # the head's width: a toy model predicts up to 10 classes
MODELS = {"toy-net": 8, "toy-net-wide": 32}  # built-in model name -> conv channels


class Contents:
    """What ``check_dataset`` found: the class names (``DatasetRef.names`` reads them)."""

    def __init__(self, names: dict[int, str]) -> None:
        self.names = names


def _arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
        raise GreenbenchError(f"{path} is not a toy dataset (.npz of x_/y_ arrays): {e}") from None


class ToyTask:
    """The ``toy`` task: ``toy-net`` models on ``.npz`` datasets."""

    name: ClassVar[str] = "toy"
    metrics: ClassVar[tuple[MetricDef, ...]] = (
        accuracy_metric("toy_top1", "toy_top1", "toy top-1 accuracy on the evaluation split"),
    )
    table_accuracy: ClassVar[tuple[str, ...]] = ("toy_top1",)
    headline: ClassVar[str] = "toy_top1"
    dataset_format: ClassVar[str] = "a toy .npz file (x_train, y_train, x_val, y_val, x_test, y_test, names)"
    model_suffixes: ClassVar[tuple[str, ...]] = (".pt", ".onnx")
    pickle_args: ClassVar[tuple[str, ...]] = ()
    stages: ClassVar[dict[str, str]] = {}
    packages: ClassVar[tuple[str, ...]] = ("torch", "numpy")
    weights_only: ClassVar[bool] = True  # state dicts, read with torch.load(weights_only=True)
    datasets: ClassVar[dict[str, tuple[str, str]]] = {}

    # --- suite checks -------------------------------------------------------------------
    @classmethod
    def check_train_args(cls, args: dict[str, Any]) -> list[tuple[str, str]]:
        found = []
        for key, value in args.items():
            kind = TRAIN_ARGS.get(key)
            if kind is None:
                found.append(
                    (key, f"unknown toy training argument {key!r}; expected one of {', '.join(TRAIN_ARGS)}")
                )
            elif (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or (kind is int and not isinstance(value, int))
            ):
                found.append((key, f"toy training argument {key!r} must be a {kind.__name__}, got {value!r}"))
        return found

    @classmethod
    def builtin_models(cls) -> list[str]:
        return sorted(MODELS)

    @classmethod
    def is_builtin_model(cls, name: str) -> bool:
        return name in MODELS

    @classmethod
    def check_dataset(cls, path: Path) -> DatasetRef:
        arrays = _arrays(path)
        missing = [f"{xy}_{s}" for s in SPLITS for xy in "xy" if f"{xy}_{s}" not in arrays]
        if missing or "names" not in arrays:
            raise GreenbenchError(f"{path}: the toy dataset lacks {', '.join(missing or ['names'])}")
        names = {i: str(n) for i, n in enumerate(arrays["names"].tolist())}
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        return DatasetRef(path, "test", digest, contents=Contents(names))

    @classmethod
    def stage_dataset(cls, ref: DatasetRef, workdir: Path) -> Path:
        return ref.data_yaml  # read-only numpy arrays: nothing is written beside them

    @classmethod
    def synthetic_fingerprint(cls, spec: Synthetic) -> str:
        return "toy-" + hashlib.sha256(repr(spec).encode()).hexdigest()[:12]

    @classmethod
    def synthesize(cls, cache_root: Path, spec: Synthetic) -> Path:
        out = cache_root / cls.synthetic_fingerprint(spec)
        if not (out / "data.npz").is_file():
            cls.write_synthetic(out, spec)
        return out / "data.npz"

    @classmethod
    def write_synthetic(cls, out: Path, spec: Synthetic) -> Path:
        """Gaussian blobs: class ``c``'s images are noise around a colour of its own."""
        if spec.classes > MAX_CLASSES:
            raise GreenbenchError(f"the toy task makes at most {MAX_CLASSES} classes, not {spec.classes}")
        rng = np.random.default_rng(spec.seed)
        side = min(spec.imgsz, 32)
        centres = rng.normal(scale=1.5, size=(spec.classes, 3, 1, 1)).astype(np.float32)
        arrays: dict[str, Any] = {}
        for i, split in enumerate(SPLITS):
            n = max(spec.images * (8, 1, 1)[i] // 10, spec.classes)
            y = rng.integers(0, spec.classes, size=n)
            x = centres[y] + rng.normal(size=(n, 3, side, side)).astype(np.float32)
            arrays[f"x_{split}"], arrays[f"y_{split}"] = x.astype(np.float32), y.astype(np.int64)
        names = spec.names or tuple(f"class{i}" for i in range(spec.classes))
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / "data.tmp.npz"
        np.savez(tmp, names=np.array(names), **arrays)
        tmp.replace(out / "data.npz")
        return out / "data.npz"

    # --- in a worker --------------------------------------------------------------------
    def __init__(self, workdir: Path, device: str = "cpu") -> None:
        self.workdir, self.device = Path(workdir), device

    @staticmethod
    def _net(channels: int) -> Any:
        from torch import nn

        return nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(channels, MAX_CLASSES),
        )

    def build(self, model: str, weights: str | None = None) -> Any:
        if model in MODELS:
            import torch

            torch.manual_seed(0)
            net = self._net(MODELS[model])
            if weights:
                net.load_state_dict(torch.load(weights, weights_only=True)["state_dict"])
            return net
        return self.load(Path(model))

    def load(self, checkpoint: Path) -> Any:
        import torch

        if checkpoint.suffix.lower() == ".onnx":
            import onnxruntime

            return onnxruntime.InferenceSession(str(checkpoint), providers=["CPUExecutionProvider"])
        state = torch.load(checkpoint, weights_only=True)
        net = self._net(int(state["channels"]))
        net.load_state_dict(state["state_dict"])
        return net

    def save(self, model: Any, path: Path) -> Path:
        import torch

        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"channels": model[0].out_channels, "state_dict": model.state_dict()}, path)
        return path

    def _split(self, data: Path, split: str, imgsz: int | None = None) -> tuple[Any, Any]:
        import torch
        import torch.nn.functional as F

        arrays = _arrays(data)
        x, y = torch.from_numpy(arrays[f"x_{split}"]), torch.from_numpy(arrays[f"y_{split}"])
        if imgsz is not None and x.shape[-1] != imgsz:
            x = F.interpolate(x, size=(imgsz, imgsz), mode="bilinear", align_corners=False)
        return x, y

    def train(
        self,
        model: Any,
        data_yaml: Path,
        out_dir: Path,
        args: dict[str, Any],
        on_epoch: Callable[[int, int], None] | None = None,
        trainer: Any | None = None,
    ) -> Path:
        import torch

        torch.manual_seed(int(args.get("seed", 0)))
        x, y = self._split(data_yaml, "train", args.get("imgsz"))
        epochs, batch = int(args.get("epochs", 2)), int(args.get("batch", 16))
        optimizer = torch.optim.Adam(model.parameters(), lr=float(args.get("lr", 0.02)))
        model.train()
        for epoch in range(epochs):
            order = torch.randperm(len(x))
            for i in range(0, len(x), batch):
                idx = order[i : i + batch]
                loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if not math.isfinite(float(loss.detach())):
                raise GreenbenchError(f"toy training diverged in {out_dir}; lower 'lr'")
            if on_epoch is not None:
                on_epoch(epoch + 1, epochs)
        return self.save(model.eval(), out_dir / "weights" / "best.pt")

    def _top1(self, logits: Any, y: Any) -> dict[str, float]:
        predicted = np.asarray(logits).argmax(axis=1)
        return {"toy_top1": float((predicted == np.asarray(y)).mean())}

    def evaluate(
        self, model: Any, data_yaml: Path, imgsz: int, out_dir: Path, split: str = "test"
    ) -> dict[str, float]:
        x, y = self._split(data_yaml, split, imgsz)
        if hasattr(model, "get_inputs"):  # an onnxruntime session
            name = model.get_inputs()[0].name
            logits = np.concatenate([model.run(None, {name: x[i : i + 1].numpy()})[0] for i in range(len(x))])
            return self._top1(logits, y)
        import torch

        with torch.no_grad():
            return self._top1(model.eval()(x).numpy(), y)

    def evaluate_with(
        self,
        onnx: Path,
        forward: Callable[[Any], list[Any]],
        data_yaml: Path,
        imgsz: int,
        out_dir: Path,
        split: str = "test",
    ) -> dict[str, float]:
        x, y = self._split(data_yaml, split, imgsz)
        logits = np.concatenate([forward(x[i : i + 1].numpy())[0] for i in range(len(x))])
        return self._top1(logits, y)

    def inference_module(self, model: Any) -> Any:
        for p in model.parameters():
            p.requires_grad_(False)
        return model.eval()

    def module_loader(self, path: Path) -> Any:
        return self.inference_module(self.load(path))

    def export_onnx(
        self, checkpoint: Path, imgsz: int, dynamic: bool, simplify: bool, opset: int | None
    ) -> Path:
        import torch

        out = checkpoint.with_suffix(".onnx")
        axes = {"images": {0: "batch", 2: "h", 3: "w"}} if dynamic else None
        torch.onnx.export(
            self.load(checkpoint),
            (torch.zeros(1, 3, imgsz, imgsz),),
            str(out),
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=opset or 17,
            dynamo=False,
        )
        return out

    def end_to_end(self, data_yaml: Path, imgsz: int, forward: Callable[[Any], list[Any]]) -> tuple[Any, str]:
        """Per test sample of the .npz (read once: it has no image files): the model and argmax."""
        x, _ = self._split(data_yaml, "test", imgsz)
        state = {"next": 0}

        def call() -> None:
            i = state["next"] % len(x)
            state["next"] += 1
            np.asarray(forward(x[i : i + 1].numpy())[0]).argmax(axis=1)

        return call, "per test sample of the .npz arrays (read once): the model and argmax"

    def prunable(self, model: Any, source: Path | None) -> Prunable:
        """The whole net; its final linear layer keeps its outputs (one per class)."""
        return Prunable(
            module=model.float(),
            protected=[model[-1]],
            weights_from=str(source or "built"),
            protected_what="the final linear layer",
            saved_as="state_dict with its conv width",
            save=self.save,
        )

    def calibration_inputs(
        self, data_yaml: Path, imgsz: int, count: int, seed: int
    ) -> tuple[list[Any], dict[str, Any]]:
        x, _ = self._split(data_yaml, "train", imgsz)
        chosen = np.random.default_rng(seed).permutation(len(x))[:count]
        facts = {"images": len(chosen), "split": "train", "source": str(data_yaml), "preprocessing": "none"}
        return (x[i : i + 1].numpy() for i in sorted(chosen)), facts
