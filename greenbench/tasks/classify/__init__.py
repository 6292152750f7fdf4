"""The classification task (``classify``): torchvision models on ImageFolder datasets, with
freeze-and-train, fine-tuning, an augmentation curriculum, distillation and low-rank
factorisation. Everything that knows torchvision's models lives in this package."""

from greenbench.tasks.base import Task
from greenbench.tasks.classify.task import ClassifyTask

__all__ = ["ClassifyTask"]

_protocol: type[Task] = ClassifyTask  # mypy holds the class to the task protocol
