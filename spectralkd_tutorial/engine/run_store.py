"""One owner of a run directory: fingerprint, lock, result files, checkpoints, derived files.

A run directory belongs to one set of settings. ``run.json`` records its *fingerprint*: the
resolved settings (and the fingerprints of its inputs) that its results depend on, plus their
SHA-256. Opening a directory with other settings stops with a message listing what differs,
instead of silently reusing (or mixing) results. While a command works in a directory it holds
``.lock`` (pid, host, command); a second process stops with a message naming the holder, and a
lock left by a killed process is taken over. Every write is atomic; the temporary files (named
``.spectralkd-*``) that a killed write left behind are removed when the directory is opened again,
only where the tool wrote. ``run.json`` also lists what the tool wrote (``files``): ``--overwrite``
removes only those, and a folder holding anything else is not cleared. In a distributed run (several
processes under a launcher) the main process opens, locks and writes; the other processes open
after it (an error it meets is raised on every process) and their writes are no-ops.

    store = RunStore(out, kind="teacher", settings=config_dict)
    with store:                       # lock + fingerprint check + orphan clean-up
        state = store.load_checkpoint()
        ...
        store.save_checkpoint(state)
        store.write_json("metrics.json", metrics)
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import torch

from ..common.errors import CheckpointError, RunDirectoryError
from ..common import io as _io
from ..common.io import atomic_torch_save, atomic_write_json, read_json, remove_orphans
from ..common.distributed import is_main_process, on_main

RUN_FILE = "run.json"
LOCK_FILE = ".lock"
CHECKPOINT_FILE = "checkpoint.pt"
LOCK_GRACE_SECONDS = 2.0  # an empty lock younger than this may be a writer between creating and filling it
LOCK_TRIES = 12


def canonical(value: Any) -> Any:
    """Plain data in one spelling per value: tuples as lists, whole floats as ints (``12.0`` and
    ``12`` -- a preset's value and the same value given as a flag -- are the same setting)."""
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def fingerprint(settings: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``settings`` (sorted keys; see :func:`canonical`)."""
    text = json.dumps(canonical(settings), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def settings_diff(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``["student.train.epochs: 4 -> 1", ...]``: the dotted keys whose values differ."""
    lines = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            lines += settings_diff(a, b, f"{prefix}{key}.")
        elif json.dumps(canonical(a), sort_keys=True) != json.dumps(canonical(b), sort_keys=True):
            lines.append(f"{prefix}{key}: {_short(a)} -> {_short(b)}")
    return lines


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _a(kind: Any) -> str:
    return f"{'an' if str(kind)[:1] in 'aeiou' else 'a'} {kind}"


def _age(path: Path) -> float:
    """Seconds since ``path`` was last written (0 if it has just vanished)."""
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except OSError:
        return 0.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_OPEN_ROOTS: list[str] = []  # the run directories a store of this process has open


class RunStore:
    """The run directory ``root`` for ``kind`` (teacher, student, experiment, ...) and ``settings``."""

    def __init__(self, root: str | os.PathLike, *, kind: str, settings: Mapping[str, Any],
                 overwrite: bool = False, lock: bool = True) -> None:
        self.root = Path(root)
        self.kind = kind
        self.settings = canonical(settings)  # plain data, as stored
        self.fingerprint = fingerprint(self.settings)
        self.overwrite = overwrite
        self._lock_wanted = lock
        self._locked = False
        self.files: set[str] = set()  # the top-level entries this tool wrote here (run.json lists them)
        self._listed = False  # False: a run.json from before the list (or none): nothing is known to be ours

    # -- opening and closing -----------------------------------------------------------------
    def __enter__(self) -> "RunStore":
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def open(self) -> "RunStore":
        """Create/lock the directory, clean orphans, and check (or record) the fingerprint (the main
        process of a distributed run; the others wait for it)."""
        on_main(self._open)
        _OPEN_ROOTS.append(os.path.abspath(self.root))  # on every process
        self._registered = True
        return self

    def _open(self) -> None:
        check_writable_directory(self.root)
        if self._lock_wanted:
            self._acquire_lock()
        try:
            old = self._read_record()
            self._listed = isinstance(old.get("files"), list)
            self.files = {str(name) for name in old.get("files", [])} if self._listed else set()
            remove_orphans(self.root, in_use=LOCK_FILE, only=self.files)
            self._check_fingerprint(old)
            _io._WRITE_LISTENERS.append(self._noticed)
        except BaseException:
            self.close()
            raise

    def _noticed(self, path: Path) -> None:
        """A write under this directory: record its top-level entry as this tool's (main process)."""
        try:
            name = Path(os.path.abspath(path)).relative_to(os.path.abspath(self.root)).parts[0]
        except (ValueError, IndexError):
            return
        if name in (RUN_FILE, LOCK_FILE) or name in self.files or not is_main_process():
            return
        self.files.add(name)
        self._listed = True
        atomic_write_json(self.root / RUN_FILE, self._record())

    def _record(self) -> dict[str, Any]:
        return {"kind": self.kind, "fingerprint": self.fingerprint, "settings": self.settings,
                "files": sorted(self.files)}

    def _read_record(self) -> dict[str, Any]:
        path = self.root / RUN_FILE
        try:
            old = read_json(path) if path.exists() else {}
        except ValueError:
            old = {}
        return old if isinstance(old, dict) else {}

    def close(self) -> None:
        if getattr(self, "_registered", False):
            _OPEN_ROOTS.remove(os.path.abspath(self.root))
            self._registered = False
        if self._noticed in _io._WRITE_LISTENERS:
            _io._WRITE_LISTENERS.remove(self._noticed)
        if self._locked:
            (self.root / LOCK_FILE).unlink(missing_ok=True)
            self._locked = False

    def child(self, name: str, *, kind: str, settings: Mapping[str, Any]) -> "RunStore":
        """A sub-directory store (one run of a grid) under this store's lock."""
        return RunStore(self.root / name, kind=kind, settings=settings, overwrite=self.overwrite, lock=False)

    def _acquire_lock(self) -> None:
        path = self.root / LOCK_FILE
        me = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)[:300]}
        for _ in range(LOCK_TRIES):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._read_lock(path)
                if holder is None:  # empty or garbage: a writer that is just starting, or one killed mid-write
                    if _age(path) < LOCK_GRACE_SECONDS:
                        time.sleep(LOCK_GRACE_SECONDS / 4)
                        continue
                    print(f"note: took over {path}: it was empty or unreadable (left by a killed process)",
                          file=sys.stderr)
                    path.unlink(missing_ok=True)
                    continue
                if holder["host"] == me["host"] and not _pid_alive(holder["pid"]):
                    path.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                raise RunDirectoryError(
                    f"{self.root} is in use by process {holder['pid']} on {holder['host']} "
                    f"({holder.get('command', '?')}); wait for it to finish or use another --out. "
                    f"If that process is gone, delete {path}"
                ) from None
            with os.fdopen(fd, "w") as handle:
                json.dump(me, handle)
            self._locked = True
            return
        raise RunDirectoryError(f"could not lock {self.root}; delete {path} if no other run uses it")

    @staticmethod
    def _read_lock(path: Path) -> dict[str, Any] | None:
        """The holder recorded in the lock (pid, host, command); ``None`` if it is empty or unreadable."""
        try:
            holder = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(holder, dict) or not isinstance(holder.get("host"), str):
            return None
        pid = holder.get("pid")
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            return None
        return holder

    def _check_fingerprint(self, old: Mapping[str, Any]) -> None:
        path = self.root / RUN_FILE
        if not old:
            self._listed = True  # a new run: whatever the folder holds already is not this tool's
        else:
            stored = fingerprint(old["settings"]) if isinstance(old.get("settings"), Mapping) else old.get("fingerprint")
            other_kind = old.get("kind") not in (None, self.kind)
            if stored not in (None, self.fingerprint) or other_kind:
                if other_kind and self._holds_results():
                    raise RunDirectoryError(
                        f"{self.root} holds {_a(old.get('kind'))} run; {_a(self.kind)} run cannot share its folder "
                        f"(nothing was changed). Choose another --out")
                if not self.overwrite and self._holds_results():
                    diff = settings_diff(old.get("settings", {}), self.settings)
                    raise RunDirectoryError(
                        f"{self.root} holds {_a(old.get('kind'))} run with other settings ({'; '.join(diff[:8])}"
                        f"{'; ...' if len(diff) > 8 else ''}). Use another --out, or --overwrite to discard it"
                    )
                if self._holds_results():
                    self.clear()
        if not path.exists() or read_json(path) != self._record():
            atomic_write_json(path, self._record())

    def _is_nested_run(self, item: Path) -> bool:
        return item.is_dir() and (item / RUN_FILE).exists()

    def _holds_results(self) -> bool:
        """Anything this tool wrote besides ``run.json``, the lock and nested run directories (judged by
        their own store)? Without a list of its files (an older ``run.json``): anything at all."""
        return any(item.name not in (RUN_FILE, LOCK_FILE) and not self._is_nested_run(item)
                   and (not self._listed or item.name in self.files) for item in self.root.iterdir())

    def clear(self) -> None:
        """Remove what this tool wrote here (``--overwrite``): the entries ``run.json`` lists, keeping
        the lock and the nested run directories (e.g. an experiment's ``teacher/``: it has its own
        fingerprint, checked by its own store). A folder that also holds files the tool did not
        write is not cleared: the error lists a few."""
        import shutil

        items = [item for item in self.root.iterdir()
                 if item.name not in (RUN_FILE, LOCK_FILE) and not self._is_nested_run(item)]
        foreign = sorted(item.name for item in items if not self._listed or item.name not in self.files)
        if foreign:
            why = "" if self._listed else " (its run.json, from an older version, does not list its files)"
            raise RunDirectoryError(
                f"{self.root} holds files spectralkd did not write{why}: {', '.join(foreign[:5])}"
                f"{f' and {len(foreign) - 5} more' if len(foreign) > 5 else ''}; --overwrite discards only a run's "
                "own files. Move those away (or delete the folder yourself), or choose another --out")
        for item in items:
            shutil.rmtree(item) if item.is_dir() else item.unlink()
        self.files = {name for name in self.files if (self.root / name).exists()}

    # -- files ---------------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        return self.root / name

    def exists(self, name: str) -> bool:
        return (self.root / name).exists()

    def write_json(self, name: str, data: Any) -> Path:
        if not is_main_process():
            return self.root / name
        return atomic_write_json(self.root / name, data)

    def read_json(self, name: str) -> Any:
        return read_json(self.root / name)

    def write_derived(self, name: str, data: Mapping[str, Any], source: str) -> Path:
        """A JSON file derived from ``source`` (a fingerprint), stored with it."""
        if not is_main_process():
            return self.root / name
        return atomic_write_json(self.root / name, {**data, "derived_from": source})

    def read_derived(self, name: str, source: str) -> dict[str, Any] | None:
        """The derived file ``name`` if it was derived from ``source``; else ``None`` (recompute it)."""
        path = self.root / name
        if not path.exists():
            return None
        try:
            data = read_json(path)
        except ValueError:
            return None
        if data.get("derived_from") != source:
            return None
        return {k: v for k, v in data.items() if k != "derived_from"}

    # -- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any]) -> Path:
        if not is_main_process():
            return self.root / CHECKPOINT_FILE
        return atomic_torch_save(self.root / CHECKPOINT_FILE, {**state, "fingerprint": self.fingerprint})

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last checkpoint, or ``None``. A truncated file or one from other settings raises."""
        path = self.root / CHECKPOINT_FILE
        if not path.exists():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as error:  # truncated or corrupt: torch raises several types
            raise CheckpointError(
                f"{path} cannot be read ({type(error).__name__}: {error}); delete it to start this run over"
            ) from error
        if state.get("fingerprint") != self.fingerprint:
            if self.overwrite:  # --overwrite discards what other settings left
                self.remove_checkpoint()
                return None
            raise CheckpointError(
                f"{path} was written by a run with other settings; delete it (or use --overwrite) to start over"
            )
        return state

    def remove_checkpoint(self) -> None:
        if is_main_process():
            (self.root / CHECKPOINT_FILE).unlink(missing_ok=True)


def reopened(root: str | os.PathLike) -> Any:
    """The finished run in ``root`` opened again, as it was recorded (same kind, same settings), so that
    files a command writes beside its results after the run (``config.toml``, profiles) are locked and
    listed as the tool's; a no-op where a store already has ``root`` open or no run is recorded there."""
    import contextlib

    path = Path(root) / RUN_FILE
    if os.path.abspath(root) in _OPEN_ROOTS or not path.exists():
        return contextlib.nullcontext()
    try:
        record = read_json(path)
    except ValueError:
        return contextlib.nullcontext()
    if not isinstance(record, Mapping) or not isinstance(record.get("settings"), Mapping) or not record.get("kind"):
        return contextlib.nullcontext()
    return RunStore(root, kind=record["kind"], settings=record["settings"])


def check_writable_directory(path: str | os.PathLike) -> Path:
    """``path`` as a directory this process can write, created if missing; else a clear error."""
    target = Path(path)
    if str(path).strip() == "":
        raise RunDirectoryError("--out is empty; name an output directory, e.g. --out runs/demo")
    if target.exists() and not target.is_dir():
        raise RunDirectoryError(f"--out {target} is a file, not a directory; choose another --out")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirectoryError(f"cannot create {target} ({error.strerror}); choose a writable --out") from error
    probe = target / f".write-test-{os.getpid()}"
    try:  # os.access says yes to root even on a read-only mount: try it
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise RunDirectoryError(f"{target} is not writable ({error.strerror}); choose a writable --out") from error
    return target
