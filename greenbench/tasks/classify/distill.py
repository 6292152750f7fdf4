"""Stage ``distill {teacher: <variant>, temperature, alpha, …}``: train the student on the
teacher's softened outputs (Hinton et al., 2015).

    loss = alpha · T² · KL(softmax(t / T) ‖ softmax(s / T)) + (1 − alpha) · CE(s, y)

with s, t the student's and teacher's logits and T the temperature (T² keeps the soft term's
gradients on the scale of the hard one). The teacher is another variant of the suite: its
stages run first (cached as any), and its forward passes run inside this stage's energy
window, so distillation's cost is part of the student's training energy. The other params
are the classifier's training arguments (``epochs``, ``lr``, ``augment``, …).
"""

from __future__ import annotations

from typing import Any, ClassVar

from greenbench.pipeline.base import StageContext, StageResult
from greenbench.tasks.base import Task

OWN = {"teacher": str, "temperature": float, "alpha": float}


def distillation_loss(student: Any, teacher: Any, labels: Any, temperature: float, alpha: float) -> Any:
    """The loss above, averaged over the batch (KL as ``batchmean``)."""
    import torch.nn.functional as F

    t = float(temperature)
    soft = F.kl_div(F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1),
                    reduction="batchmean", log_target=True)  # fmt: skip
    return alpha * t * t * soft + (1 - alpha) * F.cross_entropy(student, labels)


class DistillStage:
    """Knowledge distillation from a teacher variant into the lineage's model (the student)."""

    name: ClassVar[str] = "distill"
    variant_params: ClassVar[tuple[str, ...]] = ("teacher",)

    @classmethod
    def validate_params(cls, params: dict[str, Any], task: type[Task]) -> dict[str, Any]:
        """``teacher`` (a variant), ``temperature`` > 0 (default 4), ``alpha`` in [0, 1] (0.9),
        and training arguments."""
        if not isinstance(params.get("teacher"), str) or not params["teacher"]:
            raise ValueError("distill needs 'teacher': the name of the variant to learn from")
        t, a = params.get("temperature", 4.0), params.get("alpha", 0.9)
        if isinstance(t, bool) or not isinstance(t, (int, float)) or t <= 0:
            raise ValueError(f"distill 'temperature' must be a number > 0, got {t!r}")
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 <= a <= 1:
            raise ValueError(f"distill 'alpha' must be in [0, 1], got {a!r}")
        train = {k: v for k, v in params.items() if k not in OWN}
        for _key, message in task.check_train_args(train):
            raise ValueError(message)
        return {**train, "teacher": params["teacher"], "temperature": float(t), "alpha": float(a)}

    def run(self, ctx: StageContext) -> StageResult:
        """Train the student with the teacher's logits, both in this stage's energy window."""
        import torch

        from greenbench.tasks.classify.models import read_checkpoint

        p = ctx.params
        teacher = ctx.task.inference_module(ctx.task.load(ctx.models["teacher"]))
        temperature, alpha = p["temperature"], p["alpha"]

        def loss(student_logits: Any, labels: Any, x: Any) -> Any:
            with torch.inference_mode():
                target = teacher(x)
            return distillation_loss(student_logits, target.clone(), labels, temperature, alpha)

        args = {**ctx.defaults, **{k: v for k, v in p.items() if k not in OWN}}
        checkpoint, energy = ctx.train(ctx.start_model(), args, "distill", trainer=loss)
        info = dict(read_checkpoint(checkpoint).get("info") or {})
        teacher_params = sum(q.numel() for q in teacher.parameters())
        info.update(
            train_args=args,
            teacher=p["teacher"],
            teacher_checkpoint=ctx.models["teacher"].name,
            teacher_params=teacher_params,
            temperature=temperature,
            alpha=alpha,
            energy_includes="the teacher's forward passes (same window)",
        )
        return StageResult(checkpoint, energy, info)
