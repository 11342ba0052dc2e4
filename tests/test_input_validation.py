"""Bad inputs give a clear error, not a wrong answer or a crash deep inside (regression tests).

The spectral core and every loss agree on what they accept:

* an empty batch (N = 0), no tokens, or no real token at all -> ``ValueError`` naming the input;
* a mask holds only 0 and 1 (bool, integer or float) -> anything else is a ``ValueError``, with the
  same message in the spectral core and in the losses (one checking function);
* complex tensors -> ``TypeError`` naming the argument;
* ``temperature`` must be finite and > 0;
* NaN/Inf at a real token -> an error that is a ``ValueError`` (as the spectral core always said)
  and a ``FloatingPointError`` (as the training loop reports a non-finite loss); what sits at a
  padded position never matters, in the spectral core as in the losses.

Only names that existed before these checks are imported, so the file also runs against the old
code (where these tests fail).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from spectralkd_tutorial.losses import (
    FEATURE_LOSSES,
    DistillationLossConfig,
    LayerProjections,
    distillation_loss,
    hidden_mse_loss,
    logit_kd_loss,
    projected_spectral_alignment_loss,
    spectral_alignment_loss,
    spectral_as_weighted_spatial_mse,
)
from spectralkd_tutorial.analysis.spectral import (SpectralAccumulator, SpectralProfiler, spectral_intensity,
                                                   spectral_signature)

B, L, HS, HT = 3, 6, 4, 8


def _pairs(batch: int = B, length: int = L, hs: int = HS, ht: int = HT, n: int = 2, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    s = [torch.randn(batch, length, hs, generator=gen) for _ in range(n)]
    t = [torch.randn(batch, length, ht, generator=gen) for _ in range(n)]
    return s, t


def _mask(batch: int = B, length: int = L) -> torch.Tensor:
    mask = torch.ones(batch, length)
    mask[1, 4:] = 0
    mask[2, 2:] = 0
    return mask


# every loss over hidden-state pairs, called the same way
FEATURE_LOSS_FUNCTIONS = {
    "spectral_alignment_loss": lambda s, t, m: spectral_alignment_loss(s, t, m),
    "hidden_mse_loss": lambda s, t, m: hidden_mse_loss(s, t, m),
    "spectral_as_weighted_spatial_mse": lambda s, t, m: spectral_as_weighted_spatial_mse(s, t, m),
    "hidden_mse_loss+projections": lambda s, t, m: hidden_mse_loss(
        s, t, m, projections=LayerProjections(len(s), s[0].shape[-1], t[0].shape[-1])),
    "projected_spectral_alignment_loss": lambda s, t, m: projected_spectral_alignment_loss(
        s, t, m, LayerProjections(len(s), s[0].shape[-1], t[0].shape[-1])),
}


def _distill(s, t, m, feature_loss="spectral", logits=None):
    n = s[0].shape[0] if s is not None else 3
    zs, zt = logits if logits is not None else (torch.randn(n, 5), torch.randn(n, 5))
    labels = torch.zeros(zs.shape[0], dtype=torch.long)
    config = DistillationLossConfig(feature_loss=feature_loss)
    projections = LayerProjections(len(s), s[0].shape[-1], t[0].shape[-1]) if config.needs_projections else None
    return distillation_loss(zs, zt, labels, s, t, m, config, projections)


ALL_LOSSES = {**FEATURE_LOSS_FUNCTIONS, **{
    f"distillation_loss[{name}]": (lambda name: lambda s, t, m: _distill(s, t, m, name))(name)
    for name in ("spectral", "mse", "projection", "spectral-projection")
}}


# --------------------------------------------------------------------------------------------
# 1. empty batches, no tokens, no real token
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("hidden, match", [
    (torch.zeros(0, 4, 8), "no samples"),
    (torch.zeros(0, 8, 2, 2), "no samples"),
    (torch.zeros(2, 0, 8), "no tokens"),
    (torch.zeros(2, 8, 0, 3), "no tokens"),
    (torch.zeros(2, 4, 0), "no channels"),
])
def test_spectral_core_refuses_empty_inputs(hidden, match):
    for call in (lambda: spectral_signature(hidden), lambda: spectral_intensity(hidden),
                 lambda: SpectralAccumulator().update(hidden)):
        with pytest.raises(ValueError, match=match):
            call()


def test_accumulator_refuses_a_batch_without_tokens():
    accumulator = SpectralAccumulator()
    with pytest.raises(ValueError, match="at least one real token"):
        accumulator.add(torch.zeros(8, dtype=torch.float64), 0, 0)
    assert accumulator.amplitude_sum is None and accumulator.token_count == 0


class _FakeEncoder(nn.Module):
    """Returns three (N, T, 8) hidden states; no Hugging Face layout, so no capture hooks."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 8)
        self.calls = 0

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False):
        self.calls += 1
        x = self.embed(input_ids)
        return SimpleNamespace(hidden_states=(x, 2 * x, 3 * x))


def test_profiler_refuses_an_empty_batch_before_running_the_model():
    model = _FakeEncoder()
    profiler = SpectralProfiler(model)
    empty = {"input_ids": torch.zeros(0, 4, dtype=torch.long), "attention_mask": torch.zeros(0, 4, dtype=torch.long)}
    with pytest.raises(ValueError, match="empty"):
        profiler.update(empty)
    assert model.calls == 0
    profiler.update({"input_ids": torch.ones(2, 4, dtype=torch.long), "attention_mask": torch.ones(2, 4)})
    assert profiler.result("fake").num_tokens == 8


def test_spectral_core_refuses_a_sample_without_real_tokens():
    """(Guard: this was already refused.)"""
    with pytest.raises(ValueError, match="no real token"):
        spectral_signature(torch.randn(2, 4, 8), torch.zeros(2, 4))


@pytest.mark.parametrize("name", ALL_LOSSES)
@pytest.mark.parametrize("batch, length, match", [(0, L, "no samples"), (B, 0, "no tokens")])
def test_losses_refuse_empty_batches(name, batch, length, match):
    s, t = _pairs(batch=batch, length=length)
    with pytest.raises(ValueError, match=match):
        ALL_LOSSES[name](s, t, None)
    with pytest.raises(ValueError, match=match):
        ALL_LOSSES[name](s, t, torch.ones(batch, length))


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_losses_refuse_a_mask_without_real_tokens(name):
    s, t = _pairs()
    with pytest.raises(ValueError, match="attention_mask is all zeros"):
        ALL_LOSSES[name](s, t, torch.zeros(B, L))


def test_losses_accept_one_sample_without_real_tokens():
    """A single all-padding row contributes nothing (only a batch without any real token is refused)."""
    s, t = _pairs()
    mask = _mask()
    mask[2] = 0
    for name, loss in ALL_LOSSES.items():
        value = loss(s, t, mask)
        value = value["loss"] if isinstance(value, dict) else value
        assert torch.isfinite(value), name


@pytest.mark.parametrize("shape", [(0, 5), (3, 0)])
def test_logit_kd_refuses_empty_logits(shape):
    with pytest.raises(ValueError, match="empty"):
        logit_kd_loss(torch.zeros(shape), torch.zeros(shape), 2.0)
    if shape[0] == 0:
        s, t = _pairs(batch=0)
        with pytest.raises(ValueError, match="empty|no samples"):
            _distill(s, t, None, logits=(torch.zeros(shape), torch.zeros(shape)))


# --------------------------------------------------------------------------------------------
# 2. masks are 0/1, and the spectral core and the losses agree
# --------------------------------------------------------------------------------------------

def _bad_masks():
    half = _mask()
    half[0, 0] = 0.5
    two = _mask().long()
    two[1, 1] = 2
    negative = _mask()
    negative[0, 3] = -1.0
    nan = _mask()
    nan[0, 2] = float("nan")
    return {"0.5": half, "int 2": two, "-1.0": negative, "nan": nan}


@pytest.mark.parametrize("kind", list(_bad_masks()))
def test_spectral_core_refuses_non_binary_masks(kind):
    mask = _bad_masks()[kind]
    hidden = torch.randn(B, L, 8)
    with pytest.raises(ValueError, match=r"only 0 \(padding\) and 1 \(real token\)"):
        spectral_signature(hidden, mask)
    with pytest.raises(ValueError, match=r"only 0 \(padding\) and 1"):
        SpectralAccumulator().update(hidden, mask)


@pytest.mark.parametrize("kind", list(_bad_masks()))
@pytest.mark.parametrize("name", ALL_LOSSES)
def test_losses_refuse_non_binary_masks(name, kind):
    s, t = _pairs()
    with pytest.raises(ValueError, match=r"only 0 \(padding\) and 1 \(real token\)"):
        ALL_LOSSES[name](s, t, _bad_masks()[kind])


def test_spectral_core_and_losses_give_the_same_mask_error():
    """One checking function: a 0.5 used to count as a real token in the spectrum and as half a
    token in the losses."""
    mask = _bad_masks()["0.5"]
    s, t = _pairs()
    with pytest.raises(ValueError) as core:
        spectral_signature(s[0], mask)
    with pytest.raises(ValueError) as loss:
        spectral_alignment_loss(s, t, mask)
    assert str(core.value) == str(loss.value)


def test_bool_int_and_float_masks_agree():
    """(Guard) the three accepted encodings of the same mask give the same numbers."""
    s, t = _pairs()
    mask = _mask()
    for fn in (lambda m: spectral_signature(s[0], m), *(lambda m, f=f: f(s, t, m) for f in FEATURE_LOSS_FUNCTIONS.values())):
        torch.manual_seed(0)
        reference = fn(mask)
        for other in (mask.bool(), mask.long(), mask.to(torch.int32), mask.double()):
            torch.manual_seed(0)
            torch.testing.assert_close(fn(other), reference)


# --------------------------------------------------------------------------------------------
# 3. complex tensors
# --------------------------------------------------------------------------------------------

def test_spectral_core_refuses_complex_hidden_states():
    hidden = torch.randn(B, L, 8, dtype=torch.complex64)
    for call in (lambda: spectral_signature(hidden), lambda: spectral_intensity(hidden),
                 lambda: SpectralAccumulator().update(hidden)):
        with pytest.raises(TypeError, match="hidden is complex"):
            call()
    with pytest.raises(TypeError, match="attention_mask is complex"):
        spectral_signature(torch.randn(B, L, 8), _mask().to(torch.complex64))


@pytest.mark.parametrize("name", ALL_LOSSES)
@pytest.mark.parametrize("who", ["student", "teacher"])
def test_losses_refuse_complex_hidden_states(name, who):
    s, t = _pairs()
    target = s if who == "student" else t
    target[1] = target[1].to(torch.complex64)
    with pytest.raises(TypeError, match=rf"{who}_hidden\[1\] is complex"):
        ALL_LOSSES[name](s, t, _mask())


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_losses_refuse_a_complex_mask(name):
    s, t = _pairs()
    with pytest.raises(TypeError, match="attention_mask is complex"):
        ALL_LOSSES[name](s, t, _mask().to(torch.complex64))


@pytest.mark.parametrize("who", ["student_logits", "teacher_logits"])
def test_logit_kd_refuses_complex_logits(who):
    logits = {"student_logits": torch.randn(3, 5), "teacher_logits": torch.randn(3, 5)}
    logits[who] = logits[who].to(torch.complex64)
    with pytest.raises(TypeError, match=f"{who} is complex"):
        logit_kd_loss(logits["student_logits"], logits["teacher_logits"], 2.0)
    s, t = _pairs()
    with pytest.raises(TypeError, match=f"{who} is complex"):
        _distill(s, t, None, logits=(logits["student_logits"], logits["teacher_logits"]))


# --------------------------------------------------------------------------------------------
# 4. temperature
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("temperature", [math.inf, -math.inf, math.nan, 0.0, -1.0])
def test_logit_kd_refuses_bad_temperatures(temperature):
    """``inf`` used to give a NaN loss (0 * inf); nan, 0 and negative values were already refused."""
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        logit_kd_loss(torch.randn(3, 5), torch.randn(3, 5), temperature)


# --------------------------------------------------------------------------------------------
# 5. NaN/Inf: refused at real tokens (like the spectral core), ignored at padded positions
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("name", ALL_LOSSES)
@pytest.mark.parametrize("who", ["student", "teacher"])
def test_losses_refuse_non_finite_hidden_states(name, who, bad):
    s, t = _pairs()
    (s if who == "student" else t)[1][0, 2, 1] = bad  # a real token
    with pytest.raises(ValueError, match=rf"{who}_hidden\[1\] contains 1 NaN/Inf") as error:
        ALL_LOSSES[name](s, t, _mask())
    assert isinstance(error.value, FloatingPointError)  # what the training loop reports
    with pytest.raises(ValueError, match=rf"{who}_hidden\[1\] contains 1 NaN/Inf"):
        ALL_LOSSES[name](s, t, None)


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_padded_positions_never_matter_even_nan(name):
    """The spectral core ignores padded tokens whatever they hold; so do the losses."""
    s, t = _pairs()
    mask = _mask()
    torch.manual_seed(0)
    clean = ALL_LOSSES[name](s, t, mask)
    s[0][2, 4, :] = math.nan  # padded (mask[2, 2:] = 0)
    t[1][1, 5, 0] = math.inf  # padded (mask[1, 4:] = 0)
    torch.manual_seed(0)
    dirty = ALL_LOSSES[name](s, t, mask)
    torch.testing.assert_close(dirty, clean)
    # the spectral core agrees: padding is not read
    torch.testing.assert_close(spectral_signature(s[0], mask), spectral_signature(s[0].nan_to_num(0.0), mask))


def test_padded_nan_gives_finite_gradients():
    s, t = _pairs()
    mask = _mask()
    s[0][2, 4, :] = math.nan
    student = [x.clone().requires_grad_() for x in s]
    spectral_alignment_loss(student, t, mask).backward()
    assert all(torch.isfinite(x.grad).all() for x in student)


@pytest.mark.parametrize("who", ["student_logits", "teacher_logits"])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_logit_kd_refuses_non_finite_logits(who, bad):
    logits = {"student_logits": torch.randn(3, 5), "teacher_logits": torch.randn(3, 5)}
    logits[who][1, 2] = bad
    with pytest.raises(ValueError, match=f"{who} contains 1 NaN/Inf") as error:
        logit_kd_loss(logits["student_logits"], logits["teacher_logits"], 2.0)
    assert isinstance(error.value, FloatingPointError)
    s, t = _pairs()
    for feature_loss in FEATURE_LOSSES:
        with pytest.raises(FloatingPointError, match=f"non-finite loss: {who} contains 1 NaN/Inf") as error:
            _distill(s, t, _mask(), feature_loss, logits=(logits["student_logits"], logits["teacher_logits"]))
        assert isinstance(error.value, ValueError)


def test_spectral_core_refuses_non_finite_hidden_states_as_before():
    """(Guard) the spectral core's behaviour that the losses now follow."""
    hidden = torch.randn(B, L, 8)
    hidden[0, 1, 2] = math.nan
    with pytest.raises(ValueError, match="NaN/Inf"):
        spectral_signature(hidden)


@pytest.mark.parametrize("loss", [
    lambda s, t, m, p: hidden_mse_loss(s, t, m, projections=p),
    lambda s, t, m, p: projected_spectral_alignment_loss(s, t, m, p),
])
def test_nan_projection_weights_are_named(loss):
    """Finite inputs but a diverged LayerProjections: the error says which projection."""
    s, t = _pairs()
    projections = LayerProjections(2, HS, HT)
    with torch.no_grad():
        projections.maps[1].weight.fill_(math.nan)
    with pytest.raises(FloatingPointError, match=r"LayerProjections output 1 contains .* lower the learning rate"):
        loss(s, t, _mask(), projections)
