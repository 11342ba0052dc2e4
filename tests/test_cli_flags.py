"""The command line's flags come from the config dataclasses' field metadata: one flag -> key table,
each flag's help and choices those of its field, and every flag sets the key it names."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import pytest

from spectralkd_tutorial.cli.app import build_parser
from spectralkd_tutorial.cli.flags import config_flags, flag_keys
from spectralkd_tutorial.cli.options import resolve_config
from spectralkd_tutorial.config.presets import get_preset
from spectralkd_tutorial.config.sections import MIXED_PRECISION, RunConfig

ROLES = ("teacher", "student")
# help a command words for itself: (command, dest)
OWN_HELP = {("teacher", "teacher_base"), ("evaluate", "max_length"), ("evaluate", "dataset")}
# a valid value other than the quick preset's, where the full preset has the same one and there are no choices
ALTERNATIVES = {"runtime.device": "cpu", "student.model": "layers:3", "student.init": "last", "loss.feature_loss": "mse",
                "data.text_column": "sentence", "data.label_column": "intent"}


def _fields_with_help(cls: type = RunConfig, prefix: str = "") -> dict[str, dataclasses.Field]:
    """dotted key -> field, for every field of the config tree whose metadata has a help (both roles)."""
    found = {}
    for item in dataclasses.fields(cls):
        value = getattr(cls(), item.name) if item.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(value):
            found.update(_fields_with_help(type(value), f"{prefix}{item.name}."))
        elif "help" in item.metadata:
            found[f"{prefix}{item.name}"] = item
    return found


def _lookup(data: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        data = data[part]
    return data


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _generated_actions():
    for name, parser in _subparsers().items():
        for action in parser._actions:
            if getattr(action, "config_key", None):
                yield name, parser, action


def test_every_flag_maps_to_a_config_key_and_every_described_field_has_a_flag():
    described = _fields_with_help()
    config = RunConfig().to_dict()
    mapped = set()
    for role in ROLES:
        table = flag_keys(role)
        assert len(set(table.values())) == len(table), table  # one flag per key: none shadows another
        for dest, key in table.items():
            _lookup(config, key)  # an existing key (a KeyError otherwise)
            assert key in described, f"--{dest} sets {key}, a field without a help"
        mapped |= set(table.values())
    assert mapped == set(described)  # and back: each described field is a flag (the training ones per role)
    assert flag_keys("student")["teacher"] == "teacher.finetuned"  # the two old tables disagreed here
    assert flag_keys("student")["teacher_base"] == "teacher.model"
    assert flag_keys("teacher")["lr"] == "teacher.train.learning_rate"
    assert flag_keys("student")["lr"] == "student.train.learning_rate"


def test_the_flags_keep_their_names():
    """The flags users type (README, scripts): generated from the fields, they must not drift with them."""
    names = ("dataset data-dir train-file validation-file test-file text-column label-column oos-label split-seed "
             "max-length teacher-base teacher student student-init epochs lr batch-size alpha temperature beta "
             "feature-loss samples strategies seeds device mixed-precision report-to teacher-cache "
             "teacher-cache-dtype teacher-cache-budget")
    for role in ROLES:
        assert sorted(flag.flag for flag in config_flags(role).values()) == sorted(names.split())
    assert config_flags()["dataset"].aliases == ("data",)


def test_the_parsers_flags_carry_their_fields_help_and_choices():
    described = _fields_with_help()
    seen = set()
    for name, parser, action in _generated_actions():
        role = parser.get_default("role") or "student"
        key = action.config_key
        if name == "bench":  # bench --dataset only borrows the key to list each preset's data set
            assert key == "data.dataset" and action.dest == "dataset"
            continue
        assert flag_keys(role)[action.dest] == key, (name, action.dest)
        meta = described[key].metadata
        expected = f"{role} {meta['help']}" if key.split(".")[-2:-1] == ["train"] else meta["help"]
        if (name, action.dest) not in OWN_HELP:
            assert action.help == expected, (name, action.dest, action.help)
        assert (action.choices is None) == (meta.get("choices") is None), (name, action.dest)
        if action.choices is not None:
            assert list(action.choices) == list(meta["choices"])
        seen.add(key.replace("teacher.train.", "student.train."))
    assert {k.replace("teacher.train.", "student.train.") for k in described} == seen  # every flag is offered
    help_text = " ".join(_subparsers()["experiment"].format_help().split())
    assert f"--mixed-precision {{{','.join(MIXED_PRECISION)}}}" in help_text
    assert described["runtime.mixed_precision"].metadata["help"] in help_text


def _another(value: Any, choices: tuple | None) -> Any:
    """A valid value of the same type that differs from ``value`` (so that setting it shows)."""
    if choices:
        return next(choice for choice in choices if choice != value)
    if isinstance(value, str):
        raise AssertionError(f"name an alternative to {value!r} in ALTERNATIVES")
    if isinstance(value, list):
        return value[:1]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AssertionError(value)
    return value + 1 if isinstance(value, int) else value / 2


def _argv(flags: dict[str, Any], base: dict[str, Any], skip: set[str]) -> tuple[list[str], dict[str, Any]]:
    argv, expected = [], {}
    full = get_preset("full").to_dict()
    for dest, flag in flags.items():
        if flag.key in skip or _lookup(base, flag.key) is None:
            continue
        value, wanted = _lookup(base, flag.key), ALTERNATIVES.get(flag.key, _lookup(full, flag.key))
        if wanted == value:
            wanted = _another(value, flag.choices)
        argv += [f"--{flag.flag}", *(map(str, wanted) if isinstance(wanted, list) else [str(wanted)])]
        expected[flag.key] = wanted
    return argv, expected


@pytest.mark.parametrize("command, role", [("experiment", "student"), ("teacher", "teacher")])
def test_each_flag_sets_the_key_it_names(command, role, tmp_path):
    """Every flag of ``command`` given a value other than the quick preset's: the resolved config holds it at
    the flag's key (values read from the full preset, or changed, so a wrong key or a dropped flag shows)."""
    base = get_preset("quick").to_dict()
    offered = {action.dest for action in _subparsers()[command]._actions}
    flags = {dest: flag for dest, flag in config_flags(role).items() if dest in offered}
    argv, expected = _argv(flags, base, skip={"data.data_dir"})
    args = build_parser().parse_args([command, "--preset", "quick", "--out", str(tmp_path), *argv])
    resolved = resolve_config(args).to_dict()
    assert len(expected) >= (20 if command == "experiment" else 12)
    for key, value in expected.items():
        assert _lookup(resolved, key) == value, key


def test_the_flags_a_preset_leaves_unset_set_their_keys(tmp_path):
    """``--teacher`` (a fine-tuned classifier) and the teacher-cache budget: None in every preset."""
    args = build_parser().parse_args(["distill", "--preset", "quick", "--out", str(tmp_path), "--teacher", "my/teacher",
                                      "--teacher-cache-budget", "2.5", "--oos-label", "oos"])
    config = resolve_config(args)
    assert (config.teacher.finetuned, config.teacher.model) == ("my/teacher", get_preset("quick").teacher.model)
    assert (config.runtime.teacher_cache_budget, config.data.oos_label) == (2.5, "oos")
