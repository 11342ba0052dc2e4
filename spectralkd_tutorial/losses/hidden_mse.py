"""Hidden-state MSE (PKD / TinyBERT): the plain spatial baseline for the spectral loss.

    L_mse = (1/P) sum_p  sum_{b,n,h} m[b,n] (g_p(X_s^p) - f(X_t^p))^2 / (N_real * H')

``"mse"``: ``g = id``, ``f = pool`` to the student width (``H' = H_s``).
``"projection"``: ``g = W_p`` (student up to the teacher width), ``f = id`` (``H' = H_t``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch
from torch import Tensor

from .common import check_pairs, check_projected_width, masked
from .registry import register_feature_loss
from .spectral_alignment import pool_teacher_channels

if TYPE_CHECKING:  # pragma: no cover
    from .projection import LayerProjections

__all__ = ["hidden_mse_loss"]


def _pair_masked_mse(student: Tensor, teacher: Tensor, mask: Tensor | None) -> Tensor:
    """``sum_{b,n,h} m[b,n] (X_s - X_t)^2 / (N_real * H)``: the mean over real tokens only."""
    diff = masked(student.float() - teacher.detach().float(), mask)
    real_tokens = (
        float(diff.shape[0] * diff.shape[1]) if mask is None
        else mask.to(device=diff.device, dtype=diff.dtype).sum()  # >= 1: check_pairs refuses an all-zero mask
    )
    return diff.pow(2).sum() / (real_tokens * diff.shape[-1])


def hidden_mse_loss(
    student_hidden: Sequence[Tensor],
    teacher_hidden: Sequence[Tensor],
    attention_mask: Tensor | None = None,
    projections: LayerProjections | None = None,
) -> Tensor:
    """Masked hidden-state MSE averaged over pairs (PKD / TinyBERT style).

        L_mse = (1/P) sum_p  sum_{b,n,h} m[b,n] (g_p(X_s^p) - f(X_t^p))^2 / (N_real * H')

    Without projections ``g = id`` and ``f = pool`` to the student width (``H' = H_s``); with them
    ``g = W_p`` (student up to the teacher width) and ``f = id`` (``H' = H_t``). Teacher detached.
    """
    pairs = check_pairs(student_hidden, teacher_hidden, attention_mask)
    students, teachers = pairs.students, pairs.teachers
    if projections is not None:
        students = projections(students)
        check_projected_width(students, teachers)
    else:
        teachers = [pool_teacher_channels(t, s.shape[-1]) for s, t in zip(students, teachers)]
    loss = torch.stack([_pair_masked_mse(s, t, pairs.mask) for s, t in zip(students, teachers)]).mean()
    projected = students if projections is not None else []
    return pairs.finite(loss, *((f"LayerProjections output {i}", x) for i, x in enumerate(projected)))


@register_feature_loss("mse")
def _mse_feature_loss(
    student_hidden: Sequence[Tensor],
    teacher_hidden: Sequence[Tensor],
    attention_mask: Tensor | None,
    *,
    projections: LayerProjections | None = None,
    grid: tuple[int, int] | None = None,
) -> Tensor:
    """``"mse"``: hidden MSE against the pooled teacher (projections and grid unused)."""
    return hidden_mse_loss(student_hidden, teacher_hidden, attention_mask)


@register_feature_loss("projection", needs_projections=True)
def _projected_mse_feature_loss(
    student_hidden: Sequence[Tensor],
    teacher_hidden: Sequence[Tensor],
    attention_mask: Tensor | None,
    *,
    projections: LayerProjections | None = None,
    grid: tuple[int, int] | None = None,
) -> Tensor:
    """``"projection"``: hidden MSE through :class:`LayerProjections` (grid unused)."""
    return hidden_mse_loss(student_hidden, teacher_hidden, attention_mask, projections)
