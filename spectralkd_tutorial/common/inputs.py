"""Input checks shared by the spectral core (:mod:`spectralkd_tutorial.analysis.spectrum`) and the losses.

One place decides what a valid mask is and how a NaN/Inf is reported, so that the spectrum and
the loss never disagree about the same input:

* a mask holds only 0 (padding) and 1 (real token): ``bool``, an integer dtype with values in
  ``{0, 1}`` or a float dtype with values in ``{0.0, 1.0}``. A soft mask such as 0.5 is refused,
  not silently read as "real" by one function and as "half weight" by another.
* complex tensors are refused: both the spectrum and the losses take the FFT themselves, and
  ``x.float()`` would silently drop the imaginary part.
* a NaN/Inf input is refused with :class:`NonFiniteInputError`, which is both a ``ValueError``
  (bad input, as the spectral core always reported it) and a ``FloatingPointError`` (what the
  training loop reports for a non-finite loss).
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor

__all__ = ["NonFiniteInputError", "check_mask", "check_real", "find_non_finite", "raise_non_finite_input"]


class NonFiniteInputError(ValueError, FloatingPointError):
    """A NaN or Inf in an input tensor (a ``ValueError`` and a ``FloatingPointError``)."""


def check_real(x: Tensor, name: str) -> None:
    """``TypeError`` unless ``x`` is a real-valued tensor (not complex)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.is_complex():
        raise TypeError(
            f"{name} is complex ({x.dtype}); pass the real activations / logits: the FFT is taken "
            "here, and converting to float would silently drop the imaginary part"
        )


def check_mask(mask: Tensor, name: str = "attention_mask", *, require_real_token: bool = False) -> Tensor:
    """Check that ``mask`` holds only 0 and 1 and return it as a ``bool`` tensor (True = real token).

    Accepted: ``bool``; integer dtypes with values in {0, 1}; float dtypes with values in {0.0, 1.0}.
    ``require_real_token``: also refuse a mask without any 1 (nothing to average over).
    """
    check_real(mask, name)
    keep = mask if mask.dtype == torch.bool else mask != 0
    if mask.numel() == 0:
        if require_real_token:
            raise ValueError(f"{name} is empty (shape {tuple(mask.shape)}): there is no token to use")
        return keep
    valid = torch.ones((), dtype=torch.bool, device=mask.device) if mask.dtype == torch.bool \
        else ((mask == 0) | (mask == 1)).all()
    ok_value, any_value = torch.stack([valid, keep.any()]).tolist()  # one device->host transfer
    if not ok_value:
        bad = torch.unique(mask[(mask != 0) & (mask != 1)])[:5].tolist()
        raise ValueError(
            f"{name} must hold only 0 (padding) and 1 (real token), as bool, integer or float; it holds "
            f"{bad}. Pass the tokenizer's attention_mask; a soft or weighted mask is not supported "
            f"(threshold it, e.g. ({name} > 0.5).long())"
        )
    if require_real_token and not any_value:
        raise ValueError(
            f"{name} is all zeros: there is no real token to compare (every position is padding). "
            "Drop empty inputs from the batch, or check how the mask was built (1 = real token)"
        )
    return keep


def find_non_finite(named: Iterable[tuple[str, Tensor]]) -> tuple[str, int, int] | None:
    """The first ``(name, count of NaN/Inf values, numel)`` among ``named`` tensors, or ``None``."""
    for name, x in named:
        finite = torch.isfinite(x)
        if not bool(finite.all()):
            return name, int((~finite).sum()), x.numel()
    return None


def raise_non_finite_input(named: Iterable[tuple[str, Tensor]]) -> None:
    """Raise :class:`NonFiniteInputError` naming the first tensor with a NaN/Inf; else do nothing.

    Called by the losses only once their result is not finite, so that a healthy step costs nothing.
    """
    found = find_non_finite(named)
    if found is None:
        return
    name, count, total = found
    raise NonFiniteInputError(
        f"non-finite loss: {name} contains {count} NaN/Inf value(s) (of {total}), so the loss is undefined. "
        "If this happened during training, it diverged: lower the learning rate; otherwise check the "
        "inputs and the model's dtype (try float32)"
    )
