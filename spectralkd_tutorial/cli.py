"""``spectralkd`` command line: analyze, teacher, experiment, distill, demo, bench.

Every command takes ``--preset`` (default ``$SPECTRALKD_PRESET`` or ``quick``) and writes its results
to ``--out``. Run ``spectralkd <command> --help`` for the options.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from .presets import PRESETS, get_preset


def _add_common(parser: argparse.ArgumentParser, out_default: str | None = None) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="size of the run (default: $SPECTRALKD_PRESET or quick)")
    parser.add_argument("--data-dir", default=None,
                        help="directory with the upstream data files (default: $SPECTRALKD_DATA_DIR, else the hub)")
    parser.add_argument("--out", default=out_default, required=out_default is None, help="output directory")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _setup_threads() -> None:
    import torch

    if not torch.cuda.is_available() and os.environ.get("OMP_NUM_THREADS") is None:
        torch.set_num_threads(max(1, os.cpu_count() or 1))


def _is_vision(model_name: str) -> bool:
    config = Path(model_name) / "config.json"
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text()).get("model_type") in {"vit", "deit"}
    except (OSError, json.JSONDecodeError):
        return False


def cmd_analyze(args: argparse.Namespace) -> int:
    """Profile every layer of a model over a data source: intensity.json + intensity.png."""
    from .models import load_classifier
    from .pipeline import analysis_texts, analyze_model, load_preset_data, write_profile
    preset = get_preset(args.preset)
    model_name = args.model or preset.teacher
    if _is_vision(model_name):
        from .vision import analyze_vision_directory

        profile = analyze_vision_directory(model_name, samples=args.samples or preset.analysis_samples,
                                           progress=not args.no_progress)
    else:
        dataset = load_preset_data(preset, args.data_dir) if args.dataset is None else None
        if dataset is None:
            from .data import load_intent_dataset

            dataset = load_intent_dataset(args.dataset, variant=args.variant, data_dir=args.data_dir)
        model, tokenizer = load_classifier(model_name, dataset.label_names)
        texts = analysis_texts(dataset, args.samples or preset.analysis_samples, split=args.split)
        profile = analyze_model(model, tokenizer, texts, batch_size=preset.analysis_batch_size,
                                max_length=preset.max_length, model_name=str(model_name),
                                progress=not args.no_progress, dataset=dataset.name, split=args.split,
                                preset=preset.name)
    json_path, png_path = write_profile(profile, args.out)
    print(f"{profile.model_name}: {len(profile.layers)} layers ({profile.convention})")
    for layer in profile.layers:
        print(f"  layer {layer.layer:2d}  I = {layer.intensity:.5f}")
    print(f"wrote {json_path} and {png_path}")
    return 0


def cmd_teacher(args: argparse.Namespace) -> int:
    """Fine-tune the preset's teacher, evaluate it, and profile it (before and after)."""
    from .pipeline import analysis_texts, analyze_model, load_preset_data, train_teacher, write_profile
    from .models import load_classifier

    _setup_threads()
    preset = get_preset(args.preset)
    overrides = {}
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    if args.lr is not None:
        overrides["learning_rate"] = args.lr
    dataset = load_preset_data(preset, args.data_dir)
    print(f"teacher {preset.teacher} on {dataset.name} ({len(dataset.train)} train); preset {preset.name}")
    model, tokenizer, result = train_teacher(preset, args.out, dataset=dataset, progress=not args.no_progress,
                                             **overrides)
    test = result["metrics"]["test"]
    print("test:", json.dumps({k: round(v, 4) for k, v in test.items()}))
    texts = analysis_texts(dataset, preset.analysis_samples)
    profile = analyze_model(model, tokenizer, texts, batch_size=preset.analysis_batch_size,
                            max_length=preset.max_length, model_name=f"{preset.teacher} (fine-tuned)",
                            progress=not args.no_progress, dataset=dataset.name, preset=preset.name)
    write_profile(profile, args.out, stem="intensity")
    base, base_tok = load_classifier(preset.teacher, dataset.label_names)
    before = analyze_model(base, base_tok, texts, batch_size=preset.analysis_batch_size, max_length=preset.max_length,
                           model_name=f"{preset.teacher} (before fine-tuning)", progress=not args.no_progress,
                           dataset=dataset.name, preset=preset.name)
    write_profile(before, args.out, stem="intensity_before_finetuning")
    print("intensities after fine-tuning:", [round(v, 4) for v in profile.intensities])
    print(f"wrote {Path(args.out) / 'model'}, metrics.json, intensity.json/png")
    if args.publish:
        _publish(Path(args.out), Path(args.publish), ["metrics.json", "intensity.json", "intensity.png",
                                                      "intensity_before_finetuning.json", "intensity_before_finetuning.png"])
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from .experiment import ExperimentConfig, run_experiment

    _setup_threads()
    preset = get_preset(args.preset)
    config = ExperimentConfig.from_preset(preset, strategies=args.strategies, seeds=args.seeds,
                                          epochs=args.epochs, teacher_dir=args.teacher)
    report = run_experiment(config, args.out, data_dir=args.data_dir, progress=not args.no_progress)
    print(report["table_markdown"])
    print(report["conclusion"])
    print(f"wrote {Path(args.out) / 'results.json'}, results.md and plots")
    if args.publish:
        _publish(Path(args.out), Path(args.publish), ["results.md", "results.json", "ablation.png", "dynamics.png",
                                                      "mappings.png", "teacher_intensity.png", "teacher_intensity.json"])
    return 0


def _publish(source: Path, target: Path, names: Sequence[str]) -> None:
    """Copy result files (e.g. into assets/) atomically."""
    from .io import atomic_copy

    for name in names:
        if (source / name).exists():
            print(f"published {atomic_copy(source / name, target / name)}")


def cmd_demo(args: argparse.Namespace) -> int:
    """Analysis -> selection -> short distillation -> table, on the embedded default."""
    from .experiment import ExperimentConfig, run_experiment

    _setup_threads()
    preset = get_preset(args.preset or "quick")
    config = ExperimentConfig.from_preset(preset, seeds=args.seeds)
    report = run_experiment(config, args.out, data_dir=args.data_dir, progress=not args.no_progress)
    print(report["table_markdown"])
    print(f"wrote {args.out}")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    """The chapter-5 pipeline without Jupyter (teacher, analysis, students, comparison)."""
    from .end_to_end import run_end_to_end

    _setup_threads()
    preset = get_preset(args.preset)
    summary = run_end_to_end(preset, args.out, data_dir=args.data_dir, progress=not args.no_progress)
    print(summary["model_card_markdown"])
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    _setup_threads()
    if args.what == "profiler":
        bench.bench_profiler(samples=args.samples, repeats=args.repeats, model_name=args.model or "tiny")
    elif args.what == "teacher":
        bench.bench_teacher(steps=args.steps, preset_name=args.preset or "workshop", data_dir=args.data_dir)
    else:
        bench.bench_distill(steps=args.steps, repeats=args.repeats)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spectralkd", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("analyze", help="per-layer spectral intensities of a model (intensity.json/png)")
    _add_common(p)
    p.add_argument("--model", default=None, help="hub name or local directory (default: the preset's teacher)")
    p.add_argument("--dataset", default=None, help="intent data set (default: the preset's)")
    p.add_argument("--variant", default=None, help="CLINC150 variant")
    p.add_argument("--split", default="validation", choices=["train", "validation", "test"])
    p.add_argument("--samples", type=int, default=None, help="number of utterances/images (default: preset)")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("teacher", help="fine-tune and profile the preset's teacher")
    _add_common(p)
    p.add_argument("--epochs", type=float, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--publish", default=None, help="also copy metrics and intensity plots into this directory")
    p.set_defaults(func=cmd_teacher)

    p = sub.add_parser("experiment", help="the ablation grid: strategies x seeds, table and plots")
    _add_common(p)
    p.add_argument("--teacher", default=None, help="directory of a fine-tuned teacher (default: OUT/teacher, trained if missing)")
    p.add_argument("--strategies", nargs="+", default=None)
    p.add_argument("--seeds", nargs="+", type=int, default=None)
    p.add_argument("--epochs", type=float, default=None, help="student epochs (default: preset)")
    p.add_argument("--publish", default=None, help="also copy the table and figures into this directory (e.g. assets/workshop)")
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("demo", help="the whole pipeline on the embedded default in about a minute")
    _add_common(p, out_default="runs/demo")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("distill", help="chapter 5 end to end (use --preset full on a GPU)")
    _add_common(p)
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("bench", help="benchmarks that print figures")
    p.add_argument("what", choices=["profiler", "distill", "teacher"])
    p.add_argument("--preset", choices=sorted(PRESETS), default=None, help="teacher: whose teacher (default workshop)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--model", default=None, help="profiler: 'tiny' (default) or a hub name / directory")
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3)
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, TypeError) as error:
        print(f"spectralkd {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
