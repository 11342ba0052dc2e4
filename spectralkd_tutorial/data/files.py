"""The user's own files: CSV, TSV, JSON Lines and Parquet, one row per (text, label).

Each reader returns a :class:`RawSplit` (texts, label names as strings, and the 1-based line or row
of every example), or raises :class:`DataError` naming the file, the line and the fix. Texts are
stripped of surrounding white space; labels may be strings or integers (integers become their
decimal string).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import DataError
from .spec import file_format

COLUMN_OPTIONS = "--text-column/--label-column (text_column=..., label_column=...)"


@dataclass
class RawSplit:
    """One split as read: ``texts[i]`` has label name ``labels[i]``, found at ``unit positions[i]`` of ``source``."""

    source: str
    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    unit: str = "line"

    def __len__(self) -> int:
        return len(self.texts)

    def where(self, i: int) -> str:
        """``"<source>: line <n>"`` for example ``i``."""
        return f"{self.source}: {self.unit} {self.positions[i]}"

    def add(self, text: Any, label: Any, position: int, columns: tuple[str, str]) -> None:
        """Append one example after checking its text and label (``columns`` names them in messages)."""
        where = f"{self.source}: {self.unit} {position}"
        if not isinstance(text, str):
            kind = "null" if text is None else type(text).__name__
            raise DataError(f"{where}: column {columns[0]!r} must hold text, got {kind} {text!r:.60}")
        if not text.strip():
            raise DataError(f"{where}: empty text in column {columns[0]!r}; fill it in or remove the row")
        self.texts.append(text.strip())
        self.labels.append(label_name(label, where, columns[1]))
        self.positions.append(position)


def label_name(value: Any, where: str, column: str) -> str:
    """A label as a string: strings stripped, integers as decimals; anything else is a :class:`DataError`."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        kind = "null" if value is None else type(value).__name__
        raise DataError(f"{where}: column {column!r} must hold a string or integer label, got {kind} {value!r:.60}")
    name = str(value).strip()
    if not name:
        raise DataError(f"{where}: empty label in column {column!r}; fill it in or remove the row")
    return name


def _missing_columns(where: str, wanted: tuple[str, str], found: list[str]) -> DataError:
    """The error for absent text/label columns: what was found and the options that name them."""
    missing = [c for c in wanted if c not in found]
    kinds = ["text" if c == wanted[0] else "label" for c in missing]
    return DataError(
        f"{where}: no {' or '.join(f'{k} column {c!r}' for k, c in zip(kinds, missing))} "
        f"(columns found: {', '.join(map(repr, found)) or 'none'}); name the columns with {COLUMN_OPTIONS}"
    )


def decode_utf8(path: Path) -> str:
    """The file's text (UTF-8, an optional BOM removed); :class:`DataError` with the line of a bad byte."""
    raw = path.read_bytes()
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        hint = " (it looks like UTF-16)" if raw[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else ""
        raise DataError(
            f"{path}: line {line}: invalid UTF-8{hint}: byte(s) {raw[exc.start:exc.end].hex(' ')} at column "
            f"{column}. Save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 in > out)."
        ) from None


def _duplicate_columns(where: str, wanted: tuple[str, str], found: list[str]) -> None:
    """A text or label column named twice would be read from one of them silently: :class:`DataError`."""
    twice = [c for c in wanted if found.count(c) > 1]
    if twice:
        raise DataError(f"{where}: column {twice[0]!r} appears {found.count(twice[0])} times (columns: "
                        f"{', '.join(map(repr, found))}); rename the copies so that each column name is unique")


def read_delimited(path: Path, delimiter: str, text_column: str, label_column: str) -> RawSplit:
    """A CSV (``,``) or TSV (``\\t``) file with a header row naming the columns (a field may be any length,
    as in JSON Lines: the ``csv`` module's 131,072-character limit is lifted while reading)."""
    text = decode_utf8(path)
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(text)))
    try:
        return _read_delimited(path, text, delimiter, text_column, label_column)
    finally:
        csv.field_size_limit(limit)


def _read_delimited(path: Path, text: str, delimiter: str, text_column: str, label_column: str) -> RawSplit:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [c.strip() for c in next(reader)]
    except StopIteration:
        raise DataError(f"{path}: empty file; expected a header row naming the columns (e.g. text,label)") from None
    except csv.Error as exc:
        raise DataError(f"{path}: line 1: {exc}") from None
    if text_column not in header or label_column not in header:
        raise _missing_columns(f"{path}: line 1 (header)", (text_column, label_column), header)
    _duplicate_columns(f"{path}: line 1 (header)", (text_column, label_column), header)
    ti, li = header.index(text_column), header.index(label_column)
    out = RawSplit(str(path))
    line = reader.line_num
    try:
        for row in reader:
            start, line = line + 1, reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if len(row) != len(header):
                sep = "tab" if delimiter == "\t" else repr(delimiter)
                raise DataError(
                    f"{path}: line {start}: {len(row)} fields, expected {len(header)} ({', '.join(header)}); "
                    f"quote fields that contain the {sep} separator"
                )
            out.add(row[ti], row[li], start, (text_column, label_column))
    except csv.Error as exc:
        raise DataError(f"{path}: line {reader.line_num}: {exc}") from None
    return out


def read_jsonl(path: Path, text_column: str, label_column: str) -> RawSplit:
    """A JSON Lines file: one JSON object per line (blank lines are skipped)."""
    out = RawSplit(str(path))
    for n, line in enumerate(decode_utf8(path).splitlines(), start=1):
        if not line.strip():
            continue
        hint = ""
        if n == 1 and line.lstrip().startswith("["):
            hint = "; the file looks like one JSON array: write one object per line (jq -c '.[]' in > out.jsonl)"
        try:
            obj = json.loads(line, object_pairs_hook=lambda pairs: _object(pairs, f"{path}: line {n}"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: line {n}: invalid JSON ({exc.msg}, column {exc.colno}){hint}") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}: line {n}: expected a JSON object per line, got {type(obj).__name__}{hint}")
        if text_column not in obj or label_column not in obj:
            raise _missing_columns(f"{path}: line {n}", (text_column, label_column), list(obj))
        out.add(obj[text_column], obj[label_column], n, (text_column, label_column))
    return out


def _object(pairs: list[tuple[str, Any]], where: str) -> dict[str, Any]:
    """A JSON object; a key given twice (``json`` would keep the last silently) is a :class:`DataError`."""
    keys = [key for key, _ in pairs]
    twice = next((key for key in keys if keys.count(key) > 1), None)
    if twice is not None:
        raise DataError(f"{where}: key {twice!r} appears {keys.count(twice)} times in one object; give each key once")
    return dict(pairs)


def read_parquet(path: Path, text_column: str, label_column: str) -> RawSplit:
    """A Parquet file (read with ``pyarrow``); positions are 1-based row numbers."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
        if text_column not in names or label_column not in names:
            raise _missing_columns(str(path), (text_column, label_column), list(names))
        _duplicate_columns(str(path), (text_column, label_column), list(names))
        table = pq.read_table(path, columns=[text_column, label_column])
    except (pa.ArrowException, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DataError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None
    out = RawSplit(str(path), unit="row")
    texts = table.column(text_column).to_pylist()
    labels = table.column(label_column).to_pylist()
    for i, (text, label) in enumerate(zip(texts, labels), start=1):
        out.add(text, label, i, (text_column, label_column))
    return out


def read_file(path: str | os.PathLike, text_column: str = "text", label_column: str = "label") -> RawSplit:
    """Read one user file by extension (:func:`~.spec.file_format`); ``FileNotFoundError`` if absent."""
    path = Path(path).expanduser()
    fmt = file_format(path)
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "not found"
        raise FileNotFoundError(f"{path}: {what}; give the path of a CSV, TSV, JSON Lines or Parquet file")
    if fmt == "parquet":
        out = read_parquet(path, text_column, label_column)
    elif fmt == "jsonl":
        out = read_jsonl(path, text_column, label_column)
    else:
        out = read_delimited(path, "\t" if fmt == "tsv" else ",", text_column, label_column)
    if not out.texts:
        raise DataError(f"{path}: no examples (only a header or blank lines)")
    return out
