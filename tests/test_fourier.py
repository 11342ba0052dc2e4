"""Tests of spectralkd_tutorial.course.fourier against independent references (numpy.fft, torch.fft,
direct formulas), plus a test that chapter 1's own assert cells catch a sign-flipped DFT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from spectralkd_tutorial.course import fourier
from spectralkd_tutorial.course.fourier import (
    band_split,
    dft_matrix,
    magnitude,
    make_signal,
    naive_dft,
    naive_idft,
    one_sided_spectrum,
    parseval_sides,
    phase,
    phasor,
    time_dft_vs_fft,
    wind,
    winding_centre_of_mass,
)

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_fourier_intuition.ipynb"


# --------------------------------------------------------------------------------------------
# naive DFT
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 7, 16, 45, 64])
def test_naive_dft_matches_numpy_and_torch_real_and_complex(n):
    rng = np.random.default_rng(n)
    for x in (rng.standard_normal(n), rng.standard_normal(n) + 1j * rng.standard_normal(n)):
        X = naive_dft(x)
        assert X.dtype == np.complex128 and X.shape == (n,)
        np.testing.assert_allclose(X, np.fft.fft(x), atol=1e-10)
        np.testing.assert_allclose(X, torch.fft.fft(torch.from_numpy(x)).numpy(), atol=1e-10)


def test_naive_dft_batched_last_axis():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 12))
    np.testing.assert_allclose(naive_dft(x), np.fft.fft(x, axis=-1), atol=1e-10)


def test_naive_dft_accepts_lists_ints_and_tensors():
    np.testing.assert_allclose(naive_dft([1, 0, 0, 0]), np.ones(4))
    t = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    np.testing.assert_allclose(naive_dft(t), torch.fft.fft(t.detach()).numpy(), atol=1e-10)


def test_naive_dft_explicit_sum_small_case():
    # X_k = sum_n x_n exp(-2 pi i k n / N), written out for N = 3 without any library DFT
    x = np.array([1.0, 2.0, -1.0])
    w = np.exp(-2j * np.pi / 3)
    expected = [x[0] + x[1] + x[2], x[0] + x[1] * w + x[2] * w**2, x[0] + x[1] * w**2 + x[2] * w**4]
    np.testing.assert_allclose(naive_dft(x), expected, atol=1e-12)


def test_naive_idft_inverts():
    x = np.random.default_rng(1).standard_normal((4, 10)) + 1j
    np.testing.assert_allclose(naive_idft(naive_dft(x)), x, atol=1e-10)
    np.testing.assert_allclose(naive_idft(np.fft.fft(x)), np.fft.ifft(np.fft.fft(x)), atol=1e-10)


@pytest.mark.parametrize("bad", [[], np.zeros((3, 0)), 3.0])
def test_naive_dft_rejects_empty(bad):
    with pytest.raises(ValueError, match="at least one sample"):
        naive_dft(bad)


def test_naive_dft_rejects_non_numeric():
    with pytest.raises(TypeError, match="numeric"):
        naive_dft(["a", "b"])


def test_dft_matrix_is_unitary_up_to_sqrt_n():
    W = dft_matrix(12)
    np.testing.assert_allclose(W @ W.conj().T / 12, np.eye(12), atol=1e-12)


# --------------------------------------------------------------------------------------------
# phasor, winding, centre of mass
# --------------------------------------------------------------------------------------------

def test_phasor_formula_and_unit_length():
    k, n = np.meshgrid(np.arange(9), np.arange(9), indexing="ij")
    np.testing.assert_allclose(phasor(k, n, 9), np.exp(-2j * np.pi * k * n / 9), atol=1e-12)
    np.testing.assert_allclose(np.abs(phasor(2.5, np.arange(9), 9)), 1.0)
    assert np.isclose(phasor(1, 1, 4), -1j)  # a quarter turn clockwise


def test_phasor_accurate_for_large_n():
    N = 2**20
    n = np.array([N - 1])
    # exact angle -2 pi (N-1)^2 / N = -2 pi ((N-1)^2 mod N) / N = -2 pi / N
    np.testing.assert_allclose(phasor(N - 1, n, N), np.exp(-2j * np.pi / N), atol=1e-12)


@pytest.mark.parametrize("N", [0, -3, 2.5, True])
def test_phasor_rejects_bad_n(N):
    with pytest.raises(ValueError, match="positive integer"):
        phasor(1, 1, N)


def test_centre_of_mass_is_fft_over_n_integer_and_fractional_k():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(20)
    X = np.fft.fft(x)
    for k in range(20):
        assert np.isclose(winding_centre_of_mass(x, k), X[k] / 20)
    # fractional k: the DTFT at 2 pi k / N, summed independently
    n = np.arange(20)
    direct = np.sum(x * np.exp(-2j * np.pi * 2.5 * n / 20)) / 20
    assert np.isclose(winding_centre_of_mass(x, 2.5), direct)


def test_wind_points_and_batched_centre():
    x = np.array([1.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(wind(x, 1), [1, -1j, -1, 1j], atol=1e-12)
    batch = np.random.default_rng(4).standard_normal((3, 8))
    np.testing.assert_allclose(winding_centre_of_mass(batch, 2), np.fft.fft(batch)[:, 2] / 8, atol=1e-12)


def test_centre_of_mass_leaves_zero_only_at_signal_frequencies():
    x = make_signal(32, [(3, 1.0, 0.4), (5, 2.0, -1.0)])
    away = {k for k in range(32) if abs(winding_centre_of_mass(x, k)) > 1e-9}
    assert away == {3, 5, 27, 29}


# --------------------------------------------------------------------------------------------
# magnitude, phase, one-sided spectrum, Parseval
# --------------------------------------------------------------------------------------------

def test_magnitude_and_phase_match_numpy():
    X = np.fft.fft(np.random.default_rng(5).standard_normal(17))
    np.testing.assert_allclose(magnitude(X), np.abs(X))
    np.testing.assert_allclose(phase(X), np.angle(X))


def test_phase_tol_zeroes_noise_bins():
    X = np.array([1e-15 - 1e-15j, 2j])
    np.testing.assert_allclose(phase(X, tol=1e-9), [0.0, np.pi / 2])


@pytest.mark.parametrize("N", [16, 17])
def test_one_sided_recovers_amplitudes_dc_and_nyquist(N):
    x = make_signal(N, [(2, 1.5, 0.3), (5, 0.25, 1.0)], offset=0.7)
    if N % 2 == 0:
        x = x + 0.4 * (-1.0) ** np.arange(N)  # Nyquist tone: no mirror, must not be doubled
    A = one_sided_spectrum(x)
    assert A.shape == (N // 2 + 1,)
    expected = np.zeros(N // 2 + 1)
    expected[0], expected[2], expected[5] = 0.7, 1.5, 0.25
    if N % 2 == 0:
        expected[N // 2] = 0.4
    np.testing.assert_allclose(A, expected, atol=1e-10)


def test_one_sided_rejects_complex_but_accepts_real_valued_complex():
    with pytest.raises(ValueError, match="real signal"):
        one_sided_spectrum(np.ones(8) * 1j)
    np.testing.assert_allclose(one_sided_spectrum(np.ones(8) + 0j), one_sided_spectrum(np.ones(8)))


def test_parseval_sides_equal_and_match_definition():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 9)) + 1j * rng.standard_normal((3, 9))
    time_side, frequency_side = parseval_sides(x)
    np.testing.assert_allclose(time_side, np.sum(np.abs(x) ** 2, axis=-1))
    np.testing.assert_allclose(frequency_side, np.sum(np.abs(np.fft.fft(x)) ** 2, axis=-1) / 9)
    a, b = parseval_sides(make_signal(64, [(3, 1.0, 0.0), (7, 0.5, 0.7)]))
    assert isinstance(a, float) and np.isclose(a, 40.0) and np.isclose(b, 40.0)


# --------------------------------------------------------------------------------------------
# signals, band split, timing
# --------------------------------------------------------------------------------------------

def test_make_signal_formula():
    n = np.arange(10)
    expected = 0.5 + 2 * np.cos(2 * np.pi * 1.5 * n / 10 + 0.3) - np.cos(2 * np.pi * 4 * n / 10)
    np.testing.assert_allclose(make_signal(10, [(1.5, 2, 0.3), (4, -1, 0)], offset=0.5), expected)


@pytest.mark.parametrize("components", [[(1, 2)], [(1, 2, 3, 4)]])
def test_make_signal_rejects_bad_components(components):
    with pytest.raises(ValueError, match="triple"):
        make_signal(8, components)


def test_make_signal_rejects_bad_length():
    with pytest.raises(ValueError, match="positive integer"):
        make_signal(0)


def test_band_split_separates_tones():
    slow = make_signal(32, [(2, 1.0, 0.4)])
    fast = make_signal(32, [(11, 0.5, 1.0)])
    low, high = band_split(slow + fast, cutoff=4)
    np.testing.assert_allclose(low, slow, atol=1e-10)
    np.testing.assert_allclose(high, fast, atol=1e-10)
    low, high = band_split(torch.randn(3, 16), 16 // 2)
    np.testing.assert_allclose(high, 0.0, atol=1e-10)  # the whole band kept


@pytest.mark.parametrize("cutoff", [-1, 9, 1.5])
def test_band_split_rejects_bad_cutoff(cutoff):
    with pytest.raises(ValueError, match="cutoff"):
        band_split(np.ones(16), cutoff)


def test_time_dft_vs_fft():
    timings = time_dft_vs_fft([8, 32], repeats=2)
    np.testing.assert_array_equal(timings.sizes, [8, 32])
    assert (timings.naive_seconds > 0).all() and (timings.fft_seconds > 0).all()
    np.testing.assert_allclose(timings.speedup, timings.naive_seconds / timings.fft_seconds)
    with pytest.raises(ValueError, match="sizes"):
        time_dft_vs_fft([])
    with pytest.raises(ValueError, match="repeats"):
        time_dft_vs_fft([8], repeats=0)


# --------------------------------------------------------------------------------------------
# The notebook's assert cells must be able to fail.
#
# We run chapter 1's code cells (from the cell tagged "imports" through the cell tagged
# "check-dft") in a plain namespace; every cell tagged "check" is an assert cell, and we record
# which ones raise AssertionError. Unpatched, none may fail. With a hand-written DFT whose
# exponent has the wrong sign (it computes X_{-k}), the DFT-vs-numpy/torch cell must fail; with a
# phasor turning the wrong way, the winding cell must fail too. Parseval does not notice a sign
# flip (|X_{-k}| has the same energy), which is why the notebook compares against the libraries.
# --------------------------------------------------------------------------------------------

def _sign_flipped_dft(x):
    """X'_k = sum_n x_n exp(+2 pi i k n / N): the classic sign mistake (this is X_{-k})."""
    x = np.asarray(x).astype(np.complex128)
    n = np.arange(x.shape[-1])
    W = np.exp(+2j * np.pi * np.outer(n, n) / x.shape[-1])
    return np.einsum("kn,...n->...k", W, x)


def _run_chapter1_checks() -> set[str]:
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    namespace: dict = {"__name__": "__chapter1__"}
    failed: set[str] = set()
    started = False
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        tags = set(cell.metadata.get("tags", []))
        started = started or "imports" in tags
        if not started:
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        code = compile(source, f"<chapter 1 cell {sorted(tags)}>", "exec")
        if "check" in tags:
            try:
                exec(code, namespace)
            except AssertionError:
                failed |= tags - {"check", "hide-input"} or {"check"}
        else:
            exec(code, namespace)
        if "check-dft" in tags:
            return failed
    raise AssertionError("chapter 1 has no cell tagged 'check-dft' after the 'imports' cell")


@pytest.fixture()
def _quiet_figures(monkeypatch):
    # the animation cell renders every frame: make it a single frame to keep the test quick
    from spectralkd_tutorial.course import phasor_plots
    real_animation = phasor_plots.winding_animation
    monkeypatch.setattr(phasor_plots, "winding_animation", lambda signal, ks, **kw: real_animation(signal, [0], **kw))


def test_notebook_checks_pass_with_the_real_dft(_quiet_figures):
    assert _run_chapter1_checks() == set()


def test_notebook_checks_catch_a_sign_flipped_dft(monkeypatch, _quiet_figures):
    x = np.random.default_rng(0).standard_normal(8)
    assert not np.allclose(_sign_flipped_dft(x), np.fft.fft(x))  # the mutant really is wrong
    monkeypatch.setattr(fourier, "naive_dft", _sign_flipped_dft)
    failed = _run_chapter1_checks()
    assert "check-dft" in failed, failed
    assert "check-spectrum" in failed, failed  # the phase of the pi/4 tone comes out as -pi/4


def test_notebook_checks_catch_a_backwards_phasor(monkeypatch, _quiet_figures):
    real_phasor = fourier.phasor
    monkeypatch.setattr(fourier, "phasor", lambda k, n, N: np.conj(real_phasor(k, n, N)))
    failed = _run_chapter1_checks()
    assert {"check-winding", "check-dft"} <= failed, failed
