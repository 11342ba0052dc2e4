"""Sizing a condition before running it: runs x seconds, from the seconds other conditions recorded.

A student's training time grows with the optimisation steps and the student's depth; with the
teacher's hidden states read from the cache, the teacher costs one forward pass over the training
set (the cache) and not one per step. So, from a recorded *reference* condition with the same kind of
student (``random:KxH``, same width):

    per run   t = t_ref · (K / K_ref) · (N · E) / (N_ref · E_ref)        N: training utterances, E: epochs
    runs      R = seeds x distinct mappings (coinciding strategies are trained once; ``random`` counted
                  as distinct) + the tuning candidates (each one run of E_candidate epochs)
    teacher   its recorded fine-tuning seconds when its directory is gone (shared with another condition)
    cache     one forward pass ~ 1/3 of a training step: t_teacher / (3 · E_teacher)

The result is an estimate for the machine that recorded the reference (2 CPU cores), not a measurement.
"""

from __future__ import annotations

import statistics
from typing import Any, Callable

def _depth(config: dict[str, Any]) -> int | None:
    """K of a ``random:KxH`` or ``layers:K`` student."""
    spec = config["student"]["model"].split(":", 1)
    return int(spec[1].split("x")[0]) if len(spec) == 2 and spec[0] in ("random", "layers") else None


def _random_shape(config: dict[str, Any]) -> tuple[int, int] | None:
    model = config["student"]["model"]
    if not model.startswith("random:"):
        return None
    blocks, _, width = model.split(":", 1)[1].partition("x")
    return int(blocks), int(width)


def distinct_mappings(strategies: tuple[str, ...], known_layers: dict[str, list[list[int]]]) -> int:
    """How many students a seed trains: strategies choosing the same layers count once; ``random`` and
    strategies whose layers are not known yet count as distinct (an upper bound)."""
    seen: set[tuple[int, ...]] = set()
    count = 0
    for strategy in strategies:
        layers = known_layers.get(strategy)
        if strategy == "random" or not layers:
            count += 1
            continue
        key = tuple(layers[0])
        if key not in seen:
            seen.add(key)
            count += 1
    return count


def size_condition(condition, config: dict[str, Any], records: dict[str, dict[str, Any]],
                   train_size: Callable[[dict[str, Any]], int], teacher_ready: bool = False) -> dict[str, Any]:
    """The estimated cost of ``condition`` (a :class:`~spectralkd_tutorial.pipelines.study_plan.Condition` whose student
    config is ``config``) from the recorded ``records``; ``train_size(config)`` counts its training utterances."""
    shape = _random_shape(config)
    refs = [(name, r) for name, r in records.items() if shape and _random_shape(r["config"])
            and _random_shape(r["config"])[1] == shape[1] and not r.get("compare_to")]
    if not refs:
        raise ValueError(f"no recorded condition with a student like {condition.name}'s to size it from")
    ref_name, ref = refs[0]
    ref_shape = _random_shape(ref["config"])
    per_ref = statistics.fmean(r["seconds"] for r in ref["runs"] if not r.get("same_as"))
    n, n_ref = train_size(config), train_size(ref["config"])
    epochs = max((c.get("student.train.epochs", config["student"]["train"]["epochs"]) for c in condition.candidates),
                 default=config["student"]["train"]["epochs"])
    epochs_ref = ref["config"]["student"]["train"]["epochs"]

    def per_run(e: int) -> float:
        return per_ref * (shape[0] / ref_shape[0]) * (n * e) / (n_ref * epochs_ref)

    same_teacher = [r for r in records.values() if r["config"]["teacher"]["model"] == config["teacher"]["model"]
                    and r["dataset"] == config["data"]["dataset"] and r.get("teacher_seconds")]
    known = next((r["layers"] for r in same_teacher if _depth(r["config"]) == shape[0]), {})  # same teacher, depth
    per_seed = distinct_mappings(condition.strategies, known)
    runs = per_seed * len(condition.seeds)
    tuning = sum(per_run(c.get("student.train.epochs", epochs)) for c in condition.candidates)
    teacher = same_teacher[0]["teacher_seconds"] if same_teacher else 0.0
    cache = teacher / (3 * config["teacher"]["train"]["epochs"]) if teacher else 0.0
    students = runs * per_run(epochs) + tuning
    return {"condition": condition.name, "reference": ref_name, "per_run_seconds": per_run(epochs), "runs": runs,
            "runs_per_seed": per_seed, "epochs": epochs, "tuning_seconds": tuning, "student_seconds": students,
            "teacher_seconds": 0.0 if teacher_ready else teacher, "cache_seconds": cache,
            "total_seconds": students + cache + (0.0 if teacher_ready else teacher)}


def sizing_sentence(size: dict[str, Any]) -> str:
    """The estimate in words, for the reports."""
    teacher = (f" + the teacher's fine-tuning {size['teacher_seconds']:.0f} s (as recorded; needed again where the study directory lacks that teacher)"
               if size["teacher_seconds"] else "")
    return (f"{size['condition']} is defined and sized, not yet run: {size['runs']} student runs "
            f"({size['runs_per_seed']} distinct mappings x seeds) x about {size['per_run_seconds']:.0f} s "
            f"(scaled from {size['reference']}'s recorded runs to {size['epochs']} epochs) + tuning "
            f"{size['tuning_seconds']:.0f} s + the teacher cache about {size['cache_seconds']:.0f} s{teacher}: "
            f"about {size['total_seconds']:.0f} s ({size['total_seconds'] / 3600:.1f} h) on the 2 CPU cores that "
            "recorded the reference.")


__all__ = ["distinct_mappings", "size_condition", "sizing_sentence"]
