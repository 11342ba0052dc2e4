"""The feature-loss registry: a name -> function dict filled by a decorator.

:func:`~spectralkd_tutorial.losses.combined.distillation_loss` looks ``config.feature_loss`` up
in :data:`FEATURE_LOSS_REGISTRY`; nothing else in the package lists loss names. Adding a feature
loss is one function plus one line::

    @register_feature_loss("cosine")
    def cosine_feature_loss(student_hidden, teacher_hidden, attention_mask, *, projections=None, grid=None):
        ...  # return a scalar tensor

Every feature loss is called with the same arguments, those of :meth:`FeatureLoss.__call__`:

* ``student_hidden``, ``teacher_hidden``: one ``(B, L, H)`` tensor per (student layer, teacher layer)
  pair (``None`` is passed through only to losses registered with ``needs_hidden=False``);
* ``attention_mask``: ``(B, L)`` 0/1 or ``None``;
* ``projections``: the :class:`~spectralkd_tutorial.losses.projection.LayerProjections` module, never
  ``None`` for losses registered with ``needs_projections=True``;
* ``grid``: ``(h, w)`` for ViT patch tokens, ``None`` for text.

A function that does not use a keyword option registers with ``takes`` naming the ones it does, and
is then called without the others (most built-in losses are registered this way)::

    register_feature_loss("spectral", takes=("grid",))(spectral_alignment_loss)

:data:`FEATURE_LOSSES` is a live, read-only view of the registered names (in registration order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence, TypeVar

from torch import Tensor

from ..common.registered import RegisteredNames

if TYPE_CHECKING:  # pragma: no cover
    from .projection import LayerProjections

__all__ = [
    "FEATURE_LOSS_REGISTRY",
    "FEATURE_LOSSES",
    "FeatureLoss",
    "FeatureLossFn",
    "get_feature_loss",
    "register_feature_loss",
]


#: A registered feature-loss function: ``fn(student_hidden, teacher_hidden, attention_mask, **options)``
#: with the keyword options (``projections``, ``grid``) it takes; see :class:`FeatureLoss`.
FeatureLossFn = Callable[..., Tensor]

#: The keyword options :meth:`FeatureLoss.__call__` passes on (to a function that ``takes`` them).
OPTIONS = ("projections", "grid")


@dataclass(frozen=True)
class FeatureLoss:
    """A registered feature loss: the function and what it needs from :func:`distillation_loss`."""

    name: str
    fn: FeatureLossFn
    needs_projections: bool = False
    needs_hidden: bool = True
    takes: tuple[str, ...] = OPTIONS
    token_level: bool = True  # compares token n with token n: both models must tokenize alike

    def __call__(
        self,
        student_hidden: Sequence[Tensor] | None,
        teacher_hidden: Sequence[Tensor] | None,
        attention_mask: Tensor | None,
        *,
        projections: LayerProjections | None = None,
        grid: tuple[int, int] | None = None,
    ) -> Tensor:
        """Check that the inputs this loss needs are there, then compute it (with the options it takes)."""
        if self.needs_hidden and (student_hidden is None or teacher_hidden is None):
            raise ValueError(
                f"feature_loss={self.name!r} needs student_hidden and teacher_hidden; use 'none' for logits only"
            )
        if self.needs_projections and projections is None:
            raise ValueError(
                f"feature_loss={self.name!r} needs projections=LayerProjections(num_pairs, student_width, "
                "teacher_width), with its parameters in the optimizer"
            )
        options = {"projections": projections, "grid": grid}
        return self.fn(student_hidden, teacher_hidden, attention_mask, **{k: options[k] for k in self.takes})


#: name -> :class:`FeatureLoss`; filled by :func:`register_feature_loss`.
FEATURE_LOSS_REGISTRY: dict[str, FeatureLoss] = {}

F = TypeVar("F", bound=Callable[..., Tensor])


def register_feature_loss(
    name: str,
    *,
    needs_projections: bool = False,
    needs_hidden: bool = True,
    takes: Sequence[str] = OPTIONS,
    token_level: bool = True,
    replace: bool = False,
) -> Callable[[F], F]:
    """Decorator: register ``fn`` (called as :meth:`FeatureLoss.__call__` is) under ``name``.

    ``needs_projections``: :func:`distillation_loss` refuses to run it without a
    :class:`LayerProjections` module (and :attr:`DistillationLossConfig.needs_projections` is true).
    ``needs_hidden``: whether it needs the hidden states (``False`` only for logits-only ``"none"``).
    ``takes``: the keyword options of :data:`OPTIONS` that ``fn`` accepts; the others are not passed.
    ``token_level``: whether it compares token ``n`` of the student with token ``n`` of the teacher
    (then a student that tokenizes differently is refused); ``False`` for sentence-level losses.
    ``replace``: allow re-registering an existing name (e.g. when reloading a notebook cell).
    The function is returned unchanged.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a feature loss name must be a non-empty string, got {name!r}")
    unknown = [option for option in takes if option not in OPTIONS]
    if isinstance(takes, str) or unknown:
        raise ValueError(f"takes={takes!r} must name options among {OPTIONS}")

    def decorator(fn: F) -> F:
        if name in FEATURE_LOSS_REGISTRY and not replace:
            raise ValueError(
                f"feature loss {name!r} is already registered ({FEATURE_LOSS_REGISTRY[name].fn.__qualname__}); "
                "pick another name or pass replace=True"
            )
        FEATURE_LOSS_REGISTRY[name] = FeatureLoss(name, fn, needs_projections, needs_hidden, tuple(takes),
                                                 token_level and needs_hidden)
        return fn

    return decorator


def get_feature_loss(name: str) -> FeatureLoss:
    """The registered feature loss ``name``; ``ValueError`` listing the registered names otherwise."""
    try:
        return FEATURE_LOSS_REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown feature_loss {name!r}; registered feature losses: {tuple(FEATURE_LOSS_REGISTRY)} "
            "(add one with @register_feature_loss(name))"
        ) from None


#: The registered feature-loss names (live view of :data:`FEATURE_LOSS_REGISTRY`'s keys).
FEATURE_LOSSES: Sequence[str] = RegisteredNames(FEATURE_LOSS_REGISTRY)
