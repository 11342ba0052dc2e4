"""Logit distillation (Hinton et al., 2015): match the teacher's softened class probabilities.

    p_t = softmax(z_t / T),   p_s = softmax(z_s / T)
    L_KD = T^2 * (1/B) * sum_b sum_c p_t[b,c] * (log p_t[b,c] - log p_s[b,c])     = T^2 * KL(p_t || p_s)

The ``T^2`` keeps the gradient size independent of ``T``: for large ``T``,
``L_KD -> (1/(2C)) * mean_b sum_c (dz_c - mean_c dz)^2`` with ``dz = z_t - z_s`` (logit matching).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["logit_kd_loss"]


def logit_kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Hinton soft-target loss, ``T^2 * KL(p_t || p_s)`` averaged over the batch.

        p_t = softmax(z_t / T),  p_s = softmax(z_s / T)
        L_KD = T^2 * (1/B) * sum_b sum_c p_t[b,c] * (log p_t[b,c] - log p_s[b,c])

    The ``T^2`` keeps the gradient size independent of ``T``: for large ``T``,
    ``L_KD -> (1/(2C)) * mean_b sum_c (dz_c - mean_c dz)^2`` with ``dz = z_t - z_s`` (logit matching).
    The teacher is detached; computed in float32.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student_logits {tuple(student_logits.shape)} and teacher_logits "
            f"{tuple(teacher_logits.shape)} must have the same (batch, classes) shape; "
            "teacher and student need the same label set"
        )
    # log p = log_softmax(z / T), in float32 whatever the model's dtype
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    # sum_c p_t (log p_t - log p_s), mean over b
    kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)  # KL(p_t || p_s)
    return kl * temperature**2
