"""CLINC150 ``full`` from its upstream release, for a runtime with no data directory (Colab).

The Hugging Face hub has no ``full`` configuration of CLINC150 (``clinc/clinc_oos`` has ``small``,
``imbalanced`` and ``plus``), which the ``workshop`` preset reads. Where no data directory is set
and the network may be used, :func:`fetch_clinc150_full` downloads ``data_full.json`` from the
CLINC150 release on GitHub (``clinc/oos-eval`` at a fixed commit; CC BY 3.0, Larson et al., 2019)
once into ``$SPECTRALKD_CACHE_DIR/data/clinc150/``, checks its SHA-256 before keeping it, and says so.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

from .common import DataNotAvailableError

__all__ = ["CLINC150_FULL_SHA256", "CLINC150_FULL_URL", "clinc150_cache", "fetch_clinc150_full", "has_clinc150_full"]

_COMMIT = "828f8093932c8fe6ca7936c3d2e52903b1c523de"  # clinc/oos-eval, 2021-05-31
CLINC150_FULL_URL = f"https://raw.githubusercontent.com/clinc/oos-eval/{_COMMIT}/data/data_full.json"
# of the upstream file at that commit (the same bytes as ../shared/data/clinc150/data_full.json)
CLINC150_FULL_SHA256 = "36923c3705a59e08fe9c3883d8bc2dd966ef93e22cb78ac41171782a698d56e0"
_TIMEOUT_S = 60


def clinc150_cache() -> Path:
    """``<cache>/data/clinc150``: a folder the CLINC150 reader accepts (``$SPECTRALKD_CACHE_DIR``)."""
    from ..common.io import cache_dir

    return cache_dir() / "data" / "clinc150"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def has_clinc150_full() -> bool:
    """Whether the cache holds ``data_full.json`` with the expected SHA-256 (read without the network)."""
    path = clinc150_cache() / "data_full.json"
    return path.is_file() and _sha256(path.read_bytes()) == CLINC150_FULL_SHA256


def fetch_clinc150_full(log=print) -> Path:
    """The folder holding a checked ``data_full.json``: the cached copy, else downloaded now."""
    folder = clinc150_cache()
    path = folder / "data_full.json"
    if has_clinc150_full():
        return folder
    log(f"clinc150 'full' is not on the Hugging Face hub: downloading the upstream data_full.json "
        f"(CLINC150, Larson et al. 2019, CC BY 3.0) from {CLINC150_FULL_URL} into {folder}")
    try:
        with urllib.request.urlopen(CLINC150_FULL_URL, timeout=_TIMEOUT_S) as response:
            data = response.read()
    except OSError as error:  # URLError, timeouts, refused connections
        raise DataNotAvailableError(f"clinc150: downloading {CLINC150_FULL_URL} failed ({error}); set "
                                    "SPECTRALKD_DATA_DIR to a folder holding clinc150/data_full.json") from error
    digest = _sha256(data)
    if digest != CLINC150_FULL_SHA256:
        raise DataNotAvailableError(f"clinc150: {CLINC150_FULL_URL} has SHA-256 {digest}, not the expected "
                                    f"{CLINC150_FULL_SHA256}: not kept. Set SPECTRALKD_DATA_DIR to a folder holding "
                                    "the upstream clinc150/data_full.json instead")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # atomic: a half-written file is never read as the data set
    log(f"clinc150: data_full.json saved ({len(data)} bytes, SHA-256 checked)")
    return folder
