"""Atomic writes: a result file or checkpoint is either the old one or the complete new one."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Write to a temporary sibling, fsync, then rename over ``path``; the file gets the usual
    permissions (0666 minus the umask), not ``mkstemp``'s private 0600."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return _atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    return _atomic(path, lambda tmp: torch.save(obj, tmp))


def atomic_savefig(path: str | os.PathLike, figure: Any, **kwargs: Any) -> Path:
    suffix = Path(path).suffix.lstrip(".") or "png"
    kwargs.setdefault("dpi", 120)
    kwargs.setdefault("bbox_inches", "tight")
    return _atomic(path, lambda tmp: figure.savefig(tmp, format=suffix, **kwargs))


def atomic_copy(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    data = Path(source).read_bytes()
    return _atomic(target, lambda tmp: tmp.write_bytes(data))


def save_pretrained_atomic(model: Any, tokenizer: Any, directory: str | os.PathLike) -> Path:
    """``save_pretrained`` (model and tokenizer) into a temporary sibling, then swap it in."""
    target = Path(directory)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    old = target.with_name(target.name + ".old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def remove_orphans(directory: str | os.PathLike) -> list[Path]:
    """Delete what a killed atomic write left behind in ``directory`` (and below): ``.*.tmp`` files
    and ``*.tmp`` / ``*.old`` model directories. Returns what was removed."""
    removed = []
    root = Path(directory)
    if not root.is_dir():
        return removed
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name.startswith(".") and path.name.endswith(".tmp"):
            path.unlink(missing_ok=True)
            removed.append(path)
        elif path.is_dir() and path.suffix in (".tmp", ".old") and (path.with_suffix("").exists() or path.suffix == ".tmp"):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); delete it to start over") from error
