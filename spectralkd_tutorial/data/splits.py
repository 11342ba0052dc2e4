"""Split containers (:class:`IntentSplit`, :class:`IntentDataset`) and deterministic, stratified
sub-sampling and carving of held-out splits."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Sequence


@dataclass
class IntentSplit:
    """One split: ``texts[i]`` has label ``labels[i]`` (an index into ``label_names``)."""

    texts: list[str]
    labels: list[int]

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(
                f"IntentSplit: {len(self.texts)} texts but {len(self.labels)} labels; they must be parallel lists"
            )

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, indices: Iterable[int]) -> "IntentSplit":
        """A new split with the rows at ``indices`` (in that order)."""
        idx = list(indices)
        return IntentSplit([self.texts[i] for i in idx], [self.labels[i] for i in idx])

    def label_counts(self) -> Counter:
        """``Counter`` of label index -> number of rows."""
        return Counter(self.labels)


@dataclass
class IntentDataset:
    """An intent-classification data set with train/validation/test splits.

    ``name`` is one of :data:`DATASET_NAMES`, or for the user's data the training file's name or
    ``hf:ORG/NAME``; ``variant`` is the CLINC150 variant or the hub config (else ``None``);
    ``oos_label`` is the index of the out-of-scope class in ``label_names`` (``"oos"`` for CLINC150
    and the embedded set; the user's ``oos_label``), else ``None``.
    """

    name: str
    variant: str | None
    label_names: list[str]
    train: IntentSplit
    validation: IntentSplit
    test: IntentSplit
    oos_label: int | None
    source: str
    notes: str = ""

    def __post_init__(self) -> None:
        n = len(self.label_names)
        if len(set(self.label_names)) != n:
            dup = [k for k, c in Counter(self.label_names).items() if c > 1]
            raise ValueError(f"IntentDataset {self.name!r}: duplicate label names {dup[:5]}")
        if self.oos_label is not None and not (0 <= self.oos_label < n):
            raise ValueError(f"IntentDataset {self.name!r}: oos_label={self.oos_label} is not in 0..{n - 1}")
        for split_name, split in self.splits.items():
            bad = [y for y in split.labels if not (isinstance(y, int) and 0 <= y < n)]
            if bad:
                raise ValueError(f"IntentDataset {self.name!r}: {split_name} has label {bad[0]!r}, outside 0..{n - 1}")

    @property
    def num_labels(self) -> int:
        """Number of labels (``len(label_names)``)."""
        return len(self.label_names)

    @property
    def splits(self) -> dict[str, IntentSplit]:
        """``{"train": ..., "validation": ..., "test": ...}``."""
        return {"train": self.train, "validation": self.validation, "test": self.test}

    def subset(
        self,
        *,
        train: int | None = None,
        validation: int | None = None,
        test: int | None = None,
        seed: int = 0,
    ) -> "IntentDataset":
        """A deterministic, stratified sub-sample for quick runs (``None`` keeps a split whole).

        Each label gets a share of the requested size proportional to its frequency in the split
        (largest-remainder rounding, so rare labels may get none when the request is smaller than
        the number of labels); rows within a label are chosen with ``random.Random`` seeded by
        ``seed`` and the label. Kept rows stay in their original order. ``label_names`` and
        ``oos_label`` are unchanged.
        """
        wanted = {"train": train, "validation": validation, "test": test}
        new: dict[str, IntentSplit] = {}
        parts = []
        for split_name, split in self.splits.items():
            n = wanted[split_name]
            if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
                raise ValueError(f"subset: {split_name}={n!r} must be a non-negative int or None")
            if n is None or n >= len(split):
                new[split_name] = split.take(range(len(split)))
                continue
            new[split_name] = split.take(_stratified_sample(split.labels, n, seed, self.label_names, split_name))
            parts.append(f"{split_name}={n}")
        notes = self.notes
        if parts:
            notes = (notes + " " if notes else "") + f"Subsampled ({', '.join(parts)}, seed={seed}, stratified)."
        return IntentDataset(
            name=self.name,
            variant=self.variant,
            label_names=list(self.label_names),
            train=new["train"],
            validation=new["validation"],
            test=new["test"],
            oos_label=self.oos_label,
            source=self.source,
            notes=notes,
        )

    def summary(self) -> dict[str, Any]:
        """Counts per split, number of labels, out-of-scope counts (JSON-serialisable)."""
        splits: dict[str, Any] = {}
        for split_name, split in self.splits.items():
            counts = split.label_counts()
            n_oos = counts.get(self.oos_label, 0) if self.oos_label is not None else 0
            in_scope_counts = [c for y, c in counts.items() if y != self.oos_label]
            splits[split_name] = {
                "examples": len(split),
                "in_scope": len(split) - n_oos,
                "oos": n_oos,
                "labels_present": len(counts),
                "min_per_label": min(in_scope_counts) if in_scope_counts else 0,
                "max_per_label": max(in_scope_counts) if in_scope_counts else 0,
            }
        return {
            "name": self.name,
            "variant": self.variant,
            "num_labels": self.num_labels,
            "num_in_scope_labels": self.num_labels - (self.oos_label is not None),
            "oos_label": self.oos_label,
            "splits": splits,
            "total_examples": sum(s["examples"] for s in splits.values()),
            "source": self.source,
            "notes": self.notes,
        }


def _stratified_sample(labels: Sequence[int], n: int, seed: int, label_names: Sequence[str], tag: str) -> list[int]:
    """Indices of ``n`` rows, proportional per label (largest remainder), seeded per label; sorted."""
    by_label: dict[int, list[int]] = defaultdict(list)
    for i, y in enumerate(labels):
        by_label[y].append(i)
    total = len(labels)
    quotas = {y: n * len(ix) / total for y, ix in by_label.items()}
    take = {y: int(q) for y, q in quotas.items()}
    remainder = n - sum(take.values())
    # largest fractional part first; ties broken by label index (deterministic)
    for y in sorted(quotas, key=lambda y: (-(quotas[y] - take[y]), y))[:remainder]:
        take[y] += 1
    chosen: list[int] = []
    for y, ix in by_label.items():
        rng = random.Random(f"subset:{seed}:{tag}:{label_names[y]}")
        chosen.extend(rng.sample(ix, take[y]))
    return sorted(chosen)


def _carve_validation(
    split: IntentSplit,
    label_names: Sequence[str],
    seed: int,
    *,
    fraction: float | None = None,
    per_label: int | None = None,
) -> tuple[IntentSplit, IntentSplit]:
    """Split ``split`` into (train, validation), stratified by label and grouped by text.

    For each label, the distinct texts are shuffled with ``random.Random(f"{seed}:{label}")`` and
    taken in that order (all copies of a text together) until the label's quota is met: ``per_label``
    rows, or ``round(fraction * rows)`` (at least 1 and at most rows - 1 when the label has 2+ rows).
    A text that also occurs under another label in train stays in train. Both outputs keep the
    original row order.
    """
    rows_by_label: dict[int, dict[str, list[int]]] = defaultdict(dict)
    for i, (text, y) in enumerate(zip(split.texts, split.labels)):
        rows_by_label[y].setdefault(text, []).append(i)
    val_idx: list[int] = []
    for y in sorted(rows_by_label):
        groups = list(rows_by_label[y].values())
        n_rows = sum(len(g) for g in groups)
        if per_label is not None:
            quota = min(per_label, n_rows - 1) if n_rows > 1 else 0
        else:
            quota = int(round(fraction * n_rows)) if fraction is not None else 0
            quota = min(max(quota, 1), n_rows - 1) if n_rows > 1 else 0
        rng = random.Random(f"{seed}:{label_names[y]}")
        rng.shuffle(groups)
        taken = 0
        for g in groups:
            if taken >= quota:
                break
            if taken + len(g) > quota:
                continue  # a duplicated text that would overshoot: leave it in train
            val_idx.extend(g)
            taken += len(g)
    val_set = set(val_idx)
    # a text filed under two labels could otherwise end up on both sides: keep such rows in train
    train_texts = {t for i, t in enumerate(split.texts) if i not in val_set}
    val_set = {i for i in val_set if split.texts[i] not in train_texts}
    train_idx = [i for i in range(len(split)) if i not in val_set]
    return split.take(train_idx), split.take(sorted(val_set))




def _with_carved_validation(
    name: str,
    label_names: Sequence[str],
    full_train: IntentSplit,
    test: IntentSplit,
    seed: int,
    *,
    fraction: float | None = None,
    per_label: int | None = None,
    source: str,
    notes: str,
) -> IntentDataset:
    """A data set without an upstream validation split or an out-of-scope class: validation is carved
    from ``full_train`` by :func:`_carve_validation` (``fraction`` or ``per_label``), train is the rest."""
    train, validation = _carve_validation(full_train, label_names, seed, fraction=fraction, per_label=per_label)
    return IntentDataset(name=name, variant=None, label_names=list(label_names), oos_label=None,
                         train=train, validation=validation, test=test, source=source, notes=notes)
