"""Logit distillation (Hinton et al., 2015): match the teacher's softened class probabilities.

    p_t = softmax(z_t / T),   p_s = softmax(z_s / T)
    L_KD = T^2 * (1/B) * sum_b sum_c p_t[b,c] * (log p_t[b,c] - log p_s[b,c])     = T^2 * KL(p_t || p_s)

The ``T^2`` keeps the gradient size independent of ``T``: for large ``T``,
``L_KD -> (1/(2C)) * mean_b sum_c (dz_c - mean_c dz)^2`` with ``dz = z_t - z_s`` (logit matching).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..common.inputs import check_real, raise_non_finite_input

__all__ = ["check_logits", "check_temperature", "logit_kd_loss"]


def logit_kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Hinton soft-target loss, ``T^2 * KL(p_t || p_s)`` averaged over the batch.

        p_t = softmax(z_t / T),  p_s = softmax(z_s / T)
        L_KD = T^2 * (1/B) * sum_b sum_c p_t[b,c] * (log p_t[b,c] - log p_s[b,c])

    The ``T^2`` keeps the gradient size independent of ``T``: for large ``T``,
    ``L_KD -> (1/(2C)) * mean_b sum_c (dz_c - mean_c dz)^2`` with ``dz = z_t - z_s`` (logit matching).
    The teacher is detached; computed in float32. Refused: ``T`` not finite or <= 0; complex or
    empty logits; a NaN/Inf in either logits (``NonFiniteInputError``, a ``ValueError`` and a
    ``FloatingPointError``).
    """
    check_temperature(temperature)
    check_logits(student_logits, teacher_logits)
    # log p = log_softmax(z / T), in float32 whatever the model's dtype
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    # sum_c p_t (log p_t - log p_s), mean over b
    kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)  # KL(p_t || p_s)
    loss = kl * temperature**2
    if not bool(torch.isfinite(loss)):  # name the culprit; a healthy step costs one check of a scalar
        raise_non_finite_input((("student_logits", student_logits), ("teacher_logits", teacher_logits)))
    return loss


def check_temperature(temperature: float) -> None:
    """``ValueError`` unless ``T`` is a finite number > 0 (``T = inf`` would give ``0 * inf = NaN``)."""
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")


def check_logits(student_logits: Tensor, teacher_logits: Tensor) -> None:
    """Real ``(batch, classes)`` logits of the same shape, with at least one sample and one class."""
    check_real(student_logits, "student_logits")
    check_real(teacher_logits, "teacher_logits")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student_logits {tuple(student_logits.shape)} and teacher_logits "
            f"{tuple(teacher_logits.shape)} must have the same (batch, classes) shape; "
            "teacher and student need the same label set"
        )
    if student_logits.dim() == 0 or student_logits.numel() == 0:
        what = "no samples (an empty batch)" if student_logits.dim() and student_logits.shape[0] == 0 \
            else "no classes" if student_logits.dim() else "no class axis"
        raise ValueError(
            f"student_logits and teacher_logits have shape {tuple(student_logits.shape)}: empty, {what}; "
            "pass (batch, classes) logits and skip empty batches"
        )
