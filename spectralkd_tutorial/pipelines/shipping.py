"""The serving table: teacher, student and its shipped variants, scored and timed side by side.

Each variant (PyTorch float32, ONNX Runtime float32, ONNX Runtime int8, ...) is evaluated on the
test split with the teacher's metrics, compared with the float student it came from (share of equal
predictions, logit differences), and timed **interleaved**: every timed pass runs each variant once
in turn over the same queries, so a busy machine slows them alike and the speed-ups (teacher ms /
variant ms, at batch 1 and 32) stay fair. ``spectralkd distill --export onnx --quantize int8`` puts
the table in the model card; ``spectralkd bench serve`` writes it as ``serving.md``/``serving.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..engine.evaluation import split_metrics
from ..data import IntentDataset
from .inference import label_order
from ..common.metrics import headline
from .model_card import LATENCY_BATCHES, disk_size
from ..models.loading import count_parameters, hidden_width, num_blocks
from .serving import (INT8_FILE, ONNX_FILE, RECIPE_FILE, agreement, calibration_feeds, export_onnx, file_size,
                      load_onnx_dir, logits_of, quantize_int8, quantize_torch_int8)

AGREEMENT_TARGET = 0.99


@dataclass
class Variant:
    """One way to serve a model: what runs (``model``), how it is stored, and what it was derived from."""

    name: str
    runtime: str
    model: nn.Module
    tokenizer: Any
    weights_bytes: int | None
    blocks: int
    width: int
    parameters: int
    reference: str | None = None  # the float model whose predictions this one should reproduce
    extra: dict[str, Any] = field(default_factory=dict)


def torch_variant(name: str, model: nn.Module, tokenizer, directory: str | os.PathLike | None, **extra: Any) -> Variant:
    weights = disk_size(directory)["weights_bytes"] if directory is not None else None
    return Variant(name, "PyTorch fp32", model.eval(), tokenizer, weights, num_blocks(model), hidden_width(model),
                   count_parameters(model), extra=extra)


def shipped_variants(base: Variant, onnx_dir: str | os.PathLike, *, quantize: bool, torch_int8: bool = False,
                     threads: int | None = None, calibration_texts: Sequence[str] | None = None,
                     max_length: int = 128) -> list[Variant]:
    """Export ``base`` to ``onnx_dir`` (ONNX Runtime fp32), optionally its int8 version (ONNX Runtime
    dynamic quantization, activations smoothed on ``calibration_texts`` when given: the training
    utterances) and PyTorch's dynamic int8 (the alternative), each as a :class:`Variant`."""
    folder = Path(onnx_dir)
    export_onnx(base.model, base.tokenizer, folder)
    shape = dict(blocks=base.blocks, width=base.width, parameters=base.parameters, reference=base.name)
    onnx_model, tokenizer = load_onnx_dir(folder, ONNX_FILE, threads=threads)
    variants = [Variant(f"{base.name}-onnx", "ONNX Runtime fp32", onnx_model, tokenizer, file_size(folder / ONNX_FILE),
                        extra={"file": str(folder / ONNX_FILE)}, **shape)]
    if quantize:
        feeds = (calibration_feeds(base.tokenizer, calibration_texts, max_length=max_length)
                 if calibration_texts else None)
        quantize_int8(folder, calibration=feeds)
        recipe = json.loads((folder / RECIPE_FILE).read_text())
        int8, _ = load_onnx_dir(folder, INT8_FILE, threads=threads)
        smoothing = recipe["smoothing"]
        variants.append(Variant(f"{base.name}-int8", "ONNX Runtime int8", int8, tokenizer,
                                file_size(folder / INT8_FILE), **shape, extra={
                                    "file": str(folder / INT8_FILE), "quantized_products": len(recipe["quantized"]),
                                    "smoothing": None if smoothing is None else {
                                        "alpha": smoothing["alpha"], "calibration_texts": smoothing["calibration_texts"],
                                        "products": len(smoothing["nodes"])}}))
    if torch_int8:
        quantized = quantize_torch_int8(base.model)
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(quantized.state_dict(), Path(tmp) / "weights.pt")
            size = file_size(Path(tmp) / "weights.pt")
        variants.append(Variant(f"{base.name}-torch-int8", "PyTorch int8 (torch.ao dynamic)", quantized,
                                base.tokenizer, size, **shape))
    return variants


# ---------------------------------------------------------------------------------------------
# scoring and timing
# ---------------------------------------------------------------------------------------------

def _batches(tokenizer, texts: Sequence[str], batch_size: int, max_length: int) -> list[dict]:
    return [dict(tokenizer(list(texts[i : i + batch_size]), truncation=True, max_length=max_length, padding=True,
                           return_tensors="pt"))
            for i in range(0, len(texts), batch_size)]


@torch.no_grad()
def interleaved_latency(variants: Sequence[Variant], texts: Sequence[str], *, max_length: int, repeats: int = 5,
                        warmup: int = 1, batches: Sequence[int] = LATENCY_BATCHES) -> dict[str, dict[str, float]]:
    """Median ms per query of each variant at each batch size; within a pass the variants take turns."""
    if repeats < 1 or not texts:
        raise ValueError("interleaved_latency needs texts and repeats >= 1")
    result: dict[str, dict[str, float]] = {v.name: {} for v in variants}
    for size in batches:
        encoded = {id(v.tokenizer): _batches(v.tokenizer, texts, size, max_length) for v in variants}
        timings: dict[str, list[float]] = {v.name: [] for v in variants}
        for run in range(warmup + repeats):
            for variant in variants:
                start = time.perf_counter()
                for batch in encoded[id(variant.tokenizer)]:
                    variant.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
                if run >= warmup:
                    timings[variant.name].append((time.perf_counter() - start) * 1000 / len(texts))
        for name, values in timings.items():
            result[name][f"batch_{size}"] = sorted(values)[len(values) // 2]
    return result


def latency_texts(texts: Sequence[str], queries: int) -> list[str]:
    """``queries`` texts spread evenly over ``texts`` (repeated if there are fewer), at least one batch of 32."""
    count = max(queries, max(LATENCY_BATCHES))
    step = max(1, len(texts) // count)
    return [texts[(i * step) % len(texts)] for i in range(count)]


def score(variants: Sequence[Variant], dataset: IntentDataset, *, max_length: int, split: str = "test",
          batch_size: int = 64) -> dict[str, dict[str, Any]]:
    """Each variant's metrics on ``dataset.<split>`` and, where it has a reference, its agreement with it."""
    part = getattr(dataset, split)
    order = sorted(range(len(part)), key=lambda i: len(part.texts[i]))  # length-sorted: little padding
    texts = [part.texts[i] for i in order]
    logits: dict[str, torch.Tensor] = {}
    scored: dict[str, dict[str, Any]] = {}
    for variant in variants:
        values = torch.empty(len(texts), variant.model.config.num_labels)
        values[torch.tensor(order)] = logits_of(variant.model, variant.tokenizer, texts, max_length=max_length,
                                                batch_size=batch_size)
        logits[variant.name] = values
        mapping = label_order(variant.model, dataset, variant.name)
        predictions = values.argmax(-1) if mapping is None else torch.tensor(mapping)[values.argmax(-1)]
        scored[variant.name] = {"metrics": split_metrics(predictions, part.labels, dataset)}
        if variant.reference is not None and variant.reference in logits:
            scored[variant.name]["agreement"] = agreement(logits[variant.reference], values)
    return scored


def serving_record(variants: Sequence[Variant], dataset: IntentDataset, *, max_length: int, repeats: int = 5,
                   queries: int = 64, teacher: str = "teacher", scored: dict[str, dict[str, Any]] | None = None,
                   ) -> dict[str, Any]:
    """The serving table as data: one entry per variant (metrics, retained, sizes, latency, speed-up)."""
    load_before = os.getloadavg()
    scored = scored or score(variants, dataset, max_length=max_length)
    timed = interleaved_latency(variants, latency_texts(dataset.test.texts, queries), max_length=max_length,
                                repeats=repeats)
    base = next(v for v in variants if v.name == teacher)
    entries = []
    for variant in variants:
        test = scored[variant.name]["metrics"]
        latency = timed[variant.name]
        entries.append({"name": variant.name, "runtime": variant.runtime, "blocks": variant.blocks,
                        "width": variant.width, "parameters": variant.parameters,
                        "weights_bytes": variant.weights_bytes, "metrics": {"test": test},
                        "retained": headline(test) / headline(scored[teacher]["metrics"]),
                        "latency_ms": latency,
                        "speedup": {k: timed[base.name][k] / v for k, v in latency.items()},
                        **({"reference": variant.reference, **scored[variant.name]["agreement"]}
                           if "agreement" in scored[variant.name] else {}),
                        **variant.extra})
    return {"dataset": dataset.summary(), "split": "test", "max_length": max_length, "teacher": teacher,
            "headline_metric": "in_scope_accuracy" if "in_scope_accuracy" in entries[0]["metrics"]["test"]
            else "accuracy",
            "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "repeats": repeats,
            "latency_queries": len(latency_texts(dataset.test.texts, queries)),
            "load_average": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
            "variants": entries}


def best_fast_variant(record: dict[str, Any], *, speedup: float = 4.0, retained: float = 0.99) -> dict | None:
    """The most accurate variant at least ``speedup`` x faster than the teacher at every batch size and
    keeping ``retained`` of its headline metric; ``None`` when no variant gets there."""
    fits = [e for e in record["variants"] if e["name"] != record["teacher"] and e["retained"] >= retained
            and all(s >= speedup for s in e["speedup"].values())]
    return max(fits, key=lambda e: e["retained"], default=None)


def verdict(record: dict[str, Any], *, speedup: float = 4.0, retained: float = 0.99) -> str:
    """One sentence: which variant meets the speed-up and accuracy targets, or what stands in the way."""
    metric = record["headline_metric"].replace("_", " ")
    best = best_fast_variant(record, speedup=speedup, retained=retained)
    if best is not None:
        return (f"`{best['name']}` ({best['runtime']}) is {best['speedup']['batch_1']:.1f}x (batch 1) and "
                f"{best['speedup']['batch_32']:.1f}x (batch 32) faster than the teacher and keeps "
                f"{100 * best['retained']:.2f}% of its {metric}: it meets >= {speedup:g}x at >= {100 * retained:g}%.")
    others = [e for e in record["variants"] if e["name"] != record["teacher"]]
    fast = [e for e in others if all(s >= speedup for s in e["speedup"].values())]
    accurate = [e for e in others if e["retained"] >= retained]
    fastest = max(others, key=lambda e: min(e["speedup"].values()))
    most = max(others, key=lambda e: e["retained"])
    return (f"No variant is both >= {speedup:g}x faster at batch 1 and 32 and >= {100 * retained:g}% of the teacher's "
            f"{metric}: {len(fast)} reach the speed-up (fastest `{fastest['name']}`, "
            f"{min(fastest['speedup'].values()):.1f}x at its slower batch size, {100 * fastest['retained']:.2f}%), "
            f"{len(accurate)} the accuracy (best `{most['name']}`, {100 * most['retained']:.2f}%, "
            f"{min(most['speedup'].values()):.1f}x).")


def agreement_lines(record: dict[str, Any]) -> list[str]:
    """Each derived variant's agreement with its float model, against the 99% target."""
    return [_agreement_line(entry, record["split"]) for entry in record["variants"] if "prediction_agreement" in entry]


def _agreement_line(entry: dict[str, Any], split: str) -> str:
    share = entry["prediction_agreement"]
    verdict = "meets" if share >= AGREEMENT_TARGET else "MISSES"
    return (f"- `{entry['name']}` predicts like `{entry['reference']}` on {100 * share:.2f}% of the {split} utterances "
            f"({verdict} the {100 * AGREEMENT_TARGET:g}% target); largest logit difference "
            f"{entry['max_abs_logit_diff']:.3f}, mean {entry['mean_abs_logit_diff']:.4f}.")


def recipe_lines(record: dict[str, Any]) -> list[str]:
    """How each ONNX Runtime int8 variant was made (from its entry: products quantized, smoothing)."""
    lines = []
    for entry in record["variants"]:
        if "quantized_products" not in entry:
            continue
        smoothing = entry.get("smoothing")
        how = (f"activations smoothed first (SmoothQuant, alpha {smoothing['alpha']:g}, ranges from "
               f"{smoothing['calibration_texts']} training utterances)" if smoothing else "activations not smoothed")
        lines.append(f"- `{entry['name']}`: the weights of its {entry['quantized_products']} linear layers int8 (one "
                     f"scale per output channel), activations int8 on the fly, {how}; embeddings, attention "
                     "products and classifier in float32.")
    return lines


def serving_markdown(record: dict[str, Any], *, command: str | None = None) -> str:
    """``serving.md``: the table, the verdict, the agreement of each derived variant, how it was measured."""
    from .model_card import serving_table

    data, load = record["dataset"], record["load_average"]
    lines = [f"Serving on `{data['name']}` test ({record['variants'][0]['metrics']['test'].get('n', '?')} "
             f"utterances, {record['max_length']} tokens max). Latency: median ms per query over "
             f"{record['repeats']} passes of {record['latency_queries']} queries after a warm-up pass, the models "
             f"timed in turn within each pass; {record['threads']} thread(s) on a {record['cpu_count']}-core CPU, "
             f"1-minute load average {load['before']} before and {load['after']} after (other work on the machine "
             "slows every model alike; the speed-ups are ratios within the run). Speed-up = teacher ms / model ms. "
             "ONNX Runtime runs with denormal floats flushed to zero (`serving.flushed_denormals`).",
             "", *serving_table(record), "", verdict(record), "", *agreement_lines(record), *recipe_lines(record)]
    if command:
        lines += ["", "Regenerate (on a quiet machine for absolute numbers):", "", "```bash", command, "```"]
    return "\n".join(lines) + "\n"


__all__ = ["AGREEMENT_TARGET", "Variant", "agreement_lines", "best_fast_variant", "interleaved_latency", "latency_texts",
           "recipe_lines", "score", "serving_markdown", "serving_record", "shipped_variants", "torch_variant", "verdict"]
