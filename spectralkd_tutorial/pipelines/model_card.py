"""The model card of a distilled student: what it is, how good, how big, how fast, how it was made.

``model_card_markdown(record, config_toml)`` reads the plain record ``distill`` writes to
``metrics.json``, so a finished run's card can be written again without loading a model. The card
goes to ``OUT/model/README.md`` (the file a model hub shows) and ``OUT/model_card.md``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

from torch import nn

from ..common.metrics import headline
from ..models.loading import measure_latency

LATENCY_BATCHES = (1, 32)
WEIGHT_SUFFIXES = (".safetensors", ".bin")


def disk_size(directory: str | os.PathLike) -> dict[str, int]:
    """Bytes of a ``save_pretrained`` directory: everything (``total``) and the weights alone."""
    files = [f for f in Path(directory).iterdir() if f.is_file()]
    return {"total_bytes": sum(f.stat().st_size for f in files),
            "weights_bytes": sum(f.stat().st_size for f in files if f.suffix in WEIGHT_SUFFIXES)}


def latency_profile(model: nn.Module, tokenizer, texts: Sequence[str], *, device, max_length: int,
                    repeats: int = 5, queries: int = 64, batches: Sequence[int] = LATENCY_BATCHES) -> dict[str, float]:
    """Median ms per query at each batch size (``{"batch_1": ..., "batch_32": ...}``), warm-up excluded.

    The same ``queries`` texts (the given ones, repeated if there are fewer) at every batch size.
    """
    if not texts:
        raise ValueError("latency needs at least one text")
    pool = list(texts) * math.ceil(max(queries, max(batches)) / len(texts))
    chosen = pool[: max(queries, max(batches))]
    model.to(device)
    return {f"batch_{size}": measure_latency(model, tokenizer, chosen, repeats=repeats, max_length=max_length,
                                             device=device, batch_size=size, warmup=1)
            for size in batches}


def format_bytes(n: int | None) -> str:
    if n is None:
        return "n/a"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def format_count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def _pct(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}"


def metric_columns(test: dict[str, float]) -> list[tuple[str, str]]:
    """The data set's headline metrics: OOS-aware where it has an out-of-scope class."""
    if "in_scope_accuracy" in test:
        return [("in_scope_accuracy", "in-scope acc. (%)"), ("oos_recall", "OOS recall (%)"),
                ("overall_accuracy", "overall acc. (%)")]
    return [("accuracy", "accuracy (%)"), ("macro_f1", "macro-F1 (%)")]


def _row(name: str, entry: dict[str, Any], columns, retained: str, speedup: str) -> str:
    latency = entry["latency_ms"]
    scores = " | ".join(_pct(entry["metrics"]["test"].get(key)) for key, _ in columns)
    return (f"| {name} | {entry['blocks']} x {entry['width']} | {scores} | {retained} | "
            f"{format_count(entry['parameters'])} | {format_bytes(entry['weights_bytes'])} | "
            f"{latency['batch_1']:.2f} | {latency['batch_32']:.3f} | {speedup} |")


def _front_matter(record: dict[str, Any]) -> list[str]:
    return ["---", "library_name: transformers", "pipeline_tag: text-classification",
            "tags:", "- distillation", "- spectralkd", "- intent-classification", "---", ""]


def _speedups(entry: dict[str, Any]) -> str:
    return " | ".join(f"{entry['speedup'][f'batch_{b}']:.1f}x" for b in LATENCY_BATCHES)


def serving_table(serving: dict[str, Any], names: dict[str, str] | None = None) -> list[str]:
    """Markdown rows of a serving record (``shipping.serving_record``): one per variant, the teacher first."""
    names = names or {}
    entries = serving["variants"]
    columns = metric_columns(entries[0]["metrics"]["test"])
    header = ("| model | runtime | blocks x width | " + " | ".join(label for _, label in columns)
              + " | retained (%) | agrees with fp32 (%) | parameters | size on disk | ms/query, batch 1 "
              "| ms/query, batch 32 | speed-up, batch 1 | speed-up, batch 32 |")
    rows = [header, "|" + "---|" * (header.count("|") - 1)]
    for entry in entries:
        scores = " | ".join(_pct(entry["metrics"]["test"].get(key)) for key, _ in columns)
        agrees = _pct(entry["prediction_agreement"]) if "prediction_agreement" in entry else "-"
        latency = entry["latency_ms"]
        rows.append(f"| {names.get(entry['name'], entry['name'])} | {entry['runtime']} | {entry['blocks']} x "
                    f"{entry['width']} | {scores} | {_pct(entry['retained'])} | {agrees} | "
                    f"{format_count(entry['parameters'])} | {format_bytes(entry['weights_bytes'])} | "
                    f"{latency['batch_1']:.2f} | {latency['batch_32']:.3f} | {_speedups(entry)} |")
    return rows


def _results(record: dict[str, Any]) -> list[str]:
    teacher, student = record["teacher"], record["student"]
    if "serving" in record:
        return serving_table(record["serving"], {"teacher": f"teacher `{teacher['source']}`",
                                                 "student": "**student (this model)**"})
    columns = metric_columns(teacher["metrics"]["test"])
    header = ("| model | blocks x width | " + " | ".join(label for _, label in columns)
              + " | retained (%) | parameters | weights on disk | ms/query, batch 1 | ms/query, batch 32 | speed-up (batch 1) |")
    speedup = teacher["latency_ms"]["batch_1"] / student["latency_ms"]["batch_1"]
    return [header, "|" + "---|" * (header.count("|") - 1),
            _row(f"teacher `{teacher['source']}`", teacher, columns, "100", "1.0x"),
            _row("**student (this model)**", student, columns, _pct(record["retained"]), f"{speedup:.1f}x")]


def _how_made(record: dict[str, Any]) -> list[str]:
    student, mapping, loss = record["student"], record["mapping"], record["loss"]
    init = (f"initialised from teacher blocks {student['init_layers']} (`{student['init']}`)" if student["init_layers"]
            else f"`{student['model']}`")
    aligned = (f"aligned with teacher layers {mapping['teacher_layers']} (student layers {mapping['student_layers']})"
               if mapping["pairs"] else "logits only (no feature alignment)")
    return ["## How it was made", "",
            f"- Student {init}; {aligned}, chosen by `{mapping['strategy']}` from the teacher's spectral "
            "intensities (layer 0 = embeddings, layer l = output of block l).",
            f"- Loss: (1 - alpha) CE + alpha T^2 KL + beta L_feature with alpha = {loss['alpha']}, "
            f"T = {loss['temperature']}, beta = {loss['beta']}, feature loss `{loss['feature_loss']}`.",
            *([f"- Tokenization: {record['alignment']['statement']}"] if "alignment" in record else []),
            f"- {record['train']['epochs']} epochs, learning rate {record['train']['learning_rate']}, batch size "
            f"{record['train']['batch_size']}, seed {record['seed']}, {record['max_length']} tokens per query; "
            f"{record['seconds']:.0f} s of training on {record['device']}."]


def _shipped(record: dict[str, Any]) -> list[str]:
    """How the ONNX/int8 files load, when ``distill --export onnx`` wrote them."""
    if "serving" not in record:
        return []
    serving = record["serving"]
    files = [e["file"] for e in serving["variants"] if "file" in e]
    load = serving["load_average"]
    return [f"Timed interleaved (each pass runs every model in turn), {serving['threads']} thread(s), "
            f"{serving['latency_queries']} queries, median of {serving['repeats']} passes; 1-minute load average "
            f"{load['before']} -> {load['after']}. ONNX files: " + ", ".join(f"`{f}`" for f in files) + ".", "",
            "```python", "from spectralkd_tutorial.pipelines.serving import load_onnx_dir", "",
            f'model, tokenizer = load_onnx_dir("{Path(files[-1]).parent}", "{Path(files[-1]).name}")',
            'model(**tokenizer(["wake me up at seven"], return_tensors="pt")).logits', "```", ""]


def model_card_markdown(record: dict[str, Any], config_toml: str) -> str:
    """The card of one distilled student, from ``distill``'s record and the resolved config text."""
    data = record["dataset"]
    test_n = record["student"]["metrics"]["test"].get("n", "?")
    lines = _front_matter(record) + [
        f"# {record['name']}", "",
        f"An intent classifier with {data['num_labels']} labels, distilled from `{record['teacher']['source']}` "
        f"with spectralkd-tutorial on `{data['name']}`. Metrics on its test split ({test_n} utterances). "
        f"Retained = student / teacher {record['headline_metric'].replace('_', ' ')}. Latency: median milliseconds "
        f"per query over repeated runs (warm-up excluded) on {record['device']}, at batch size 1 and 32.", "",
        *_results(record), "",
        *_shipped(record),
        *_how_made(record), "",
        "## Use it", "", "```python", "from transformers import pipeline", "",
        f'classifier = pipeline("text-classification", model="{record["model_dir"]}")',
        'classifier("wake me up at seven", truncation=True)  # [{\'label\': ..., \'score\': ...}]', "```", "",
        "or `spectralkd predict --model DIR \"some text\"`.", "",
        "## Reproduce", "", "The command that made this model:", "", "```bash", record["command"], "```", "",
        "Its fully resolved config (`config.toml`; `spectralkd distill --config config.toml --out DIR` runs it again):",
        "", "```toml", config_toml.rstrip(), "```", ""]
    return "\n".join(lines)


def retained(student_test: dict[str, float], teacher_test: dict[str, float]) -> float:
    teacher = headline(teacher_test)
    return headline(student_test) / teacher if teacher else float("nan")


__all__ = ["disk_size", "format_bytes", "latency_profile", "metric_columns", "model_card_markdown", "retained",
           "serving_table"]
