"""The weights of the distillation objective and the feature loss to use.

    L = (1 - alpha) * CE(z_s, y; label_smoothing) + alpha * T^2 * KL(p_t^T || p_s^T) + beta * L_feat

A :class:`DistillationLossConfig` is checked on construction *and* on every later assignment
(:class:`~spectralkd_tutorial.common.validated.Validated`): ``config.alpha = 2`` raises and keeps the old value.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

from ..common.validated import Validated
from .registry import FEATURE_LOSS_REGISTRY, get_feature_loss

__all__ = ["DistillationLossConfig"]


def _real(name: str, value: object, meaning: str) -> float:
    """``value`` as a float, or ``ValueError`` naming the field when it is not a finite real number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} ({meaning}) must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} ({meaning}) must be a finite number, got {value!r}")
    return number


@dataclass
class DistillationLossConfig(Validated):
    """Weights of ``L = (1 - alpha) CE + alpha T^2 KL + beta L_feat`` and the feature loss to use.

    ``feature_loss``: a name in :data:`~spectralkd_tutorial.losses.registry.FEATURE_LOSS_REGISTRY`:
    ``"spectral"`` (SpectralKD, pooled teacher), ``"mse"`` (hidden MSE, pooled teacher),
    ``"projection"`` (hidden MSE through :class:`LayerProjections`), ``"spectral-projection"``
    (spectral loss through :class:`LayerProjections`), ``"none"`` (logits only), or any loss added
    with :func:`~spectralkd_tutorial.losses.registry.register_feature_loss`.
    ``label_smoothing``: epsilon of the CE term, the one place a student's label smoothing is set (a
    teacher's is ``teacher.train.label_smoothing``; ``student.train.label_smoothing`` is refused).
    """

    alpha: float = field(default=0.5, metadata={"help": "weight of KD vs CE"})  # --alpha (see config.sections)
    temperature: float = field(default=2.0, metadata={"help": "softmax temperature T"})
    beta: float = field(default=1.0, metadata={"help": "weight of the feature loss"})
    feature_loss: str = field(default="spectral", metadata={"help": "spectral, mse, projection, spectral-projection "
                              "(token by token), pooled-spectral (per sentence: any student tokenizer), none"})
    label_smoothing: float = 0.0

    def validate(self) -> None:
        """``ValueError`` naming the bad field and the fix (runs after ``__init__`` and every assignment)."""
        if not 0.0 <= _real("alpha", self.alpha, "weight of KD vs CE") <= 1.0:
            raise ValueError(f"alpha (weight of KD vs CE) must be in [0, 1], got {self.alpha!r}")
        if not _real("temperature", self.temperature, "softmax temperature T") > 0:
            raise ValueError(f"temperature must be a finite number > 0, got {self.temperature!r}")
        if not _real("beta", self.beta, "weight of the feature loss") >= 0:
            raise ValueError(f"beta (weight of the feature loss) must be finite and >= 0, got {self.beta!r}")
        if not isinstance(self.feature_loss, str) or self.feature_loss not in FEATURE_LOSS_REGISTRY:
            raise ValueError(
                f"feature_loss must be one of {tuple(FEATURE_LOSS_REGISTRY)}, got {self.feature_loss!r} "
                "(add a new one with @register_feature_loss(name))"
            )
        if not 0.0 <= _real("label_smoothing", self.label_smoothing, "CE label smoothing") < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")

    @property
    def needs_projections(self) -> bool:
        """Whether :func:`distillation_loss` needs a :class:`LayerProjections` module."""
        return get_feature_loss(self.feature_loss).needs_projections

    @property
    def needs_hidden(self) -> bool:
        """Whether the feature term reads hidden states: its loss needs them and ``beta > 0`` weighs it."""
        return get_feature_loss(self.feature_loss).needs_hidden and self.beta > 0
