"""Benchmarks that print figures (``spectralkd bench profiler|distill``). Ratios, measured in one run.

* profiler: time of the streaming profiler relative to a plain forward pass over the same batches
  (target <= 1.10x), and its peak memory for N and 10 N samples (target: within a few MB).
* distill: time per training step of spectral KD relative to logits-only KD on the same batches
  (target <= 1.15x).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Iterator

import torch

from ..common.errors import UsageError
from ..config.presets import PRESETS
from .flags import finite
from .options import setup_threads


def _texts(n: int) -> list[str]:
    from ..data import embedded_intents

    base = embedded_intents().train.texts
    return [base[i % len(base)] for i in range(n)]


def _batches(tokenizer, n: int, batch_size: int = 32) -> Iterator[dict]:
    texts = _texts(n)
    for i in range(0, n, batch_size):
        yield dict(tokenizer(texts[i : i + batch_size], padding=True, return_tensors="pt"))


def _bench_model(name: str):
    from ..models.loading import load_classifier

    if name == "tiny":  # 4 blocks x 256: small enough for any CPU, wide enough to be a transformer
        return load_classifier("tiny-roberta", num_labels=9, tiny_sizes=dict(num_layers=4, hidden_size=256, num_heads=4))
    return load_classifier(name, num_labels=151)


def _median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2]


@torch.no_grad()
def bench_profiler(samples: int = 256, repeats: int = 3, model_name: str = "tiny") -> dict:
    """Print and return the profiler/forward time ratio and the peak memory at N vs 10 N samples."""
    from ..analysis.spectral import SpectralProfiler

    model, tokenizer = _bench_model(model_name)
    model.eval()
    batches = list(_batches(tokenizer, samples))
    plain, profiled = [], []
    for _ in range(repeats):  # interleaved, so drift affects both
        start = time.perf_counter()
        for batch in batches:
            model(**batch)
        plain.append(time.perf_counter() - start)
        profiler = SpectralProfiler(model)
        start = time.perf_counter()
        for batch in batches:
            profiler.update(batch)
        profiler.result()
        profiled.append(time.perf_counter() - start)
    ratio = _median(profiled) / _median(plain)
    print(f"model {model_name}: {samples} samples in {len(batches)} batches, {repeats} repeats (median)")
    print(f"  plain forward      {_median(plain) * 1000:8.1f} ms")
    print(f"  streaming profiler {_median(profiled) * 1000:8.1f} ms   ratio {ratio:.3f}x (target <= 1.10x)")
    small = _peak_rss_mb(samples, model_name)
    large = _peak_rss_mb(10 * samples, model_name)
    print(f"  peak RSS, {samples:6d} samples: {small:8.1f} MB")
    print(f"  peak RSS, {10 * samples:6d} samples: {large:8.1f} MB   growth {large - small:+.1f} MB "
          f"({100 * (large - small) / small:+.2f}%, target within 5% / a few MB)")
    return {"ratio": ratio, "rss_small_mb": small, "rss_large_mb": large}


def _peak_rss_mb(samples: int, model_name: str) -> float:
    """Peak resident memory of a fresh process that profiles ``samples`` samples (streamed)."""
    code = (
        "import resource, torch, json\n"
        "from spectralkd_tutorial.cli.bench import _bench_model, _batches\n"
        "from spectralkd_tutorial.analysis.spectral import profile_model\n"
        f"model, tok = _bench_model({model_name!r})\n"
        f"profile = profile_model(model, _batches(tok, {samples}), progress=False)\n"
        "print(json.dumps({'rss': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, 'n': profile.num_samples}))\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    if data["n"] != samples:
        raise RuntimeError(f"profiled {data['n']} samples, expected {samples}")
    return data["rss"] / 1024.0


def bench_distill(steps: int = 30, repeats: int = 3, model_name: str | None = None, batch_size: int = 32) -> dict:
    """Print and return time per step of spectral KD / logits-only KD (same batches, same student)."""
    import copy

    from ..engine.batching import collate, encode_split
    from ..data import IntentSplit
    from ..losses import DistillationLossConfig, distillation_loss
    from ..models.loading import installed_minilm_dir, student_from_teacher
    from ..analysis.selection import select_layers

    if model_name is None:
        model_name = "sentence-transformers/all-MiniLM-L6-v2" if installed_minilm_dir() else "tiny"
    teacher, tokenizer = _bench_model(model_name)
    teacher.eval()
    total = teacher.config.num_hidden_layers
    k = max(1, total // 2)
    mapping = select_layers("uniform", k, total)
    base_student = student_from_teacher(teacher, mapping.teacher_layers)
    texts = _texts(steps * batch_size)
    encoded = encode_split(tokenizer, IntentSplit(texts, [0] * len(texts)), 64)
    batches = [collate(encoded, range(i * batch_size, (i + 1) * batch_size), tokenizer.pad_token_id)
               for i in range(steps)]
    for b in batches:
        b["labels"] = torch.randint(0, teacher.config.num_labels, (batch_size,))

    def run(feature_loss: str) -> float:
        student = copy.deepcopy(base_student).train()
        optimizer = torch.optim.AdamW(student.parameters(), lr=1e-5)
        config = DistillationLossConfig(feature_loss=feature_loss)
        need = feature_loss != "none"
        start = time.perf_counter()
        for batch in batches:
            inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
            with torch.no_grad():
                t_out = teacher(**inputs, output_hidden_states=need)
            s_out = student(**inputs, output_hidden_states=need)
            pairs = mapping.pairs if need else ()
            parts = distillation_loss(s_out.logits, t_out.logits, batch["labels"],
                                      [s_out.hidden_states[s] for s, _ in pairs] if need else None,
                                      [t_out.hidden_states[t] for _, t in pairs] if need else None,
                                      inputs["attention_mask"], config)
            parts["loss"].backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return (time.perf_counter() - start) / len(batches)

    run("none")  # warm-up
    logits_only, spectral = [], []
    for _ in range(repeats):
        logits_only.append(run("none"))
        spectral.append(run("spectral"))
    ratio = _median(spectral) / _median(logits_only)
    print(f"teacher {model_name} ({total} blocks) -> student {k} blocks, mapping {mapping.describe()}")
    print(f"  {steps} steps x batch {batch_size}, {repeats} repeats (median), threads {torch.get_num_threads()}")
    print(f"  logits-only KD  {_median(logits_only) * 1000:8.1f} ms/step")
    print(f"  spectral KD     {_median(spectral) * 1000:8.1f} ms/step   ratio {ratio:.3f}x (target <= 1.15x)")
    return {"ratio": ratio, "logits_only_ms": _median(logits_only) * 1000, "spectral_ms": _median(spectral) * 1000}


def bench_teacher(steps: int = 40, preset_name: str = "workshop", data_dir: str | None = None, *,
                  model: str | None = None, dataset: str | None = None, student_layers: int | None = None) -> dict:
    """Print seconds per fine-tuning step of the preset's teacher (or ``model``) on its real data
    (per-batch padding) and the epoch time that implies; compare with the wall time of `spectralkd
    teacher`. ``student_layers``: also time a student of that many blocks copied from it (``uniform``),
    the cost of one distillation step's student side."""
    from ..models.loading import load_classifier, num_blocks, student_from_teacher
    from ..config.presets import get_preset
    from ..analysis.selection import select_layers
    from ..pipelines.steps import load_data

    preset = get_preset(preset_name, **{k: v for k, v in (("teacher.model", model), ("data.dataset", dataset)) if v})
    if data_dir is not None:
        preset.data.data_dir = data_dir
    data = load_data(preset)
    teacher, tokenizer = load_classifier(preset.teacher.model, data.label_names)
    result = {"seconds_per_step": _time_steps(teacher, tokenizer, data, preset, steps, preset.teacher.model)}
    if student_layers:
        layers = select_layers("uniform", student_layers, num_blocks(teacher)).teacher_layers
        student = student_from_teacher(teacher, layers)
        result["student_seconds_per_step"] = _time_steps(student, tokenizer, data, preset, steps,
                                                         f"student of blocks {layers}")
    return result


def _time_steps(model, tokenizer, data, preset, steps: int, name: str) -> float:
    import math

    from ..engine.batching import collate, encode_split, epoch_order

    model.train()
    config = preset.teacher.train
    encoded = encode_split(tokenizer, data.train, preset.data.max_length)
    order = epoch_order(len(encoded), 0, 0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    timings = []
    for step in range(steps + 3):
        batch = collate(encoded, order[step * config.batch_size : (step + 1) * config.batch_size],
                        tokenizer.pad_token_id)
        start = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= 3:  # warm-up excluded
            timings.append(time.perf_counter() - start)
    per_step = _median(timings)
    per_epoch = per_step * math.ceil(len(encoded) / config.batch_size)
    print(f"{name} on {data.name} ({len(encoded)} train), batch {config.batch_size}, threads {torch.get_num_threads()}")
    print(f"  {per_step * 1000:.0f} ms/step (median of {steps}); one epoch = {per_epoch / 60:.1f} min; "
          f"{config.epochs:g} epochs = {config.epochs * per_epoch / 60:.1f} min (+ evaluation)")
    return per_step


def serve_config(student: str, *, config_path: str | None = None, preset_name: str | None = None,
                 dataset: str | None = None, data_dir: str | None = None):
    """The data settings ``bench serve`` scores on: ``config_path``, else the student's run config
    (``RUN/config.toml`` beside ``RUN/model``), else the preset; ``dataset``/``data_dir`` override."""
    from pathlib import Path

    from ..config.files import load_config
    from ..models.loading import model_directory
    from ..config.presets import get_preset

    run_config = model_directory(student).parent / "config.toml"
    path = config_path or (str(run_config) if run_config.is_file() else None)
    config = load_config(path) if path else get_preset(preset_name)
    overrides = {k: v for k, v in (("data.dataset", dataset), ("data.data_dir", data_dir)) if v}
    return (config.replace(**overrides) if overrides else config), (Path(path) if path else None)


def bench_serve(teacher: str, student: str, *, out: str | None = None, config_path: str | None = None,
                preset_name: str | None = None, dataset: str | None = None, data_dir: str | None = None,
                repeats: int = 5, queries: int = 64, teacher_int8: bool = True, torch_int8: bool = True,
                command: str | None = None) -> dict:
    """Print (and with ``out`` write ``serving.md``/``serving.json``) the serving table of a teacher and
    a student: PyTorch fp32, ONNX Runtime fp32 and int8, PyTorch int8, all timed interleaved in one run."""
    import tempfile
    from pathlib import Path

    from ..common.io import atomic_write_json, atomic_write_text
    from ..models.loading import load_model_dir, model_directory
    from ..pipelines.serving import require_serving
    from ..pipelines.shipping import serving_markdown, serving_record, shipped_variants, torch_variant
    from ..pipelines.steps import load_data

    require_serving("bench serve")
    config, source = serve_config(student, config_path=config_path, preset_name=preset_name, dataset=dataset,
                                  data_dir=data_dir)
    data = load_data(config)
    teacher_model, teacher_tok = load_model_dir(teacher)
    student_model, student_tok = load_model_dir(student)
    base_teacher = torch_variant("teacher", teacher_model, teacher_tok, model_directory(teacher))
    base_student = torch_variant("student", student_model, student_tok, model_directory(student))
    print(f"bench serve: teacher {teacher}, student {student}; {data.name} test ({len(data.test)}), "
          f"data settings from {source or 'the preset'}; {torch.get_num_threads()} thread(s)")
    calibration = dict(calibration_texts=data.train.texts, max_length=config.data.max_length)
    with tempfile.TemporaryDirectory() as tmp:
        variants = [base_teacher]
        if teacher_int8:
            variants += shipped_variants(base_teacher, Path(tmp) / "teacher", quantize=True, **calibration)
        variants += [base_student, *shipped_variants(base_student, Path(tmp) / "student", quantize=True,
                                                     torch_int8=torch_int8, **calibration)]
        record = serving_record(variants, data, max_length=config.data.max_length, repeats=repeats, queries=queries)
    for entry in record["variants"]:
        entry.pop("file", None)  # temporary files, gone with the run
    record.update(teacher_dir=str(teacher), student_dir=str(student), command=command)
    text = serving_markdown(record, command=command)
    print(text)
    if out is not None:
        atomic_write_json(Path(out) / "serving.json", record)
        atomic_write_text(Path(out) / "serving.md", text)
        print(f"wrote {Path(out) / 'serving.md'} and serving.json")
    return record


def cmd_serve(args) -> dict:
    """``spectralkd bench serve``: its flags checked, then :func:`bench_serve` (threads are set by the CLI's
    ``setup_threads``, as for every bench)."""
    if not (args.teacher and args.student):
        raise UsageError("bench serve needs --teacher DIR and --student DIR (save_pretrained directories or "
                         "run directories)")
    return bench_serve(args.teacher, args.student, out=args.out, config_path=args.config, preset_name=args.preset,
                       dataset=args.dataset, data_dir=args.data_dir, repeats=args.repeats, queries=args.samples,
                       command=args.command_line)


def add_parser(sub: argparse._SubParsersAction, formatter: type) -> None:
    """``bench`` on the ``spectralkd`` parser: each option says which benchmarks read it."""
    p = sub.add_parser("bench", help="benchmarks that print figures", formatter_class=formatter)
    p.add_argument("what", choices=["profiler", "distill", "teacher", "trainer", "serve"],
                   help="profiler: profiling overhead and memory; distill: spectral vs logits-only KD step time; "
                        "teacher: seconds per fine-tuning step and epoch; trainer: our fit vs transformers.Trainer "
                        "on the same work (MiniLM-L6, CLINC150 small, alternated runs, medians, accuracy); serve: "
                        "teacher vs student, ONNX and int8 variants (accuracy, size, latency at batch 1 and 32, "
                        "timed interleaved)")
    p.add_argument("--teacher", default=None, help="serve: the teacher's save_pretrained or run directory")
    p.add_argument("--student", default=None, help="serve: the student's (e.g. OUT of distill)")
    p.add_argument("--config", default=None, help="serve: data settings (default: the student run's config.toml)")
    p.add_argument("--out", default=None, help="serve: also write serving.md and serving.json here")
    p.add_argument("--preset", choices=PRESETS, default=None, help="teacher: whose teacher (default workshop)")
    p.add_argument("--data-dir", default=None, help="teacher: upstream data files (default: $SPECTRALKD_DATA_DIR)")
    p.add_argument("--model", default=None, help="profiler: 'tiny' (default) or a hub name / directory; teacher: "
                   "the model to time (default: the preset's teacher); trainer: default all-MiniLM-L6-v2")
    dataset = p.add_argument("--dataset", default=None, help="teacher: the data set (default: the preset's); "
                             "trainer: default clinc150:small")
    p.add_argument("--student-layers", type=finite(int), default=None, help="teacher: also time a student of "
                   "this many blocks copied from the model (uniform)")
    p.add_argument("--samples", type=finite(int), default=None, help="profiler: utterances profiled (default "
                   "256); serve: queries timed per pass (default 128, at least 32)")
    p.add_argument("--steps", type=finite(int), default=30, help="distill/teacher: timed training steps")
    p.add_argument("--repeats", type=finite(int), default=None, help="profiler/distill: repeats (default 3; the "
                   "median is printed); trainer: runs of each, alternated A/B/B/A (default 2); serve: timed passes "
                   "after a warm-up (default 7)")
    p.add_argument("--epochs", type=finite(float), default=None, help="trainer: epochs, a fraction runs short "
                   "(default 1)")
    p.add_argument("--max-steps", type=finite(int), default=None, help="trainer: optimizer steps (overrides --epochs)")
    p.add_argument("--threads", type=finite(int), default=None, help="CPU threads (default: $OMP_NUM_THREADS, "
                   "else every core but one; trainer: every core, for a quiet machine)")
    dataset.config_key = "data.dataset"  # --help lists each preset's data set
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    """Run one benchmark: its defaults filled in, its flags checked, the threads set."""
    serve = args.what == "serve"
    args.samples = args.samples if args.samples is not None else (128 if serve else 256)
    if args.repeats is None:
        args.repeats = {"trainer": 2, "serve": 7}.get(args.what, 3)
    if args.steps < 1 or args.repeats < 1 or args.samples < 1:
        raise UsageError("--steps, --repeats and --samples must be >= 1")
    if args.max_steps is not None and args.max_steps < 1:
        raise UsageError(f"--max-steps {args.max_steps}: give 1 or more optimizer steps")
    if args.epochs is not None and args.epochs <= 0:
        raise UsageError(f"--epochs {args.epochs}: give a positive number of epochs (0.1 = a tenth of one)")
    if args.what == "trainer":
        from .bench_trainer import DEFAULT_DATASET, DEFAULT_MODEL, bench_trainer
        from ..common.device import available_cores

        setup_threads(args.threads or available_cores())  # a benchmark: all the cores of a quiet machine
        bench_trainer(args.model or DEFAULT_MODEL, args.dataset or DEFAULT_DATASET, data_dir=args.data_dir,
                      epochs=args.epochs or 1.0, max_steps=args.max_steps, repeats=args.repeats)
        return 0
    setup_threads(args.threads)
    if args.what == "profiler":
        bench_profiler(samples=args.samples, repeats=args.repeats, model_name=args.model or "tiny")
    elif args.what == "serve":
        cmd_serve(args)
    elif args.what == "teacher":
        bench_teacher(steps=args.steps, preset_name=args.preset or "workshop", data_dir=args.data_dir,
                            model=args.model, dataset=args.dataset, student_layers=args.student_layers)
    else:
        bench_distill(steps=args.steps, repeats=args.repeats)
    return 0

