"""The spectral profile of a model: every layer's signature and intensity, streamed over a data source.

For each layer the profiler keeps running masked sums (float64), so memory does not grow with the
number of samples:

    S[k] = sum_{n,t} m[n,t] * A[n,t,k] / sum_{n,t} m[n,t]        I = (1/K) * sum_{k<K} S[k]

with ``A = |FFT_h(X) / H|`` the channel spectrum of :mod:`.spectrum` (where the equations, the input
checks and the layer numbering are; they are re-exported here). Layer numbering: layer 0 is the
embedding output, layer l (1..L) the output of transformer block l (Hugging Face ``hidden_states[l]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import Tensor

from ..common.inputs import check_real
from .spectrum import (LAYER_CONVENTION, as_tokens, channel_spectrum, check_bins, check_finite, half_spectrum_bins,
    real_token_amplitude_sum, real_token_square_sum, spectral_intensity, spectral_signature, token_mask)

__all__ = [
    "LAYER_CONVENTION",
    "as_tokens",
    "token_mask",
    "check_bins",
    "channel_spectrum",
    "spectral_signature",
    "spectral_intensity",
    "check_finite",
    "SpectralAccumulator",
    "LayerSpectra",
    "SpectralProfile",
    "SpectralProfiler",
    "profile_model",
    "half_spectrum_bins",
]


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
            check_finite(check() if check is not None else amplitude_sum)
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
