"""The detection task on ultralytics: build, train, evaluate, export, save and load YOLO models;
check, fingerprint, stage and generate YOLO datasets (``greenbench.tasks.base.Task``).

Every network path of ultralytics is switched off by ``greenbench.tasks.detect.offline`` before the first
import (done in ``DetectAdapter.__init__``); nothing here downloads weights or data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from greenbench.errors import GreenbenchError
from greenbench.metric_def import MetricDef, accuracy_metric
from greenbench.tasks.base import DatasetRef, Prunable, Synthetic
from greenbench.tasks.detect.offline import prepare_ultralytics
from greenbench.tasks.detect.ultra_args import PICKLE_ARGS, pickle_arg

#: training arguments greenbench always sets (the suite may not override them)
FORCED_TRAIN_ARGS = {"plots": False, "exist_ok": True, "verbose": False}


def check_weights(path: str | Path, what: str = "weights") -> Path:
    """Return ``path`` if it is a file on disk; otherwise a clear error (never a download)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise GreenbenchError(
            f"{what} file {p} does not exist. greenbench never downloads weights: put the file "
            f"at that path (for example copy it from your ultralytics or torch cache) or change "
            f"the suite's 'model:'/'weights:' entry to a model config (.yaml) to train from scratch."
        )
    return p


def _unrenamed(path: Path, link_dir: Path) -> str:
    """A path to ``path`` that ultralytics will load as it is.

    ultralytics renames any ``*yolov5?.pt`` path without a letter "u" to ``*yolov5?u.pt`` and
    then tries to download that file, and refuses a checkpoint whose suffix is not exactly
    ``.pt`` (``.PT``, ``.pth``); a link with a neutral ``.pt`` name sidesteps both.
    """
    from ultralytics.utils.checks import check_yolov5u_filename

    text = str(path)
    if path.suffix == ".pt" and check_yolov5u_filename(text, verbose=False) == text:
        return text
    import hashlib

    link_dir.mkdir(parents=True, exist_ok=True)
    link = link_dir / f"{hashlib.sha256(text.encode()).hexdigest()[:12]}.pt"
    if not link.exists():
        link.symlink_to(path.resolve())
    return str(link)


def refuse_downloads() -> None:
    """Make torch's hub download (used for torchvision's pretrained weights, e.g. a
    ``TorchVision`` backbone with ``DEFAULT`` weights in a model YAML) a clear error that names
    the file it looked for, instead of a network call."""
    import torch.hub

    def refuse(url: str, dst: str, *_args: Any, **_kwargs: Any) -> None:
        raise GreenbenchError(
            f"pretrained weights {url} are not in the torch cache (looked for {dst}). greenbench "
            f"never downloads weights: copy the file there (TORCH_HOME={torch.hub.get_dir()}/..), "
            f"or write 'null' for the weights in the model config to train from scratch."
        )

    torch.hub.download_url_to_file = refuse


class DetectTask:
    """Ultralytics YOLO detection models: the task ``detect``.

    workdir: greenbench's work folder; ultralytics settings, fonts and caches go below it.
    device: ``cpu`` or ``cuda:N``.
    """

    name: ClassVar[str] = "detect"
    metrics: ClassVar[tuple[MetricDef, ...]] = (
        accuracy_metric("precision", "P", "detection precision on the evaluation split"),
        accuracy_metric("recall", "R", "detection recall on the evaluation split"),
        accuracy_metric("map50", "mAP50", "detection mean average precision at IoU 0.5"),
        accuracy_metric("map50_95", "mAP50-95", "detection mean average precision over IoU 0.5:0.95"),
    )
    table_accuracy: ClassVar[tuple[str, ...]] = ("precision", "map50")
    headline: ClassVar[str] = "map50"
    dataset_format: ClassVar[str] = (
        "a data.yaml in YOLO format (naming train/val/test image folders, labels/*.txt beside images/)"
    )
    model_suffixes: ClassVar[tuple[str, ...]] = (".yaml", ".yml", ".pt", ".pth", ".onnx")
    pickle_args: ClassVar[tuple[str, ...]] = PICKLE_ARGS
    stages: ClassVar[dict[str, str]] = {
        "sparse_train": "greenbench.tasks.detect.sparse_train:SparseTrainStage",
        "finetune": "greenbench.tasks.detect.finetune:FinetuneStage",
    }
    packages: ClassVar[tuple[str, ...]] = ("ultralytics",)
    weights_only: ClassVar[bool] = False  # ultralytics checkpoints are whole pickled models
    datasets: ClassVar[dict[str, tuple[str, str]]] = {}

    # --- suite checks (no ultralytics import) ---------------------------------------------
    @classmethod
    def check_train_args(cls, args: dict[str, Any]) -> list[tuple[str, str]]:
        """Ultralytics training arguments, checked against its own ``default.yaml`` (names, the
        types in its comments, ranges) without importing ultralytics."""
        from greenbench.tasks.detect.ultra_args import check_train_args

        return check_train_args(args)

    @classmethod
    def builtin_models(cls) -> list[str]:
        """Ultralytics' bundled model configs (scaled names included), ``yolov8n.yaml`` first:
        the one messages give as an example."""
        from greenbench.tasks.detect.ultra_args import builtin_model_names

        names = builtin_model_names()
        return sorted(names, key=lambda n: n != "yolov8n.yaml")

    @classmethod
    def is_builtin_model(cls, name: str) -> bool:
        """Whether ``name`` is an ultralytics built-in config (``yolov5s.yaml``, ``yolov8n.yaml``)."""
        from greenbench.tasks.detect.ultra_args import builtin_model_cfg

        return builtin_model_cfg(name) is not None

    @classmethod
    def check_dataset(cls, path: Path) -> DatasetRef:
        """The data.yaml and every sample it names (``dataset_ref.check_dataset``)."""
        from greenbench.tasks.detect.dataset_ref import check_dataset

        return check_dataset(path)

    @classmethod
    def stage_dataset(cls, ref: DatasetRef, workdir: Path) -> Path:
        """A data.yaml under ``workdir`` linking the usable samples (``dataset_ref.staged_copy``)."""
        from greenbench.tasks.detect.staging import staged_copy

        return staged_copy(ref, workdir)

    @classmethod
    def synthetic_fingerprint(cls, spec: Synthetic) -> str:
        """``synth-<key>`` of the shapes dataset ``spec`` describes."""
        return "synth-" + _synth_spec(spec).key()

    @classmethod
    def synthesize(cls, cache_root: Path, spec: Synthetic) -> Path:
        """The data.yaml of ``spec``'s shapes dataset, generated once under ``cache_root``."""
        from greenbench.tasks.detect.synth import cached_synth

        return cached_synth(cache_root, _synth_spec(spec))

    @classmethod
    def write_synthetic(cls, out: Path, spec: Synthetic) -> Path:
        """A shapes dataset written into ``out``; its data.yaml."""
        from greenbench.tasks.detect.synth import synth_detection

        return synth_detection(out, _synth_spec(spec))

    def __init__(self, workdir: Path, device: str = "cpu") -> None:
        self.workdir = Path(workdir).resolve()
        prepare_ultralytics(self.workdir)
        refuse_downloads()
        from greenbench.tasks.detect.ultra_modules import register

        register()  # custom YAML layers (BlockStack, TimmBackbone) before any model YAML is parsed
        self.device = device

    # --- models -------------------------------------------------------------------------
    def build(self, model: str, weights: str | None = None) -> Any:
        """A ``YOLO`` from a model config (.yaml) or a checkpoint on disk, optionally with weights."""
        from ultralytics import YOLO

        links = self.workdir / "weights"
        if Path(model).suffix.lower() in (".pt", ".pth"):
            return YOLO(_unrenamed(check_weights(model, "model"), links), task="detect")
        yolo = YOLO(model, task="detect")
        from greenbench.tasks.detect.anchor_head import is_anchor_yaml, to_anchor_head

        model_: Any = yolo.model
        if is_anchor_yaml(model_.yaml):  # YOLOv5's anchor-based head (anchor_head)
            to_anchor_head(model_)
        if weights:
            yolo.load(_unrenamed(check_weights(weights), links))
        return yolo

    def load(self, checkpoint: Path) -> Any:
        """A ``YOLO`` from a checkpoint greenbench wrote, or from an ``.onnx`` file (ultralytics'
        AutoBackend then evaluates it through onnxruntime)."""
        from ultralytics import YOLO

        path = check_weights(checkpoint, "checkpoint")
        if path.suffix.lower() == ".onnx":
            return YOLO(str(path), task="detect")
        return YOLO(_unrenamed(path, self.workdir / "weights"), task="detect")

    def module_loader(self, path: Path) -> Any:
        """The fused inference module of the checkpoint at ``path`` (what the torch runtime runs)."""
        return self.inference_module(self.load(path))

    def save(self, yolo: Any, path: Path) -> Path:
        """Save ``yolo`` as an ultralytics checkpoint at ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        yolo.save(str(path))
        return path

    # --- training -----------------------------------------------------------------------
    def train(
        self,
        yolo: Any,
        data_yaml: Path,
        out_dir: Path,
        args: dict[str, Any],
        on_epoch: Callable[[int, int], None] | None = None,
        trainer: type[Any] | None = None,
    ) -> Path:
        """Train ``yolo`` on ``data_yaml`` into ``out_dir``; return the best (else last) weights.

        ``trainer``: a ``DetectionTrainer`` subclass to train with (``greenbench.tasks.detect.ultra_slim``:
        sparse training, training a pruned module); None for ultralytics' own. A model with the
        anchor-based head trains with that class made to rebuild it so (``anchor_head``)."""
        import torch

        from greenbench.tasks.detect.anchor_head import AnchorDetectionModel, anchor_trainer

        if isinstance(getattr(yolo, "model", None), AnchorDetectionModel):
            from ultralytics.models.yolo.detect import DetectionTrainer

            trainer = anchor_trainer(trainer or DetectionTrainer)

        if on_epoch is not None:
            yolo.add_callback("on_train_epoch_end", lambda tr: on_epoch(int(tr.epoch) + 1, int(tr.epochs)))
        from greenbench.tasks.detect.ultra_slim import add_fp32_copy

        add_fp32_copy(yolo)  # best_fp32.pt beside best.pt: pruning needs fp32 γ (fp16 ties over-prune)
        out_dir = out_dir.resolve()
        advice = "Lower 'lr0' or raise 'warmup_epochs' in the suite's defaults or stage params."
        args = dict(args)
        for key in PICKLE_ARGS:  # validate resolved them (and required 'allow_pickle'); never a download
            if pickle_arg(key, args.get(key)):
                args[key] = _unrenamed(check_weights(args[key], key), self.workdir / "weights")
        if self.device.startswith("cuda") and args.get("amp", True):
            # ultralytics' AMP check downloads a model; greenbench decides AMP itself and
            # keeps the user's choice (recorded in the stage's train_args)
            import ultralytics.engine.trainer as trainer_module

            trainer_module.check_amp = lambda *_a, **_k: True  # type: ignore[assignment]
            args["amp"] = True
        elif "amp" not in args:
            args["amp"] = False  # CPU: AMP does nothing here; say so explicitly in the record
        try:
            yolo.train(
                data=str(data_yaml),
                project=str(out_dir.parent),  # absolute: a relative project lands in runs_dir
                name=out_dir.name,
                device=self.device,
                trainer=trainer,
                **{**args, **FORCED_TRAIN_ARGS},
            )
        except RuntimeError as e:
            if "NaN" in str(e) or "Inf" in str(e):
                raise GreenbenchError(f"training diverged in {out_dir}: {e}. {advice}") from None
            raise
        trainer = yolo.trainer
        losses = trainer.tloss or {}
        values = losses.values() if isinstance(losses, dict) else [losses]
        if not all(math.isfinite(float(t)) for v in values for t in torch.as_tensor(v).flatten()):
            raise GreenbenchError(
                f"training diverged in {out_dir}: the final loss is not finite "
                f"({trainer.label_loss_items(losses) if isinstance(losses, dict) else losses}). {advice}"
            )
        for candidate in (trainer.best, trainer.last):
            if Path(candidate).is_file():
                return Path(candidate)
        raise GreenbenchError(f"training wrote no weights in {out_dir}; see the log there.")

    # --- evaluation ---------------------------------------------------------------------
    def evaluate(
        self, yolo: Any, data_yaml: Path, imgsz: int, out_dir: Path, split: str = "test"
    ) -> dict[str, float]:
        """Precision, recall, mAP50, mAP50-95 (fractions in [0, 1]) on ``split``."""
        metrics = yolo.val(
            data=str(data_yaml),
            split=split,
            imgsz=imgsz,
            batch=8,
            device=self.device,
            plots=False,
            verbose=False,
            project=str(out_dir.resolve().parent),
            name=out_dir.name,
            exist_ok=True,
        )
        box = metrics.box
        return {
            "precision": float(box.mp),
            "recall": float(box.mr),
            "map50": float(box.map50),
            "map50_95": float(box.map),
        }

    # --- inference ----------------------------------------------------------------------
    def inference_module(self, yolo: Any) -> Any:
        """The fused, eval-mode ``nn.Module`` on this adapter's device (what latency times)."""
        import copy

        import torch

        model = copy.deepcopy(yolo.model).float()
        for p in model.parameters():
            p.requires_grad_(False)
        model = model.fuse() if hasattr(model, "fuse") else model
        return model.eval().to(torch.device(self.device))

    # --- ONNX ---------------------------------------------------------------------------
    def export_onnx(
        self, checkpoint: Path, imgsz: int, dynamic: bool, simplify: bool, opset: int | None
    ) -> Path:
        """Export ``checkpoint`` to ONNX beside it (batch 1, fp32, one output: the decoded
        (1, 4 + classes, anchors) Detect tensor) with ultralytics' exporter, on the CPU."""
        args: dict[str, Any] = {"imgsz": imgsz, "dynamic": dynamic, "simplify": simplify, "batch": 1}
        if opset is not None:
            args["opset"] = opset
        out = self.load(checkpoint).export(format="onnx", device="cpu", half=False, nms=False, **args)
        return Path(out)

    def evaluate_with(
        self,
        onnx: Path,
        forward: Callable[[Any], list[Any]],
        data_yaml: Path,
        imgsz: int,
        out_dir: Path,
        split: str = "test",
    ) -> dict[str, float]:
        """``evaluate`` of an ONNX file whose outputs ``forward`` computes (another runtime, e.g.
        OpenVINO at a precision hint) instead of ultralytics' onnxruntime session. Everything
        else (letterbox, batch, NMS, metrics, the export's metadata) is ultralytics' ONNX path,
        so two runtimes of one file differ only in what they compute."""
        from unittest import mock

        import torch
        from ultralytics.nn.autobackend import AutoBackend
        from ultralytics.nn.backends.onnx import ONNXBackend

        class _Backend(ONNXBackend):  # type: ignore[misc]
            def load_model(self, weight: Any) -> None:
                import onnx as onnx_lib

                self.device = torch.device("cpu")
                self.apply_metadata(self.read_metadata(weight))
                graph = onnx_lib.load(str(weight), load_external_data=False).graph
                self.output_names = [o.name for o in graph.output]
                dims = graph.input[0].type.tensor_type.shape.dim
                self.dynamic = not all(d.HasField("dim_value") for d in dims)
                self.fp16, self.use_io_binding = False, False

            def forward(self, im: Any) -> list[Any]:
                return forward(im.cpu().numpy())

        # the registry is a class attribute: swapped for this one validation, in this process only
        with mock.patch.dict(AutoBackend._BACKEND_MAP, {"onnx": _Backend}):
            return self.evaluate(self.load(onnx), data_yaml, imgsz, out_dir, split)

    # --- pruning ----------------------------------------------------------------------------
    def prunable(self, yolo: Any, source: Path | None) -> Prunable:
        """The ``DetectionModel`` in fp32 (from the parent's fp32 copy when it has one: fp16 γ
        ties over-prune), its Detect head protected, saved as a whole module in fp16 with an
        fp32 state_dict beside it (``ultra_slim.save_module``); its residual BNs named
        (``bn_l1.residual_bns``)."""
        from greenbench.tasks.detect.bn_l1 import residual_bns
        from greenbench.tasks.detect.ultra_slim import detect_heads, load_fp32_copy, save_module

        model = yolo.model.float().cpu()
        fp32 = load_fp32_copy(model, source) if source else None
        heads = detect_heads(model)
        if not heads:
            raise GreenbenchError(
                "the model has no Detect head; the detection task prunes YOLO detection models."
            )
        train_args = model.args if isinstance(getattr(model, "args", None), dict) else {}
        stored = "checkpoint as stored (fp16 for ultralytics files)"

        def save(module: Any, path: Path) -> Path:
            return save_module(module, path, train_args)

        return Prunable(
            module=model,
            protected=heads,
            weights_from=f"fp32 copy {fp32}" if fp32 else stored,
            protected_what=(
                "Detect head (its output convs keep their shape; its input channels follow the neck)"
            ),
            saved_as="fp16 module (like ultralytics checkpoints) + fp32 state_dict beside it",
            save=save,
            residual=residual_bns(model),
            residual_what=(
                "the BNs of each bottleneck with a shortcut and the first conv's BN of the block "
                "that holds it"
            ),
        )

    # --- quantization ---------------------------------------------------------------------
    def end_to_end(
        self, data_yaml: Path, imgsz: int, forward: Callable[[Any], list[Any]]
    ) -> tuple[Callable[[], None], str]:
        """Per image from its file: decode, letterbox, the model, NMS (``calibration.end_to_end``)."""
        from greenbench.tasks.detect.calibration import end_to_end

        return end_to_end(data_yaml, imgsz, forward)  # type: ignore[no-any-return]

    def calibration_inputs(
        self, data_yaml: Path, imgsz: int, count: int, seed: int
    ) -> tuple[Iterator[Any], dict[str, Any]]:
        """``count`` train images, letterboxed as evaluation feeds them (``calibration``)."""
        from greenbench.tasks.detect.calibration import calibration_inputs

        return calibration_inputs(data_yaml, imgsz, count, seed)


#: the name this class had before tasks were a package (tests and plugins may still use it)
DetectAdapter = DetectTask


def _synth_spec(spec: Synthetic) -> Any:
    from greenbench.tasks.detect.synth import SynthSpec

    return SynthSpec(
        classes=spec.classes, images=spec.images, imgsz=spec.imgsz, seed=spec.seed, names=spec.names
    )
