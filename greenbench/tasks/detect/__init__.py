"""The detection task: ultralytics YOLO models on YOLO datasets. The only package that imports
ultralytics or knows its formats: the task class (``adapter``), its training-argument checks
(``ultra_args``), BatchNorm and trainer helpers (``ultra_slim``), custom model layers
(``ultra_modules``), the dataset check, fingerprint and staging (``dataset_ref``), the synthetic
shapes generator (``synth``), the offline switches (``offline``), calibration images
(``calibration``), what the generic ``prune`` stage may change (``DetectTask.prunable``: the
Detect head protected) and the stages only detection runs (``sparse_train``, ``finetune``).
"""

from typing import TYPE_CHECKING

from greenbench.tasks.detect.adapter import DetectTask

__all__ = ["DetectTask"]

if TYPE_CHECKING:  # mypy holds the class to the protocol it is registered under
    from greenbench.tasks.base import Task

    _protocol: type[Task] = DetectTask
