"""The commands that make runs: ``analyze``, ``teacher``, ``experiment``, ``demo``, ``study`` and
``end-to-end`` (each resumable in its ``--out``; the work is :mod:`..pipelines`')."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..data.common import SPLITS
from .flags import add_settings
from .options import (add_data_options, add_distillation_options, add_run_options, add_training_options,
                      check_out, check_publish, output_store, publish, resolve_config, run_resolved,
                      setup_threads, write_config)


def add_parsers(sub: argparse._SubParsersAction, formatter: type) -> None:
    """``analyze``, ``teacher``, ``experiment``, ``demo``, ``study`` and ``end-to-end`` on the ``spectralkd`` parser."""
    p = sub.add_parser("analyze", help="per-layer spectral intensities of a model (intensity.json/png)", formatter_class=formatter)
    add_run_options(p)
    add_data_options(p)
    p.add_argument("--model", default=None, help="hub name or local directory (default: the preset's teacher)")
    p.add_argument("--split", default="validation", choices=list(SPLITS), help="split whose utterances are profiled")
    add_settings(p, ["analysis.samples"])
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("teacher", help="fine-tune, evaluate and profile a teacher", formatter_class=formatter)
    add_run_options(p)
    add_data_options(p)
    add_training_options(p, "teacher")
    add_settings(p, ["teacher.model"], "teacher", teacher_base="the model to fine-tune")
    p.add_argument("--publish", default=None, help="also copy metrics and intensity plots into this directory")
    p.set_defaults(func=cmd_teacher)

    p = sub.add_parser("experiment", help="the ablation grid: strategies x seeds, table and plots", formatter_class=formatter)
    add_run_options(p)
    add_data_options(p)
    add_training_options(p, "student")
    add_distillation_options(p, grid=True)
    p.add_argument("--keep-checkpoints", action="store_true", help="keep each run's last checkpoint")
    p.add_argument("--publish", default=None, help="also copy the table and figures into this directory (e.g. assets/workshop)")
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("demo", help="the whole pipeline on the embedded default in about a minute", formatter_class=formatter)
    add_run_options(p, out_default="runs/demo")
    add_data_options(p)
    add_training_options(p, "student")
    add_distillation_options(p, grid=True)
    p.set_defaults(func=cmd_demo, seeds=[0])

    p = sub.add_parser("study", help="where does the spectral choice matter? conditions x strategies x seeds",
                       formatter_class=formatter)
    add_run_options(p)
    p.add_argument("--conditions", nargs="+", default=None, help="run only these conditions (default: all of the preset's)")
    p.add_argument("--report-only", action="store_true", help="rebuild study.md, summary.md and forest.png from the "
                   "finished conditions in OUT/results.json; nothing is trained")
    p.add_argument("--publish", default=None, help="also copy results.json, study.md and the figures here (e.g. "
                   "assets/study); conditions already published there that OUT lacks are kept, not dropped")
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("end-to-end", help="chapter 5 end to end (use --preset full on a GPU)", formatter_class=formatter)
    add_run_options(p)
    add_data_options(p)
    p.set_defaults(func=cmd_end_to_end)


def cmd_analyze(args: argparse.Namespace) -> int:
    """Profile every layer of a model over a data source: intensity.json + intensity.png."""
    from dataclasses import asdict

    from ..models.loading import load_classifier
    from ..pipelines.steps import analysis_texts, data_settings, load_data, profile, write_profile
    from ..course.vision import analyze_vision_directory, is_vision_checkpoint

    config = resolve_config(args)
    setup_threads(args.threads)
    check_out(args.out)
    model_name = args.model or config.teacher.finetuned or config.teacher.model
    settings = {"model": str(model_name), "data": data_settings(config.data), "split": args.split,
                "analysis": asdict(config.analysis), "max_length": config.data.max_length}
    with output_store(args.out, "analysis", settings):
        if is_vision_checkpoint(model_name):
            result = analyze_vision_directory(model_name, samples=config.analysis.samples,
                                              progress=config.runtime.progress)
        else:
            dataset = load_data(config)
            model, tokenizer = load_classifier(model_name, dataset.label_names)
            texts = analysis_texts(dataset, config.analysis.samples, split=args.split)
            result = profile(model, tokenizer, texts, batch_size=config.analysis.batch_size,
                             max_length=config.data.max_length, model_name=str(model_name),
                             progress=config.runtime.progress, dataset=dataset.name, split=args.split,
                             preset=config.name)
        json_path, png_path = write_profile(result, args.out)
    print(f"{result.model_name}: {len(result.layers)} layers ({result.convention})")
    for layer in result.layers:
        print(f"  layer {layer.layer:2d}  I = {layer.intensity:.5f}")
    print(f"wrote {json_path} and {png_path}")
    return 0



def cmd_teacher(args: argparse.Namespace) -> int:
    """Fine-tune the teacher, evaluate it, and profile it before and after fine-tuning."""
    from ..engine.run_store import reopened
    from ..models.loading import load_classifier
    from ..pipelines.steps import load_data, profile_with_config, train_teacher, write_profile

    config = resolve_config(args)
    setup_threads(args.threads)
    check_out(args.out, "teacher")
    check_publish(args.publish)
    dataset = load_data(config)
    print(f"teacher {config.teacher.model} on {dataset.name} ({len(dataset.train)} train); preset {config.name}")
    teacher = train_teacher(config, args.out, dataset=dataset, overwrite=args.overwrite)
    with reopened(args.out):  # the files beside the teacher: locked, and listed as the tool's
        write_config(config, args.out)
        print("test:", json.dumps({k: round(v, 4) for k, v in teacher.test.items()}))
        after = profile_with_config(teacher.model, teacher.tokenizer, dataset, config,
                                    model_name=f"{config.teacher.model} (fine-tuned)")
        write_profile(after, args.out, stem="intensity")
        base, base_tokenizer = load_classifier(config.teacher.model, dataset.label_names)
        before = profile_with_config(base, base_tokenizer, dataset, config,
                                     model_name=f"{config.teacher.model} (before fine-tuning)")
        write_profile(before, args.out, stem="intensity_before_finetuning")
    print("intensities after fine-tuning:", [round(v, 4) for v in after.intensities])
    print(f"wrote {Path(args.out) / 'model'}, metrics.json, config.toml, intensity.json/png")
    if args.publish:
        publish(Path(args.out), Path(args.publish), ["metrics.json", "intensity.json", "intensity.png",
                                                      "intensity_before_finetuning.json", "intensity_before_finetuning.png"])
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    """The ablation grid: strategies x seeds, table and plots (resumable)."""
    from ..pipelines.experiment import PUBLISHED_FILES, recorded_config, run_experiment

    report = run_resolved(args, lambda config: run_experiment(config, args.out, overwrite=args.overwrite,
                                                               keep_checkpoints=args.keep_checkpoints), "experiment",
                           recorded_config)
    print(report.table_markdown)
    print(report.conclusion)
    print(f"wrote {Path(args.out) / 'results.json'}, results.md, config.toml and plots")
    if args.publish:
        publish(Path(args.out), Path(args.publish), PUBLISHED_FILES)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Analysis -> selection -> short distillation -> table, on the embedded default."""
    args.preset = args.preset or "quick"
    args.keep_checkpoints, args.publish = False, None
    return cmd_experiment(args)


def cmd_study(args: argparse.Namespace) -> int:
    """Conditions x strategies x seeds with paired statistics (resumable)."""
    from ..pipelines.study import PUBLISHED_FILES, run_study

    record = run_resolved(args, lambda config: run_study(config, args.out, conditions=args.conditions,
                                                          overwrite=args.overwrite, report_only=args.report_only,
                                                          keep_from=args.publish), "study")
    print((Path(args.out) / "study.md").read_text())
    if args.publish:
        names = list(PUBLISHED_FILES) + [f"mappings_{name}.png" for name in record["conditions"]]
        publish(Path(args.out), Path(args.publish), names)
    return 0


def cmd_end_to_end(args: argparse.Namespace) -> int:
    """The chapter-5 pipeline without Jupyter (teacher, analysis, students, comparison)."""
    from ..pipelines.end_to_end import run_end_to_end

    config = resolve_config(args)
    setup_threads(args.threads)
    check_out(args.out, "end-to-end")
    summary = run_end_to_end(config, args.out, overwrite=args.overwrite)
    print(summary["model_card_markdown"])
    return 0

