"""The classification task on torchvision (``greenbench.tasks.base.Task``): models by name,
pretrained weights from a file (never a download), ImageFolder data, top-1/top-5, per-class
accuracy and a confusion matrix, and the stages only a classifier runs (``distill``,
``lowrank``; ``train`` with freeze and an augmentation curriculum)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from greenbench.errors import GreenbenchError
from greenbench.metric_def import MetricDef, accuracy_metric
from greenbench.tasks.base import DatasetRef, Prunable, Synthetic
from greenbench.tasks.classify import data, models
from greenbench.tasks.classify.train import check_args

EVAL_BATCH = 64


def topk(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    """The fraction of rows whose label is among the ``k`` highest logits (ties: lower index first)."""
    k = min(k, logits.shape[1])
    best = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float((best == labels[:, None]).any(axis=1).mean()) if len(labels) else 0.0


def scores(logits: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, Any]:
    """top-1, top-5 and the details: per-class accuracy and the confusion matrix (rows: true
    class, columns: predicted)."""
    classes = len(names)
    predicted = logits.argmax(axis=1)
    confusion = np.zeros((classes, classes), dtype=int)
    for t, p in zip(labels, predicted, strict=True):
        if 0 <= p < classes:
            confusion[t, p] += 1
    support = confusion.sum(axis=1)
    per_class = {
        names[c]: (float(confusion[c, c] / support[c]) if support[c] else None) for c in range(classes)
    }
    return {
        "top1": topk(logits, labels, 1),
        "top5": topk(logits, labels, 5),
        "details": {
            "classes": names,
            "per_class_top1": per_class,
            "confusion": confusion.tolist(),
            "images": len(labels),
            "top5_k": int(min(5, logits.shape[1])),
        },
    }


class ClassifyTask:
    """The ``classify`` task: torchvision (or ``timm:``) models on ImageFolder datasets."""

    name: ClassVar[str] = "classify"
    metrics: ClassVar[tuple[MetricDef, ...]] = (
        accuracy_metric("top1", "top1", "top-1 accuracy on the evaluation split"),
        accuracy_metric("top5", "top5", "top-5 accuracy on the evaluation split (top-k for < 5 classes)"),
    )
    table_accuracy: ClassVar[tuple[str, ...]] = ("top1", "top5")
    headline: ClassVar[str] = "top1"
    dataset_format: ClassVar[str] = data.FORMAT
    model_suffixes: ClassVar[tuple[str, ...]] = (".pt", ".pth", ".onnx")
    pickle_args: ClassVar[tuple[str, ...]] = ()
    stages: ClassVar[dict[str, str]] = {
        "train": "greenbench.tasks.classify.stages:ClassifyTrainStage",
        "distill": "greenbench.tasks.classify.distill:DistillStage",
        "lowrank": "greenbench.tasks.classify.lowrank:LowRankStage",
    }
    packages: ClassVar[tuple[str, ...]] = ("torch", "torchvision")
    weights_only: ClassVar[bool] = True
    datasets: ClassVar[dict[str, tuple[str, str]]] = {
        "digits": (
            "scikit-learn's handwritten digits as an ImageFolder",
            "greenbench.tasks.classify.synth:write_digits",
        )
    }

    # --- before anything runs -------------------------------------------------------------
    @classmethod
    def check_train_args(cls, args: dict[str, Any]) -> list[tuple[str, str]]:
        """Training arguments of ``greenbench.tasks.classify.train``."""
        return check_args(args)

    @classmethod
    def builtin_models(cls) -> list[str]:
        """torchvision's classification models (``resnet18`` first, the example)."""
        return ["resnet18", *(m for m in models.TORCHVISION_MODELS if m != "resnet18")]

    @classmethod
    def is_builtin_model(cls, name: str) -> bool:
        """A torchvision model name or ``timm:<name>``."""
        return models.is_known(name)

    @classmethod
    def check_dataset(cls, path: Path) -> DatasetRef:
        """The ImageFolder at ``path`` and every image in it (``data.check``)."""
        return data.check(path)[0]

    @classmethod
    def stage_dataset(cls, ref: DatasetRef, workdir: Path) -> Path:
        """The staged JSON file workers read (``data.stage``)."""
        return data.stage(ref, workdir)

    @classmethod
    def synthetic_fingerprint(cls, spec: Synthetic) -> str:
        """``cls-synth-<key>``."""
        from greenbench.tasks.classify.synth import fingerprint

        return fingerprint(spec)

    @classmethod
    def synthesize(cls, cache_root: Path, spec: Synthetic) -> Path:
        """The synthetic ImageFolder, generated once under ``cache_root``."""
        from greenbench.tasks.classify.synth import cached

        return cached(cache_root, spec)

    @classmethod
    def write_synthetic(cls, out: Path, spec: Synthetic) -> Path:
        """A synthetic ImageFolder written into ``out``."""
        from greenbench.tasks.classify.synth import write_synthetic

        return write_synthetic(out, spec)

    # --- in a worker ------------------------------------------------------------------------
    def __init__(self, workdir: Path, device: str = "cpu") -> None:
        self.workdir, self.device = Path(workdir), device
        _refuse_downloads()

    def build(self, model: str, weights: str | None = None) -> Any:
        """torchvision's ``model`` (fresh, or with ``weights`` from a file), or a checkpoint file."""
        if models.is_known(model) and not Path(model).is_file():
            if weights is None:
                net = models.architecture(model)
                net.greenbench_start = "trained from scratch (no pretrained weights)"
            else:
                net, note = models.with_weights(model, Path(weights))
                net.greenbench_start = note
            net.greenbench_arch = model
            return net
        return self.load(Path(model))

    def load(self, checkpoint: Path) -> Any:
        """A classify checkpoint, or an ONNX Runtime session for an ``.onnx`` file."""
        if checkpoint.suffix.lower() == ".onnx":
            import onnxruntime

            return onnxruntime.InferenceSession(str(checkpoint), providers=["CPUExecutionProvider"])
        return models.load(checkpoint)[0]

    def save(self, model: Any, path: Path) -> Path:
        """A classify checkpoint (structure and weights; no pickle of code)."""
        return models.save(model, _arch(model), path)

    def train(
        self,
        model: Any,
        data_yaml: Path,
        out_dir: Path,
        args: dict[str, Any],
        on_epoch: Callable[[int, int], None] | None = None,
        trainer: Any | None = None,
    ) -> Path:
        """Train ``model`` (its final layer replaced for the data's classes where they differ);
        ``trainer``: a loss of the task's own (distillation), else cross-entropy."""
        from greenbench.tasks.classify.train import fit

        contents = data.read(data_yaml)
        arch = _arch(model)
        replaced = models.replace_head(model, len(contents.names), int(args.get("seed", 0)))
        imgsz = int(args.get("imgsz", 224))

        def val_top1(m: Any) -> float:  # read only by a plateau rule
            val = data.Images(contents, "val", imgsz)
            return topk(self._logits(m, contents, val), val.labels.numpy(), 1)

        info = fit(model, contents, args, out_dir, on_epoch, loss_fn=trainer, evaluate=val_top1)
        info["start"] = getattr(model, "greenbench_start", "a checkpoint")
        info["head_replaced"] = replaced
        info["preprocessing"] = data.preprocess_note(contents)
        return models.save(model, arch, out_dir / "weights" / "last.pt", info)

    @staticmethod
    def _logits(model: Any, contents: data.Contents, images: data.Images) -> np.ndarray:
        import torch

        out = []
        model.eval()
        with torch.inference_mode():
            for start in range(0, len(images), EVAL_BATCH):
                out.append(
                    model(data.normalize(contents, images.pixels[start : start + EVAL_BATCH])).float().numpy()
                )
        return np.concatenate(out)

    def evaluate(
        self, model: Any, data_yaml: Path, imgsz: int, out_dir: Path, split: str = "test"
    ) -> dict[str, Any]:
        """top-1, top-5 and details on ``split`` (a torch model, or an ONNX Runtime session)."""
        if hasattr(model, "get_inputs"):  # an onnxruntime session: one image per call (batch 1)
            name = model.get_inputs()[0].name
            return self.evaluate_with(
                Path(), lambda x: model.run(None, {name: x}), data_yaml, imgsz, out_dir, split
            )
        contents = data.read(data_yaml)
        images = data.Images(contents, split, imgsz)
        return scores(
            self._logits(model, contents, images), images.labels.numpy(), list(contents.names.values())
        )

    def evaluate_with(
        self,
        onnx: Path,
        forward: Callable[[Any], list[Any]],
        data_yaml: Path,
        imgsz: int,
        out_dir: Path,
        split: str = "test",
    ) -> dict[str, Any]:
        """As ``evaluate``, the logits from ``forward`` (a runtime's own session), image by image."""
        contents = data.read(data_yaml)
        images = data.Images(contents, split, imgsz)
        logits = [
            np.asarray(
                forward(data.normalize(contents, images.pixels[i : i + 1]).numpy())[0], dtype=np.float32
            )
            for i in range(len(images))
        ]
        return scores(np.concatenate(logits), images.labels.numpy(), list(contents.names.values()))

    def inference_module(self, model: Any) -> Any:
        """The model in eval mode without gradients."""
        for p in model.parameters():
            p.requires_grad_(False)
        return model.eval()

    def module_loader(self, path: Path) -> Any:
        """``inference_module`` of the checkpoint at ``path``."""
        return self.inference_module(self.load(path))

    def export_onnx(
        self, checkpoint: Path, imgsz: int, dynamic: bool, simplify: bool, opset: int | None
    ) -> Path:
        """The checkpoint as ONNX (input ``images`` 1×3×imgsz², output ``logits``)."""
        import torch

        out = checkpoint.with_suffix(".onnx")
        axes = {"images": {0: "batch", 2: "h", 3: "w"}, "logits": {0: "batch"}} if dynamic else None
        torch.onnx.export(
            self.module_loader(checkpoint),
            (torch.zeros(1, 3, imgsz, imgsz),),
            str(out),
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=opset or 17,
            dynamo=False,
        )
        if simplify:
            import onnx
            import onnxslim

            onnx.save(onnxslim.slim(onnx.load(str(out))), str(out))
        return out

    def prunable(self, model: Any, source: Path | None) -> Prunable:
        """The whole network; the final layer keeps its outputs (one per class)."""
        name, final = models.head(model)
        return Prunable(
            module=model.float().eval(),
            protected=[final],
            weights_from=str(source or "built"),
            protected_what=f"the final layer ({name})",
            saved_as="classify checkpoint: structure (pruned layer shapes) and state dict, weights_only",
            save=self.save,
        )

    def end_to_end(
        self, data_yaml: Path, imgsz: int, forward: Callable[[Any], list[Any]]
    ) -> tuple[Callable[[], None], str]:
        """Per image from its file (the test split, in turn): read and decode, crop, pad, resize
        and normalise as evaluation does, the model, then softmax and top-5."""
        contents = data.read(data_yaml)
        files = [rel for rel, _ in contents.samples["test"]]
        state = {"next": 0}

        def call() -> None:
            rel = files[state["next"] % len(files)]
            state["next"] += 1
            x = data.normalize(contents, data.load_image(contents, rel, imgsz)[None]).numpy()
            logits = np.asarray(forward(x)[0], dtype=np.float32)
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            np.argsort(-(e / e.sum(axis=1, keepdims=True)), axis=1)[:, :5]

        what = (
            f"per image from its file ({len(files)} of the test split, in turn): read and decode, "
            f"{data.preprocess_note(contents)}, the model, softmax and top-5"
        )
        return call, what

    def calibration_inputs(
        self, data_yaml: Path, imgsz: int, count: int, seed: int
    ) -> tuple[Iterator[Any], dict[str, Any]]:
        """``count`` train images, chosen with ``seed``, preprocessed as evaluation feeds them."""
        contents = data.read(data_yaml)
        samples = contents.samples["train"]
        chosen = sorted(np.random.default_rng(seed).permutation(len(samples))[:count].tolist())

        def inputs() -> Iterator[Any]:
            for i in chosen:
                pixels = data.load_image(contents, samples[i][0], imgsz)
                yield data.normalize(contents, pixels[None]).numpy()

        facts = {"images": len(chosen), "split": "train", "source": str(contents.root),
                 "preprocessing": data.preprocess_note(contents)}  # fmt: skip
        return inputs(), facts


def _arch(model: Any) -> str:
    arch = getattr(model, "greenbench_arch", None)
    if not isinstance(arch, str):
        raise GreenbenchError(
            "a classify model without its architecture name; build or load it through the task"
        )
    return arch


def _refuse_downloads() -> None:
    """torch.hub's download (torchvision's ``weights=``) as a clear error: nothing downloads."""
    import torch.hub

    def refuse(url: str, dst: str, *args: Any, **kwargs: Any) -> None:
        raise GreenbenchError(
            f"greenbench never downloads: a model asked for {url}. Put the file at {dst} "
            f"(torch's checkpoint cache, $TORCH_HOME/hub/checkpoints) and name it in 'weights:'."
        )

    torch.hub.download_url_to_file = refuse
