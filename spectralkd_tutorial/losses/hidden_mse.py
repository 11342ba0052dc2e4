"""Hidden-state MSE (PKD / TinyBERT): the plain spatial baseline for the spectral loss.

    L_mse = (1/P) sum_p  sum_{b,n,h} m[b,n] (g_p(X_s^p) - f(X_t^p))^2 / (N_real * H')

``"mse"``: ``g = id``, ``f = pool`` to the student width (``H' = H_s``).
``"projection"``: ``g = W_p`` (student up to the teacher width), ``f = id`` (``H' = H_t``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from torch import Tensor

from .common import check_pairs, masked, mean_over_pairs
from .registry import register_feature_loss
from .spectral_alignment import pool_teacher_channels

if TYPE_CHECKING:  # pragma: no cover
    from .projection import LayerProjections

__all__ = ["hidden_mse_loss"]


def _pair_masked_mse(student: Tensor, teacher: Tensor, mask: Tensor | None) -> Tensor:
    """``sum_{b,n,h} m[b,n] (X_s - f(X_t))^2 / (N_real * H)``: the mean over real tokens only.

    ``f = pool`` to the student width (the identity when the widths already agree, as after a projection).
    """
    teacher = pool_teacher_channels(teacher, student.shape[-1])
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
    return mean_over_pairs(_pair_masked_mse, pairs, projections)


# "mse": against the pooled teacher; "projection": through LayerProjections (the grid is unused by both)
register_feature_loss("mse", takes=())(hidden_mse_loss)
register_feature_loss("projection", needs_projections=True, takes=("projections",))(hidden_mse_loss)
