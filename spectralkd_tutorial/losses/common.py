"""Plumbing shared by the feature losses: pair checks, masking, autocast.

Hidden states are ``(B, L, H)`` for text (L tokens, H channels) and ``(B, N, C)`` for ViT patch
tokens (prefix tokens such as CLS already removed by the caller; ``grid=(h, w)`` with ``h * w = N``).
A feature loss compares (student layer, teacher layer) *pairs*: ``student_hidden[p]`` with
``teacher_hidden[p]``.

Input rules shared with the spectral core (:mod:`spectralkd_tutorial.common.inputs`): real tensors
only, no empty axis, a 0/1 mask with at least one real token; a NaN/Inf at a real token is refused
(:class:`~spectralkd_tutorial.common.inputs.NonFiniteInputError`), while padded positions are never
read, whatever they hold. A single all-padding sample is allowed: it contributes zeros.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterator, NamedTuple, Sequence

import torch
from torch import Tensor

from ..common.inputs import check_mask, check_real, raise_non_finite_input

if TYPE_CHECKING:  # pragma: no cover
    from .projection import LayerProjections

__all__ = [
    "PairLoss", "Pairs", "as_list", "autocast_off", "check_pairs", "check_projected_width", "masked",
    "mean_over_pairs", "real_tokens",
]

#: The loss of one (student, teacher) pair: ``pair_loss(X_s, X_t, m)`` -> a scalar (``m``: bool or ``None``).
PairLoss = Callable[[Tensor, Tensor, "Tensor | None"], Tensor]


def as_list(hidden: Sequence[Tensor] | Tensor, name: str) -> list[Tensor]:
    """One 3-D tensor is one pair; otherwise a sequence of 3-D tensors."""
    if isinstance(hidden, Tensor) and hidden.dim() == 3:
        return [hidden]
    if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__len__"):
        raise TypeError(f"{name} must be a sequence of (B, L, H) tensors, got {type(hidden).__name__}")
    return list(hidden)


def _check_one_pair(
    i: int, s: Tensor, t: Tensor, attention_mask: Tensor | None, grid: tuple[int, int] | None
) -> None:
    """Ranks, batch and token axes, mask shape and grid of pair ``i``."""
    for who, x in (("student", s), ("teacher", t)):
        if not isinstance(x, Tensor) or x.dim() != 3:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"pair {i}: {who} hidden state must be (B, L, H) tokens (ViT: (B, N, C) with prefix "
                f"tokens removed), got {shape}"
            )
        check_real(x, f"{who}_hidden[{i}]")
        _check_not_empty(x, f"{who}_hidden[{i}]")
    if s.shape[0] != t.shape[0]:
        raise ValueError(f"pair {i}: batch size mismatch, student {s.shape[0]} vs teacher {t.shape[0]}")
    if s.shape[1] != t.shape[1]:
        raise ValueError(
            f"pair {i}: token count mismatch, student {s.shape[1]} vs teacher {t.shape[1]}; "
            "token-level alignment needs the same tokenizer and the same padding "
            "(ViT: same patch grid, prefix tokens removed)"
        )
    if attention_mask is not None and tuple(attention_mask.shape) != tuple(s.shape[:2]):
        raise ValueError(
            f"pair {i}: attention_mask has shape {tuple(attention_mask.shape)} but the hidden "
            f"states are (B, L) = {tuple(s.shape[:2])}"
        )
    if grid is not None and (len(grid) != 2 or int(grid[0]) * int(grid[1]) != s.shape[1]):
        raise ValueError(
            f"pair {i}: grid {tuple(grid)} does not hold {s.shape[1]} patch tokens "
            "(need h * w == N; remove CLS/distillation tokens first)"
        )


def _check_not_empty(x: Tensor, name: str) -> None:
    for size, what, fix in (
        (x.shape[0], "samples (B = 0: an empty batch)", "skip empty batches"),
        (x.shape[1], "tokens (L = 0)", "every sample needs at least one token"),
        (x.shape[2], "channels (H = 0)", "pass the layer's hidden states, whose last axis is the width"),
    ):
        if size == 0:
            raise ValueError(f"{name} has shape {tuple(x.shape)} with no {what}; the loss is undefined: {fix}")


class Pairs(NamedTuple):
    """Checked feature-loss inputs: the pairs and the mask as ``bool`` (``None``: every token is real)."""

    students: list[Tensor]
    teachers: list[Tensor]
    mask: Tensor | None

    def named_real_tokens(self) -> Iterator[tuple[str, Tensor]]:
        """``("student_hidden[i]", its real tokens)``, then the teachers: what a NaN/Inf is looked for in."""
        for who, tensors in (("student", self.students), ("teacher", self.teachers)):
            for i, x in enumerate(tensors):
                yield f"{who}_hidden[{i}]", real_tokens(x, self.mask)

    def finite(self, loss: Tensor, *extra: tuple[str, Tensor]) -> Tensor:
        """``loss`` if finite; otherwise raise naming the input (or ``extra`` tensor) with a NaN/Inf at a
        real token. Returns a non-finite ``loss`` unchanged when no input explains it (e.g. overflow)."""
        if not bool(torch.isfinite(loss).all()):
            raise_non_finite_input(self.named_real_tokens())
            raise_non_finite_input((name, real_tokens(x, self.mask)) for name, x in extra)
        return loss


def real_tokens(x: Tensor, mask: Tensor | None) -> Tensor:
    """``x[b, n, :]`` for the real tokens (all of ``x`` without a mask)."""
    return x if mask is None else x[mask.to(x.device)]


def check_pairs(
    student_hidden: Sequence[Tensor] | Tensor,
    teacher_hidden: Sequence[Tensor] | Tensor,
    attention_mask: Tensor | None,
    grid: tuple[int, int] | None = None,
) -> Pairs:
    """Validate pair count, ranks, batch and token axes, the mask and the grid; name the bad pair.

    The mask must hold only 0/1 and at least one 1; it is returned as ``bool``.
    """
    students = as_list(student_hidden, "student_hidden")
    teachers = as_list(teacher_hidden, "teacher_hidden")
    if len(students) != len(teachers):
        raise ValueError(
            f"pair count mismatch: {len(students)} student hidden states but {len(teachers)} teacher "
            "hidden states; pass one teacher layer per student layer (see spectralkd_tutorial.analysis.selection)"
        )
    if not students:
        raise ValueError("no layer pairs given; use feature_loss='none' for logits-only distillation")
    if attention_mask is not None:
        check_real(attention_mask, "attention_mask")
    for i, (s, t) in enumerate(zip(students, teachers)):
        _check_one_pair(i, s, t, attention_mask, grid)
    mask = None if attention_mask is None else check_mask(attention_mask, "attention_mask", require_real_token=True)
    return Pairs(students, teachers, mask)


def check_projected_width(projected: Sequence[Tensor], teachers: Sequence[Tensor]) -> None:
    """After a learned projection the student must have the teacher's width."""
    for i, (s, t) in enumerate(zip(projected, teachers)):
        if s.shape[-1] != t.shape[-1]:
            raise ValueError(
                f"pair {i}: projected student width {s.shape[-1]} != teacher width {t.shape[-1]}; "
                "build LayerProjections(num_pairs, student_width, teacher_width) with the teacher's width"
            )


def masked(x: Tensor, mask: Tensor | None) -> Tensor:
    """``m[b, n] * x[b, n, h]``: zero the padded tokens (``mask`` is bool from :func:`check_pairs`).

    A select, not a product, so that whatever a padded position holds (even NaN/Inf) gives 0 and no
    gradient, as in the spectral core, which never reads padding.
    """
    if mask is None:
        return x
    return torch.where(mask.to(x.device).unsqueeze(-1), x, x.new_zeros(()))


def autocast_off(device: torch.device) -> ContextManager[Any]:
    """Disable autocast so the FFT runs in the dtype we chose (float32)."""
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except (RuntimeError, ValueError):  # a device type without autocast support
        return contextlib.nullcontext()


def mean_over_pairs(pair_loss: PairLoss, pairs: Pairs, projections: LayerProjections | None = None) -> Tensor:
    """The pair loop every feature loss shares, checked for NaN/Inf:

        L = (1/P) sum_p  pair_loss(g_p(X_s^p), X_t^p, m)

    ``g_p = W_p`` (the student up to the teacher width) with ``projections``, else ``g_p = id``. The
    projections run as the caller's autocast has them; each pair loss runs with autocast off.
    """
    students = pairs.students
    if projections is not None:
        students = projections(students)
        check_projected_width(students, pairs.teachers)
    with autocast_off(students[0].device):
        loss = torch.stack([pair_loss(s, t, pairs.mask) for s, t in zip(students, pairs.teachers)]).mean()
    projected = students if projections is not None else []
    return pairs.finite(loss, *((f"LayerProjections output {i}", x) for i, x in enumerate(projected)))
