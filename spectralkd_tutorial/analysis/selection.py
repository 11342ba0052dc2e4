"""Which teacher layers does the student copy? Strategies that return an explicit mapping.

A mapping is data (torchdistill style): a list of ``(student_layer, teacher_layer)`` pairs in
depth order, student layers numbered 1..L_S and teacher layers 1..L_T (``hidden_states``
convention: layer 0 is the embedding output and is not a candidate unless asked).

Strategies (the honest question is whether spectral choice beats the others):

* ``spectral-topk``  the K teacher layers of highest spectral intensity I_l, in depth order
* ``spectral-ends``  a first-a plus last-b block, a + b = K, maximising sum of I_l
                     (the paper's U-shape: the official code's CaiT-S24 ids 0, 1, 18-23 are timm blocks
                     counted from 0, i.e. blocks 1, 2, 19-24 = our layers 1, 2, 19-24)
* ``norm-topk``      the K teacher layers of largest activation RMS (the profile's ``rms``): the
                     baseline that asks whether the spectrum adds anything to the activation size
* ``uniform``        every k-th layer, k = L_T / K (TinyBERT, PKD-skip): l_i = round(i * L_T / K)
* ``last``           the last K layers (PKD-last)
* ``first``          the first K layers
* ``random``         K layers drawn with a seed, sorted
* ``reverse``        the uniform layers paired in reverse depth order (Yu et al. 2025)
* ``none``           no intermediate layers: logits-only KD
"""

from __future__ import annotations

import random as _random
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

from ..common.registered import RegisteredNames


@dataclass(frozen=True)
class LayerMapping:
    """What is distilled from where to where: ``pairs[i] = (student_layer, teacher_layer)``."""

    strategy: str
    pairs: tuple[tuple[int, int], ...]
    teacher_layers_total: int
    student_layers_total: int
    convention: str = "layer 0 = embeddings; layer l = output of block l (hidden_states[l])"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def teacher_layers(self) -> list[int]:
        return [t for _, t in self.pairs]

    @property
    def student_layers(self) -> list[int]:
        return [s for s, _ in self.pairs]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["pairs"] = [list(p) for p in self.pairs]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LayerMapping":
        return cls(
            strategy=data["strategy"],
            pairs=tuple((int(s), int(t)) for s, t in data["pairs"]),
            teacher_layers_total=int(data["teacher_layers_total"]),
            student_layers_total=int(data["student_layers_total"]),
            details=dict(data.get("details", {})),
        )

    def describe(self) -> str:
        if not self.pairs:
            return f"{self.strategy}: logits only (no intermediate layers)"
        body = ", ".join(f"S{s}<-T{t}" for s, t in self.pairs)
        return f"{self.strategy}: {body}"


def _candidates(num_teacher_layers: int, include_embeddings: bool) -> list[int]:
    return list(range(0 if include_embeddings else 1, num_teacher_layers + 1))


def _check(num_student_layers: int, num_teacher_layers: int, intensities: Sequence[float] | None,
           strategy: str, include_embeddings: bool, rms: Sequence[float] | None = None) -> None:
    chosen = get_strategy(strategy)
    if num_teacher_layers < 1:
        raise ValueError(f"num_teacher_layers={num_teacher_layers} must be >= 1")
    if num_student_layers < 1:
        raise ValueError(f"num_student_layers={num_student_layers} must be >= 1")
    available = num_teacher_layers + (1 if include_embeddings else 0)
    if num_student_layers > available:
        raise ValueError(
            f"the student has {num_student_layers} layers but only {available} teacher layers are candidates; "
            "use a shallower student or include_embeddings=True"
        )
    if chosen.needs_intensities:
        if intensities is None:
            raise ValueError(f"strategy {strategy!r} needs the teacher's per-layer intensities (run the profiler)")
        if len(intensities) != num_teacher_layers + 1:
            raise ValueError(
                f"intensities has {len(intensities)} values but a {num_teacher_layers}-layer teacher has "
                f"{num_teacher_layers + 1} (layer 0 = embeddings .. layer {num_teacher_layers}); pass profile.intensities"
            )
    if chosen.needs_rms:
        if rms is None:
            raise ValueError(f"strategy {strategy!r} needs the teacher's per-layer RMS (profile.rms); profiles saved "
                             "before the profiler recorded it have none: profile the teacher again")
        if len(rms) != num_teacher_layers + 1:
            raise ValueError(f"rms has {len(rms)} values but a {num_teacher_layers}-layer teacher has "
                             f"{num_teacher_layers + 1}; pass profile.rms")


# ---------------------------------------------------------------------------------------------
# The strategies: a registry name -> Strategy(function(candidates, k, total, scores, seed) ->
# (chosen teacher layers in depth order, details), and what select_layers must know about it).
# Adding one is one function plus one line; every list of names below follows the registry.
# ---------------------------------------------------------------------------------------------

Chooser = Callable[[list[int], int, int, "Sequence[float] | None", int], tuple[list[int], dict[str, Any]]]
RANKS_BY = ("intensities", "rms")  # the per-layer profile values a strategy may rank by


@dataclass(frozen=True)
class Strategy:
    """A registered strategy: its chooser and what :func:`select_layers` (and a grid) must know about it.

    ``ranks_by``: the profile values the chooser is given as ``scores`` (``"intensities"``: I_l, a
    spectral strategy; ``"rms"``: the activation RMS; ``None``: depth and seed only). ``reverse_pairs``:
    pair the chosen layers in reverse depth order. ``pairs_nothing``: no intermediate layers (logits-only
    KD). ``seeded``: the choice depends on the seed (a grid draws it again for every seed)."""

    name: str
    choose: Chooser
    ranks_by: str | None = None
    reverse_pairs: bool = False
    pairs_nothing: bool = False
    seeded: bool = False

    @property
    def needs_intensities(self) -> bool:
        return self.ranks_by == "intensities"

    @property
    def needs_rms(self) -> bool:
        return self.ranks_by == "rms"


#: name -> :class:`Strategy`, in registration order; filled by :func:`register_strategy`.
STRATEGY_REGISTRY: dict[str, Strategy] = {}


def register_strategy(name: str, *, ranks_by: str | None = None, reverse_pairs: bool = False,
                      pairs_nothing: bool = False, seeded: bool = False,
                      replace: bool = False) -> Callable[[Chooser], Chooser]:
    """Decorator: register a chooser under ``name`` (a grid's run folder is ``runs/<name>-seed<s>``, so
    the name is letters, digits, ``-`` and ``_``); the metadata is :class:`Strategy`'s. ``replace``:
    allow re-registering a name (e.g. when a notebook cell runs again). The function is returned unchanged."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
        raise ValueError(f"a strategy name is letters, digits, '-' and '_' (it names run folders), got {name!r}")
    if ranks_by not in (None, *RANKS_BY):
        raise ValueError(f"ranks_by={ranks_by!r}; choose None or one of {RANKS_BY}")

    def register(function: Chooser) -> Chooser:
        if name in STRATEGY_REGISTRY and not replace:
            raise ValueError(f"strategy {name!r} is already registered; pick another name or pass replace=True")
        STRATEGY_REGISTRY[name] = Strategy(name, function, ranks_by, reverse_pairs, pairs_nothing, seeded)
        return function

    return register


def get_strategy(name: str) -> Strategy:
    """The registered strategy ``name``; ``ValueError`` listing the registered names otherwise."""
    strategy = STRATEGY_REGISTRY.get(name) if isinstance(name, str) else None
    if strategy is None:
        raise ValueError(f"unknown strategy {name!r}; choose one of {list(STRATEGIES)}")
    return strategy


#: The registered names, and those ranking by I_l (spectral) or by the RMS: live views of the registry, so that
#: config checks and CLI choices holding them accept a strategy registered later.
STRATEGIES: Sequence[str] = RegisteredNames(STRATEGY_REGISTRY)
SPECTRAL_STRATEGIES: Sequence[str] = RegisteredNames(STRATEGY_REGISTRY, lambda strategy: strategy.needs_intensities)
RMS_STRATEGIES: Sequence[str] = RegisteredNames(STRATEGY_REGISTRY, lambda strategy: strategy.needs_rms)


def _top_k(candidates, k, total, scores, seed):
    ranked = sorted(candidates, key=lambda layer: (-float(scores[layer]), layer))
    return sorted(ranked[:k]), {}


def _ends(candidates, k, total, intensities, seed):
    """A first-a plus last-(k-a) block of layers maximising the total intensity (the U-shape)."""
    best: tuple[float, int] | None = None
    for a in range(0, k + 1):
        chosen = candidates[:a] + (candidates[len(candidates) - (k - a):] if k - a else [])
        score = sum(float(intensities[layer]) for layer in chosen)
        if best is None or score > best[0] + 1e-12:
            best = (score, a)
    a = best[1]
    return candidates[:a] + (candidates[len(candidates) - (k - a):] if k - a else []), {"first": a, "last": k - a}


def _uniform(candidates, k, total, intensities, seed):
    """l_i = round(i * L_T / K), i = 1..K: ends at the last layer (TinyBERT's g(m) = m * L_T / L_S)."""
    chosen = sorted({max(candidates[0], round(i * total / k)) for i in range(1, k + 1)})
    if len(chosen) < k:  # rounding collided (K close to L_T): fill with the first unused layers
        chosen = sorted(set(chosen) | set([c for c in candidates if c not in chosen][: k - len(chosen)]))
    return chosen, {}


def _last(candidates, k, total, intensities, seed):
    return candidates[-k:], {}


def _first(candidates, k, total, intensities, seed):
    return candidates[:k], {}


def _random_layers(candidates, k, total, intensities, seed):
    return sorted(_random.Random(seed).sample(candidates, k)), {"seed": seed}


def _no_layers(candidates, k, total, intensities, seed):
    return [], {}


register_strategy("spectral-topk", ranks_by="intensities")(_top_k)
register_strategy("spectral-ends", ranks_by="intensities")(_ends)
register_strategy("norm-topk", ranks_by="rms")(_top_k)  # the same ranking, fed the per-layer RMS instead of I_l
register_strategy("uniform")(_uniform)
register_strategy("last")(_last)
register_strategy("first")(_first)
register_strategy("random", seeded=True)(_random_layers)
register_strategy("reverse", reverse_pairs=True)(_uniform)
register_strategy("none", pairs_nothing=True)(_no_layers)


def select_layers(
    strategy: str,
    num_student_layers: int,
    num_teacher_layers: int,
    intensities: Sequence[float] | None = None,
    *,
    seed: int = 0,
    include_embeddings: bool = False,
    rms: Sequence[float] | None = None,
) -> LayerMapping:
    """Choose teacher layers for a ``num_student_layers`` student and pair them in depth order
    (``reverse`` pairs the uniform choice in reverse order; ``none`` pairs nothing). ``rms``: the
    per-layer activation RMS (``profile.rms``), which ``norm-topk`` ranks by."""
    _check(num_student_layers, num_teacher_layers, intensities, strategy, include_embeddings, rms)
    rule, k, total = STRATEGY_REGISTRY[strategy], num_student_layers, num_teacher_layers
    if rule.pairs_nothing:
        return LayerMapping(strategy, (), total, k)
    scores = rms if rule.needs_rms else intensities
    chosen, details = rule.choose(_candidates(total, include_embeddings), k, total, scores, seed)
    order = list(reversed(chosen)) if rule.reverse_pairs else chosen
    pairs = tuple((i + 1, t) for i, t in enumerate(order))
    if intensities is not None and len(intensities) == total + 1:
        details["chosen_intensity"] = sum(float(intensities[t]) for t in chosen)
    if rule.needs_rms:
        details["chosen_rms"] = sum(float(rms[t]) for t in chosen)
    return LayerMapping(strategy, pairs, total, k, details=details)


def all_mappings(num_student_layers: int, num_teacher_layers: int, intensities: Sequence[float] | None,
                 strategies: Sequence[str] = STRATEGIES, *, seed: int = 0,
                 rms: Sequence[float] | None = None) -> dict[str, LayerMapping]:
    """Every strategy's mapping (skipping those that rank by intensities when none are given, and by
    ``rms`` when no ``rms`` is)."""
    out = {}
    for strategy in strategies:
        rule = get_strategy(strategy)
        if (rule.needs_intensities and intensities is None) or (rule.needs_rms and rms is None):
            continue
        out[strategy] = select_layers(strategy, num_student_layers, num_teacher_layers, intensities, seed=seed, rms=rms)
    return out


def mapping_from_pairs(pairs: Sequence[Sequence[int]], num_student_layers: int, num_teacher_layers: int,
                       strategy: str = "manual") -> LayerMapping:
    """A hand-written mapping (TextBrewer's ``intermediate_matches``), validated."""
    clean = []
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"each pair must be (student_layer, teacher_layer), got {pair!r}")
        s, t = int(pair[0]), int(pair[1])
        if not 0 <= s <= num_student_layers:
            raise ValueError(f"student layer {s} out of range 0..{num_student_layers}")
        if not 0 <= t <= num_teacher_layers:
            raise ValueError(f"teacher layer {t} out of range 0..{num_teacher_layers}")
        clean.append((s, t))
    return LayerMapping(strategy, tuple(clean), num_teacher_layers, num_student_layers)
