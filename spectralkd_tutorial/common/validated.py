"""Configs that stay valid: checked at construction *and* on every later assignment.

A dataclass that inherits :class:`Validated` and defines ``validate()`` (raising ``ValueError``
that names the field and the fix) can never hold an invalid value: ``config.epochs = 0`` raises,
and the old value is kept.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any


class Validated:
    """Mixin for dataclasses: ``validate()`` runs after ``__init__`` and after every field assignment."""

    def validate(self) -> None:  # pragma: no cover - overridden
        """Raise ``ValueError`` naming the bad field and the fix."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ready", True)
        self.validate()

    def __setattr__(self, name: str, value: Any) -> None:
        if not getattr(self, "_ready", False):
            object.__setattr__(self, name, value)
            return
        old = getattr(self, name, _MISSING)
        object.__setattr__(self, name, value)
        try:
            self.validate()
        except Exception:
            if old is _MISSING:
                object.__delattr__(self, name)
            else:
                object.__setattr__(self, name, old)
            raise

    def field_names(self) -> list[str]:
        return [f.name for f in fields(self)]  # type: ignore[arg-type]


_MISSING = object()


def require_finite(name: str, value: float, *, positive: bool = False, minimum: float | None = None,
                   maximum: float | None = None) -> None:
    """``ValueError`` unless ``value`` is a finite number within the bounds (``positive``: > 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}={value!r} must be a number")
    if not math.isfinite(value):
        raise ValueError(f"{name}={value} must be a finite number")
    if positive and value <= 0:
        raise ValueError(f"{name}={value} must be > 0")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}={value} must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}={value} must be <= {maximum}")
