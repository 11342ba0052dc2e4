"""What the chapter-5 steps return: the teacher, the layer choice, one distilled student.

Each is a small dataclass; ``to_dict`` gives the plain data that ``summary.json`` and the model card
are made of (the same keys, in the same order, as before the steps were shared).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ...common.metrics import headline
from ...analysis.selection import LayerMapping, select_layers
from .plan import ModelSource, StudentRun
from .report import format_parameters

__all__ = ["TeacherOutcome", "LayerChoice", "StudentOutcome"]


@dataclass
class TeacherOutcome:
    """The fine-tuned teacher, what it is, how it scores, and how fast it answers."""

    model: nn.Module
    tokenizer: Any
    fingerprint: str
    name: str
    source: str
    blocks: int
    width: int
    parameters: int
    metrics: dict[str, dict[str, float]]
    latency_ms: float
    device: str
    seconds: float = 0.0
    directory: Path | None = None

    RECORD = ("name", "source", "blocks", "width", "parameters", "metrics", "latency_ms", "device", "seconds")

    @property
    def test(self) -> dict[str, float]:
        return self.metrics["test"]

    def to_dict(self) -> dict[str, Any]:
        """The teacher's entry of ``summary.json`` (no model)."""
        return {key: getattr(self, key) for key in self.RECORD}


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


@dataclass
class StudentOutcome:
    """One distilled student: which run, its shape, its layers, its scores, size and speed."""

    run: StudentRun
    source: ModelSource
    blocks: int
    width: int
    teacher_width: int
    mapping: LayerMapping | None
    init_layers: list[int] | None
    parameters: int
    projection_parameters: int
    metrics: dict[str, dict[str, float]]
    retained: float
    latency_ms: float
    device: str
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def test(self) -> dict[str, float]:
        return self.metrics["test"]

    @property
    def teacher_layers(self) -> list[int]:
        return self.mapping.teacher_layers if self.mapping is not None else []

    @property
    def width_mismatch(self) -> bool:
        return self.width != self.teacher_width

    @property
    def width_handling(self) -> str:
        """How the feature loss bridges the widths (or that it compares no hidden states)."""
        if self.run.feature_loss == "none":
            return "logits only (no hidden states compared)"
        if self.run.feature_loss in ("projection", "spectral-projection"):
            return (f"learned projection {self.width}->{self.teacher_width} "
                    f"({format_parameters(self.projection_parameters)} training-only parameters)")
        if self.width < self.teacher_width:
            return f"teacher channels average-pooled {self.teacher_width}->{self.width} (parameter-free)"
        return "same width (no pooling needed)"

    def speedup(self, teacher_latency_ms: float) -> float:
        return teacher_latency_ms / self.latency_ms if self.latency_ms else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """The student's row of ``summary.json`` (without history; ``speedup`` is added by the summary)."""
        return {
            "name": self.run.name, "label": self.run.label, "student": self.run.student,
            "source": self.source.describe(), "strategy": self.run.strategy, "feature_loss": self.run.feature_loss,
            "blocks": self.blocks, "width": self.width, "teacher_width": self.teacher_width,
            "width_mismatch": self.width_mismatch, "width_handling": self.width_handling,
            "mapping": self.mapping.to_dict() if self.mapping is not None else None,
            "teacher_layers": self.teacher_layers, "init_layers": self.init_layers, "parameters": self.parameters,
            "projection_parameters": self.projection_parameters, "metrics": self.metrics, "retained": self.retained,
            "latency_ms": self.latency_ms, "device": self.device, "seconds": self.seconds,
        }

    def to_record(self) -> dict[str, Any]:
        """``students/<run>/result.json``: the row, the history, and the run and source definitions."""
        return {**self.to_dict(), "history": self.history, "run": asdict(self.run), "source_spec": asdict(self.source)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "StudentOutcome":
        mapping = record.get("mapping")
        return cls(run=StudentRun(**record["run"]), source=ModelSource(**record["source_spec"]),
                   blocks=record["blocks"], width=record["width"], teacher_width=record["teacher_width"],
                   mapping=LayerMapping.from_dict(mapping) if mapping else None, init_layers=record["init_layers"],
                   parameters=record["parameters"], projection_parameters=record["projection_parameters"],
                   metrics=record["metrics"], retained=record["retained"], latency_ms=record["latency_ms"],
                   device=record["device"], seconds=record["seconds"], history=record.get("history", []))

    @property
    def headline(self) -> float:
        """In-scope accuracy where there is an out-of-scope class, else accuracy (test split)."""
        return headline(self.test)
