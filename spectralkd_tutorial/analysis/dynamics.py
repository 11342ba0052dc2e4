"""Reading distillation runs: per-epoch histories, profile dynamics, and strategies that coincide.

``engine.training.fit`` records, per epoch, the running loss parts ``train_loss``, ``train_ce``,
``train_kd`` and ``train_feature`` (exponential moving averages, weight 0.1 per batch) and the
validation metrics; its ``DynamicsProfile`` callback (``grid.dynamics_samples > 0``) records the
student's per-layer spectral intensity ``I_l`` before training (epoch 0) and after every epoch. The paper's "distillation
dynamics" claim is that students move toward the teacher's profile, even in layers that were not
aligned. We measure the distance of a student's profile to the teacher's with

    c(0) = 0,  c(i) = t_i  (student block i started as teacher block t_i: the initialisation mapping)
    gap  = (1 / (L_S + 1)) * sum_{l=0..L_S} |I_s[l] - I_t[c(l)]| / I_t[c(l)]

i.e. the mean relative difference between each student layer and the teacher layer it was copied
from. The correspondence is the *initialisation* mapping, which every student of a grid shares, so
the gaps of different strategies are comparable (the aligned layers differ per strategy).

Layer numbering: layer 0 = embedding output, layer l = output of block l (``hidden_states[l]``).
"""

from __future__ import annotations

import statistics
from typing import Any, Mapping, Sequence

from matplotlib.figure import Figure

from ..common.metrics import headline

__all__ = ["history_rows", "plot_history", "profile_gap", "gap_curves", "plot_gap_curves", "coinciding_strategies"]

LOSS_PARTS = ("loss", "ce", "kd", "feature")


def history_rows(history: Sequence[Mapping[str, Any]], *, name: str | None = None) -> list[dict[str, Any]]:
    """One flat row per epoch: running loss parts at the epoch's end and the validation metrics.

    ``history`` is ``TrainResult.history`` (or a run's ``"history"`` in ``results.json``). Loss parts a
    run did not have (e.g. ``kd`` when fine-tuning without a teacher) are omitted; ``val_headline`` is
    in-scope accuracy when the data has out-of-scope queries, else accuracy.
    """
    rows = []
    for entry in history:
        if "epoch" not in entry:
            raise ValueError(f"history entry {dict(entry)!r} has no 'epoch'; pass TrainResult.history")
        row: dict[str, Any] = {"student": name} if name is not None else {}
        row["epoch"] = entry["epoch"]
        for part in LOSS_PARTS:
            if f"train_{part}" in entry:
                row[part] = float(entry[f"train_{part}"])
        validation = entry.get("validation")
        if validation:
            row["val_headline"] = float(headline(validation))
            if "oos_recall" in validation:
                row["val_oos_recall"] = float(validation["oos_recall"])
        rows.append(row)
    return rows


def plot_history(histories: Mapping[str, Sequence[Mapping[str, Any]]], *, title: str | None = None) -> Figure:
    """Per-epoch curves of several students: total and feature loss (left), validation headline (right)."""
    import matplotlib.pyplot as plt

    if not histories:
        raise ValueError("plot_history: no histories given")
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    for i, (name, history) in enumerate(histories.items()):
        rows = history_rows(history)
        epochs = [r["epoch"] for r in rows]
        color = f"C{i % 10}"
        left.plot(epochs, [r.get("loss", float("nan")) for r in rows], "-o", color=color, ms=3, label=f"{name}: total")
        if any(r.get("feature", 0.0) for r in rows):
            left.plot(epochs, [r["feature"] for r in rows], "--", color=color, label=f"{name}: feature part")
        if all("val_headline" in r for r in rows):
            right.plot(epochs, [100 * r["val_headline"] for r in rows], "-o", color=color, ms=3, label=name)
    left.set_xlabel("epoch")
    left.set_ylabel("running training loss")
    left.legend(fontsize=7)
    right.set_xlabel("epoch")
    right.set_ylabel("validation headline accuracy (%)")
    right.legend(fontsize=7)
    figure.suptitle(title or "per-epoch history (running loss parts at each epoch's end)", fontsize=10)
    figure.tight_layout()
    return figure


def _correspondence(num_student_layers: int, teacher_layers: Sequence[int]) -> list[int]:
    if len(teacher_layers) != num_student_layers - 1:
        raise ValueError(
            f"a profile of {num_student_layers} layers (embeddings + {num_student_layers - 1} blocks) needs "
            f"{num_student_layers - 1} initialisation teacher layers, got {list(teacher_layers)}"
        )
    return [0, *map(int, teacher_layers)]


def profile_gap(teacher_intensities: Sequence[float], student_intensities: Sequence[float],
                teacher_layers: Sequence[int]) -> float:
    """Mean relative difference between student layer l and teacher layer c(l) (see the module docstring).

    ``teacher_layers``: the teacher blocks the student's blocks were initialised from (1-based, in order).
    """
    c = _correspondence(len(student_intensities), teacher_layers)
    bad = [t for t in c if not 0 <= t < len(teacher_intensities)]
    if bad:
        raise ValueError(f"teacher layers {bad} are outside the teacher profile (layers 0..{len(teacher_intensities) - 1})")
    terms = [abs(float(s) - float(teacher_intensities[t])) / abs(float(teacher_intensities[t]))
             for s, t in zip(student_intensities, c)]
    return statistics.fmean(terms)


def gap_curves(runs: Sequence[Mapping[str, Any]], teacher_intensities: Sequence[float],
               teacher_layers: Sequence[int]) -> dict[str, dict[str, list[float]]]:
    """Per strategy: the profile gap after each recorded epoch, mean and std over seeds.

    ``runs`` are ``results.json``'s runs (each with ``"strategy"`` and ``"dynamics"``); runs without
    dynamics are skipped. Returns ``{strategy: {"epochs": [...], "mean": [...], "std": [...]}}``.
    """
    per_strategy: dict[str, list[list[tuple[float, float]]]] = {}
    for run in runs:
        if not run.get("dynamics"):
            continue
        points = [(float(d["epoch"]), profile_gap(teacher_intensities, d["intensities"], teacher_layers))
                  for d in run["dynamics"]]
        per_strategy.setdefault(run["strategy"], []).append(points)
    curves = {}
    for strategy, seeds in per_strategy.items():
        epochs = [e for e, _ in seeds[0]]
        if any([e for e, _ in points] != epochs for points in seeds):
            raise ValueError(f"runs of {strategy!r} recorded dynamics at different epochs; cannot average them")
        columns = list(zip(*[[g for _, g in points] for points in seeds]))
        curves[strategy] = {"epochs": epochs, "mean": [statistics.fmean(c) for c in columns],
                            "std": [statistics.stdev(c) if len(c) > 1 else 0.0 for c in columns]}
    return curves


def plot_gap_curves(curves: Mapping[str, Mapping[str, Sequence[float]]], *, title: str | None = None) -> Figure:
    """The profile gap over training, one line (mean ± std over seeds) per strategy."""
    import matplotlib.pyplot as plt

    from .viz import finish_curves

    figure, ax = plt.subplots(figsize=(7, 3.2))
    for i, (strategy, curve) in enumerate(curves.items()):
        mean = [100 * m for m in curve["mean"]]
        std = [100 * s for s in curve["std"]]
        ax.errorbar(curve["epochs"], mean, yerr=std, fmt="-o", ms=3, capsize=3, color=f"C{i % 10}",
                    ls="--" if strategy == "none" else "-", label=strategy)
    return finish_curves(
        figure, ax, xlabel="epoch (0 = before distillation)", ylabel="profile gap to the teacher (%)",
        title=title or "distillation dynamics: does the student's profile approach the teacher's?",
    )


def coinciding_strategies(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Groups of strategies that aligned exactly the same layer pairs with the same seed.

    Such runs train the same student from the same start with the same data order, so their results
    must be identical: a shallow teacher offers few choices, and strategies often agree. Returns
    ``[{"seed": s, "pairs": [[s_l, t_l], ...], "strategies": [...]}, ...]`` (groups of two or more).
    """
    groups: dict[tuple[int, tuple[tuple[int, int], ...]], list[str]] = {}
    for run in runs:
        key = (int(run["seed"]), tuple(tuple(int(x) for x in p) for p in run["mapping"]["pairs"]))
        groups.setdefault(key, []).append(run["strategy"])
    return [{"seed": seed, "pairs": [list(p) for p in pairs], "strategies": names}
            for (seed, pairs), names in sorted(groups.items()) if len(names) > 1]
