"""SpectralKD spectral alignment: compare student and teacher features in the token-frequency domain.

The feature loss of the official ``losses.py`` (thy960112/SpectralKD), for one (student layer,
teacher layer) pair:

    X_t' = AvgPool_channels(X_t, H_s)                       parameter-free, only when H_t > H_s
    D    = m * (X_t' - X_s)                                 padded tokens (m = 0) zeroed in both
    F    = rfft(D, along tokens, norm="ortho")              text;  rfft2 over the (h, w) grid for ViT
    L_pair = mean over the stacked [Re F, Im F] of (.)^2    i.e. MSE between the two spectra, in float32

and ``L_spec`` is the mean of ``L_pair`` over pairs. (The FFT is linear, so the MSE of the two
spectra is the energy of the spectrum of ``D``; see :mod:`.parseval` for what that means.)
"""

from __future__ import annotations

import functools
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .common import PairLoss, check_pairs, masked, mean_over_pairs
from .registry import register_feature_loss

__all__ = ["pool_teacher_channels", "spectral_alignment_loss", "spectral_pair_loss", "token_spectrum"]


def pool_teacher_channels(teacher_hidden: Tensor, student_width: int) -> Tensor:
    """Average-pool the last (channel) axis from ``H_t`` down to ``H_s`` (no parameters).

        X_t'[..., j] = mean_{h in [floor(j*H_t/H_s), ceil((j+1)*H_t/H_s))} X_t[..., h]

    (``F.adaptive_avg_pool1d`` semantics, as in the official code; when ``H_s`` divides ``H_t``
    this is the mean of consecutive groups of ``H_t / H_s`` channels.)
    """
    teacher_width = teacher_hidden.shape[-1]
    if student_width == teacher_width:
        return teacher_hidden
    if student_width <= 0:
        raise ValueError(f"student_width must be positive, got {student_width}")
    if student_width > teacher_width:
        raise ValueError(
            f"the student is wider ({student_width} channels) than the teacher ({teacher_width}); "
            "average pooling can only shrink the teacher. Use a learned projection instead: "
            "feature_loss='projection' (or 'spectral-projection') with LayerProjections("
            f"num_pairs, student_width={student_width}, teacher_width={teacher_width})"
        )
    lead = teacher_hidden.shape[:-1]
    flat = teacher_hidden.reshape(-1, 1, teacher_width)  # (rows, 1, H_t): pool1d acts on the last axis
    return F.adaptive_avg_pool1d(flat, student_width).reshape(*lead, student_width)


def token_spectrum(x: Tensor, grid: tuple[int, int] | None) -> Tensor:
    """Ortho-normalised real FFT over the token axis (text) or the patch grid (ViT).

    text:  F[b, k, h]    = L^{-1/2} sum_n x[b, n, h] e^{-2 pi i k n / L},     k = 0 .. L//2
    ViT:   F[b, c, u, v] = (hw)^{-1/2} sum_{p,q} x[b, p*w+q, c] e^{-2 pi i (up/h + vq/w)},  v = 0 .. w//2
    """
    if grid is None:
        return torch.fft.rfft(x, dim=1, norm="ortho")  # (B, L//2+1, H)
    h, w = int(grid[0]), int(grid[1])
    b, n, c = x.shape
    image = x.transpose(1, 2).reshape(b, c, h, w)  # row-major patch order -> (B, C, h, w)
    return torch.fft.rfft2(image, norm="ortho")  # (B, C, h, w//2+1)


def _pair_spectral_loss(
    student: Tensor, teacher: Tensor, mask: Tensor | None, grid: tuple[int, int] | None
) -> Tensor:
    """``mean([Re, Im](rfft(m * X_s)) - [Re, Im](rfft(m * pool(X_t))))^2`` for one pair, float32."""
    s = masked(student.float(), mask)
    t = masked(pool_teacher_channels(teacher.detach().float(), s.shape[-1]), mask)
    spec_s = torch.view_as_real(token_spectrum(s, grid))  # == stack([F.real, F.imag], -1)
    spec_t = torch.view_as_real(token_spectrum(t, grid))
    return F.mse_loss(spec_s, spec_t)


def spectral_pair_loss(grid: tuple[int, int] | None) -> PairLoss:
    """The spectral loss of one pair over the token axis (``grid=None``) or the ``(h, w)`` patch grid."""
    return functools.partial(_pair_spectral_loss, grid=grid)


@register_feature_loss("spectral", takes=("grid",))  # the parameter-free pooled teacher: no projections
def spectral_alignment_loss(
    student_hidden: Sequence[Tensor],
    teacher_hidden: Sequence[Tensor],
    attention_mask: Tensor | None = None,
    *,
    grid: tuple[int, int] | None = None,
) -> Tensor:
    """SpectralKD alignment loss averaged over (student, teacher) layer pairs.

        L_spec = (1/P) * sum_p  mean( [Re, Im] rfft(m * X_s^p) - [Re, Im] rfft(m * pool(X_t^p)) )^2

    ``rfft`` is along the token axis for text (``grid=None``, hidden ``(B, L, H)``) and the 2-D
    ``rfft2`` over the ``(h, w)`` patch grid for ViT (hidden ``(B, h*w, C)``); ``norm="ortho"``.
    The teacher is detached and channel-pooled to the student width; padded tokens (mask 0) are
    zeroed in both; everything is computed in float32 with autocast off, whatever the input dtype.
    """
    pairs = check_pairs(student_hidden, teacher_hidden, attention_mask, grid)
    return mean_over_pairs(spectral_pair_loss(grid), pairs)
