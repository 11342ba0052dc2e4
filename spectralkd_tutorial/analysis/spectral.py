"""Spectral signatures and intensities of layer activations (SpectralKD, section 3 of the paper).

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

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
    "channel_spectrum",
    "spectral_signature",
    "spectral_intensity",
    "SpectralAccumulator",
    "LayerSpectra",
    "SpectralProfile",
    "SpectralProfiler",
    "profile_model",
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


def _check_finite(tokens: Tensor) -> None:
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
        _check_finite(tokens[mask])
    dtype = torch.float64 if tokens.dtype == torch.float64 else torch.float32
    return (total[:k] / int(mask.sum())).to(device=tokens.device, dtype=dtype)


def spectral_intensity(hidden: Tensor, attention_mask: Tensor | None = None, *, prefix_tokens: int = 0,
                       bins: int | None = None) -> float:
    """I = (1/K) * sum_{k<K} S[k]: one number per layer (arguments as for :func:`spectral_signature`)."""
    return float(spectral_signature(hidden, attention_mask, prefix_tokens=prefix_tokens, bins=bins).mean())


# --------------------------------------------------------------------------------------------
# Streaming: running sums whose memory does not grow with the number of samples
# --------------------------------------------------------------------------------------------

class SpectralAccumulator:
    """Running masked sums of |F| for one layer: sum_{n,t} m A[n,t,:] and sum_{n,t} m (float64)."""

    def __init__(self) -> None:
        self.amplitude_sum: Tensor | None = None
        self.square_sum: float | None = 0.0  # sum over real tokens and channels of x^2 (None: a batch lacked it)
        self.token_count = 0
        self.sample_count = 0

    def update(self, hidden: Tensor, attention_mask: Tensor | None = None, *, prefix_tokens: int = 0) -> None:
        tokens = as_tokens(hidden).detach()
        mask = token_mask(hidden, attention_mask, prefix_tokens=prefix_tokens)
        self.add(real_token_amplitude_sum(tokens, mask), int(mask.sum()), int(tokens.shape[0]),
                 check=lambda: tokens[mask], square_sum=float(real_token_square_sum(tokens, mask)))

    def add(
        self, amplitude_sum: Tensor, tokens: int, samples: int, check: Callable[[], Tensor] | None = None,
        square_sum: float | None = None,
    ) -> None:
        """Add one batch's reduced sums (``check()`` returns the real tokens, to name a NaN/Inf;
        ``square_sum``: the batch's sum of x^2 over real tokens and channels, for :meth:`rms`)."""
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens <= 0 or samples <= 0:
            raise ValueError(
                f"a batch must add at least one real token and one sample, got tokens={tokens!r}, "
                f"samples={samples!r}; skip empty batches (an all-padding mask has no token to average)"
            )
        check_real(amplitude_sum, "amplitude_sum")
        if not torch.isfinite(amplitude_sum).all():
            _check_finite(check() if check is not None else amplitude_sum)
        if self.amplitude_sum is None:
            self.amplitude_sum = amplitude_sum.clone()
        elif self.amplitude_sum.shape != amplitude_sum.shape:
            raise ValueError(
                f"hidden width changed between batches ({self.amplitude_sum.numel()} -> {amplitude_sum.numel()})"
            )
        else:
            self.amplitude_sum += amplitude_sum
        self.token_count += tokens
        self.sample_count += samples
        self.square_sum = None if square_sum is None or self.square_sum is None else self.square_sum + float(square_sum)

    def signature(self, bins: int | None = None) -> Tensor:
        if self.amplitude_sum is None:
            raise ValueError("no batch was accumulated: the data source yielded nothing")
        k = check_bins(bins, self.amplitude_sum.numel())
        return (self.amplitude_sum / self.token_count)[:k]

    def intensity(self, bins: int | None = None) -> float:
        return float(self.signature(bins).mean())

    def rms(self) -> float | None:
        """sqrt(mean over real tokens and channels of x^2): the layer's activation size (None if not summed)."""
        if self.square_sum is None or self.amplitude_sum is None:
            return None
        return math.sqrt(self.square_sum / (self.token_count * self.amplitude_sum.numel()))


@dataclass
class LayerSpectra:
    """Signature and intensity of one layer (numbering: see ``LAYER_CONVENTION``)."""

    layer: int
    signature: list[float]
    intensity: float
    rms: float | None = None


@dataclass
class SpectralProfile:
    """Per-layer spectra of one model over one data source."""

    model_name: str
    layers: list[LayerSpectra]
    num_samples: int
    num_tokens: int
    hidden_size: int
    prefix_tokens: int = 0
    bins: int | None = None
    convention: str = LAYER_CONVENTION
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def intensities(self) -> list[float]:
        return [layer.intensity for layer in self.layers]

    @property
    def rms(self) -> list[float] | None:
        """Per-layer RMS of the real tokens' activations, or None (a profile saved before it was recorded)."""
        values = [layer.rms for layer in self.layers]
        return None if any(v is None for v in values) else [float(v) for v in values]

    @property
    def signatures(self) -> Tensor:
        """``(num_layers, bins)`` tensor of signatures."""
        return torch.tensor([layer.signature for layer in self.layers])

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "convention": self.convention,
            "num_samples": self.num_samples,
            "num_tokens": self.num_tokens,
            "hidden_size": self.hidden_size,
            "prefix_tokens": self.prefix_tokens,
            "bins": self.bins if self.bins is not None else self.hidden_size,
            "intensity_definition": "I_l = mean over bins of masked-mean |FFT_h(X)/H|",
            "layers": [layer.layer for layer in self.layers],
            "intensities": self.intensities,
            "signatures": [layer.signature for layer in self.layers],
            "metadata": self.metadata,
            **({"rms_definition": "RMS_l = sqrt(masked mean over real tokens and channels of X^2)", "rms": self.rms}
               if self.rms is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SpectralProfile":
        try:
            rms = data.get("rms") or [None] * len(data["layers"])
            layers = [
                LayerSpectra(layer=int(l), signature=list(s), intensity=float(i), rms=None if r is None else float(r))
                for l, s, i, r in zip(data["layers"], data["signatures"], data["intensities"], rms, strict=True)
            ]
            return cls(
                model_name=data["model_name"],
                layers=layers,
                num_samples=int(data["num_samples"]),
                num_tokens=int(data["num_tokens"]),
                hidden_size=int(data["hidden_size"]),
                prefix_tokens=int(data.get("prefix_tokens", 0)),
                bins=data.get("bins"),
                convention=data.get("convention", LAYER_CONVENTION),
                metadata=dict(data.get("metadata", {})),
            )
        except (KeyError, ValueError, TypeError) as error:
            raise ValueError(f"not a spectral profile (intensity.json) dictionary: {error}") from error


class SpectralProfiler:
    """Streams batches through a Hugging Face encoder and accumulates every layer's spectrum.

    Works with any model that returns ``hidden_states`` when called with
    ``output_hidden_states=True`` (BERT, RoBERTa, ViT, DeiT, ...). Memory is O(layers x H):
    each batch's hidden states are reduced to running sums and dropped.
    """

    def __init__(self, model: torch.nn.Module, *, prefix_tokens: int = 0, bins: int | None = None) -> None:
        from .capture import LayerCapture, capture_supported

        self.model = model
        self.prefix_tokens = prefix_tokens
        self.bins = bins
        self.accumulators: list[SpectralAccumulator] = []
        # hooks (cheaper than output_hidden_states on every call), registered from the first
        # update until result()/close()
        self._capture = LayerCapture(model) if capture_supported(model) else None
        self._hooked = False

    def close(self) -> None:
        """Remove the capture hooks from the model (``result`` does this too)."""
        if self._capture is not None and self._hooked:
            self._capture.__exit__(None, None, None)
            self._hooked = False

    def reset(self) -> None:
        self.accumulators = []

    @torch.no_grad()
    def update(self, batch: Mapping[str, Tensor]) -> Any:
        """Run one batch (a dict of model inputs) and add its hidden states to the running sums."""
        if not isinstance(batch, Mapping):
            raise TypeError(
                f"each batch must be a dict of model inputs (e.g. the tokenizer's output), got {type(batch).__name__}"
            )
        _check_batch_not_empty(batch)
        device = next(self.model.parameters()).device
        inputs = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items() if k != "labels"}
        if self._capture is not None:
            if not self._hooked:
                self._capture.__enter__()
                self._hooked = True
            try:
                outputs = self.model(**inputs)
            except BaseException:
                self.close()
                raise
            hidden_states = self._capture.take()
        else:
            outputs = self.model(**inputs, output_hidden_states=True)
            hidden_states = outputs.hidden_states
        if hidden_states is None:
            raise ValueError(f"{type(self.model).__name__} returned no hidden_states")
        if not self.accumulators:
            self.accumulators = [SpectralAccumulator() for _ in hidden_states]
        mask = inputs.get("attention_mask")
        if len({tuple(h.shape) for h in hidden_states}) == 1:
            # every layer at once: one mask, one gather, one FFT for the stacked (layers, N, T, H)
            first = hidden_states[0]
            real_mask = token_mask(first, mask if first.dim() == 3 else None, prefix_tokens=self.prefix_tokens)
            stacked = torch.stack([as_tokens(h.detach()) for h in hidden_states])
            sums = real_token_amplitude_sum(stacked, real_mask)
            squares = real_token_square_sum(stacked, real_mask)
            count, samples = int(real_mask.sum()), int(stacked.shape[1])
            for layer, (accumulator, layer_sum) in enumerate(zip(self.accumulators, sums)):
                accumulator.add(layer_sum, count, samples, check=lambda layer=layer: stacked[layer][real_mask],
                                square_sum=float(squares[layer]))
        else:
            for accumulator, hidden in zip(self.accumulators, hidden_states):
                accumulator.update(hidden, mask if hidden.dim() == 3 else None, prefix_tokens=self.prefix_tokens)
        return outputs

    def result(self, model_name: str | None = None, **metadata: Any) -> SpectralProfile:
        self.close()
        if not self.accumulators:
            raise ValueError("no batch was profiled: the data source yielded nothing")
        hidden_size = int(self.accumulators[0].amplitude_sum.numel())
        layers = [
            LayerSpectra(layer=i, signature=acc.signature(self.bins).tolist(), intensity=acc.intensity(self.bins),
                         rms=acc.rms())
            for i, acc in enumerate(self.accumulators)
        ]
        name = model_name or getattr(getattr(self.model, "config", None), "_name_or_path", "") or type(self.model).__name__
        return SpectralProfile(
            model_name=str(name),
            layers=layers,
            num_samples=self.accumulators[0].sample_count,
            num_tokens=self.accumulators[0].token_count,
            hidden_size=hidden_size,
            prefix_tokens=self.prefix_tokens,
            bins=self.bins,
            metadata=dict(metadata),
        )


def _check_batch_not_empty(batch: Mapping[str, Any]) -> None:
    """Refuse a batch whose tensors have no sample, before the model sees it."""
    for key, value in batch.items():
        if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == 0:
            raise ValueError(
                f"batch[{key!r}] has shape {tuple(value.shape)}: the batch is empty (0 samples); "
                "skip empty batches (check the data source and the batch size)"
            )


def profile_model(
    model: torch.nn.Module,
    batches: Iterable[Mapping[str, Tensor]],
    *,
    prefix_tokens: int = 0,
    bins: int | None = None,
    model_name: str | None = None,
    progress: bool = True,
    total: int | None = None,
    **metadata: Any,
) -> SpectralProfile:
    """Profile every layer of ``model`` over ``batches`` (an iterable of model-input dicts)."""
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    profiler = SpectralProfiler(model, prefix_tokens=prefix_tokens, bins=bins)
    if total is None and hasattr(batches, "__len__"):
        total = len(batches)  # type: ignore[arg-type]
    try:
        for batch in tqdm(batches, total=total, desc="spectral profile", disable=not progress, leave=False):
            profiler.update(batch)
    finally:
        profiler.close()
        model.train(was_training)
    return profiler.result(model_name, **metadata)


def half_spectrum_bins(width: int) -> int:
    """The first C/2 bins the paper's layer-wise plots show (the rest mirror them for real input)."""
    return max(1, math.ceil(width / 2))
