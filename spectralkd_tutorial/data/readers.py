"""JSON and CSV readers shared by the upstream-format loaders."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .splits import IntentSplit


def _read_json(path: Path) -> Any:
    """Parse a JSON file, tolerating a UTF-8 BOM and UTF-8-encoded surrogate pairs (SNIPS)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # e.g. SNIPS PlayMusic: an emoji stored as a UTF-8-encoded UTF-16 surrogate pair.
        text = raw.decode("utf-8", errors="surrogatepass")
        try:
            text = text.encode("utf-16-le", errors="surrogatepass").decode("utf-16-le")
        except UnicodeDecodeError:  # an unpaired surrogate: replace it
            text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


def _read_csv_rows(path: Path, delimiter: str, header: Sequence[str]) -> list[tuple[int, list[str]]]:
    """Rows (with their line numbers) of a CSV whose first row must equal ``header``."""
    out = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            first = next(reader)
        except StopIteration:
            raise ValueError(f"{path}: empty file; expected a header row {delimiter.join(header)!r}") from None
        except csv.Error as exc:
            raise ValueError(f"{path}: line {reader.line_num}: {exc}") from exc
        if [c.strip() for c in first] != list(header):
            raise ValueError(f"{path}: header is {first!r}; expected {list(header)!r}")
        try:
            for row in reader:
                if not row:
                    continue  # blank line
                if len(row) != len(header):
                    raise ValueError(
                        f"{path}: line {reader.line_num}: {len(row)} fields, expected {len(header)} "
                        f"({delimiter.join(header)!r}); got {row!r:.100}"
                    )
                out.append((reader.line_num, row))
        except csv.Error as exc:
            raise ValueError(f"{path}: line {reader.line_num}: {exc}") from exc
    return out


def _read_csv_split(
    paths: Iterable[Path],
    delimiter: str,
    header: Sequence[str],
    example: Callable[[Path, dict[str, str], str], tuple[str, int]],
) -> IntentSplit:
    """One split from CSV files: ``example(path, {column: value}, "<path>: line <n>")`` reads each row
    as ``(text, label index)`` (and raises a ``ValueError`` naming that place when the row is bad)."""
    texts, labels = [], []
    for path in paths:
        for line, values in _read_csv_rows(path, delimiter, header):
            text, label = example(path, dict(zip(header, values)), f"{path}: line {line}")
            texts.append(text)
            labels.append(label)
    return IntentSplit(texts, labels)
