"""A run config to and from TOML: ``to_toml`` writes what ``load_config`` reads (a run's ``config.toml``),
a file's relative data paths are relative to its own folder, and ``preset = "..."`` starts from a preset."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Mapping

from .presets import get_preset
from .sections import RunConfig

# ---------------------------------------------------------------------------------------------
# TOML: the standard library reads it; the small writer below covers what a RunConfig holds
# ---------------------------------------------------------------------------------------------

def to_toml(config: RunConfig) -> str:
    """The fully resolved config as TOML (``None`` values are left out: their default is ``None``)."""
    lines: list[str] = []
    _toml_table(config.to_dict(), [], lines)
    return "\n".join(lines).strip() + "\n"


def _toml_table(table: dict[str, Any], path: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict) and v is not None}
    if path:
        lines.append(f"\n[{'.'.join(path)}]")
    lines.extend(f"{key} = {_toml_value(value)}" for key, value in scalars.items())
    for key, value in table.items():
        if isinstance(value, dict):
            _toml_table(value, path + [key], lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def load_config(path: str | Path, *, base: RunConfig | None = None) -> RunConfig:
    """A run config from a TOML file, layered on ``base``.

    Without ``base``: a file whose top level says ``preset = "workshop"`` starts from that preset;
    any other file is complete on its own (as ``config.toml`` of every run is) and starts from the
    class defaults.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"config file {file} does not exist; write one or use a run's OUT/config.toml")
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{file} is not valid TOML ({error}); fix the file") from error
    preset = data.pop("preset", None)
    if base is None:
        if preset is not None:
            base = get_preset(preset)
        else:
            base = RunConfig()
    merged = base.to_dict()
    _merge(merged, data, str(file))
    for key, value in (data.get("data") or {}).items():  # the file's relative paths are relative to the file
        if _is_data_path(key, value) and not Path(value).expanduser().is_absolute():
            merged["data"][key] = os.path.normpath(file.parent / value)
    try:
        return RunConfig.from_dict(merged)
    except ValueError as error:
        raise ValueError(f"{file}: {error}") from error


DATA_PATH_KEYS = ("dataset", "data_dir", "train_file", "validation_file", "test_file")


def _is_data_path(key: str, value: Any) -> bool:
    """Whether ``data.<key> = value`` names a file or folder (``dataset`` may also be a set's name)."""
    from ..data.spec import FILE_FORMATS

    if key not in DATA_PATH_KEYS or not isinstance(value, str) or not value:
        return False
    return key != "dataset" or (not value.startswith("hf:") and Path(value).suffix.lower() in FILE_FORMATS)


def paths_relative_to(config: RunConfig, folder: str | os.PathLike) -> RunConfig:
    """``config`` with its relative data paths rewritten relative to ``folder``: what a ``config.toml``
    written there holds, since :func:`load_config` reads a file's relative paths against its folder."""
    changes = {f"data.{key}": os.path.relpath(os.path.abspath(value), os.path.abspath(folder))
               for key in DATA_PATH_KEYS if _is_data_path(key, value := getattr(config.data, key))
               and not Path(value).expanduser().is_absolute()}
    return config.replace(**changes) if changes else config


def _merge(target: dict[str, Any], source: Mapping[str, Any], where: str) -> None:
    for key, value in source.items():
        if key not in target:
            raise ValueError(f"{where}: unknown config key {key!r}; valid: {sorted(target)}")
        if isinstance(target[key], dict) and isinstance(value, Mapping):
            _merge(target[key], value, f"{where}:{key}")
        else:
            target[key] = value
