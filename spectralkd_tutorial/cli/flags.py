"""The command line's settings, read off the config dataclasses, as ``HfArgumentParser`` reads ``run_glue``'s.

A config field whose metadata has a ``help`` is a flag (:mod:`..config.sections` describes the metadata):
``--`` + its ``flag`` (else the field name with dashes), its ``choices``, ``aliases`` and ``metavar``,
and a type from the annotation (``tuple[int, ...]``: ``nargs="+"`` of finite ints). :func:`config_flags`
is the one flag -> dotted-key table; the ``--help`` of every flag that sets a preset-decided key lists
each preset's value (:class:`HelpFormatter`), so the help cannot drift from ``presets.py``.
"""

from __future__ import annotations

import argparse
import math
import re
import types
import typing
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Iterable

from ..config.presets import PRESETS
from ..config.sections import RunConfig, TrainConfig

PRESET_DEFAULT = re.compile(r"\(default: (the )?preset('s)?\)")


@dataclass(frozen=True)
class Flag:
    """One config field as a command-line option: ``--flag`` (``dest``) sets ``key``."""

    key: str
    flag: str
    help: str
    kind: Any  # the field's type, ``None`` unwrapped
    aliases: tuple[str, ...] = ()
    choices: tuple[str, ...] | None = None
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return self.flag.replace("-", "_")

    def argparse_options(self) -> dict[str, Any]:
        """``add_argument`` keywords: every flag defaults to ``None`` (unset: the preset or ``--config`` decides)."""
        options: dict[str, Any] = {"dest": self.dest, "default": None, "help": self.help}
        kind = self.kind
        if typing.get_origin(kind) is tuple:
            options["nargs"], kind = "+", typing.get_args(kind)[0]
        if kind in (int, float):
            options["type"] = finite(kind)
        if self.choices is not None:
            options["choices"] = list(self.choices)
        if self.metavar is not None:
            options["metavar"] = self.metavar
        return options


def finite(kind: type) -> Any:
    """An argparse ``type`` that reads ``kind`` (int or float) and refuses nan/inf with the flag's name."""
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


def _without_none(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def _walk(cls: type, prefix: str, role: str) -> Iterable[Flag]:
    hints = typing.get_type_hints(cls)
    for item in fields(cls):
        hint, key = hints[item.name], f"{prefix}{item.name}"
        if is_dataclass(hint):
            if hint is not TrainConfig or prefix == f"{role}.":  # the training flags set this command's role
                yield from _walk(hint, f"{key}.", role)
        elif "help" in item.metadata:
            meta = item.metadata
            text = f"{role} {meta['help']}" if cls is TrainConfig else meta["help"]
            yield Flag(key, meta.get("flag", item.name.replace("_", "-")), text, _without_none(hint),
                       tuple(meta.get("aliases", ())), meta.get("choices"), meta.get("metavar"))


def config_flags(role: str = "student") -> dict[str, Flag]:
    """dest -> :class:`Flag` of every config field with a flag, in the config's order; the training
    flags (``--epochs``, ``--lr``, ``--batch-size``) set ``ROLE.train.*`` of ``role`` (teacher/student)."""
    return {flag.dest: flag for flag in _walk(RunConfig, "", role)}


def flag_keys(role: str = "student") -> dict[str, str]:
    """The one flag -> config-key table: argparse dest -> dotted config key."""
    return {dest: flag.key for dest, flag in config_flags(role).items()}


def section_keys(section: str, role: str = "student") -> list[str]:
    """The flagged keys of one config section (``"data"``, ``"student.train"``), in declaration order."""
    return [flag.key for flag in config_flags(role).values() if flag.key.rsplit(".", 1)[0] == section]


def add_settings(parser: Any, keys: Iterable[str], role: str = "student", **helps: str) -> None:
    """``--flag`` of each dotted config key on ``parser`` (or an argument group); ``helps`` replaces the
    help of a dest (``teacher_base="the model to fine-tune"``). Each action records its ``config_key``."""
    by_key = {flag.key: flag for flag in config_flags(role).values()}
    for key in keys:
        flag = by_key[key]
        options = flag.argparse_options()
        options["help"] = helps.get(flag.dest, options["help"])
        action = parser.add_argument(f"--{flag.flag}", *(f"--{alias}" for alias in flag.aliases), **options)
        action.config_key = key


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with every option's default: its value, or, for a setting the preset decides,
    each preset's value (read from ``presets.py``, so the help cannot drift from it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        key = getattr(action, "config_key", None)
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
