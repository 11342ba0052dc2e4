"""Distillation losses: logit KD, SpectralKD spectral alignment, hidden MSE and learned projections.

The student is trained on

    L = (1 - alpha) * CE(z_s, y)  +  alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))  +  beta * L_feat

where ``L_feat`` compares chosen (student layer, teacher layer) pairs of hidden states. Hidden
states are ``(B, L, H)`` for text (L tokens, H channels) and ``(B, N, C)`` for ViT patch tokens
(prefix tokens such as CLS already removed by the caller; ``grid=(h, w)`` with ``h * w = N``).

One module per idea, each with its equation beside the code:

==========================  =====================================================================
``logit_kd``                ``T^2 * KL(p_t || p_s)``                       :func:`logit_kd_loss`
``spectral_alignment``      channel pooling + token-axis rFFT / 2-D grid rFFT MSE (SpectralKD)
``parseval``                the same loss as a re-weighted spatial MSE, no FFT
``hidden_mse``              masked hidden-state MSE (PKD / TinyBERT)
``projection``              :class:`LayerProjections` and the projected spectral loss
``sentence_spectral``       per-sentence mean over real tokens, rFFT over channels (any tokenizers)
``tokenizers``              token-axis losses need identical tokenisation
``registry``                feature losses by name: :data:`FEATURE_LOSS_REGISTRY`, :func:`register_feature_loss`
``config``                  :class:`DistillationLossConfig` (validated on every assignment)
``combined``                :func:`distillation_loss`, the total objective
==========================  =====================================================================

Adding a feature loss is one function plus one line (see :mod:`.registry`)::

    @register_feature_loss("cosine")
    def cosine_feature_loss(student_hidden, teacher_hidden, attention_mask, *, projections=None, grid=None):
        ...

after which ``DistillationLossConfig(feature_loss="cosine")`` works everywhere.

Layer numbering used everywhere in this package: layer 0 is the embedding output, layer l (1..L)
is the output of transformer block l, i.e. Hugging Face ``hidden_states[l]``.
"""

from __future__ import annotations

# import order = registration order of the built-in feature losses (FEATURE_LOSSES)
from .registry import (FEATURE_LOSS_REGISTRY, FEATURE_LOSSES, FeatureLoss, FeatureLossFn, get_feature_loss,
    register_feature_loss)
from .logit_kd import logit_kd_loss
from .spectral_alignment import pool_teacher_channels, spectral_alignment_loss
from .parseval import spectral_as_weighted_spatial_mse
from .hidden_mse import hidden_mse_loss
from .projection import LayerProjections, projected_spectral_alignment_loss
from .sentence_spectral import pooled_spectral_loss, sentence_features
from .tokenizers import check_feature_loss_tokenization, check_tokenizers_compatible, same_tokenization
from .config import DistillationLossConfig
from .combined import distillation_loss

__all__ = [
    "FEATURE_LOSSES",
    "FEATURE_LOSS_REGISTRY",
    "FeatureLoss",
    "FeatureLossFn",
    "register_feature_loss",
    "get_feature_loss",
    "logit_kd_loss",
    "pool_teacher_channels",
    "spectral_alignment_loss",
    "hidden_mse_loss",
    "LayerProjections",
    "projected_spectral_alignment_loss",
    "pooled_spectral_loss",
    "sentence_features",
    "spectral_as_weighted_spatial_mse",
    "check_tokenizers_compatible",
    "check_feature_loss_tokenization",
    "same_tokenization",
    "DistillationLossConfig",
    "distillation_loss",
]
