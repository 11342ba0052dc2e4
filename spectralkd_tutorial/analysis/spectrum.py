"""One layer's channel spectrum, spectral signature and intensity (SpectralKD, section 3 of the paper).

For one layer's output ``X`` of shape ``(N, T, H)`` (N samples, T tokens, H hidden channels), the
DFT along the hidden axis, divided by the width, is

    F[n, t, k] = (1/H) * sum_h X[n, t, h] * exp(-2*pi*i*k*h/H)          k = 0 .. H-1
    A[n, t, k] = |F[n, t, k]| = sqrt(Re^2 + Im^2)                       (magnitude first)
    S[k]       = sum_{n,t} m[n,t] * A[n,t,k] / sum_{n,t} m[n,t]          (masked mean: padding excluded)
    I          = (1/K) * sum_{k<K} S[k]                                  (K = H by default)

``S`` is the layer's *spectral signature*, ``I`` its *spectral intensity*. A feature map
``(N, C, Hgrid, Wgrid)`` is the same data as ``(N, Hgrid*Wgrid, C)``: every grid position is a token.

Layer numbering used everywhere in this package: layer 0 is the embedding output, layer l (1..L)
is the output of transformer block l, i.e. Hugging Face ``hidden_states[l]``.

The streamed profile of every layer of a model is :mod:`.spectral`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..common.inputs import NonFiniteInputError, check_mask, check_real

LAYER_CONVENTION = (
    "layer 0 = embedding output; layer l (1..L) = output of transformer block l "
    "(Hugging Face hidden_states[l])"
)

__all__ = [
    "LAYER_CONVENTION",
    "as_tokens",
    "token_mask",
    "check_bins",
    "check_finite",
    "channel_spectrum",
    "real_token_amplitude_sum",
    "real_token_square_sum",
    "spectral_signature",
    "spectral_intensity",
    "half_spectrum_bins",
]


# --------------------------------------------------------------------------------------------
# Input checking and reshaping
# --------------------------------------------------------------------------------------------

def as_tokens(hidden: Tensor) -> Tensor:
    """Return ``hidden`` as ``(N, T, H)``: ``(N, L, H)`` unchanged, ``(N, C, Hg, Wg)`` -> ``(N, Hg*Wg, C)``.

    Refuses complex tensors and empty axes (no samples, no tokens or no channels).
    """
    check_real(hidden, "hidden")
    if hidden.dim() == 3:
        tokens = hidden
    elif hidden.dim() == 4:
        n, c, hg, wg = hidden.shape
        tokens = hidden.reshape(n, c, hg * wg).transpose(1, 2)
    else:
        raise ValueError(
            f"hidden must have shape (N, L, H) for tokens or (N, C, H, W) for a feature map; "
            f"got rank {hidden.dim()} with shape {tuple(hidden.shape)}. "
            "Add a batch axis with hidden.unsqueeze(0) if you passed one sample."
        )
    _check_not_empty(tokens, tuple(hidden.shape))
    return tokens


def _check_not_empty(tokens: Tensor, shape: tuple[int, ...]) -> None:
    n, t, h = tokens.shape
    for size, what, fix in (
        (n, "samples (N = 0: an empty batch)", "skip empty batches before profiling"),
        (t, "tokens (T = 0)", "tokenize with at least one token per sample; a feature map needs H, W > 0"),
        (h, "channels (H = 0)", "pass the layer's hidden states, whose last axis is the hidden width"),
    ):
        if size == 0:
            raise ValueError(f"hidden has shape {shape} with no {what}; the spectrum is undefined: {fix}")


def token_mask(
    hidden: Tensor, attention_mask: Tensor | None = None, *, prefix_tokens: int = 0
) -> Tensor:
    """Boolean ``(N, T)`` mask of the tokens that count: real (mask 1) and not a prefix token."""
    tokens = as_tokens(hidden)
    n, t, _ = tokens.shape
    if attention_mask is None:
        mask = torch.ones(n, t, dtype=torch.bool, device=tokens.device)
    else:
        if hidden.dim() == 4:
            attention_mask = attention_mask.reshape(attention_mask.shape[0], -1)
        if tuple(attention_mask.shape) != (n, t):
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)} but hidden has {n} samples "
                f"and {t} tokens; pass the tokenizer's attention_mask of shape ({n}, {t})."
            )
        mask = check_mask(attention_mask, "attention_mask").to(device=tokens.device)
    if prefix_tokens < 0 or prefix_tokens >= t:
        raise ValueError(
            f"prefix_tokens={prefix_tokens} must be in [0, {t - 1}] for {t} tokens "
            "(ViT: 1 for [CLS]; DeiT distilled: 2 for [CLS] + distillation token)."
        )
    if prefix_tokens:
        mask = mask.clone()
        mask[:, :prefix_tokens] = False
    empty = (~mask).all(dim=1).nonzero().flatten()
    if empty.numel():
        raise ValueError(
            f"sample(s) {empty.tolist()[:10]} have no real token after masking "
            f"(prefix_tokens={prefix_tokens}); drop empty inputs or check attention_mask."
        )
    return mask


def check_finite(tokens: Tensor) -> None:
    """Refuse NaN/Inf in ``tokens``, naming how many there are."""
    if not torch.isfinite(tokens).all():
        bad = (~torch.isfinite(tokens)).sum().item()
        raise NonFiniteInputError(
            f"hidden contains {bad} NaN/Inf value(s); the spectrum is undefined. "
            "Check the model's dtype (try float32) and the inputs."
        )


def check_bins(bins: int | None, width: int) -> int:
    """The number of leading frequency bins to keep: ``bins`` checked against the width, or all."""
    if bins is None:
        return width
    if not isinstance(bins, int) or isinstance(bins, bool) or not 1 <= bins <= width:
        raise ValueError(
            f"bins={bins!r} is out of range: it keeps the first K frequency bins, "
            f"so it must be an integer in [1, {width}] (hidden width {width}); use None for all."
        )
    return bins


# --------------------------------------------------------------------------------------------
# The equations
# --------------------------------------------------------------------------------------------

def channel_spectrum(hidden: Tensor) -> Tensor:
    """A[n, t, k] = |(1/H) * sum_h X[n, t, h] exp(-2 pi i k h / H)|, in float32 or better."""
    tokens = as_tokens(hidden)
    dtype = torch.float64 if tokens.dtype == torch.float64 else torch.float32
    # F = FFT_h(X) / H  (norm="forward" divides by H)
    spectrum = torch.fft.fft(tokens.to(dtype), dim=-1, norm="forward")
    return spectrum.abs()  # sqrt(Re^2 + Im^2)


def real_token_amplitude_sum(tokens: Tensor, mask: Tensor) -> Tensor:
    """sum over real tokens of |F[n, t, :]|: a float64 CPU vector of length H.

    Same numbers as ``(channel_spectrum(tokens) * mask[..., None]).sum((0, 1))``, computed faster:
    only real tokens are transformed, with a real FFT (H//2 + 1 bins), and the remaining bins come
    from the mirror symmetry |F[k]| = |F[H - k]| of a real signal's spectrum. ``tokens`` may carry
    leading layer axes, ``(..., N, T, H)``; the result then is ``(..., H)``.
    """
    width = tokens.shape[-1]
    real = tokens[..., mask, :]  # (..., M, H): padding and prefix tokens never reach the FFT
    dtype = torch.float64 if real.dtype == torch.float64 else torch.float32
    half = torch.fft.rfft(real.to(dtype), dim=-1, norm="forward").abs().sum(dim=-2)  # bins 0..H//2
    mirrored = half[..., 1 : (width + 1) // 2].flip(-1)  # bins H//2+1 .. H-1 equal bins (H-1)//2 .. 1
    return torch.cat([half, mirrored], dim=-1).to(torch.float64).cpu()


def real_token_square_sum(tokens: Tensor, mask: Tensor) -> Tensor:
    """sum over real tokens and channels of x^2 (float64, CPU); ``(..., N, T, H)`` gives ``(...)``."""
    return tokens[..., mask, :].to(torch.float64).pow(2).sum(dim=(-2, -1)).cpu()


def spectral_signature(
    hidden: Tensor,
    attention_mask: Tensor | None = None,
    *,
    prefix_tokens: int = 0,
    bins: int | None = None,
) -> Tensor:
    """S[k] = masked mean over samples and real tokens of |F[n, t, k]|, for k < bins (default H).

    ``hidden``: one layer, ``(N, L, H)`` tokens or ``(N, C, Hgrid, Wgrid)`` feature map.
    ``attention_mask``: ``(N, L)``, 0 marks padding (excluded). ``prefix_tokens``: leading tokens to
    drop (ViT [CLS], DeiT distillation token). Returns a float32 (float64 for float64 input) vector.
    """
    tokens = as_tokens(hidden)
    k = check_bins(bins, tokens.shape[-1])
    mask = token_mask(hidden, attention_mask, prefix_tokens=prefix_tokens)
    total = real_token_amplitude_sum(tokens, mask)
    if not torch.isfinite(total).all():
        check_finite(tokens[mask])
    dtype = torch.float64 if tokens.dtype == torch.float64 else torch.float32
    return (total[:k] / int(mask.sum())).to(device=tokens.device, dtype=dtype)


def spectral_intensity(hidden: Tensor, attention_mask: Tensor | None = None, *, prefix_tokens: int = 0,
                       bins: int | None = None) -> float:
    """I = (1/K) * sum_{k<K} S[k]: one number per layer (arguments as for :func:`spectral_signature`)."""
    return float(spectral_signature(hidden, attention_mask, prefix_tokens=prefix_tokens, bins=bins).mean())


def half_spectrum_bins(width: int) -> int:
    """The first C/2 bins the paper's layer-wise plots show (the rest mirror them for real input)."""
    return max(1, math.ceil(width / 2))
