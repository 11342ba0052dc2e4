"""Parseval: the SpectralKD spectral loss is a re-weighted *spatial* MSE (computed here without an FFT).

For one sample and channel let ``D_n = m_n (pool(X_t) - X_s)_n`` (``n = 0 .. L-1``, real) and
``F_k = L^{-1/2} sum_n D_n e^{-2 pi i k n / L}``. Over the ``K = L//2 + 1`` columns ``rfft`` keeps,

    L_pair = 1/(4BKH) * sum_{b,h} [ sum_n D_n^2 + (sum_n D_n)^2 / L + [L even] (sum_n (-1)^n D_n)^2 / L ]

about half a plain MSE, with double weight on the DC and Nyquist columns.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .common import autocast_off, check_pairs, masked
from .spectral_alignment import pool_teacher_channels

__all__ = ["spectral_as_weighted_spatial_mse"]


def _pair_weighted_spatial(student: Tensor, teacher: Tensor, mask: Tensor | None) -> Tensor:
    """The text-case ``L_pair`` from ``D`` alone: energy + DC and Nyquist sums, no FFT."""
    s = masked(student.float(), mask)
    t = masked(pool_teacher_channels(teacher.detach().float(), s.shape[-1]), mask)
    d = t - s  # (B, L, H), zero at padded tokens
    b, length, h = d.shape
    kept = length // 2 + 1  # K: columns the rfft keeps
    energy = d.pow(2).sum()  # sum_n D_n^2                 (= sum_k w_k |F_k|^2 by Parseval)
    dc = d.sum(dim=1).pow(2).sum() / length  # |F_0|^2   = (sum_n D_n)^2 / L
    nyquist = d.new_zeros(())
    if length % 2 == 0:  # |F_{L/2}|^2 = (sum_n (-1)^n D_n)^2 / L
        sign = 1.0 - 2.0 * (torch.arange(length, device=d.device) % 2).to(d.dtype)
        nyquist = (d * sign[None, :, None]).sum(dim=1).pow(2).sum() / length
    return (energy + dc + nyquist) / (4 * b * kept * h)


def spectral_as_weighted_spatial_mse(
    student_hidden: Sequence[Tensor],
    teacher_hidden: Sequence[Tensor],
    attention_mask: Tensor | None = None,
) -> Tensor:
    """The text spectral loss rewritten in token space by Parseval (no FFT); equals
    :func:`spectral_alignment_loss` (``grid=None``).

    For one sample and channel let ``D_n = m_n (pool(X_t) - X_s)_n``, ``n = 0 .. L-1`` (real), and
    ``F_k = L^{-1/2} sum_n D_n e^{-2 pi i k n / L}``. Parseval gives ``sum_{k<L} |F_k|^2 = sum_n D_n^2``
    and a real ``D`` has ``F_{L-k} = conj(F_k)``, so over the ``K = L//2 + 1`` columns rfft keeps

        sum_{k<K} w_k |F_k|^2 = sum_n D_n^2,   w_0 = 1, w_{L/2} = 1 (L even), w_k = 2 otherwise
        sum_{k<K}     |F_k|^2 = 1/2 * ( sum_n D_n^2 + |F_0|^2 + [L even] |F_{L/2}|^2 )
        |F_0|^2 = (sum_n D_n)^2 / L,     |F_{L/2}|^2 = (sum_n (-1)^n D_n)^2 / L

    The MSE over stacked real and imaginary parts divides by ``2 * B * K * H``, hence

        L_pair = 1/(4BKH) * sum_{b,h} [ sum_n D_n^2 + (sum_n D_n)^2 / L + [L even] (sum_n (-1)^n D_n)^2 / L ]
               = (L / 4K) * MSE_plain + (DC and Nyquist terms >= 0),   MSE_plain = sum D^2 / (B L H)

    The honest reading: the spectral loss is a spatial MSE in disguise. ``L/(4K)`` is
    ``L/(2L+4)`` (L even) or ``L/(2L+2)`` (L odd), about one half; the spectral MSE weights every
    kept column equally although Parseval weights DC and Nyquist by 1 and the rest by 2, so the DC
    (token-mean error) and Nyquist (alternating-sign error) columns get double weight. Since the
    kept columns hold at most all the energy, ``L/(4K) <= L_pair / MSE_plain <= L/(2K)``. Padding
    counts in ``L`` and ``B*L`` (zeros), so against a mask-aware MSE over ``N_real`` real tokens the
    ratio is ``N_real/(4BK) .. N_real/(2BK)``.
    """
    pairs = check_pairs(student_hidden, teacher_hidden, attention_mask, None)
    with autocast_off(pairs.students[0].device):
        losses = [_pair_weighted_spatial(s, t, pairs.mask) for s, t in zip(pairs.students, pairs.teachers)]
        return pairs.finite(torch.stack(losses).mean())
