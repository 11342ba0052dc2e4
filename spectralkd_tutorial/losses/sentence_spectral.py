"""Sentence-level spectral alignment: no token correspondence needed, so it works across tokenizers.

A student that tokenizes differently from its teacher has no token ``n`` that matches the teacher's
token ``n``, so the token-axis losses cannot apply. What both models still share is the sentence.
For one (student layer, teacher layer) pair, with ``m_s`` / ``m_t`` each model's own mask of real
tokens:

    x_s = sum_n m_s[n] X_s[n, :] / sum_n m_s[n]                mean over the student's real tokens (H_s)
    x_t = AvgPool_channels( sum_n m_t[n] X_t[n, :] / sum_n m_t[n], H_s )    the teacher's, pooled to H_s
    L_pair = mean over [Re, Im] of ( rfft_c(x_s) - rfft_c(x_t) )^2          rfft over channels, norm="ortho"

and ``L`` is the mean of ``L_pair`` over pairs. The spectrum runs over the *channel* axis (the axis
SpectralKD's intensity is measured on), not over tokens. The training loop pools each model with its
own mask when the tokenizers differ (:func:`sentence_features`) and passes ``(B, 1, H)`` features;
given ``(B, L, H)`` states of one tokenization and their shared mask, the loss pools them itself.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..common.inputs import check_mask
from .common import check_pairs, masked, mean_over_pairs
from .registry import register_feature_loss
from .spectral_alignment import pool_teacher_channels

__all__ = ["pooled_spectral_loss", "sentence_features"]


def sentence_features(hidden: Tensor, attention_mask: Tensor | None) -> Tensor:
    """``(B, 1, H)``: each sentence's mean over its real tokens, ``sum_n m[n] X[n, :] / sum_n m[n]``.

    The mask holds only 0 and 1 (a soft 0.5 is refused, not read as 1) and at least one real token
    (an all-zero mask is refused); a sentence without a real token gives zeros (the loss then compares
    zeros with zeros)."""
    if attention_mask is None:
        return hidden.mean(dim=1, keepdim=True)
    mask = check_mask(attention_mask, "attention_mask", require_real_token=True).to(hidden.device)
    total = masked(hidden, mask).sum(dim=1, keepdim=True)
    count = mask.sum(dim=1).clamp(min=1).to(hidden.dtype).view(-1, 1, 1)
    return total / count


def _pair_loss(student: Tensor, teacher: Tensor, mask: Tensor | None) -> Tensor:
    x_s = sentence_features(student.float(), mask)
    x_t = pool_teacher_channels(sentence_features(teacher.detach().float(), mask), x_s.shape[-1])
    spec_s = torch.view_as_real(torch.fft.rfft(x_s, dim=-1, norm="ortho"))
    spec_t = torch.view_as_real(torch.fft.rfft(x_t, dim=-1, norm="ortho"))
    return F.mse_loss(spec_s, spec_t)


@register_feature_loss("pooled-spectral", takes=(), token_level=False)
def pooled_spectral_loss(
    student_hidden: Sequence[Tensor], teacher_hidden: Sequence[Tensor], attention_mask: Tensor | None = None
) -> Tensor:
    """Per-sentence, mean-pooled over real tokens, spectral over channels; averaged over pairs.

        L = (1/P) sum_p mean [Re, Im]( rfft_c(mean_m X_s^p) - rfft_c(pool(mean_m X_t^p)) )^2

    Inputs are ``(B, L, H)`` of one tokenization with their mask, or ``(B, 1, H)`` sentence features
    (``attention_mask=None``) that each model pooled with its own mask. Float32, autocast off.
    """
    pairs = check_pairs(student_hidden, teacher_hidden, attention_mask)
    return mean_over_pairs(_pair_loss, pairs)
