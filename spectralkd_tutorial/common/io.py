"""Atomic writes: a result file or checkpoint is either the old one or the complete new one."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

CACHE_ENV = "SPECTRALKD_CACHE_DIR"


def cache_dir() -> Path:
    """The package's cache (built tiny checkpoints, downloaded data): ``$SPECTRALKD_CACHE_DIR`` or
    ~/.cache/spectralkd_tutorial."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "spectralkd_tutorial"
    return Path(root)

TMP_PREFIX = ".spectralkd-"  # every temporary file or folder this tool writes starts with it
_WRITE_LISTENERS: list[Callable[[Path], None]] = []


def temporary_name(name: str, kind: str = "tmp") -> str:
    """The name of the temporary sibling of ``name`` (``.spectralkd-NAME.tmp``): the only names the
    orphan clean-up removes."""
    return f"{TMP_PREFIX}{name}.{kind}"


def notify_written(path: str | os.PathLike) -> None:
    """Tell the open run stores that this tool writes ``path`` (called before the write starts, so a
    killed write is known to be the tool's)."""
    for listener in list(_WRITE_LISTENERS):
        listener(Path(path))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Write to a temporary sibling, fsync, then rename over ``path``; the file gets the usual
    permissions (0666 minus the umask), not ``mkstemp``'s private 0600."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    notify_written(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except OSError as error:  # disk full, read-only, ...: name the file that was not written
        tmp.unlink(missing_ok=True)
        if error.filename is not None and Path(error.filename) == target:
            raise
        raise OSError(error.errno, error.strerror or str(error), str(target)) from error
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return _atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    return _atomic(path, lambda tmp: _torch_save(obj, tmp))


def _torch_save(obj: Any, path: Path) -> None:
    """``torch.save``; its zip writer reports a failed write (a full disk) as a ``RuntimeError`` from
    ``inline_container.cc``: raised here as the ``OSError`` it is, so that the file is named."""
    try:
        torch.save(obj, path)
    except RuntimeError as error:
        if "inline_container" not in str(error) and "PytorchStreamWriter" not in str(error):
            raise
        free = shutil.disk_usage(path.parent).free
        raise OSError(errno.ENOSPC, f"write failed: is the disk full? ({free / 2**20:.0f} MiB free now; "
                      f"torch: {str(error).splitlines()[0][:120]})", str(path)) from error


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
    notify_written(target)
    tmp = target.with_name(temporary_name(target.name))
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    mode = 0o666 & ~_umask()
    for file in tmp.iterdir():  # safetensors writes its file 0600: give every file the usual permissions
        if file.is_file():
            os.chmod(file, mode)
    old = target.with_name(temporary_name(target.name, "old"))
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def remove_orphans(directory: str | os.PathLike, *, in_use: str | None = None,
                   only: Iterable[str] | None = None) -> list[Path]:
    """Delete what a killed atomic write left behind in ``directory`` (and below): files and folders
    named with this tool's prefix (``.spectralkd-*.tmp``, ``.spectralkd-*.old``); nothing else.
    Returns what was removed.

    ``only``: the top-level entries of ``directory`` this tool wrote (a run's ``run.json`` lists
    them): only ``directory`` itself and those are searched, never the user's other folders.
    ``in_use``: a file name (a lock) that marks a sub-directory another process may be writing
    into; such a sub-directory is left alone (its own owner cleans it when it opens it)."""
    removed: list[Path] = []
    root = Path(directory)
    if not root.is_dir():
        return removed
    allowed = None if only is None else set(only)
    for folder, subdirs, files in os.walk(root):
        here = Path(folder)
        if in_use and here != root and in_use in files:
            subdirs[:] = []
            continue
        for name in sorted(files):
            if name.startswith(TMP_PREFIX) and name.endswith(".tmp"):
                (here / name).unlink(missing_ok=True)
                removed.append(here / name)
        for name in sorted(subdirs):
            base = name[len(TMP_PREFIX):-len(".old")]  # a .old folder goes once its replacement is in place
            if name.startswith(TMP_PREFIX) and (name.endswith(".tmp") or (name.endswith(".old")
                                                                         and (here / base).exists())):
                shutil.rmtree(here / name, ignore_errors=True)
                removed.append(here / name)
        subdirs[:] = [name for name in subdirs if (here / name).exists()
                      and (allowed is None or here != root or name in allowed)]
    return removed


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); delete it to start over") from error
