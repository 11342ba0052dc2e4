"""Reading an intensity curve I_0..I_L: which layers are hot, and is it the paper's U?

    hot layers: I_l >= min_l I + 0.5 * (max_l I - min_l I)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ...analysis.spectral import SpectralProfile

__all__ = ["profile_shape"]


def _rank_correlation(values: Sequence[float]) -> float:
    ranks = np.argsort(np.argsort(np.asarray(values, dtype=float)))
    depth = np.arange(len(values))
    if len(values) < 2 or np.all(ranks == ranks[0]):
        return 0.0
    return float(np.corrcoef(depth, ranks)[0, 1])


def profile_shape(intensities: Sequence[float] | SpectralProfile) -> dict[str, Any]:
    """Which layers are hot, and is the curve a U (the paper's CaiT-S24 finding)?

    * hot layers: ``I_l >= min + 0.5 * (max - min)`` (upper half of the curve's range)
    * ``"U-shape"``: the minimum is an interior layer and both end layers exceed the interior mean
    * ``"rising"`` / ``"falling"``: Spearman rank correlation with depth >= 0.8 / <= -0.8
    * ``"peaked"``: the maximum is interior and both ends are below the interior mean
    * otherwise ``"mixed"``
    """
    values = np.asarray(intensities.intensities if isinstance(intensities, SpectralProfile) else intensities,
                        dtype=float)
    if values.ndim != 1 or len(values) < 3:
        raise ValueError(f"need an intensity per layer for at least 3 layers, got {values.shape}")
    low, high = float(values.min()), float(values.max())
    hot = [int(l) for l in np.flatnonzero(values >= low + 0.5 * (high - low))]
    interior = values[1:-1]
    interior_mean = float(interior.mean())
    rho = _rank_correlation(values)
    coldest, hottest = int(values.argmin()), int(values.argmax())
    last = len(values) - 1
    if 0 < coldest < last and values[0] > interior_mean and values[-1] > interior_mean:
        shape = "U-shape"
    elif rho >= 0.8:
        shape = "rising"
    elif rho <= -0.8:
        shape = "falling"
    elif 0 < hottest < last and values[0] < interior_mean and values[-1] < interior_mean:
        shape = "peaked"
    else:
        shape = "mixed"
    words = {
        "U-shape": "high at both ends and low in the middle (a U, like the paper's CaiT-S24)",
        "rising": "rising with depth (hottest layers at the end, not a U)",
        "falling": "falling with depth (hottest layers at the start, not a U)",
        "peaked": "highest in the middle (the opposite of a U)",
        "mixed": "neither a U nor monotone",
    }[shape]
    return {
        "shape": shape, "hot_layers": hot, "hottest": hottest, "coldest": coldest,
        "rank_correlation_with_depth": rho, "ends_over_interior": float((values[0] + values[-1]) / 2 / interior_mean)
        if interior_mean else float("inf"),
        "description": f"{words}; hot layers {hot} (hottest {hottest}, coldest {coldest})",
    }
