"""The spectral core against an independent float64 NumPy DFT, and its error handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spectralkd_tutorial.analysis.spectral import (
    SpectralAccumulator,
    SpectralProfile,
    channel_spectrum,
    profile_model,
    spectral_intensity,
    spectral_signature,
)


def numpy_signature(hidden: np.ndarray, mask: np.ndarray | None = None, prefix: int = 0,
                    bins: int | None = None) -> np.ndarray:
    """Reference: explicit DFT matrix in float64, magnitude, masked mean over (n, t)."""
    x = np.asarray(hidden, dtype=np.float64)
    n, t, h = x.shape
    k = np.arange(h)
    dft = np.exp(-2j * np.pi * np.outer(np.arange(h), k) / h)  # [h, k]
    amplitude = np.abs(x @ dft) / h  # (n, t, k)
    m = np.ones((n, t)) if mask is None else np.asarray(mask, dtype=np.float64).copy()
    m[:, :prefix] = 0
    total = (amplitude * m[..., None]).sum(axis=(0, 1)) / m.sum()
    return total[: bins or h]


def random_mask(rng: np.random.Generator, n: int, t: int) -> np.ndarray:
    lengths = rng.integers(1, t + 1, size=n)
    return (np.arange(t)[None, :] < lengths[:, None]).astype(np.int64)


@pytest.mark.parametrize("seed", range(5))
def test_signature_matches_numpy_dft_with_random_masks(seed):
    rng = np.random.default_rng(seed)
    n, t, h = rng.integers(1, 6), rng.integers(1, 9), rng.integers(2, 33)
    x = rng.normal(size=(n, t, h)) * rng.uniform(0.1, 5)
    mask = random_mask(rng, n, t)
    got = spectral_signature(torch.tensor(x, dtype=torch.float32), torch.tensor(mask))
    np.testing.assert_allclose(got.numpy(), numpy_signature(x, mask), rtol=1e-4, atol=1e-6)
    assert spectral_intensity(torch.tensor(x), torch.tensor(mask)) == pytest.approx(
        numpy_signature(x, mask).mean(), rel=1e-9)


def test_float64_input_stays_float64_and_half_input_is_computed_in_float32():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 16))
    assert spectral_signature(torch.tensor(x)).dtype == torch.float64
    half = torch.tensor(x, dtype=torch.bfloat16)
    got = spectral_signature(half)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), numpy_signature(half.float().numpy()), rtol=1e-5)


def test_padding_does_not_change_the_result():
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.normal(size=(4, 6, 12)), dtype=torch.float32)
    mask = torch.ones(4, 6, dtype=torch.long)
    padded = torch.cat([x, torch.full((4, 5, 12), 1e3)], dim=1)  # garbage in padded positions
    padded_mask = torch.cat([mask, torch.zeros(4, 5, dtype=torch.long)], dim=1)
    torch.testing.assert_close(spectral_signature(padded, padded_mask), spectral_signature(x, mask))


def test_prefix_tokens_are_dropped():
    rng = np.random.default_rng(2)
    x = torch.tensor(rng.normal(size=(2, 7, 8)), dtype=torch.float32)
    base = spectral_signature(x, prefix_tokens=2)
    changed = x.clone()
    changed[:, :2] += 100.0  # CLS + distillation token
    torch.testing.assert_close(spectral_signature(changed, prefix_tokens=2), base)
    np.testing.assert_allclose(base.numpy(), numpy_signature(x.numpy(), prefix=2), rtol=1e-5)
    changed[:, 3] += 1.0  # a patch token does count
    assert not torch.allclose(spectral_signature(changed, prefix_tokens=2), base)


def test_feature_map_equals_token_layout():
    rng = np.random.default_rng(3)
    fmap = torch.tensor(rng.normal(size=(2, 10, 3, 4)), dtype=torch.float32)  # (N, C, H, W)
    tokens = fmap.flatten(2).transpose(1, 2)  # (N, H*W, C)
    torch.testing.assert_close(spectral_signature(fmap), spectral_signature(tokens))
    assert spectral_intensity(fmap) == pytest.approx(spectral_intensity(tokens))


def test_bins_keep_the_first_k():
    rng = np.random.default_rng(4)
    x = torch.tensor(rng.normal(size=(2, 3, 10)), dtype=torch.float32)
    full = spectral_signature(x)
    torch.testing.assert_close(spectral_signature(x, bins=5), full[:5])
    assert spectral_intensity(x, bins=5) == pytest.approx(float(full[:5].mean()))


def test_real_input_spectrum_is_mirror_symmetric():
    x = torch.randn(2, 3, 16)
    a = channel_spectrum(x)
    torch.testing.assert_close(a[..., 1:], a[..., 1:].flip(-1))


def test_streaming_equals_one_pass():
    rng = np.random.default_rng(5)
    chunks, masks = [], []
    for _ in range(4):
        n, t = rng.integers(1, 5), rng.integers(2, 8)
        chunks.append(rng.normal(size=(n, t, 8)))
        masks.append(random_mask(rng, n, t))
    accumulator = SpectralAccumulator()
    for x, m in zip(chunks, masks):
        accumulator.update(torch.tensor(x), torch.tensor(m))
    width = max(c.shape[1] for c in chunks)
    all_x = np.concatenate([np.pad(c, ((0, 0), (0, width - c.shape[1]), (0, 0))) for c in chunks])
    all_m = np.concatenate([np.pad(m, ((0, 0), (0, width - m.shape[1]))) for m in masks])
    np.testing.assert_allclose(accumulator.signature().numpy(), numpy_signature(all_x, all_m), rtol=1e-10)
    assert accumulator.token_count == int(all_m.sum())
    assert accumulator.sample_count == all_x.shape[0]


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: (torch.zeros(3, 4), None, {}), "shape \\(N, L, H\\)"),
        (lambda: (torch.zeros(1, 2, 3, 4, 5), None, {}), "rank 5"),
        (lambda: (torch.zeros(2, 4, 8), torch.ones(2, 5), {}), "attention_mask has shape"),
        (lambda: (torch.zeros(2, 4, 8), torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]]), {}), "no real token"),
        (lambda: (torch.full((2, 4, 8), float("nan")), None, {}), "NaN/Inf"),
        (lambda: (torch.tensor([[[float("inf")] * 8]]), None, {}), "NaN/Inf"),
        (lambda: (torch.zeros(2, 4, 8), None, {"bins": 9}), "bins=9 is out of range"),
        (lambda: (torch.zeros(2, 4, 8), None, {"bins": 0}), "bins=0 is out of range"),
        (lambda: (torch.zeros(2, 4, 8), None, {"prefix_tokens": 4}), "prefix_tokens=4"),
    ],
)
def test_bad_input_raises_clear_errors(make, match):
    hidden, mask, kwargs = make()
    with pytest.raises(ValueError, match=match):
        spectral_signature(hidden, mask, **kwargs)


def test_not_a_tensor():
    with pytest.raises(TypeError, match="torch.Tensor"):
        spectral_signature(np.zeros((2, 3, 4)))


def test_profiler_on_a_tiny_model_matches_direct_computation(tiny_roberta):
    model, tokenizer = tiny_roberta
    model.eval()
    texts = ["set an alarm for seven", "what is the weather like in paris today", "hi", "play jazz"]
    batches = [dict(tokenizer(texts[i : i + 2], padding=True, return_tensors="pt")) for i in (0, 2)]
    profile = profile_model(model, batches, progress=False, model_name="tiny")
    assert len(profile.layers) == model.config.num_hidden_layers + 1
    with torch.no_grad():
        encoded = tokenizer(texts, padding=True, return_tensors="pt")
        hidden = model(**encoded, output_hidden_states=True).hidden_states
    for layer, h in enumerate(hidden):
        expected = numpy_signature(h.numpy(), encoded["attention_mask"].numpy())
        np.testing.assert_allclose(profile.layers[layer].signature, expected, rtol=1e-4, atol=1e-7)
    assert profile.num_samples == 4
    assert profile.num_tokens == int(encoded["attention_mask"].sum())
    again = SpectralProfile.from_dict(profile.to_dict())
    assert again.intensities == profile.intensities
    # per-layer RMS of the real tokens, against float64 NumPy over the unpadded tokens
    mask = encoded["attention_mask"].numpy().astype(bool)
    expected_rms = [float(np.sqrt((h.numpy().astype(np.float64)[mask] ** 2).mean())) for h in hidden]
    np.testing.assert_allclose(profile.rms, expected_rms, rtol=1e-5)
    assert again.rms == profile.rms


def test_rms_streams_and_is_absent_from_old_profiles():
    """Streaming RMS over batches equals one pass; a profile saved without ``rms`` reads back as None."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 5, 8)) * 3.0
    mask = random_mask(rng, 6, 5)
    accumulator = SpectralAccumulator()
    for rows in (slice(0, 2), slice(2, 6)):
        accumulator.update(torch.from_numpy(x[rows]), torch.from_numpy(mask[rows]))
    assert accumulator.rms() == pytest.approx(float(np.sqrt((x[mask.astype(bool)] ** 2).mean())), rel=1e-12)
    accumulator.add(torch.ones(8, dtype=torch.float64), 1, 1)  # a batch that brings no square sum
    assert accumulator.rms() is None
    old = {"model_name": "m", "num_samples": 1, "num_tokens": 1, "hidden_size": 2, "layers": [0],
           "intensities": [1.0], "signatures": [[1.0, 1.0]]}
    assert SpectralProfile.from_dict(old).rms is None and "rms" not in SpectralProfile.from_dict(old).to_dict()


def test_profile_from_bad_dict():
    with pytest.raises(ValueError, match="not a spectral profile"):
        SpectralProfile.from_dict({"model_name": "x"})
