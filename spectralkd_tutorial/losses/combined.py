"""The total distillation objective: cross-entropy, logit KD and one registered feature loss.

    L = (1 - alpha) * CE(z_s, y; label_smoothing) + alpha * T^2 * KL(p_t^T || p_s^T) + beta * L_feat

``L_feat`` is looked up by name in the feature-loss registry (:mod:`.registry`).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import DistillationLossConfig
from .logit_kd import logit_kd_loss
from .projection import LayerProjections
from .registry import get_feature_loss, register_feature_loss

__all__ = ["distillation_loss"]


@register_feature_loss("none", needs_hidden=False, takes=())
def _no_feature_loss(
    student_hidden: Sequence[Tensor] | None, teacher_hidden: Sequence[Tensor] | None, attention_mask: Tensor | None
) -> Tensor:
    """``"none"``: logits-only distillation, ``L_feat = 0``."""
    return torch.zeros((), dtype=torch.float32)


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    student_hidden: Sequence[Tensor] | None,
    teacher_hidden: Sequence[Tensor] | None,
    attention_mask: Tensor | None,
    config: DistillationLossConfig,
    projections: LayerProjections | None = None,
    grid: tuple[int, int] | None = None,
) -> dict[str, Tensor]:
    """The full objective and its parts.

        L = (1 - alpha) * CE(z_s, y; label_smoothing) + alpha * T^2 * KL(p_t^T || p_s^T) + beta * L_feat

    Returns ``{"loss": L, "ce": CE, "kd": T^2 KL, "feature": L_feat}`` (unweighted parts).
    Raises ``FloatingPointError`` when ``L`` is NaN or infinite: a ``NonFiniteInputError`` (also a
    ``ValueError``) naming the input when a logit or a real token's hidden state is NaN/Inf.
    """
    feature_loss = get_feature_loss(config.feature_loss)
    kd = logit_kd_loss(student_logits, teacher_logits, config.temperature)  # checks the logits first
    ce = F.cross_entropy(student_logits.float(), labels, label_smoothing=config.label_smoothing)
    feature = feature_loss(student_hidden, teacher_hidden, attention_mask, projections=projections, grid=grid)
    feature = feature.to(ce.device)
    total = (1.0 - config.alpha) * ce + config.alpha * kd + config.beta * feature
    if not bool(torch.isfinite(total)):
        raise FloatingPointError(
            f"non-finite loss {total.item()} (ce={ce.item()}, kd={kd.item()}, feature={feature.item()}); "
            "lower the learning rate / check inputs (NaN or Inf in logits or hidden states?)"
        )
    return {"loss": total, "ce": ce, "kd": kd, "feature": feature}
