"""What the commands share: the option groups (generated from the config's field metadata by
:mod:`.flags`), the config of a command line (preset <- ``--config`` <- flags) and the checks and
writes around a run directory (``--out``, ``--publish``, ``--threads``, ``config.toml``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

from ..common.errors import UsageError
from ..config.presets import PRESETS, fine_tuning_defaults
from ..data.common import DATASET_NAMES
from .flags import add_settings, finite, flag_keys, section_keys

DISTILLATION_KEYS = ("teacher.finetuned", "teacher.model", "student.model", "student.init")
LOSS_KEYS = ("loss.feature_loss", "loss.alpha", "loss.temperature", "loss.beta")
UPSTREAM_SETS = tuple(name for name in DATASET_NAMES if name != "embedded")  # the sets read from --data-dir


# ---------------------------------------------------------------------------------------------
# Option groups
# ---------------------------------------------------------------------------------------------

def add_run_options(parser: argparse.ArgumentParser, *, out_default: str | None = None) -> None:
    """Where a run goes and how it executes: ``--preset``, ``--config``, ``--out`` and the runtime section."""
    parser.add_argument("--preset", choices=PRESETS, default=None, help="named defaults (default: $SPECTRALKD_PRESET or quick)")
    parser.add_argument("--config", default=None, help="TOML file with the same keys (e.g. a run's OUT/config.toml); flags override it")
    parser.add_argument("--out", default=out_default, required=out_default is None, help="output directory")
    parser.add_argument("--overwrite", action="store_true", help="discard a run with other settings in --out")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    device, *runtime = section_keys("runtime")
    add_settings(parser, [device])
    parser.add_argument("--threads", type=finite(int), default=None, help="CPU threads per process (default: "
                        "$OMP_NUM_THREADS, else every core but one, left for the notebook and the browser)")
    add_settings(parser, runtime)


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """The ``data`` section's flags."""
    add_settings(parser.add_argument_group("data"), section_keys("data"))


def add_training_options(parser: argparse.ArgumentParser, role: str) -> None:
    """``--epochs``, ``--lr``, ``--batch-size`` of ``role`` (teacher or student)."""
    add_settings(parser.add_argument_group(f"{role} training"), section_keys(f"{role}.train", role), role)
    parser.set_defaults(role=role)


def add_distillation_options(parser: argparse.ArgumentParser, *, grid: bool) -> None:
    """Teacher, student, the strategies and seeds (a grid's, or one run's) and the loss."""
    group = parser.add_argument_group("distillation")
    add_settings(group, DISTILLATION_KEYS)
    if grid:
        add_settings(group, section_keys("grid"))
    else:
        group.add_argument("--strategy", default=None, help="layer-selection strategy choosing the teacher layers the "
                           "student aligns with (default: the config's one strategy, else spectral-ends)")
        group.add_argument("--seed", type=finite(int), default=None, help="seed of the student's data order and "
                           "dropout (default: the config's first seed, 0 in every preset)")
    add_settings(group, LOSS_KEYS)


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
    """flag (argparse dest) -> dotted config key, for this command's role (``flags.flag_keys``)."""
    return flag_keys(vars(args).get("role", "student"))


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
    return spec.split(":", 1)[0] in DATASET_NAMES


def _warn_ignored(config, args: argparse.Namespace) -> None:
    if config.student.copied_layers is None and getattr(args, "student_init", None):
        warnings.warn(f"--student-init is ignored: student {config.student.model!r} is a pretrained model, not layers:K")
    if getattr(args, "data_dir", None) and (not _is_named_set(config.data.dataset)
                                              or config.data.dataset.split(":")[0] == "embedded"):
        warnings.warn(f"--data-dir is ignored: data set {config.data.dataset!r} does not read upstream files "
                      f"(give --dataset {', '.join(UPSTREAM_SETS[:-1])} or {UPSTREAM_SETS[-1]} to use them)")
    if getattr(args, "teacher", None) and getattr(args, "teacher_base", None):
        raise UsageError("give --teacher (a fine-tuned classifier, used as is) or --teacher-base (fine-tuned first), not both")


# ---------------------------------------------------------------------------------------------
# The run directory: threads, --out, --publish, config.toml
# ---------------------------------------------------------------------------------------------

def setup_threads(threads: int | None = None) -> None:
    """CPU threads per process: --threads, else $OMP_NUM_THREADS, else every core but one (shared by
    the processes; ``common.device.default_threads``). Left to torch on a GPU unless --threads is given."""
    import torch

    from ..common.device import set_threads
    from ..common.distributed import local_processes

    if threads is not None and threads < 1:
        raise UsageError(f"--threads {threads}: give 1 or more CPU threads")
    if threads is not None or not torch.cuda.is_available():
        set_threads(threads, processes=local_processes())


def write_config(config, out: str | os.PathLike) -> Path:
    """The resolved config beside the results; written once the run directory accepted the settings."""
    from ..config.files import paths_relative_to, to_toml
    from ..common.distributed import is_main_process
    from ..engine.run_store import reopened
    from ..common.io import atomic_write_text

    with reopened(out):  # locked, and listed in run.json as the tool's
        if not is_main_process():  # under a launcher the main process alone writes
            return Path(out) / "config.toml"
        return atomic_write_text(Path(out) / "config.toml", to_toml(paths_relative_to(config, out)))


def check_out(out: str | os.PathLike, kind: str | None = None) -> None:
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


def check_publish(target: str | os.PathLike | None) -> None:
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


def run_resolved(args: argparse.Namespace, run: Any, kind: str, recorded: Any = None) -> Any:
    """Resolve the config, check --out (and --publish), ``run(config)``, then record the config beside the
    results (``recorded(config, out)``: the config to record, when the directory holds more than this call's)."""
    from ..pipelines.steps import check_out_is_not_teacher

    config = resolve_config(args)
    setup_threads(args.threads)
    check_out_is_not_teacher(config, args.out)  # before the other --out checks: the plainest message
    check_out(args.out, kind)
    check_publish(getattr(args, "publish", None))
    result = run(config)
    write_config(recorded(config, args.out) if recorded else config, args.out)
    return result


def publish(source: Path, target: Path, names: Sequence[str]) -> None:
    """Copy result files (e.g. into assets/) atomically."""
    from ..common.io import atomic_copy

    for name in names:
        if (source / name).exists():
            print(f"published {atomic_copy(source / name, target / name)}")


def output_store(out: str | os.PathLike, kind: str, settings: dict[str, Any]):
    """The run store of a command that writes a few files into ``--out`` (``analyze``, ``evaluate``): it
    takes the lock and refuses another command's run directory; a new call replaces its own files."""
    from ..engine.run_store import RunStore

    return RunStore(out, kind=kind, settings=settings, overwrite=True)

