"""What the chapter-5 steps return beyond the shared steps' results: the layer choice, and the
report of one distilled student.

The teacher and the students are the steps' :class:`~spectralkd_tutorial.pipelines.steps.TeacherResult`
and :class:`~spectralkd_tutorial.pipelines.steps.StudentResult`; their ``report`` holds the plain data
that ``summary.json`` and the model card are made of (``student_report`` makes a student's row).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from ...analysis.selection import LayerMapping, select_layers
from ...models.loading import count_parameters, hidden_width, num_blocks
from ..model_card import format_count, retained
from ..steps import StudentResult, TeacherResult
from .plan import ModelSource, StudentRun

__all__ = ["LayerChoice", "student_report", "student_record", "result_from_record", "width_handling"]


@dataclass
class LayerChoice:
    """The teacher layers each student depth aligns, by ``selection`` and by the compared strategies.

    ``by_depth[str(depth)] = {"layers": {strategy: [teacher layers]}, "blog": blog_comparison(...)}``.
    """

    selection: str
    teacher_blocks: int
    by_depth: dict[str, dict[str, Any]]
    intensities: list[float]
    convention: str
    seed: int = 0

    def mapping(self, strategy: str, num_student_layers: int) -> LayerMapping:
        """The teacher layers ``strategy`` chooses for a ``num_student_layers`` student (any depth)."""
        return select_layers(strategy, num_student_layers, self.teacher_blocks, self.intensities, seed=self.seed)

    def layers(self, depth: int, strategy: str | None = None) -> list[int]:
        """The layers chosen for ``depth`` by ``strategy`` (default: the plan's selection)."""
        return self.by_depth[str(depth)]["layers"][strategy or self.selection]

    def to_dict(self) -> dict[str, Any]:
        """``layers.json`` and the ``layer_choice`` of ``summary.json``."""
        return {"selection": self.selection, "teacher_blocks": self.teacher_blocks, "by_depth": self.by_depth,
                "convention": self.convention, "intensities": self.intensities}


def width_handling(feature_loss: str, width: int, teacher_width: int, projection_parameters: int) -> str:
    """How the feature loss bridges the widths (or that it compares no hidden states)."""
    if feature_loss == "none":
        return "logits only (no hidden states compared)"
    if feature_loss in ("projection", "spectral-projection"):
        return (f"learned projection {width}->{teacher_width} "
                f"({format_count(projection_parameters)} training-only parameters)")
    if width < teacher_width:
        return f"teacher channels average-pooled {teacher_width}->{width} (parameter-free)"
    return "same width (no pooling needed)"


def student_report(run: StudentRun, source: ModelSource, model: nn.Module, result: StudentResult,
                   teacher: TeacherResult, init: LayerMapping | None, *, latency_ms: float,
                   device: str) -> dict[str, Any]:
    """The student's row of ``summary.json`` (``speedup`` is added by the summary)."""
    mapping = None if run.strategy == "none" else result.mapping
    projection_parameters = count_parameters(result.projections) if result.projections is not None else 0
    width, teacher_width = hidden_width(model), teacher.width
    return {
        "name": run.name, "label": run.label, "student": run.student, "source": source.describe(),
        "strategy": run.strategy, "feature_loss": run.feature_loss, "blocks": num_blocks(model), "width": width,
        "teacher_width": teacher_width, "width_mismatch": width != teacher_width,
        "width_handling": width_handling(run.feature_loss, width, teacher_width, projection_parameters),
        "mapping": mapping.to_dict() if mapping is not None else None,
        "teacher_layers": mapping.teacher_layers if mapping is not None else [],
        "init_layers": init.teacher_layers if init is not None else None, "parameters": count_parameters(model),
        "projection_parameters": projection_parameters, "metrics": result.metrics,
        "retained": retained(result.test, teacher.test), "latency_ms": latency_ms, "device": device,
        "seconds": result.seconds,
    }


def student_record(result: StudentResult, run: StudentRun, source: ModelSource) -> dict[str, Any]:
    """``students/<run>/result.json``: the row, the history, and the run and source definitions."""
    return {**result.report, "history": result.history, "run": asdict(run), "source_spec": asdict(source)}


def result_from_record(record: dict[str, Any], seed: int) -> StudentResult:
    """The finished student of ``result.json`` (without its model: ``EndToEnd.load_student`` loads it)."""
    mapping = record.get("mapping")
    report = {key: value for key, value in record.items() if key not in ("history", "run", "source_spec")}
    return StudentResult(LayerMapping.from_dict(mapping) if mapping else None, seed, record["metrics"],
                         record.get("history", []), seconds=record["seconds"], report=report)
