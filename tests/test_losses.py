"""Tests of spectralkd_tutorial.losses against independent float64 NumPy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spectralkd_tutorial.losses import (
    FEATURE_LOSSES,
    DistillationLossConfig,
    LayerProjections,
    check_tokenizers_compatible,
    distillation_loss,
    hidden_mse_loss,
    logit_kd_loss,
    pool_teacher_channels,
    projected_spectral_alignment_loss,
    spectral_alignment_loss,
    spectral_as_weighted_spatial_mse,
)


# --------------------------------------------------------------------------------------------
# Independent NumPy references
# --------------------------------------------------------------------------------------------

def np_pool_divisible(t: np.ndarray, hs: int) -> np.ndarray:
    """Mean of consecutive groups of Ht/Hs channels (only when Hs divides Ht)."""
    ht = t.shape[-1]
    assert ht % hs == 0
    return t.reshape(*t.shape[:-1], hs, ht // hs).mean(-1)


def np_pool_adaptive(t: np.ndarray, hs: int) -> np.ndarray:
    """Adaptive average pooling: bin j covers [floor(j*Ht/Hs), ceil((j+1)*Ht/Hs))."""
    ht = t.shape[-1]
    out = np.empty(t.shape[:-1] + (hs,))
    for j in range(hs):
        start = (j * ht) // hs
        stop = -((-(j + 1) * ht) // hs)
        out[..., j] = t[..., start:stop].mean(-1)
    return out


def np_pool(t: np.ndarray, hs: int) -> np.ndarray:
    if t.shape[-1] == hs:
        return t
    if t.shape[-1] % hs == 0:
        return np_pool_divisible(t, hs)
    return np_pool_adaptive(t, hs)


def np_spectral(students, teachers, mask=None, grid=None) -> float:
    """SpectralKD loss in float64 NumPy."""
    values = []
    for s, t in zip(students, teachers):
        s = np.asarray(s, dtype=np.float64)
        t = np_pool(np.asarray(t, dtype=np.float64), s.shape[-1])
        if mask is not None:
            m = np.asarray(mask, dtype=np.float64)[..., None]
            s, t = s * m, t * m
        if grid is None:
            fs = np.fft.rfft(s, axis=1, norm="ortho")
            ft = np.fft.rfft(t, axis=1, norm="ortho")
        else:
            h, w = grid
            b, n, c = s.shape
            fs = np.fft.rfft2(s.transpose(0, 2, 1).reshape(b, c, h, w), norm="ortho")
            ft = np.fft.rfft2(t.transpose(0, 2, 1).reshape(b, c, h, w), norm="ortho")
        d = fs - ft
        values.append((np.sum(d.real**2) + np.sum(d.imag**2)) / (2 * d.size))
    return float(np.mean(values))


def np_pooled_spectral(students, teachers, mask=None) -> float:
    """Sentence-level loss in float64 NumPy: mean over real tokens, pool channels, rfft over channels."""
    values = []
    for s, t in zip(students, teachers):
        s, t = np.asarray(s, dtype=np.float64), np.asarray(t, dtype=np.float64)
        m = np.ones(s.shape[:2]) if mask is None else np.asarray(mask, dtype=np.float64)
        xs = (s * m[..., None]).sum(1) / m.sum(1, keepdims=True)
        xt = np_pool((t * m[..., None]).sum(1) / m.sum(1, keepdims=True), s.shape[-1])
        fs, ft = np.fft.rfft(xs, axis=-1, norm="ortho"), np.fft.rfft(xt, axis=-1, norm="ortho")
        values.append(np.mean(np.stack([fs.real - ft.real, fs.imag - ft.imag], -1) ** 2))
    return float(np.mean(values))


def np_masked_mse(students, teachers, mask=None) -> float:
    values = []
    for s, t in zip(students, teachers):
        s = np.asarray(s, dtype=np.float64)
        t = np_pool(np.asarray(t, dtype=np.float64), s.shape[-1])
        m = np.ones(s.shape[:2]) if mask is None else np.asarray(mask, dtype=np.float64)
        values.append(np.sum(m[..., None] * (s - t) ** 2) / (m.sum() * s.shape[-1]))
    return float(np.mean(values))


def np_kd(zs: np.ndarray, zt: np.ndarray, temperature: float) -> float:
    def log_softmax(z):
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    lps = log_softmax(zs.astype(np.float64) / temperature)
    lpt = log_softmax(zt.astype(np.float64) / temperature)
    kl = np.sum(np.exp(lpt) * (lpt - lps), axis=-1).mean()
    return float(kl * temperature**2)


def random_mask(gen: torch.Generator, batch: int, length: int) -> torch.Tensor:
    """Prefix masks of random lengths 1..L, with at least one full-length row."""
    lengths = torch.randint(1, length + 1, (batch,), generator=gen)
    lengths[0] = length
    return (torch.arange(length)[None, :] < lengths[:, None]).long()


def pairs(gen, batch, length, hs, ht, n_pairs=2, dtype=torch.float32):
    s = [torch.randn(batch, length, hs, generator=gen).to(dtype) for _ in range(n_pairs)]
    t = [torch.randn(batch, length, ht, generator=gen).to(dtype) for _ in range(n_pairs)]
    return s, t


def np_list(xs):
    return [x.detach().double().numpy() for x in xs]


# --------------------------------------------------------------------------------------------
# Channel pooling
# --------------------------------------------------------------------------------------------

def test_pool_divisible_matches_group_mean():
    t = torch.randn(3, 5, 8, dtype=torch.float64)
    got = pool_teacher_channels(t, 4)
    assert got.shape == (3, 5, 4)
    np.testing.assert_allclose(got.numpy(), np_pool_divisible(t.numpy(), 4), rtol=1e-12)


@pytest.mark.parametrize("ht,hs", [(7, 3), (10, 4), (1024, 768)])
def test_pool_non_dividing_matches_adaptive_bins(ht, hs):
    t = torch.randn(2, 3, ht, dtype=torch.float64)
    np.testing.assert_allclose(
        pool_teacher_channels(t, hs).numpy(), np_pool_adaptive(t.numpy(), hs), rtol=1e-12
    )


def test_pool_identity_and_wider_student():
    t = torch.randn(2, 3, 6)
    assert pool_teacher_channels(t, 6) is t
    with pytest.raises(ValueError, match="projection"):
        pool_teacher_channels(t, 8)


# --------------------------------------------------------------------------------------------
# Spectral alignment loss vs NumPy
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("length", [7, 8])
@pytest.mark.parametrize("ht", [4, 8, 10])
def test_spectral_matches_numpy_text(length, ht):
    gen = torch.Generator().manual_seed(length * 100 + ht)
    s, t = pairs(gen, 4, length, 4, ht, n_pairs=3)
    mask = random_mask(gen, 4, length)
    got = spectral_alignment_loss(s, t, mask)
    want = np_spectral(np_list(s), np_list(t), mask.numpy())
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(want, rel=1e-5)
    # the mask matters: without it the value differs
    assert spectral_alignment_loss(s, t).item() == pytest.approx(np_spectral(np_list(s), np_list(t)), rel=1e-5)
    assert abs(spectral_alignment_loss(s, t).item() - want) > 1e-3


def test_single_pair_tensor_is_accepted():
    gen = torch.Generator().manual_seed(1)
    s, t = pairs(gen, 2, 5, 4, 8, n_pairs=1)
    assert spectral_alignment_loss(s[0], t[0]).item() == pytest.approx(spectral_alignment_loss(s, t).item())


@pytest.mark.parametrize("grid", [(3, 4), (4, 4), (2, 5)])
def test_spectral_vit_grid_matches_numpy_rfft2(grid):
    gen = torch.Generator().manual_seed(sum(grid))
    n = grid[0] * grid[1]
    s, t = pairs(gen, 3, n, 4, 8, n_pairs=2)
    got = spectral_alignment_loss(s, t, grid=grid)
    assert got.item() == pytest.approx(np_spectral(np_list(s), np_list(t), grid=grid), rel=1e-5)
    # a 2-D transform over the grid is not the 1-D transform over the tokens
    assert abs(got.item() - spectral_alignment_loss(s, t).item()) > 1e-4


def test_vit_grid_with_mask_and_bad_grid():
    gen = torch.Generator().manual_seed(3)
    s, t = pairs(gen, 2, 12, 4, 4, n_pairs=1)
    mask = random_mask(gen, 2, 12)
    got = spectral_alignment_loss(s, t, mask, grid=(3, 4))
    assert got.item() == pytest.approx(np_spectral(np_list(s), np_list(t), mask.numpy(), grid=(3, 4)), rel=1e-5)
    with pytest.raises(ValueError, match="grid"):
        spectral_alignment_loss(s, t, grid=(3, 3))


def test_bfloat16_inputs_give_float32_accurate_results():
    gen = torch.Generator().manual_seed(4)
    # a large common offset (as in real activations) makes any bf16 rounding after the inputs visible
    s, t = pairs(gen, 4, 16, 8, 16, n_pairs=2)
    s, t = [(x + 10).bfloat16() for x in s], [(x + 10).bfloat16() for x in t]
    mask = random_mask(gen, 4, 16)
    want = np_spectral(np_list(s), np_list(t), mask.numpy())  # float64 on the bf16-rounded values
    got = spectral_alignment_loss(s, t, mask)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(want, rel=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got_autocast = spectral_alignment_loss(s, t, mask)
    assert got_autocast.dtype == torch.float32
    assert got_autocast.item() == pytest.approx(want, rel=1e-5)


# --------------------------------------------------------------------------------------------
# Parseval: spectral loss == re-weighted spatial MSE
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("length", [1, 2, 7, 8, 33])
def test_parseval_form_equals_spectral_loss(length):
    gen = torch.Generator().manual_seed(length)
    s, t = pairs(gen, 3, length, 4, 8, n_pairs=2)
    mask = random_mask(gen, 3, length)
    spectral = spectral_alignment_loss(s, t, mask)
    spatial = spectral_as_weighted_spatial_mse(s, t, mask)
    assert spatial.item() == pytest.approx(spectral.item(), rel=1e-5)


@pytest.mark.parametrize("length", [6, 9])
def test_parseval_ratio_to_plain_mse_is_where_theory_says(length):
    gen = torch.Generator().manual_seed(10 + length)
    b, h = 5, 4
    kept = length // 2 + 1
    s, t = pairs(gen, b, length, h, h, n_pairs=1)
    mask = random_mask(gen, b, length)
    spectral = spectral_alignment_loss(s, t, mask).item()
    d = (t[0] - s[0]).double().numpy() * mask.numpy()[..., None]
    # exact decomposition: (L / 4K) * plain MSE + DC + Nyquist terms
    plain = np.sum(d**2) / (b * length * h)
    dc = np.sum(d.sum(1) ** 2) / length
    nyq = np.sum((d * (-1.0) ** np.arange(length)[None, :, None]).sum(1) ** 2) / length if length % 2 == 0 else 0.0
    assert spectral == pytest.approx(length / (4 * kept) * plain + (dc + nyq) / (4 * b * kept * h), rel=1e-5)
    # bounds: L/(4K) <= spectral / plain <= L/(2K), i.e. about one half of the plain MSE ...
    ratio = spectral / plain
    assert length / (4 * kept) <= ratio <= length / (2 * kept)
    # ... and against the mask-aware MSE over real tokens: N_real/(4BK) .. N_real/(2BK)
    masked = hidden_mse_loss(s, t, mask).item()
    n_real = mask.sum().item()
    assert n_real / (4 * b * kept) <= spectral / masked <= n_real / (2 * b * kept)


@pytest.mark.parametrize("length", [6, 7])
def test_parseval_bounds_are_attained(length):
    kept = length // 2 + 1
    # no DC, no Nyquist content -> exactly L/(4K) of the plain MSE
    n = torch.arange(length, dtype=torch.float64)
    wave = torch.cos(2 * math.pi * n / length)  # frequency 1 only
    d = wave[None, :, None].expand(2, length, 3).float()
    zero = torch.zeros_like(d)
    plain = (d**2).mean().item()
    assert spectral_alignment_loss(zero, d).item() == pytest.approx(length / (4 * kept) * plain, rel=1e-5)
    # constant over tokens (all energy in DC) -> exactly L/(2K) of the plain MSE
    const = torch.full((2, length, 3), 0.7)
    assert spectral_alignment_loss(torch.zeros_like(const), const).item() == pytest.approx(
        length / (2 * kept) * (const**2).mean().item(), rel=1e-5
    )


# --------------------------------------------------------------------------------------------
# Properties: zero, monotone, gradients
# --------------------------------------------------------------------------------------------

def test_zero_for_identical_features_and_for_pooled_copies():
    gen = torch.Generator().manual_seed(5)
    s, _ = pairs(gen, 2, 6, 4, 4, n_pairs=2)
    assert spectral_alignment_loss(s, [x.clone() for x in s]).item() == 0.0
    wide = [x.repeat_interleave(2, dim=-1) for x in s]  # pools back exactly to the student
    assert spectral_alignment_loss(s, wide).item() == pytest.approx(0.0, abs=1e-12)
    assert hidden_mse_loss(s, wide).item() == pytest.approx(0.0, abs=1e-12)


def test_grows_monotonically_with_perturbation_size():
    gen = torch.Generator().manual_seed(6)
    s, _ = pairs(gen, 3, 9, 4, 4, n_pairs=1)
    direction = torch.randn(3, 9, 4, generator=gen)
    sizes = [0.0, 0.01, 0.1, 0.5, 1.0, 3.0]
    values = [spectral_alignment_loss(s, [s[0] + e * direction]).item() for e in sizes]
    assert values[0] == 0.0
    assert all(a < b for a, b in zip(values, values[1:]))
    assert values[-1] / values[-2] == pytest.approx(9.0, rel=1e-4)  # quadratic in the perturbation


@pytest.mark.parametrize("fn", ["spectral", "parseval", "mse"])
def test_gradients_reach_student_not_teacher(fn):
    gen = torch.Generator().manual_seed(7)
    s, t = pairs(gen, 3, 8, 4, 8, n_pairs=2)
    s = [x.requires_grad_() for x in s]
    t = [x.requires_grad_() for x in t]
    mask = random_mask(gen, 3, 8)
    mask[1, 5:] = 0
    loss = {
        "spectral": spectral_alignment_loss,
        "parseval": spectral_as_weighted_spatial_mse,
        "mse": hidden_mse_loss,
    }[fn](s, t, mask)
    loss.backward()
    for x in s:
        assert x.grad is not None and x.grad.abs().sum() > 0
        assert torch.all(x.grad[1, 5:] == 0)  # padded tokens get no gradient
    for x in t:
        assert x.grad is None


def test_shape_mismatches_name_the_pair():
    gen = torch.Generator().manual_seed(8)
    s, t = pairs(gen, 2, 6, 4, 8, n_pairs=2)
    with pytest.raises(ValueError, match="pair count"):
        spectral_alignment_loss(s, t[:1])
    with pytest.raises(ValueError, match="pair 1: batch"):
        spectral_alignment_loss(s, [t[0], t[1][:1]])
    with pytest.raises(ValueError, match="pair 1: token"):
        spectral_alignment_loss(s, [t[0], t[1][:, :5]])
    with pytest.raises(ValueError, match="pair 0: attention_mask"):
        spectral_alignment_loss(s, t, torch.ones(2, 5))
    with pytest.raises(ValueError, match="no layer pairs"):
        spectral_alignment_loss([], [])


def test_wider_student_raises_and_projection_handles_it():
    gen = torch.Generator().manual_seed(9)
    s, t = pairs(gen, 2, 6, 8, 6, n_pairs=2)
    with pytest.raises(ValueError, match="projection"):
        spectral_alignment_loss(s, t)
    proj = LayerProjections(2, 8, 6)
    loss = projected_spectral_alignment_loss(s, t, None, proj)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in proj.parameters())


def test_projection_6_to_8_against_exact_teacher():
    gen = torch.Generator().manual_seed(10)
    s = [torch.randn(3, 7, 6, generator=gen).requires_grad_() for _ in range(2)]
    mask = random_mask(gen, 3, 7)
    proj = LayerProjections(2, 6, 8)
    # a teacher that IS a linear map of the student: loss zero at those weights
    with torch.no_grad():
        t = [lin(x) for lin, x in zip(proj.maps, s)]
    assert projected_spectral_alignment_loss(s, t, mask, proj).item() == pytest.approx(0.0, abs=1e-10)
    assert hidden_mse_loss(s, t, mask, proj).item() == pytest.approx(0.0, abs=1e-10)
    # perturb the teacher: equals the numpy spectral loss of the projected student, grads flow
    t2 = [x + 0.3 * torch.randn(x.shape, generator=gen) for x in t]
    loss = projected_spectral_alignment_loss(s, t2, mask, proj)
    projected = np_list(proj(s))
    assert loss.item() == pytest.approx(np_spectral(projected, np_list(t2), mask.numpy()), rel=1e-5)
    mse = hidden_mse_loss(s, t2, mask, proj)
    assert mse.item() == pytest.approx(np_masked_mse(projected, np_list(t2), mask.numpy()), rel=1e-5)
    (loss + mse).backward()
    for p in proj.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert all(x.grad is not None for x in s)
    with pytest.raises(ValueError, match="2 pairs"):
        proj(s[:1])


def test_hidden_mse_matches_numpy():
    gen = torch.Generator().manual_seed(11)
    s, t = pairs(gen, 4, 9, 4, 10, n_pairs=3)
    mask = random_mask(gen, 4, 9)
    got = hidden_mse_loss(s, t, mask)
    assert got.item() == pytest.approx(np_masked_mse(np_list(s), np_list(t), mask.numpy()), rel=1e-5)


# --------------------------------------------------------------------------------------------
# Logit KD
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_logit_kd_matches_reference(temperature):
    gen = torch.Generator().manual_seed(12)
    zs, zt = torch.randn(6, 5, generator=gen), 3 * torch.randn(6, 5, generator=gen)
    got = logit_kd_loss(zs, zt, temperature)
    assert got.item() == pytest.approx(np_kd(zs.numpy(), zt.numpy(), temperature), rel=1e-5)
    assert logit_kd_loss(zs, zs.clone(), temperature).item() == pytest.approx(0.0, abs=1e-7)


def test_logit_kd_t_squared_scaling_and_detached_teacher():
    gen = torch.Generator().manual_seed(13)
    zs = torch.randn(4, 7, generator=gen, dtype=torch.float64).requires_grad_()
    zt = torch.randn(4, 7, generator=gen, dtype=torch.float64).requires_grad_()
    # T^2 * KL_T tends to the logit-matching loss (1/2C) * mean_b sum_c (dz_c - mean dz)^2
    dz = (zt - zs).detach().numpy()
    limit = np.mean(np.sum((dz - dz.mean(-1, keepdims=True)) ** 2, -1)) / (2 * 7)
    assert logit_kd_loss(zs, zt, 200.0).item() == pytest.approx(limit, rel=1e-2)
    # without T^2 the loss would vanish like 1/T^2
    assert logit_kd_loss(zs, zt, 200.0).item() / 200.0**2 < 1e-4 * limit
    loss = logit_kd_loss(zs, zt, 2.0)
    loss.backward()
    assert zs.grad is not None and zt.grad is None
    with pytest.raises(ValueError, match="temperature"):
        logit_kd_loss(zs, zt, 0.0)
    with pytest.raises(ValueError, match="same"):
        logit_kd_loss(zs, zt[:, :5], 1.0)


# --------------------------------------------------------------------------------------------
# Config and total loss
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"alpha": -0.1}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": -1.0}, "temperature"),
        ({"beta": -1.0}, "beta"),
        ({"feature_loss": "fft"}, "feature_loss"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DistillationLossConfig(**kwargs)


def _batch(gen, hs=4, ht=8, length=6, n_pairs=2):
    zs, zt = torch.randn(5, 3, generator=gen), torch.randn(5, 3, generator=gen)
    labels = torch.randint(0, 3, (5,), generator=gen)
    s, t = pairs(gen, 5, length, hs, ht, n_pairs=n_pairs)
    return zs, zt, labels, s, t, random_mask(gen, 5, length)


def np_ce(z: np.ndarray, y: np.ndarray, smoothing: float) -> float:
    z = z.astype(np.float64) - z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    c = z.shape[-1]
    target = np.full_like(logp, smoothing / c)
    target[np.arange(len(y)), y] += 1 - smoothing
    return float(-(target * logp).sum(-1).mean())


@pytest.mark.parametrize("feature_loss", FEATURE_LOSSES)
def test_distillation_loss_combines_parts(feature_loss):
    gen = torch.Generator().manual_seed(14)
    zs, zt, y, s, t, mask = _batch(gen)
    cfg = DistillationLossConfig(alpha=0.3, temperature=3.0, beta=0.7, feature_loss=feature_loss, label_smoothing=0.1)
    proj = LayerProjections(2, 4, 8) if cfg.needs_projections else None
    out = distillation_loss(zs, zt, y, s, t, mask, cfg, proj)
    assert set(out) == {"loss", "ce", "kd", "feature"}
    ce, kd = np_ce(zs.numpy(), y.numpy(), 0.1), np_kd(zs.numpy(), zt.numpy(), 3.0)
    feature = {
        "spectral": lambda: np_spectral(np_list(s), np_list(t), mask.numpy()),
        "mse": lambda: np_masked_mse(np_list(s), np_list(t), mask.numpy()),
        "projection": lambda: np_masked_mse(np_list(proj(s)), np_list(t), mask.numpy()),
        "spectral-projection": lambda: np_spectral(np_list(proj(s)), np_list(t), mask.numpy()),
        "pooled-spectral": lambda: np_pooled_spectral(np_list(s), np_list(t), mask.numpy()),
        "none": lambda: 0.0,
    }[feature_loss]()
    assert out["ce"].item() == pytest.approx(ce, rel=1e-5)
    assert out["kd"].item() == pytest.approx(kd, rel=1e-5)
    assert out["feature"].item() == pytest.approx(feature, rel=1e-5, abs=1e-12)
    assert out["loss"].item() == pytest.approx(0.7 * ce + 0.3 * kd + 0.7 * feature, rel=1e-5)


def test_distillation_loss_logits_only_and_grid():
    gen = torch.Generator().manual_seed(15)
    zs, zt, y, s, t, _ = _batch(gen, length=6)
    out = distillation_loss(zs, zt, y, None, None, None, DistillationLossConfig(feature_loss="none"))
    assert out["feature"].item() == 0.0
    out = distillation_loss(zs, zt, y, s, t, None, DistillationLossConfig(), grid=(2, 3))
    assert out["feature"].item() == pytest.approx(np_spectral(np_list(s), np_list(t), grid=(2, 3)), rel=1e-5)


def test_projection_configs_need_projections():
    gen = torch.Generator().manual_seed(16)
    zs, zt, y, s, t, mask = _batch(gen)
    for kind in ("projection", "spectral-projection"):
        with pytest.raises(ValueError, match="LayerProjections"):
            distillation_loss(zs, zt, y, s, t, mask, DistillationLossConfig(feature_loss=kind))


def test_non_finite_loss_raises():
    gen = torch.Generator().manual_seed(17)
    zs, zt, y, s, t, mask = _batch(gen)
    bad_logits = zs.clone()
    bad_logits[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        distillation_loss(bad_logits, zt, y, s, t, mask, DistillationLossConfig())
    t[1][0, 0, 0] = float("inf")
    with pytest.raises(FloatingPointError, match="learning rate"):
        distillation_loss(zs, zt, y, s, t, mask, DistillationLossConfig())


# --------------------------------------------------------------------------------------------
# Tokenizers
# --------------------------------------------------------------------------------------------

SENTENCES = [
    "what is my account balance",
    "transfer money to my savings account",
    "book a flight to paris tomorrow",
    "what is the weather like in london",
    "set an alarm for seven am",
]


def _wrap(tok):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")


def _word_level(vocab_words):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", *vocab_words])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return _wrap(tok)


def _word_piece(vocab_size):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=["[PAD]", "[UNK]"], show_progress=False)
    tok.train_from_iterator(SENTENCES, trainer=trainer)
    return _wrap(tok)


def test_tokenizer_mismatch_detected():
    words = sorted({w for s in SENTENCES for w in s.split()})
    teacher = _word_level(words)
    check_tokenizers_compatible(teacher, teacher, SENTENCES)
    # same segmentation, different id numbering: still aligned token by token
    check_tokenizers_compatible(teacher, _word_level(list(reversed(words))), SENTENCES)
    # a sub-word tokenizer with a tiny vocabulary splits words: different lengths
    pieces = _word_piece(40)
    assert len(pieces(SENTENCES[1])["input_ids"]) != len(teacher(SENTENCES[1])["input_ids"])
    with pytest.raises(ValueError, match="feature_loss='none'"):
        check_tokenizers_compatible(teacher, pieces, SENTENCES)
    # same lengths but different tokens ([UNK] where the other has a word)
    with pytest.raises(ValueError, match="impossible"):
        check_tokenizers_compatible(teacher, _word_level(words[: len(words) // 2]), SENTENCES)
    with pytest.raises(ValueError, match="empty"):
        check_tokenizers_compatible(teacher, teacher, [])


def test_pooled_spectral_needs_no_token_correspondence():
    """Pooling inside the loss (one tokenization, shared mask) equals pooling each model with its own
    mask first; teacher and student may then have different token counts; padding is never read."""
    from spectralkd_tutorial.losses import pooled_spectral_loss, sentence_features

    gen = torch.Generator().manual_seed(21)
    _, _, _, s, t, mask = _batch(gen)
    inside = pooled_spectral_loss(s, t, mask)
    first = pooled_spectral_loss([sentence_features(x, mask) for x in s], [sentence_features(x, mask) for x in t], None)
    assert inside.item() == pytest.approx(first.item(), rel=1e-6)
    longer = [torch.cat([x, torch.full((x.shape[0], 3, x.shape[2]), float("nan"))], 1) for x in t]
    longer_mask = torch.cat([mask, torch.zeros(mask.shape[0], 3, dtype=mask.dtype)], 1)
    other = pooled_spectral_loss([sentence_features(x, mask) for x in s],
                                 [sentence_features(x, longer_mask) for x in longer], None)
    assert other.item() == pytest.approx(first.item(), rel=1e-6)
    assert pooled_spectral_loss(s, t, mask).item() == pytest.approx(
        np_pooled_spectral(np_list(s), np_list(t), mask.numpy()), rel=1e-5)
