"""Layer-selection strategies against independent brute-force references.

Teacher layers are numbered 1..L (layer 0 = embeddings is not a candidate by default); a mapping
pairs student layer i (1..K) with the i-th chosen teacher layer, in depth order (reverse: reversed).
"""

from __future__ import annotations

import itertools
import random

import pytest

from spectralkd_tutorial.analysis.selection import (
    RMS_STRATEGIES,
    SPECTRAL_STRATEGIES,
    STRATEGIES,
    STRATEGY_REGISTRY,
    LayerMapping,
    all_mappings,
    get_strategy,
    mapping_from_pairs,
    register_strategy,
    select_layers,
)


def _intensities(num_teacher_layers: int, seed: int) -> list[float]:
    """Distinct random intensities for layers 0..L (no ties, so every optimum is unique)."""
    rng = random.Random(seed)
    return [rng.uniform(0.1, 1.0) for _ in range(num_teacher_layers + 1)]


def _u_shaped(num_teacher_layers: int) -> list[float]:
    mid = num_teacher_layers / 2
    return [1.0 + (layer - mid) ** 2 / 10 + 0.001 * layer for layer in range(num_teacher_layers + 1)]


def _brute_force_topk(intensities, k, candidates):
    best = max(itertools.combinations(candidates, k), key=lambda combo: sum(intensities[l] for l in combo))
    return sorted(best)


def _brute_force_ends(intensities, k, candidates):
    """Every split a + b = k: the first a candidates plus the last b; the best total wins."""
    options = []
    for a in range(k + 1):
        b = k - a
        chosen = list(candidates[:a]) + (list(candidates[-b:]) if b else [])
        options.append((sum(intensities[l] for l in chosen), a, chosen))
    return max(options)[2]


# --------------------------------------------------------------------------------------------
# every strategy: the common contract
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("student,teacher", [(1, 1), (2, 4), (3, 6), (4, 12), (6, 12), (12, 24), (5, 5)])
def test_every_strategy_returns_a_valid_mapping(strategy, student, teacher):
    intensities = _intensities(teacher, seed=student * 100 + teacher)
    rms = _intensities(teacher, seed=student * 100 + teacher + 1)
    mapping = select_layers(strategy, student, teacher, intensities, seed=3, rms=rms)
    assert isinstance(mapping, LayerMapping)
    assert mapping.strategy == strategy
    assert mapping.teacher_layers_total == teacher and mapping.student_layers_total == student
    if strategy == "none":
        assert mapping.pairs == ()
        return
    assert mapping.student_layers == list(range(1, student + 1))
    chosen = mapping.teacher_layers
    assert len(chosen) == student and len(set(chosen)) == student
    assert all(1 <= layer <= teacher for layer in chosen), chosen
    expected_order = sorted(chosen, reverse=(strategy == "reverse"))
    assert chosen == expected_order


def test_strategy_list_is_the_documented_one():
    assert set(STRATEGIES) == {"spectral-topk", "spectral-ends", "norm-topk", "uniform", "last", "first", "random",
                               "reverse", "none"}
    assert set(SPECTRAL_STRATEGIES) == {"spectral-topk", "spectral-ends"}
    assert set(RMS_STRATEGIES) == {"norm-topk"}


def test_the_lists_are_the_registry_read_by_its_metadata():
    assert tuple(STRATEGIES) == tuple(STRATEGY_REGISTRY)
    assert tuple(SPECTRAL_STRATEGIES) == tuple(n for n, s in STRATEGY_REGISTRY.items() if s.ranks_by == "intensities")
    assert tuple(RMS_STRATEGIES) == tuple(n for n, s in STRATEGY_REGISTRY.items() if s.ranks_by == "rms")
    assert [n for n, s in STRATEGY_REGISTRY.items() if s.pairs_nothing] == ["none"]
    assert [n for n, s in STRATEGY_REGISTRY.items() if s.reverse_pairs] == ["reverse"]
    assert [n for n, s in STRATEGY_REGISTRY.items() if s.seeded] == ["random"]
    assert repr(STRATEGIES) == repr(tuple(STRATEGY_REGISTRY)) and sorted(STRATEGIES) == sorted(STRATEGY_REGISTRY)


@pytest.fixture
def registered():
    """``registered(name, **metadata)``: a strategy picking the K lowest-scored layers, removed after the test."""
    names = []

    def register(name, **metadata):
        def lowest(candidates, k, total, scores, seed):  # the K lowest-scoring layers (or the first K unscored)
            ranked = sorted(candidates, key=lambda layer: (float(scores[layer]) if scores else 0.0, layer))
            return sorted(ranked[:k]), {}

        register_strategy(name, **metadata)(lowest)
        names.append(name)
        return name

    yield register
    for name in names:
        STRATEGY_REGISTRY.pop(name, None)


def test_a_new_strategy_follows_its_metadata(registered):
    intensities, rms = _intensities(8, 3), _intensities(8, 4)
    low = sorted(sorted(range(1, 9), key=lambda layer: intensities[layer])[:3])  # brute force: 3 lowest I_l
    name = registered("spectral-lowest", ranks_by="intensities")
    assert name in SPECTRAL_STRATEGIES and name in STRATEGIES and name not in RMS_STRATEGIES  # live views
    assert select_layers(name, 3, 8, intensities).teacher_layers == low
    with pytest.raises(ValueError, match="needs the teacher's per-layer intensities"):
        select_layers(name, 3, 8)
    assert name not in all_mappings(3, 8, None, list(STRATEGIES)) and name in all_mappings(3, 8, intensities, [name])
    backwards = registered("rms-lowest-reversed", ranks_by="rms", reverse_pairs=True)
    low_rms = sorted(sorted(range(1, 9), key=lambda layer: rms[layer])[:3])
    assert select_layers(backwards, 3, 8, rms=rms).pairs == tuple(zip((1, 2, 3), reversed(low_rms)))
    assert backwards in RMS_STRATEGIES and backwards not in SPECTRAL_STRATEGIES
    nothing = registered("nothing", pairs_nothing=True)
    assert select_layers(nothing, 3, 8).pairs == ()
    assert get_strategy(nothing).pairs_nothing and not get_strategy(name).pairs_nothing


def test_registering_is_checked(registered):
    name = registered("twice")
    with pytest.raises(ValueError, match="'twice' is already registered"):
        register_strategy("twice")(lambda *a: ([], {}))
    register_strategy("twice", replace=True, pairs_nothing=True)(lambda *a: ([], {}))
    assert get_strategy(name).pairs_nothing
    for bad in ("", "a/b", "../x", " x", 3):
        with pytest.raises(ValueError, match="a strategy name is letters, digits"):
            register_strategy(bad)
    with pytest.raises(ValueError, match="ranks_by='depth'"):
        register_strategy("x", ranks_by="depth")
    with pytest.raises(ValueError, match="unknown strategy 'x'; choose one of"):
        get_strategy("x")
    assert "x" not in STRATEGY_REGISTRY


@pytest.mark.parametrize("teacher", [4, 6, 12])
@pytest.mark.parametrize("seed", range(3))
def test_norm_topk_ranks_by_rms_not_by_intensity(teacher, seed):
    """norm-topk = brute-force best K by RMS; the intensities (here ranked the other way) play no part."""
    rms = _intensities(teacher, seed)
    intensities = [1.0 / v for v in rms]  # the opposite order: spectral-topk must pick differently
    candidates = list(range(1, teacher + 1))
    for k in range(1, teacher):
        mapping = select_layers("norm-topk", k, teacher, intensities, rms=rms)
        assert mapping.teacher_layers == _brute_force_topk(rms, k, candidates)
        assert mapping.details["chosen_rms"] == pytest.approx(sum(rms[t] for t in mapping.teacher_layers))
        assert mapping.teacher_layers != select_layers("spectral-topk", k, teacher, intensities).teacher_layers


def test_norm_topk_needs_the_rms():
    with pytest.raises(ValueError, match="per-layer RMS"):
        select_layers("norm-topk", 2, 4, [1.0] * 5)
    with pytest.raises(ValueError, match="rms has 3 values"):
        select_layers("norm-topk", 2, 4, [1.0] * 5, rms=[1.0] * 3)
    assert "norm-topk" not in all_mappings(2, 4, [1.0] * 5)  # skipped when no RMS is given
    assert all_mappings(2, 4, [1.0] * 5, rms=[0, 5, 1, 4, 2])["norm-topk"].teacher_layers == [1, 3]


# --------------------------------------------------------------------------------------------
# spectral strategies vs brute force
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("teacher", [4, 6, 8, 12])
@pytest.mark.parametrize("seed", range(4))
def test_spectral_topk_equals_brute_force(teacher, seed):
    intensities = _intensities(teacher, seed)
    candidates = list(range(1, teacher + 1))
    for k in range(1, teacher + 1):
        mapping = select_layers("spectral-topk", k, teacher, intensities)
        assert mapping.teacher_layers == _brute_force_topk(intensities, k, candidates), (k, intensities)


def test_spectral_topk_ignores_embeddings_unless_asked():
    intensities = [100.0, 1.0, 3.0, 2.0, 5.0]  # layer 0 is by far the largest
    assert select_layers("spectral-topk", 2, 4, intensities).teacher_layers == [2, 4]
    with_embeddings = select_layers("spectral-topk", 2, 4, intensities, include_embeddings=True)
    assert with_embeddings.teacher_layers == [0, 4]


@pytest.mark.parametrize("teacher", [3, 6, 12, 24])
@pytest.mark.parametrize("seed", range(4))
def test_spectral_ends_equals_brute_force_over_all_splits(teacher, seed):
    intensities = _intensities(teacher, seed)
    candidates = list(range(1, teacher + 1))
    for k in range(1, teacher + 1):
        mapping = select_layers("spectral-ends", k, teacher, intensities)
        expected = _brute_force_ends(intensities, k, candidates)
        assert mapping.teacher_layers == sorted(expected), (k, intensities)
        first, last = mapping.details["first"], mapping.details["last"]
        assert first + last == k
        assert mapping.teacher_layers == candidates[:first] + (candidates[-last:] if last else [])


def test_spectral_ends_finds_the_u_shape():
    # RoBERTa-large-like: 24 layers, energy at both ends -> a first block and a last block
    mapping = select_layers("spectral-ends", 12, 24, _u_shaped(24))
    layers = mapping.teacher_layers
    assert layers[0] == 1 and layers[-1] == 24
    assert mapping.details["first"] > 0 and mapping.details["last"] > 0
    assert mapping.details["chosen_intensity"] == pytest.approx(sum(_u_shaped(24)[l] for l in layers))


def test_spectral_strategies_need_intensities():
    for strategy in SPECTRAL_STRATEGIES:
        with pytest.raises(ValueError, match="intensities"):
            select_layers(strategy, 2, 4, None)


# --------------------------------------------------------------------------------------------
# the baselines
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("student,teacher,expected", [
    (3, 6, [2, 4, 6]),
    (12, 24, list(range(2, 25, 2))),
    (6, 12, [2, 4, 6, 8, 10, 12]),
    (4, 12, [3, 6, 9, 12]),
    (2, 4, [2, 4]),
    (1, 6, [6]),
    (6, 6, [1, 2, 3, 4, 5, 6]),
])
def test_uniform_is_every_kth_layer(student, teacher, expected):
    assert select_layers("uniform", student, teacher).teacher_layers == expected


@pytest.mark.parametrize("student,teacher", [(3, 6), (12, 24), (6, 12), (4, 12)])
def test_uniform_matches_tinybert_formula_when_divisible(student, teacher):
    step = teacher // student
    assert select_layers("uniform", student, teacher).teacher_layers == [step * i for i in range(1, student + 1)]


def test_last_and_first():
    assert select_layers("last", 3, 12).teacher_layers == [10, 11, 12]
    assert select_layers("first", 3, 12).teacher_layers == [1, 2, 3]
    assert select_layers("last", 6, 6).teacher_layers == [1, 2, 3, 4, 5, 6]
    assert select_layers("first", 2, 24).pairs == ((1, 1), (2, 2))


def test_random_is_seeded_sorted_and_reproducible():
    a = select_layers("random", 4, 24, seed=7)
    b = select_layers("random", 4, 24, seed=7)
    assert a.teacher_layers == b.teacher_layers
    assert a.teacher_layers == sorted(a.teacher_layers)
    assert a.details["seed"] == 7
    draws = {tuple(select_layers("random", 4, 24, seed=s).teacher_layers) for s in range(20)}
    assert len(draws) > 10, "different seeds should give different layers"
    # independent reference: the same stdlib draw
    assert a.teacher_layers == sorted(random.Random(7).sample(range(1, 25), 4))


def test_reverse_pairs_uniform_layers_in_reverse_order():
    forward = select_layers("uniform", 3, 6)
    backward = select_layers("reverse", 3, 6)
    assert backward.pairs == ((1, 6), (2, 4), (3, 2))
    assert sorted(backward.teacher_layers) == forward.teacher_layers
    assert backward.student_layers == [1, 2, 3]


def test_none_is_empty():
    mapping = select_layers("none", 3, 12)
    assert mapping.pairs == () and mapping.teacher_layers == [] and mapping.student_layers == []
    assert "logits only" in mapping.describe()


def test_all_mappings_covers_every_strategy():
    intensities, rms = _intensities(12, 0), _intensities(12, 1)
    mappings = all_mappings(4, 12, intensities, seed=1, rms=rms)
    assert list(mappings) == list(STRATEGIES)
    for name, mapping in mappings.items():
        assert mapping == select_layers(name, 4, 12, intensities, seed=1, rms=rms)
    without = all_mappings(4, 12, None)
    assert set(without) == set(STRATEGIES) - set(SPECTRAL_STRATEGIES) - set(RMS_STRATEGIES)


# --------------------------------------------------------------------------------------------
# invalid requests
# --------------------------------------------------------------------------------------------

def test_more_student_layers_than_teacher_layers_raises():
    with pytest.raises(ValueError, match=r"student has 7 layers but only 6"):
        select_layers("uniform", 7, 6)
    with pytest.raises(ValueError, match="include_embeddings"):
        select_layers("last", 13, 12)


def test_wrong_intensity_length_raises():
    with pytest.raises(ValueError, match=r"intensities has 12 values .* 13"):
        select_layers("spectral-topk", 3, 12, [1.0] * 12)
    with pytest.raises(ValueError, match="profile.intensities"):
        select_layers("spectral-ends", 3, 12, [1.0] * 14)


def test_unknown_strategy_raises_with_the_choices():
    with pytest.raises(ValueError, match="unknown strategy 'spectral'.*spectral-topk"):
        select_layers("spectral", 3, 12, [1.0] * 13)


@pytest.mark.parametrize("student,teacher", [(0, 12), (3, 0), (-1, 4)])
def test_non_positive_layer_counts_raise(student, teacher):
    with pytest.raises(ValueError, match=">= 1"):
        select_layers("uniform", student, teacher)


def test_mapping_from_pairs_validates():
    mapping = mapping_from_pairs([(1, 2), (2, 9), [3, 12]], 3, 12)
    assert mapping.pairs == ((1, 2), (2, 9), (3, 12)) and mapping.strategy == "manual"
    with pytest.raises(ValueError, match="student layer 4 out of range 0..3"):
        mapping_from_pairs([(4, 2)], 3, 12)
    with pytest.raises(ValueError, match="teacher layer 13 out of range 0..12"):
        mapping_from_pairs([(1, 13)], 3, 12)
    with pytest.raises(ValueError, match=r"\(student_layer, teacher_layer\)"):
        mapping_from_pairs([(1, 2, 3)], 3, 12)


# --------------------------------------------------------------------------------------------
# serialisation
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", STRATEGIES)
def test_layer_mapping_dict_roundtrip(strategy):
    import json

    mapping = select_layers(strategy, 3, 12, _intensities(12, 5), seed=2, rms=_intensities(12, 6))
    data = json.loads(json.dumps(mapping.to_dict()))  # survives JSON
    assert data["pairs"] == [list(p) for p in mapping.pairs]
    restored = LayerMapping.from_dict(data)
    assert restored == mapping
    assert restored.teacher_layers == mapping.teacher_layers
    assert "hidden_states" in data["convention"]


def test_describe_names_the_pairs():
    assert select_layers("uniform", 2, 4).describe() == "uniform: S1<-T2, S2<-T4"
