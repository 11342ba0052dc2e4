"""Model cards: what a distilled student is, how good, how big, how fast, how it was made.

``model_card_markdown(record, config_toml)`` reads the plain record ``distill`` writes to
``metrics.json``, so a finished run's card can be written again without loading a model. The card
goes to ``OUT/model/README.md`` (the file a model hub shows) and ``OUT/model_card.md``.
``end_to_end_card_markdown(summary)`` is chapter 5's card (the teacher beside every student and the
layers each strategy chose), read from ``summary.json``.
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
    """``125_000_000`` -> ``"125.0M"``; ``41_000`` -> ``"41.0k"``."""
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def format_percent(value: float | None) -> str:
    """``0.9734`` -> ``"97.34"`` (percent, two decimals); ``None`` or NaN -> ``"n/a"``."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}"


def format_layers(layers: Sequence[int]) -> str:
    """``[1, 2, 3, 5, 21, 22]`` -> ``"1-3, 5, 21-22"``."""
    values = sorted(int(v) for v in layers)
    if not values:
        return "none"
    parts, start, prev = [], values[0], values[0]
    for v in values[1:] + [None]:  # type: ignore[operator]
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(parts)


def metric_columns(test: dict[str, float]) -> list[tuple[str, str]]:
    """The data set's headline metrics: OOS-aware where it has an out-of-scope class."""
    if "in_scope_accuracy" in test:
        return [("in_scope_accuracy", "in-scope acc. (%)"), ("oos_recall", "OOS recall (%)"),
                ("overall_accuracy", "overall acc. (%)")]
    return [("accuracy", "accuracy (%)"), ("macro_f1", "macro-F1 (%)")]


def _scores(test: dict[str, float], columns) -> str:
    """The ``columns``' test scores in percent, as table cells."""
    return " | ".join(format_percent(test.get(key)) for key, _ in columns)


def _row(name: str, entry: dict[str, Any], columns, retained: str, speedup: str) -> str:
    latency = entry["latency_ms"]
    scores = _scores(entry["metrics"]["test"], columns)
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
        scores = _scores(entry["metrics"]["test"], columns)
        agrees = format_percent(entry["prediction_agreement"]) if "prediction_agreement" in entry else "-"
        latency = entry["latency_ms"]
        rows.append(f"| {names.get(entry['name'], entry['name'])} | {entry['runtime']} | {entry['blocks']} x "
                    f"{entry['width']} | {scores} | {format_percent(entry['retained'])} | {agrees} | "
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
            _row("**student (this model)**", student, columns, format_percent(record["retained"]),
                 f"{speedup:.1f}x")]


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


def end_to_end_card_markdown(summary: dict[str, Any]) -> str:
    """Chapter 5's card, from ``summary.json``: teacher vs students (accuracy, retained, parameters,
    latency, device) and the teacher layers each strategy chose."""
    teacher = summary["teacher"]
    lines = [
        f"# Model card: students distilled from {teacher['name']} (preset `{summary['preset']}`)", "",
        f"Teacher `{teacher['name']}` ({teacher['blocks']} blocks x {teacher['width']}, "
        f"{format_count(teacher['parameters'])} parameters), fine-tuned on "
        f"{summary['test_split'].rsplit(' test', 1)[0]}. Metrics on the {summary['test_split']}, one seed. "
        "Retained = student / teacher headline accuracy (in-scope accuracy where there is an out-of-scope class, "
        "else accuracy). Latency: median "
        "milliseconds per query at batch size 1. Spectral loss: L = (1-a) CE + a T^2 KL + b L_spec; "
        "'pooled' = teacher channels average-pooled to the student width (parameter-free), "
        "'projection' = a learned linear map from student to teacher width (training only, not in the parameters).",
        "", *_students_table(teacher, summary["students"])]
    if summary.get("missing_runs"):
        lines += ["", f"Not run yet: {', '.join(summary['missing_runs'])}."]
    lines += _layer_choice_table(summary["layer_choice"])
    if summary["plan"].get("notes"):
        lines += ["", f"Notes: {summary['plan']['notes']}"]
    return "\n".join(lines)


def _students_table(teacher: dict[str, Any], students: Sequence[dict[str, Any]]) -> list[str]:
    """The teacher's row and one per student (``summary.json``'s rows)."""
    columns = metric_columns(teacher["metrics"]["test"])
    header = ("| model | init / layers aligned | width | " + " | ".join(label for _, label in columns)
              + " | retained (%) | parameters | latency (ms/query) | speed-up | device |")
    lines = [header, "|" + "---|" * (header.count("|") - 1),
             f"| **teacher** {teacher['name']} | fine-tuned | {teacher['width']} | "
             f"{_scores(teacher['metrics']['test'], columns)} | 100 | {format_count(teacher['parameters'])} | "
             f"{teacher['latency_ms']:.2f} | 1.0x | {teacher['device']} |"]
    for row in students:
        init = f"teacher blocks {format_layers(row['init_layers'])}; " if row["init_layers"] else f"{row['student']}; "
        aligned = (f"{row['strategy']} {format_layers(row['teacher_layers'])}" if row["teacher_layers"]
                   else "logits only")
        lines.append(
            f"| {row['name']} ({row['label']}) | {init}{aligned} | {row['width']} | "
            f"{_scores(row['metrics']['test'], columns)} | {format_percent(row['retained'])} | "
            f"{format_count(row['parameters'])} | {row['latency_ms']:.2f} | {row['speedup']:.1f}x | {row['device']} |")
    return lines


def _layer_choice_table(choice: dict[str, Any]) -> list[str]:
    """The teacher layers every strategy chose for each student depth, beside the blog's choice."""
    lines = ["", "## Which teacher layers?", "",
             f"Layer 0 = embedding output, layer l = output of block l (hidden_states[l]); teacher has "
             f"{choice['teacher_blocks']} blocks. Chosen by `{choice['selection']}` from the teacher's spectral "
             "intensities, next to other strategies and the blog's RoBERTa-large choice (1-9 + 21-23 for a "
             "12-layer student).", ""]
    strategies = list(next(iter(choice["by_depth"].values()))["layers"]) if choice["by_depth"] else []
    header = "| student layers | " + " | ".join(strategies) + " | blog (1-9, 21-23) |"
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    for depth, entry in choice["by_depth"].items():
        blog = entry["blog"]
        blog_text = (f"{blog['overlap_count']} of {len(blog['blog'])} shared" if blog["comparable"]
                     else "not comparable (other depth)")
        lines.append(f"| {depth} | " + " | ".join(format_layers(entry["layers"][s]) for s in strategies)
                     + f" | {blog_text} |")
    return lines


def retained(student_test: dict[str, float], teacher_test: dict[str, float]) -> float:
    teacher = headline(teacher_test)
    return headline(student_test) / teacher if teacher else float("nan")


__all__ = ["disk_size", "end_to_end_card_markdown", "format_bytes", "format_count", "format_layers", "format_percent",
           "latency_profile", "metric_columns", "model_card_markdown", "retained", "serving_table"]
