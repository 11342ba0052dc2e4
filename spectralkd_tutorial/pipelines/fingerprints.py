"""What a result depends on, by contents: the data section with the user's files named by their SHA-256,
and a model directory's weights and config hashed (a fingerprint follows the contents, not the path)."""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..config.sections import DataConfig
from ..models.loading import model_directory


def data_settings(data: DataConfig) -> dict[str, Any]:
    """What a result depends on in the data section (not where the files happen to lie): the user's
    data files are named by their contents (``sha256:...``), so an edited file is other data."""
    settings = asdict(data)
    settings.pop("data_dir")
    for key in ("dataset", "train_file", "validation_file", "test_file"):
        value = settings[key]
        if isinstance(value, str) and not value.startswith("hf:") and Path(value).expanduser().is_file():
            settings[key] = f"sha256:{file_sha256(Path(value).expanduser())}"
    return settings


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (remembered while its size and modification time stay the same)."""
    status = path.stat()
    return _file_sha256(str(path.resolve()), status.st_size, status.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    return hash_file(hashlib.sha256(), path).hexdigest()


def hash_file(digest: Any, path: str | os.PathLike) -> Any:
    """``digest`` updated with the bytes of ``path``, read in 1 MiB chunks."""
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest


def model_fingerprint(path: str | os.PathLike) -> str:
    """SHA-256 over a saved model's config and weights: what a derived result was derived from."""
    folder = model_directory(path)
    digest = hashlib.sha256()
    for file in sorted(folder.iterdir()):
        if file.suffix in (".json", ".safetensors", ".bin") and file.is_file():
            digest.update(file.name.encode())
            hash_file(digest, file)
    return digest.hexdigest()
