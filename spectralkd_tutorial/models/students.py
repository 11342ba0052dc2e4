"""The one student builder: a ``StudentConfig`` and a teacher in, the student before distillation out.

    ``layers:K``      K teacher blocks copied (DistilBERT-style), chosen by ``student.init`` from the
                      teacher's intensities: the returned ``init`` mapping says which
    ``random:KxH``    K randomly initialised blocks H wide of the teacher's family (heads: H // 64, at
                      least 1), with the teacher's tokenizer
    a name/directory  a smaller pretrained model, loaded with its own tokenizer and a classifier head
                      made for ``label_names``

The experiment grid, ``distill`` and chapter 5's end-to-end run all build their students here.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

from torch import nn

from ..analysis.selection import LayerMapping, select_layers
from ..config.sections import StudentConfig
from .loading import load_classifier, num_blocks, student_from_config, student_from_teacher

__all__ = ["InitialStudent", "build_student"]


class InitialStudent(NamedTuple):
    """A student before distillation: the model, its own tokenizer (``None``: it reads the teacher's)
    and, for ``layers:K``, the mapping that chose the teacher blocks it copies."""

    model: nn.Module
    tokenizer: Any = None
    init: LayerMapping | None = None


def build_student(student: StudentConfig, teacher: nn.Module, intensities: Sequence[float] | None = None, *,
                  rms: Sequence[float] | None = None, seed: int = 0,
                  label_names: Sequence[str] | None = None) -> InitialStudent:
    """The initial student ``student.model`` describes (see the module docstring).

    ``intensities`` / ``rms``: the teacher's profile, which ``layers:K`` ranks blocks by; ``seed``: a
    random student's weights, a pretrained student's new head, and a ``random`` init choice;
    ``label_names``: the data's labels (a pretrained student's head is made for them).
    """
    shape = student.random_shape
    if shape is not None:
        blocks, width = shape
        return InitialStudent(student_from_config(teacher, num_layers=blocks, hidden_size=width, seed=seed))
    k = student.copied_layers
    if k is not None:
        init = select_layers(student.init, k, num_blocks(teacher), intensities, seed=seed, rms=rms)
        return InitialStudent(student_from_teacher(teacher, init.teacher_layers), init=init)
    if label_names is None:
        raise ValueError(f"student.model={student.model!r}: build_student makes layers:K and random:KxH students; "
                         "a pretrained student needs label_names= (the data's labels) for its classifier head")
    model, tokenizer = load_classifier(student.model, label_names, seed=seed)
    return InitialStudent(model, tokenizer)
