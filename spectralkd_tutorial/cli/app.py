"""``spectralkd`` command line: analyze, teacher, distill, experiment, demo, end-to-end, predict, evaluate, bench.

Settings are resolved in one order, each value in one place: the preset (``--preset``, default
``$SPECTRALKD_PRESET`` or ``quick``) <- a TOML file (``--config``) <- flags. Every run writes its
fully resolved ``config.toml`` beside its results, so ``--config OUT/config.toml`` reproduces it.
Run ``spectralkd <command> --help`` for the options and their defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

from ..config.sections import TEACHER_CACHE_BUDGET_DEFAULT
from ..common.errors import SpectralKDError, UsageError
from ..config.presets import PRESETS, fine_tuning_defaults

# flag -> dotted config key (the role-dependent training keys are filled in per command)
DATA_FLAGS = {"dataset": "data.dataset", "data_dir": "data.data_dir", "train_file": "data.train_file",
              "validation_file": "data.validation_file", "test_file": "data.test_file",
              "text_column": "data.text_column", "label_column": "data.label_column", "oos_label": "data.oos_label",
              "split_seed": "data.split_seed", "max_length": "data.max_length"}
LOSS_FLAGS = {"feature_loss": "loss.feature_loss", "alpha": "loss.alpha", "temperature": "loss.temperature",
              "beta": "loss.beta", "strategies": "grid.strategies", "seeds": "grid.seeds",
              "student": "student.model", "student_init": "student.init"}
RUNTIME_FLAGS = {"device": "runtime.device", "mixed_precision": "runtime.mixed_precision",
                 "samples": "analysis.samples", "report_to": "runtime.report_to",
                 "teacher_cache": "runtime.teacher_cache", "teacher_cache_dtype": "runtime.teacher_cache_dtype",
                 "teacher_cache_budget": "runtime.teacher_cache_budget"}
CONFIG_KEYS = {**DATA_FLAGS, **LOSS_FLAGS, **RUNTIME_FLAGS, "teacher_base": "teacher.model"}
TRAIN_FLAGS = ("epochs", "lr", "batch_size")
PRESET_DEFAULT = re.compile(r"\(default: (the )?preset('s)?\)")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with every option's default: its value, or, for a setting the preset decides,
    each preset's value (read from ``presets.py``, so the help cannot drift from it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        key = getattr(action, "config_key", None) or CONFIG_KEYS.get(action.dest)
        if key and preset_values(key) == "None":
            key = None  # unset in every preset: nothing to show
        if key and action.default is None and (PRESET_DEFAULT.search(text) or "(default" not in text):
            values = f"(default: the preset's: {preset_values(key)})"
            return PRESET_DEFAULT.sub(values, text) if PRESET_DEFAULT.search(text) else f"{text} {values}"
        if "(default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def preset_values(key: str) -> str:
    """``"quick 4, workshop 1, full 4"`` (or one value when every preset agrees) of a dotted config key."""
    from ..config.presets import get_preset

    values = {}
    for name in PRESETS:
        node: Any = get_preset(name).to_dict()
        for part in key.split("."):
            node = node[part]
        values[name] = " ".join(map(str, node)) if isinstance(node, list) else str(node)
    if len(set(values.values())) == 1:
        return next(iter(values.values()))
    return ", ".join(f"{name} {value}" for name, value in values.items()).replace("%", "%%")


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------

def _finite(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} must be a finite number")
        return value

    parse.__name__ = kind.__name__
    return parse


def _add_run_options(parser: argparse.ArgumentParser, *, out_default: str | None = None) -> None:
    parser.add_argument("--preset", choices=PRESETS, default=None, help="named defaults (default: $SPECTRALKD_PRESET or quick)")
    parser.add_argument("--config", default=None, help="TOML file with the same keys (e.g. a run's OUT/config.toml); flags override it")
    parser.add_argument("--out", default=out_default, required=out_default is None, help="output directory")
    parser.add_argument("--overwrite", action="store_true", help="discard a run with other settings in --out")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=_finite(int), default=None, help="CPU threads per process (default: "
                        "$OMP_NUM_THREADS, else every core but one, left for the notebook and the browser)")
    parser.add_argument("--mixed-precision", choices=["no", "bf16", "fp16", "auto"], default=None,
                        help="GPU mixed precision: bf16, fp16, auto (bf16 where supported, else fp16) or no")
    parser.add_argument("--report-to", choices=["none", "tensorboard"], default=None,
                        help="also log losses, learning rate, metrics and layer intensities to OUT/.../tensorboard")
    parser.add_argument("--teacher-cache", choices=["auto", "memory", "disk", "off"], default=None,
                        help="where the grid keeps the teacher's outputs (auto: on disk under --out; off: run it online)")
    parser.add_argument("--teacher-cache-dtype", choices=["float16", "bfloat16", "float32"], default=None,
                        help="precision the teacher cache stores hidden states in (default: float16)")
    parser.add_argument("--teacher-cache-budget", type=_finite(float), default=None, metavar="GB",
                        help="largest teacher cache; above it the teacher runs online (default: "
                             f"{TEACHER_CACHE_BUDGET_DEFAULT})")


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", "--data", dest="dataset", default=None,
                       help="clinc150[:full|small|imbalanced|plus], banking77, hwu64, snips, embedded, a CSV/TSV/JSONL/"
                            "Parquet file (split with --split-seed), or hf:ORG/NAME (default: the preset's)")
    group.add_argument("--data-dir", default=None, help="upstream files of the named sets (default: $SPECTRALKD_DATA_DIR, else the hub)")
    group.add_argument("--train-file", default=None, help="the user's training file (with --validation-file/--test-file)")
    group.add_argument("--validation-file", default=None, help="the user's validation file (with --train-file)")
    group.add_argument("--test-file", default=None, help="the user's test file (with --train-file)")
    group.add_argument("--text-column", default=None, help="text column of the user's files (default: text)")
    group.add_argument("--label-column", default=None, help="label column of the user's files (default: label)")
    group.add_argument("--oos-label", default=None, help="the out-of-scope label: turns on in-scope accuracy / OOS recall")
    group.add_argument("--split-seed", type=_finite(int), default=None, help="seed of the split of a single file (default 0)")
    group.add_argument("--max-length", type=_finite(int), default=None, help="tokens per utterance (default: preset)")


def _add_training_options(parser: argparse.ArgumentParser, role: str) -> None:
    group = parser.add_argument_group(f"{role} training")
    for flag, kind, what, key in (("--epochs", float, "epochs", "epochs"), ("--lr", float, "learning rate", "learning_rate"),
                                  ("--batch-size", int, "batch size", "batch_size")):
        action = group.add_argument(flag, type=_finite(kind), default=None, help=f"{role} {what} (default: preset)")
        action.config_key = f"{role}.train.{key}"
    parser.set_defaults(role=role)


def _add_distillation_options(parser: argparse.ArgumentParser, *, grid: bool) -> None:
    group = parser.add_argument_group("distillation")
    group.add_argument("--teacher", default=None, help="a fine-tuned classifier (directory or hub name), used as is")
    group.add_argument("--teacher-base", default=None, help="a model to fine-tune first as the teacher (default: preset)")
    group.add_argument("--student", default=None, help="layers:K (K blocks copied from the teacher), random:KxH "
                       "(K fresh blocks H wide) or a smaller pretrained model")
    group.add_argument("--student-init", default=None, help="strategy choosing the blocks a layers:K student copies")
    if grid:
        group.add_argument("--strategies", nargs="+", default=None, help="layer-selection strategies (default: preset)")
        group.add_argument("--seeds", nargs="+", type=_finite(int), default=None, help="seeds (default: preset)")
    else:
        group.add_argument("--strategy", default=None, help="layer-selection strategy choosing the teacher layers the "
                           "student aligns with (default: the config's one strategy, else spectral-ends)")
        group.add_argument("--seed", type=_finite(int), default=None, help="seed of the student's data order and "
                           "dropout (default: the config's first seed, 0 in every preset)")
    group.add_argument("--feature-loss", default=None, help="spectral, mse, projection, spectral-projection "
                       "(token by token), pooled-spectral (per sentence: any student tokenizer), none")
    group.add_argument("--alpha", type=_finite(float), default=None, help="weight of KD vs CE (default: preset)")
    group.add_argument("--temperature", type=_finite(float), default=None, help="softmax temperature T")
    group.add_argument("--beta", type=_finite(float), default=None, help="weight of the feature loss")


# ---------------------------------------------------------------------------------------------
# Resolving the config: preset <- --config <- flags
# ---------------------------------------------------------------------------------------------

def resolve_config(args: argparse.Namespace):
    """The run config of this command line, validated (a bad value is a ``UsageError``)."""
    from ..config.files import load_config
    from ..common.device import check_available
    from ..config.presets import get_preset

    overrides = _flag_overrides(args)
    explicit = set(overrides)
    try:
        config = get_preset(args.preset)
        if getattr(args, "config", None):
            config = load_config(args.config, base=get_preset(args.preset) if args.preset else None)
            explicit |= _toml_keys(args.config)
        config = config.replace(**overrides) if overrides else config
        check_available(config.runtime.device)
    except (ValueError, FileNotFoundError) as error:
        raise UsageError(_name_the_flag(str(error), args)) from error
    if getattr(args, "no_progress", False):
        config.runtime.progress = False
    _warn_ignored(config, args)
    config, note = fine_tuning_defaults(config, explicit)
    if note:
        print(note, file=sys.stderr)
    return config


def _toml_keys(path: str) -> set[str]:
    """The dotted keys a TOML file sets (the user's choices, like flags)."""
    import tomllib

    def walk(table: dict, prefix: str) -> set[str]:
        return set().union(*[walk(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
                             for k, v in table.items()])

    return walk(tomllib.loads(Path(path).read_text(encoding="utf-8")), "")


def _flag_table(args: argparse.Namespace) -> dict[str, str]:
    """flag (argparse dest) -> dotted config key, for this command's role."""
    role = vars(args).get("role", "student")
    return {**DATA_FLAGS, **LOSS_FLAGS, **RUNTIME_FLAGS,
            "epochs": f"{role}.train.epochs", "lr": f"{role}.train.learning_rate",
            "batch_size": f"{role}.train.batch_size", "teacher_base": "teacher.model", "teacher": "teacher.finetuned"}


def _name_the_flag(message: str, args: argparse.Namespace) -> str:
    """``message`` (about a config key) followed by the flag that set that key, if a flag did."""
    for flag, key in _flag_table(args).items():
        value = vars(args).get(flag)
        if value is not None and key in message:
            shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            return f"{message} (given as --{flag.replace('_', '-')} {shown})"
    return message


def _flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    values = vars(args)
    table = _flag_table(args)
    if values.get("strategy") is not None:
        values = {**values, "strategies": [values["strategy"]]}
    if values.get("seed") is not None:
        values = {**values, "seeds": [values["seed"]]}
    overrides = {key: values[flag] for flag, key in table.items() if values.get(flag) is not None}
    overrides.update(_separate_files(values))
    if values.get("dataset") is not None and values.get("data_dir") is None and not _is_named_set(values["dataset"]):
        overrides["data.data_dir"] = None
    return overrides


def _separate_files(values: dict[str, Any]) -> dict[str, Any]:
    """``--train-file A --test-file B`` (no ``--data``): the training file becomes the data spec, in place of
    the preset's named set; a named set together with the user's files is refused."""
    given = [f"--{flag.replace('_', '-')}" for flag in ("train_file", "validation_file", "test_file") if values.get(flag)]
    if not given:
        return {}
    if values.get("dataset") is not None:
        if _is_named_set(values["dataset"]) or str(values["dataset"]).startswith("hf:"):
            raise UsageError(f"{'/'.join(given)} name your own files, but --data {values['dataset']} is a named set; "
                             "give one of them (your files: --train-file A.csv --test-file B.csv)")
        return {}
    if not values.get("train_file"):
        raise UsageError(f"{'/'.join(given)} need --train-file too (e.g. --train-file train.csv --test-file test.csv)")
    if not values.get("test_file"):
        raise UsageError(f"--train-file {values['train_file']} needs --test-file (--validation-file is optional); "
                         f"to split one file into train/validation/test, give it as --data {values['train_file']}")
    return {"data.dataset": values["train_file"], "data.train_file": None, "data.data_dir": None}


def _is_named_set(spec: str) -> bool:
    return spec.split(":", 1)[0] in {"clinc150", "banking77", "hwu64", "snips", "embedded"}


def _warn_ignored(config, args: argparse.Namespace) -> None:
    if config.student.copied_layers is None and getattr(args, "student_init", None):
        warnings.warn(f"--student-init is ignored: student {config.student.model!r} is a pretrained model, not layers:K")
    if getattr(args, "data_dir", None) and (not _is_named_set(config.data.dataset)
                                              or config.data.dataset.split(":")[0] == "embedded"):
        warnings.warn(f"--data-dir is ignored: data set {config.data.dataset!r} does not read upstream files "
                      "(give --dataset clinc150, banking77, hwu64 or snips to use them)")
    if getattr(args, "teacher", None) and getattr(args, "teacher_base", None):
        raise UsageError("give --teacher (a fine-tuned classifier, used as is) or --teacher-base (fine-tuned first), not both")


def _setup_threads(threads: int | None = None) -> None:
    """CPU threads per process: --threads, else $OMP_NUM_THREADS, else every core but one (shared by
    the processes; ``core.device.default_threads``). Left to torch on a GPU unless --threads is given."""
    import torch

    from ..common.device import set_threads
    from ..common.distributed import local_processes

    if threads is not None and threads < 1:
        raise UsageError(f"--threads {threads}: give 1 or more CPU threads")
    if threads is not None or not torch.cuda.is_available():
        set_threads(threads, processes=local_processes())


def _write_config(config, out: str | os.PathLike) -> Path:
    """The resolved config beside the results; written once the run directory accepted the settings."""
    from ..config.files import paths_relative_to, to_toml
    from ..common.distributed import is_main_process
    from ..engine.run_store import reopened
    from ..common.io import atomic_write_text

    with reopened(out):  # locked, and listed in run.json as the tool's
        if not is_main_process():  # under a launcher the main process alone writes
            return Path(out) / "config.toml"
        return atomic_write_text(Path(out) / "config.toml", to_toml(paths_relative_to(config, out)))


def _check_out(out: str | os.PathLike, kind: str | None = None) -> None:
    """An unusable --out stops before any expensive work: a folder inside a saved model, or (for a
    command that writes a run of ``kind``) the run directory of another command, which the run store
    refuses too, ``--overwrite`` or not, so the refusal comes before the work rather than after it."""
    from ..engine.run_store import RUN_FILE, _a, check_writable_directory

    path = Path(out)
    for folder in (path, *path.resolve().parents):
        if (folder / "config.json").is_file() and (any(folder.glob("*.safetensors"))
                                                   or (folder / "pytorch_model.bin").is_file()):
            where = "is" if folder == path else f"is inside {folder}, which is"
            raise UsageError(f"--out {path} {where} a saved model (config.json and weights); write the run "
                             "elsewhere: choose an --out outside the model folder")
    record = path / RUN_FILE
    if kind is not None and record.is_file():
        try:
            other = json.loads(record.read_text()).get("kind")
        except (OSError, ValueError, AttributeError):
            other = None
        if other not in (None, kind):
            hint = f"; to distill from that teacher, give --teacher {path}" if other == "teacher" else ""
            raise UsageError(f"--out {path} holds {_a(other)} run ({record}), not {_a(kind)} run; choose another "
                             f"--out{hint}")
    check_writable_directory(out)


def _check_publish(target: str | os.PathLike | None) -> None:
    """A ``--publish`` folder that can never receive the results stops before the work, not after it."""
    if target is None:
        return
    path = Path(target)
    for folder in (path, *path.parents):
        if folder.exists():
            if not folder.is_dir():
                what = "is a file" if folder == path else f"cannot be created: {folder} is a file"
                raise UsageError(f"--publish {path} {what}, not a directory; name a directory to copy the results "
                                 "into (e.g. assets/workshop)")
            return


def _run_resolved(args: argparse.Namespace, run: Any, kind: str, recorded: Any = None) -> Any:
    """Resolve the config, check --out (and --publish), ``run(config)``, then record the config beside the
    results (``recorded(config, out)``: the config to record, when the directory holds more than this call's)."""
    from ..pipelines.steps import check_out_is_not_teacher

    config = resolve_config(args)
    _setup_threads(args.threads)
    check_out_is_not_teacher(config, args.out)  # before the other --out checks: the plainest message
    _check_out(args.out, kind)
    _check_publish(getattr(args, "publish", None))
    result = run(config)
    _write_config(recorded(config, args.out) if recorded else config, args.out)
    return result


def _publish(source: Path, target: Path, names: Sequence[str]) -> None:
    """Copy result files (e.g. into assets/) atomically."""
    from ..common.io import atomic_copy

    for name in names:
        if (source / name).exists():
            print(f"published {atomic_copy(source / name, target / name)}")


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------

def cmd_analyze(args: argparse.Namespace) -> int:
    """Profile every layer of a model over a data source: intensity.json + intensity.png."""
    from dataclasses import asdict

    from ..models.loading import load_classifier
    from ..pipelines.steps import analysis_texts, data_settings, load_data, profile, write_profile
    from ..course.vision import analyze_vision_directory, is_vision_checkpoint

    config = resolve_config(args)
    _setup_threads(args.threads)
    _check_out(args.out)
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


def output_store(out: str | os.PathLike, kind: str, settings: dict[str, Any]):
    """The run store of a command that writes a few files into ``--out`` (``analyze``, ``evaluate``): it
    takes the lock and refuses another command's run directory; a new call replaces its own files."""
    from ..engine.run_store import RunStore

    return RunStore(out, kind=kind, settings=settings, overwrite=True)


def cmd_teacher(args: argparse.Namespace) -> int:
    """Fine-tune the teacher, evaluate it, and profile it before and after fine-tuning."""
    from ..engine.run_store import reopened
    from ..models.loading import load_classifier
    from ..pipelines.steps import load_data, profile_with_config, train_teacher, write_profile

    config = resolve_config(args)
    _setup_threads(args.threads)
    _check_out(args.out, "teacher")
    _check_publish(args.publish)
    dataset = load_data(config)
    print(f"teacher {config.teacher.model} on {dataset.name} ({len(dataset.train)} train); preset {config.name}")
    teacher = train_teacher(config, args.out, dataset=dataset, overwrite=args.overwrite)
    with reopened(args.out):  # the files beside the teacher: locked, and listed as the tool's
        _write_config(config, args.out)
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
        _publish(Path(args.out), Path(args.publish), ["metrics.json", "intensity.json", "intensity.png",
                                                      "intensity_before_finetuning.json", "intensity_before_finetuning.png"])
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    """The ablation grid: strategies x seeds, table and plots (resumable)."""
    from ..pipelines.experiment import PUBLISHED_FILES, recorded_config, run_experiment

    report = _run_resolved(args, lambda config: run_experiment(config, args.out, overwrite=args.overwrite,
                                                               keep_checkpoints=args.keep_checkpoints), "experiment",
                           recorded_config)
    print(report.table_markdown)
    print(report.conclusion)
    print(f"wrote {Path(args.out) / 'results.json'}, results.md, config.toml and plots")
    if args.publish:
        _publish(Path(args.out), Path(args.publish), PUBLISHED_FILES)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Analysis -> selection -> short distillation -> table, on the embedded default."""
    args.preset = args.preset or "quick"
    args.keep_checkpoints, args.publish = False, None
    return cmd_experiment(args)


def cmd_study(args: argparse.Namespace) -> int:
    """Conditions x strategies x seeds with paired statistics (resumable)."""
    from ..pipelines.study import PUBLISHED_FILES, run_study

    record = _run_resolved(args, lambda config: run_study(config, args.out, conditions=args.conditions,
                                                          overwrite=args.overwrite, report_only=args.report_only,
                                                          keep_from=args.publish), "study")
    print((Path(args.out) / "study.md").read_text())
    if args.publish:
        names = list(PUBLISHED_FILES) + [f"mappings_{name}.png" for name in record["conditions"]]
        _publish(Path(args.out), Path(args.publish), names)
    return 0


def cmd_end_to_end(args: argparse.Namespace) -> int:
    """The chapter-5 pipeline without Jupyter (teacher, analysis, students, comparison)."""
    from ..pipelines.end_to_end import run_end_to_end

    config = resolve_config(args)
    _setup_threads(args.threads)
    _check_out(args.out, "end-to-end")
    summary = run_end_to_end(config, args.out, overwrite=args.overwrite)
    print(summary["model_card_markdown"])
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

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

        _setup_threads(args.threads or available_cores())  # a benchmark: all the cores of a quiet machine
        bench_trainer(args.model or DEFAULT_MODEL, args.dataset or DEFAULT_DATASET, data_dir=args.data_dir,
                      epochs=args.epochs or 1.0, max_steps=args.max_steps, repeats=args.repeats)
        return 0
    _setup_threads(args.threads)
    if args.what == "profiler":
        bench.bench_profiler(samples=args.samples, repeats=args.repeats, model_name=args.model or "tiny")
    elif args.what == "serve":
        bench.cmd_serve(args)
    elif args.what == "teacher":
        bench.bench_teacher(steps=args.steps, preset_name=args.preset or "workshop", data_dir=args.data_dir,
                            model=args.model, dataset=args.dataset, student_layers=args.student_layers)
    else:
        bench.bench_distill(steps=args.steps, repeats=args.repeats)
    return 0


# ---------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from . import commands

    parser = argparse.ArgumentParser(prog="spectralkd", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    defaults = HelpFormatter

    p = sub.add_parser("analyze", help="per-layer spectral intensities of a model (intensity.json/png)", formatter_class=defaults)
    _add_run_options(p)
    _add_data_options(p)
    p.add_argument("--model", default=None, help="hub name or local directory (default: the preset's teacher)")
    p.add_argument("--split", default="validation", choices=["train", "validation", "test"],
                   help="split whose utterances are profiled")
    p.add_argument("--samples", type=_finite(int), default=None, help="number of utterances/images (default: preset)")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("teacher", help="fine-tune, evaluate and profile a teacher", formatter_class=defaults)
    _add_run_options(p)
    _add_data_options(p)
    _add_training_options(p, "teacher")
    p.add_argument("--teacher-base", default=None, help="the model to fine-tune (default: the preset's)")
    p.add_argument("--publish", default=None, help="also copy metrics and intensity plots into this directory")
    p.set_defaults(func=cmd_teacher)

    p = sub.add_parser("experiment", help="the ablation grid: strategies x seeds, table and plots", formatter_class=defaults)
    _add_run_options(p)
    _add_data_options(p)
    _add_training_options(p, "student")
    _add_distillation_options(p, grid=True)
    p.add_argument("--keep-checkpoints", action="store_true", help="keep each run's last checkpoint")
    p.add_argument("--publish", default=None, help="also copy the table and figures into this directory (e.g. assets/workshop)")
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("demo", help="the whole pipeline on the embedded default in about a minute", formatter_class=defaults)
    _add_run_options(p, out_default="runs/demo")
    _add_data_options(p)
    _add_training_options(p, "student")
    _add_distillation_options(p, grid=True)
    p.set_defaults(func=cmd_demo, seeds=[0])

    p = sub.add_parser("study", help="where does the spectral choice matter? conditions x strategies x seeds",
                       formatter_class=defaults)
    _add_run_options(p)
    p.add_argument("--conditions", nargs="+", default=None, help="run only these conditions (default: all of the preset's)")
    p.add_argument("--report-only", action="store_true", help="rebuild study.md, summary.md and forest.png from the "
                   "finished conditions in OUT/results.json; nothing is trained")
    p.add_argument("--publish", default=None, help="also copy results.json, study.md and the figures here (e.g. "
                   "assets/study); conditions already published there that OUT lacks are kept, not dropped")
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("end-to-end", help="chapter 5 end to end (use --preset full on a GPU)", formatter_class=defaults)
    _add_run_options(p)
    _add_data_options(p)
    p.set_defaults(func=cmd_end_to_end)

    commands.add_parsers(sub, defaults)

    p = sub.add_parser("bench", help="benchmarks that print figures", formatter_class=defaults)
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
    p.add_argument("--dataset", default=None, help="teacher: the data set (default: the preset's); trainer: "
                   "default clinc150:small")
    p.add_argument("--student-layers", type=_finite(int), default=None, help="teacher: also time a student of "
                   "this many blocks copied from the model (uniform)")
    p.add_argument("--samples", type=_finite(int), default=None, help="profiler: utterances profiled (default "
                   "256); serve: queries timed per pass (default 128, at least 32)")
    p.add_argument("--steps", type=_finite(int), default=30, help="distill/teacher: timed training steps")
    p.add_argument("--repeats", type=_finite(int), default=None, help="profiler/distill: repeats (default 3; the "
                   "median is printed); trainer: runs of each, alternated A/B/B/A (default 2); serve: timed passes "
                   "after a warm-up (default 7)")
    p.add_argument("--epochs", type=_finite(float), default=None, help="trainer: epochs, a fraction runs short "
                   "(default 1)")
    p.add_argument("--max-steps", type=_finite(int), default=None, help="trainer: optimizer steps (overrides --epochs)")
    p.add_argument("--threads", type=_finite(int), default=None, help="CPU threads (default: $OMP_NUM_THREADS, "
                   "else every core but one; trainer: every core, for a quiet machine)")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command. The project's own errors (and bad values, missing files, I/O faults) print one
    line and exit 2; a real bug keeps its traceback."""
    import contextlib

    from ..common.distributed import is_main_process

    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["spectralkd", *(sys.argv[1:] if argv is None else argv)])
    quiet = contextlib.nullcontext() if is_main_process() else contextlib.redirect_stdout(open(os.devnull, "w"))
    try:
        with quiet:  # under a launcher only the main process prints (errors still reach stderr)
            return int(args.func(args) or 0)
    except (SpectralKDError, ValueError, FileNotFoundError) as error:
        print(f"spectralkd {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        where = f" {error.filename}" if error.filename else ""
        print(f"spectralkd {args.command}: error: cannot write or read{where}: {error.strerror or error}; "
              "free disk space or choose a writable --out", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"spectralkd {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


