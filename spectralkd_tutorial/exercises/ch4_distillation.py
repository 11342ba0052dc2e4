"""Chapter 4 exercises: the Parseval weight of the spectral loss, a pure-DC error, and KD's T^2.

Per (student, teacher) pair, with D the error along L tokens and K = L//2 + 1 kept rfft columns:

    L_pair = (L / 4K) * MSE_plain + (DC and Nyquist terms)          (chapter 4, section 1.3)
    L_KD   = T^2 * KL(softmax(z_t / T) || softmax(z_s / T))          (section 1.1)

The right answers are *measured*: the ratio of :func:`spectralkd_tutorial.losses.spectral_alignment_loss`
to :func:`spectralkd_tutorial.losses.hidden_mse_loss` on an error of the asked kind, and the ratio of
:func:`spectralkd_tutorial.losses.logit_kd_loss` to a plain KL divergence.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..losses import hidden_mse_loss, logit_kd_loss, spectral_alignment_loss
from ._feedback import Feedback, WrongAnswer, as_number, checker, close, correct

__all__ = ["check_parseval_weight", "check_dc_error_weight", "check_kd_factor"]

_DIGITS = "close, but give at least three significant digits (a fraction such as '3/7' is fine too)"


def _ratio(error: torch.Tensor) -> float:
    """spectral loss / plain hidden MSE for a (1, L, H) error against a zero teacher."""
    zeros = torch.zeros_like(error)
    return float(spectral_alignment_loss([error], [zeros]) / hidden_mse_loss([error], [zeros]))


def _middle_frequency_error(seq_len: int) -> torch.Tensor:
    """cos(2*pi*n/L) on every channel: no DC (mean 0) and no Nyquist (alternating) component."""
    n = torch.arange(seq_len, dtype=torch.float32)
    return torch.cos(2 * torch.pi * n / seq_len)[None, :, None].expand(1, seq_len, 4).contiguous()


@checker
def check_parseval_weight(answer: Any, *, seq_len: int = 20) -> Feedback:
    """``L_spec / MSE_plain`` for an error with no DC and no Nyquist part, over ``seq_len`` tokens."""
    if seq_len < 3:
        raise ValueError(f"seq_len={seq_len} must be >= 3 (an error without DC and Nyquist parts needs it)")
    target = _ratio(_middle_frequency_error(seq_len))
    guess = as_number(answer, "the weight, a number")
    large_l_limit = ("that is the large-L limit (K = L/2): rfft keeps K = L//2 + 1 columns: the zero-frequency "
                     "column too (and, for even L, the Nyquist column)")
    return _judge_ratio(
        guess, target,
        praise=f"L / 4K with K = L//2 + 1 = {seq_len // 2 + 1} kept columns: {target:.4f}. The MSE of the stacked "
               "spectrum is about half the hidden-state MSE.",
        mistakes=[
            (0.5, large_l_limit),
            (seq_len / (4 * (seq_len // 2)), large_l_limit),  # K = L//2 (odd L)
            (2 * target, "too large: that is the weight of an error that is all DC (or all Nyquist); this error "
                         "has neither, so the kept columns hold only half of its energy"),
            (1.0, "Parseval keeps the energy, but rfft keeps only one of each mirrored pair of columns, and the "
                  "MSE averages over 2K numbers (real and imaginary parts)"),
        ],
        otherwise="not the weight: for an error without DC and Nyquist parts, divide L_pair (section 1.3) by "
                  "MSE_plain = sum D^2 / (B L H)",
    )


@checker
def check_dc_error_weight(answer: Any, *, seq_len: int = 15) -> Feedback:
    """``L_spec / MSE_plain`` when the error is the same on every token (pure DC), over ``seq_len`` tokens."""
    target = _ratio(torch.ones(1, seq_len, 4))
    guess = as_number(answer, "the ratio, a number")
    return _judge_ratio(
        guess, target,
        praise=f"L / 2K = {target:.4f} with K = {seq_len // 2 + 1}: a constant error lives in the single DC "
               "column, which has no mirrored partner, so it is counted twice compared with a random error.",
        mistakes=[
            (target / 2, "that is the weight of an error with no DC part; a constant error is pure DC, and the DC "
                         "column has no mirrored partner that rfft drops"),
            (1.0, "the kept columns hold all of a constant error's energy, but the MSE averages over 2K numbers "
                  "with K = L//2 + 1 (rounded down, then plus one), not L/2"),
            (0.5, "that is roughly the weight of a random error; a constant error is pure DC, which the spectral "
                  "loss weighs more"),
        ],
        otherwise="not the ratio: a constant error D has |F_0|^2 = (sum_n D_n)^2 / L and every other column 0; "
                  "divide by 2K for the spectral MSE and compare with sum D^2 / L",
    )


def _judge_ratio(
    guess: float, target: float, praise: str, mistakes: list[tuple[float, str]], otherwise: str
) -> Feedback:
    """How both measured ratios above are graded: correct within 0.2 %; else the hint of the first known
    mistake ``guess`` is close to, a request for more digits within 2 %, or ``otherwise``."""
    if close(guess, target, rel=2e-3):
        return correct(praise)
    for wrong_value, hint in mistakes:  # known mistakes, the first match wins
        if close(guess, wrong_value):
            raise WrongAnswer(hint)
    if close(guess, target, rel=0.02):
        raise WrongAnswer(_DIGITS)
    raise WrongAnswer(otherwise)


@checker
def check_kd_factor(answer: Any, *, temperature: float = 4.0) -> Feedback:
    """The factor ``logit_kd_loss`` multiplies ``KL(p_t^T || p_s^T)`` by at temperature ``T``."""
    generator = torch.Generator().manual_seed(0)
    z_s, z_t = torch.randn(4, 7, generator=generator), torch.randn(4, 7, generator=generator)
    log_p_s, log_p_t = F.log_softmax(z_s / temperature, -1), F.log_softmax(z_t / temperature, -1)
    plain_kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
    target = float(logit_kd_loss(z_s, z_t, temperature) / plain_kl)
    guess = as_number(answer, "the factor, a number")
    if close(guess, target, rel=1e-3):
        return correct(f"T^2 = {target:g}: the soft-target gradient shrinks like 1/T^2, and the factor undoes it, "
                       "so changing T does not silently change the loss weight.")
    if close(guess, temperature):
        raise WrongAnswer("that is T itself: the gradient of the softened KL shrinks faster than 1/T "
                          "(section 1.1 counts two factors)")
    if guess < 1 and guess > 0:
        raise WrongAnswer("inverted: the factor makes up for gradients that shrink as T grows, so it must grow "
                          "with T")
    if close(guess, 1.0):
        raise WrongAnswer("without a factor the soft-target gradient fades as T grows; see section 1.1")
    raise WrongAnswer("not the factor: how does the gradient of KL(p_t^T || p_s^T) with respect to the student's "
                      "logits scale with T? (section 1.1)")
