"""Intent-classification metrics (DESIGN.md section 5).

CLINC150 (151 labels, ``oos`` = out-of-scope):
    in-scope accuracy   = #{correct, y != oos} / #{y != oos}
    out-of-scope recall = #{pred == oos, y == oos} / #{y == oos}
    overall accuracy    = #{correct} / N
Other data sets: accuracy and macro-F1.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def intent_metrics(predictions: Sequence[int], labels: Sequence[int], *, oos_label: int | None = None,
                   num_labels: int | None = None) -> dict[str, float]:
    """Accuracy, macro-F1 and, with ``oos_label``, in-scope accuracy and out-of-scope recall."""
    from sklearn.metrics import f1_score

    pred = np.asarray(predictions)
    gold = np.asarray(labels)
    if pred.shape != gold.shape:
        raise ValueError(f"predictions ({pred.shape}) and labels ({gold.shape}) differ in length")
    if gold.size == 0:
        raise ValueError("no examples to evaluate")
    correct = pred == gold
    out: dict[str, float] = {"accuracy": float(correct.mean()), "n": int(gold.size)}
    label_set = list(range(num_labels)) if num_labels is not None else None
    out["macro_f1"] = float(f1_score(gold, pred, average="macro", labels=label_set, zero_division=0))
    if oos_label is not None:
        in_scope = gold != oos_label
        oos = ~in_scope
        out["in_scope_accuracy"] = float(correct[in_scope].mean()) if in_scope.any() else float("nan")
        out["oos_recall"] = float((pred[oos] == oos_label).mean()) if oos.any() else float("nan")
        out["overall_accuracy"] = out["accuracy"]
    return out


def headline(metrics: dict[str, float]) -> float:
    """The one number a table sorts by: in-scope accuracy when defined, else accuracy."""
    return metrics.get("in_scope_accuracy", metrics["accuracy"])
