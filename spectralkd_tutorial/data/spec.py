"""Dataset *spec* strings: a named set, a local file, or a Hugging Face hub dataset id.

=================================  ==========================================================
spec                               meaning
=================================  ==========================================================
``clinc150``, ``clinc150:small``   a named set (``clinc150[:full|small|imbalanced|plus]``,
                                   ``banking77``, ``hwu64``, ``snips``, ``embedded``)
``intents.csv``, ``x.tsv``         a local file: ``.csv``, ``.tsv``, ``.jsonl``/``.json``
``x.jsonl``, ``x.parquet``         (JSON Lines) or ``.parquet``
``hf:ORG/NAME[:CONFIG]``           a Hugging Face hub dataset (``datasets.load_dataset``)
``ORG/NAME[:CONFIG]``              the same, when ``ORG/NAME`` is not an existing local path
=================================  ==========================================================
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .common import CLINC150_VARIANTS, DATASET_NAMES, DataError

FILE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
ALIASES = {"clinc": "clinc150", "clinc_oos": "clinc150", "banking": "banking77", "hwu": "hwu64"}
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(?:/[A-Za-z0-9][\w.-]*)?$")
_BARE_HUB_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*(?::[\w.-]+)?$")
_CONFIG_RE = re.compile(r"^[\w.-]+$")
# extensions that mark a string as a file name (not a hub id) although we cannot read them
_OTHER_FILE_EXTS = {
    ".txt", ".xlsx", ".xls", ".ods", ".xml", ".yaml", ".yml", ".arrow", ".feather", ".orc", ".avro",
    ".pkl", ".pickle", ".npy", ".npz", ".h5", ".hdf5", ".gz", ".bz2", ".xz", ".zip", ".tar", ".psv", ".dat",
}


def supported_extensions() -> str:
    """The readable file extensions, for messages."""
    return ".csv, .tsv, .jsonl/.json (JSON Lines), .parquet"


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed dataset spec.

    ``kind`` is ``"named"`` (``name`` in :data:`DATASET_NAMES`, ``variant`` for CLINC150),
    ``"file"`` (``path`` and ``file_format``: ``csv``, ``tsv``, ``jsonl`` or ``parquet``) or
    ``"hub"`` (``hub_id`` and optional ``config``).
    """

    kind: str
    name: str | None = None
    variant: str | None = None
    path: Path | None = None
    file_format: str | None = None
    hub_id: str | None = None
    config: str | None = None

    def __str__(self) -> str:
        if self.kind == "named":
            return self.name + (f":{self.variant}" if self.variant else "")
        if self.kind == "file":
            return str(self.path)
        return f"hf:{self.hub_id}" + (f":{self.config}" if self.config else "")


def file_format(path: str | os.PathLike) -> str:
    """The reader for ``path`` from its extension; :class:`DataError` for any other extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in FILE_FORMATS:
        what = f"unknown file extension {suffix!r}" if suffix else "no file extension"
        raise DataError(
            f"{path}: {what}; supported: {supported_extensions()}. Rename the file if it is in one of these "
            "formats, or convert it (e.g. pandas: pd.read_excel(...).to_csv('data.csv', index=False))."
        )
    return FILE_FORMATS[suffix]


def _unknown_spec(spec: str) -> ValueError:
    """The error for a spec that is none of the accepted forms, listing them."""
    return ValueError(
        f"unknown dataset spec {spec!r}: expected a named set ({', '.join(DATASET_NAMES)}; "
        f"clinc150:{'|'.join(CLINC150_VARIANTS)}), a local file ({supported_extensions()}), "
        "or a Hugging Face hub dataset id hf:ORG/NAME[:CONFIG]"
    )


def _parse_named(text: str) -> DatasetSpec | None:
    """A named-set spec, or ``None`` when ``text`` does not start with a data set name."""
    head, sep, variant = text.partition(":")
    key = ALIASES.get(head.strip().lower(), head.strip().lower())
    if key not in DATASET_NAMES:
        return None
    variant = variant.strip().lower() if sep else ""
    if key == "clinc150" and sep:
        if variant not in CLINC150_VARIANTS:
            raise ValueError(f"unknown clinc150 variant {variant!r} in {text!r}; valid: {', '.join(CLINC150_VARIANTS)}")
        return DatasetSpec("named", name=key, variant=variant)
    if sep:
        raise ValueError(f"dataset {key!r} has no variants (spec {text!r}); use {key!r}")
    return DatasetSpec("named", name=key)


def _parse_hub(rest: str, original: str) -> DatasetSpec:
    """``ORG/NAME[:CONFIG]`` (after any ``hf:`` prefix)."""
    hub_id, sep, config = rest.strip().partition(":")
    if not _HUB_ID_RE.match(hub_id) or (sep and not _CONFIG_RE.match(config)):
        raise ValueError(f"bad Hugging Face dataset id in {original!r}: expected hf:ORG/NAME or hf:ORG/NAME:CONFIG")
    return DatasetSpec("hub", hub_id=hub_id, config=config or None)


def _looks_like_path(text: str) -> bool:
    """Whether ``text`` is meant as a local path (not a hub id): ``./``, ``/``, ``~``, deep, or a file extension."""
    return (
        text.startswith((".", "/", "~"))
        or "\\" in text
        or text.count("/") > 1
        or Path(text).suffix.lower() in _OTHER_FILE_EXTS
    )


def parse_dataset_spec(spec: str | os.PathLike | DatasetSpec) -> DatasetSpec:
    """Parse a dataset spec (see the module docstring); ``ValueError``/:class:`DataError` naming the fix."""
    if isinstance(spec, DatasetSpec):
        return spec
    if isinstance(spec, os.PathLike):
        path = Path(spec).expanduser()
        return DatasetSpec("file", path=path, file_format=file_format(path))
    if not isinstance(spec, str):
        raise TypeError(f"dataset spec must be a string or a path, got {type(spec).__name__}")
    text = spec.strip()
    if not text:
        raise _unknown_spec(spec)
    if text.lower().startswith("hf:"):
        return _parse_hub(text[3:], spec)
    if Path(text).suffix.lower() in FILE_FORMATS:
        return DatasetSpec("file", path=Path(text).expanduser(), file_format=file_format(text))
    named = _parse_named(text)
    if named is not None:
        return named
    path = Path(text).expanduser()
    if path.is_dir():
        raise DataError(
            f"{path} is a directory; pass a file ({supported_extensions()}), or, for a folder of upstream "
            f"files, a named set ({', '.join(DATASET_NAMES)}) with data_dir={str(path)!r}"
        )
    if path.exists() or _looks_like_path(text):
        file_format(text)  # raises: an extension we cannot read
    if _BARE_HUB_RE.match(text):
        return _parse_hub(text, spec)
    raise _unknown_spec(spec)
