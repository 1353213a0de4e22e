"""Helpers shared by the ``fit`` and ``predict`` commands: reading data, a progress bar."""

from __future__ import annotations

import csv
import io as _stdio
import math
import os
import time
from typing import IO, Any

import numpy as np

__all__ = [
    "read_data",
    "Data",
    "ProgressBar",
    "CommandError",
    "DataFileError",
    "MissingFileError",
    "missing_file_error",
    "parse_separator",
    "header_of",
    "is_terminal",
]


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is an interactive terminal (progress output is shown only there)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class CommandError(Exception):
    """A user error in a command: printed to stderr, exit code 2."""


class Data:
    """A data matrix read from a file, with its column names (``None`` without a header).

    Attributes
    ----------
    values : numpy.ndarray
        ``(n, D)``: float for numeric data, ``str`` for categorical labels.
    names : list of str or None
        Column names from the CSV header.
    """

    def __init__(self, values: np.ndarray, names: list[str] | None) -> None:
        self.values = values
        self.names = names


class DataFileError(CommandError, ValueError):
    """A data file that cannot be read as asked (the message names line and column)."""


class MissingFileError(CommandError, FileNotFoundError):
    """An input file that does not exist (the same message in every command)."""


def _error(message: str) -> DataFileError:
    return DataFileError(message)


def missing_file_error(path: str, what: str = "file") -> MissingFileError:
    """The one message every command gives for a missing input file."""
    if os.path.isdir(path):
        return MissingFileError(f"{path!r} is a directory, not a {what}")
    return MissingFileError(f"no such file: {path!r}")


def _is_missing(text: str) -> bool:
    """An empty cell or ``NA``/``NaN``/``NULL`` (any case): a missing value."""
    return text == "" or text.upper() in ("NA", "NAN", "NULL")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


#: ``--sep`` spellings of the tab character
_TAB_NAMES = ("\\t", "tab", "TAB", "\t")
_SEPARATOR_NAMES = {";": "semicolon", "\t": "tab", "|": "pipe", ",": "comma"}


def parse_separator(text: str) -> str:
    """The field separator of ``--sep``: one character, ``tab`` or ``\\t`` for a tab."""
    if text in _TAB_NAMES:
        return "\t"
    if len(text) != 1 or text in '"\r\n' or text.isalnum() or text in ".-+":
        import argparse

        raise argparse.ArgumentTypeError(
            f"invalid separator {text!r}: use one character such as ',' ';' '|' or 'tab'"
        )
    return text


def _separator_hint(first_line: str, delimiter: str) -> str:
    """A hint when the first line looks separated by another character than ``delimiter``."""
    for candidate in (";", "\t", "|", ","):
        if candidate != delimiter and first_line.count(candidate) > first_line.count(delimiter):
            flag = "tab" if candidate == "\t" else candidate
            return f" (the file looks {_SEPARATOR_NAMES[candidate]}-separated: try --sep '{flag}')"
    return ""


def _split(line: str, delimiter: str, where: str) -> list[str]:
    """One CSV line as stripped cells (quotes handled by the csv module)."""
    try:
        row = next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error as exc:
        raise _error(
            f"{where}: {exc} (a field longer than {csv.field_size_limit()} characters: is "
            f"this a CSV file with separator {delimiter!r}?)"
        ) from None
    return [cell.strip() for cell in row]


def header_of(path: str, delimiter: str = ",") -> list[str] | None:
    """The cells of a CSV's first line when it is a header (a cell is not a number),
    else ``None`` (also for ``.npy`` files and files that cannot be read)."""
    if path.endswith(".npy") or not os.path.isfile(path):
        return None
    try:
        with open(path, newline=None, encoding="utf-8-sig") as fh:
            number, first = _first_line(fh)
    except (OSError, UnicodeDecodeError):
        return None
    if first is None:
        return None
    cells = _split(first, delimiter, f"{path!r} line {number}")
    return None if all(_is_number(c) for c in cells) else cells


def _select_columns(
    spec_keep: str | list[str] | None,
    spec_drop: str | None,
    names: list[str] | None,
    width: int,
    path: str,
) -> list[int]:
    """Column indices chosen by ``--columns`` / ``--drop-columns`` (names or 1-based numbers,
    comma-separated, or a list of names)."""

    def resolve(spec: str | list[str], flag: str) -> list[int]:
        out = []
        items = spec if isinstance(spec, list) else (part.strip() for part in spec.split(","))
        for item in items:
            if not item:
                continue
            if names is not None and item in names:
                out.append(names.index(item))
            elif item.isdigit() and 1 <= int(item) <= width:
                out.append(int(item) - 1)
            else:
                known = ", ".join(names) if names is not None else f"numbers 1 to {width}"
                raise _error(f"{flag}: {path!r} has no column {item!r} (columns: {known})")
        return out

    keep = resolve(spec_keep, "--columns") if spec_keep else list(range(width))
    if spec_drop:
        dropped = set(resolve(spec_drop, "--drop-columns"))
        keep = [j for j in keep if j not in dropped]
    if not keep:
        raise _error(f"--columns/--drop-columns leave no column of {path!r} to fit")
    if len(set(keep)) != len(keep):
        raise _error("--columns names a column twice")
    return keep


def read_data(
    path: str,
    *,
    header: bool | None = None,
    categorical: bool = False,
    delimiter: str = ",",
    columns: str | list[str] | None = None,
    drop_columns: str | None = None,
    block_chars: int = 1 << 22,
    missing: bool = False,
) -> Data:
    """Read ``path`` (``.npy``, or CSV with an optional header) as an ``(n, D)`` matrix.

    Numeric CSV is parsed block by block (about ``block_chars`` characters at a time) by
    :func:`numpy.loadtxt`, so memory stays near the size of the result and speed near
    NumPy's parser (well over 50 MB/s); a block that does not parse is re-read cell by
    cell to name the line and column that is wrong.

    Parameters
    ----------
    path : str
        A ``.npy`` file (loaded with ``allow_pickle=False``) or a delimited text file.
    header : bool or None
        Whether the CSV's first line holds column names; ``None`` guesses: numeric data
        has a header when a cell of its first line is not a number; categorical data when
        none of the first line's cells occurs again in its column.
    categorical : bool
        Keep non-numeric cells as category labels instead of refusing them.
    delimiter : str, default ","
        The field separator.
    columns, drop_columns : str, optional
        Comma-separated column names (from the header) or 1-based numbers to keep, or
        to leave out; ``columns`` may also be a list of names.
    missing : bool, default False
        Read an empty cell, ``NA``, ``NaN`` or ``NULL`` of numeric data as NaN (a missing
        value, for ``latent-em fit --missing marginalize``) instead of refusing it.
    """
    if not os.path.isfile(path):
        raise missing_file_error(path, "data file")
    if path.endswith(".npy"):
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise _error(f"{path!r} is not a readable .npy file ({exc})") from exc
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise _error(f"{path!r} must hold a 1-D or 2-D array; got shape {arr.shape}")
        keep = _select_columns(columns, drop_columns, None, arr.shape[1], path)
        return Data(arr[:, keep] if keep != list(range(arr.shape[1])) else arr, None)
    try:
        with open(path, newline=None, encoding="utf-8-sig") as fh:
            if categorical:
                return _read_categorical(fh, path, header, delimiter, columns, drop_columns)
            return _read_numeric(
                fh, path, header, delimiter, columns, drop_columns, block_chars, missing
            )
    except UnicodeDecodeError as exc:
        raise _error(
            f"{path!r} is not a UTF-8 text file ({exc.reason} at byte {exc.start})"
        ) from None


def _first_line(fh: IO[str]) -> tuple[int, str | None]:
    number = 0
    for line in iter(fh.readline, ""):
        number += 1
        if line.strip():
            return number, line
    return number, None


def _read_numeric(
    fh: IO[str],
    path: str,
    header: bool | None,
    delimiter: str,
    columns: str | list[str] | None,
    drop_columns: str | None,
    block_chars: int,
    missing: bool = False,
) -> Data:
    line_no, first = _first_line(fh)
    if first is None:
        raise _error(f"{path!r} holds no data")
    hint = _separator_hint(first, delimiter)
    cells = _split(first, delimiter, f"{path!r} line {line_no}")
    if header is None:
        header = not all(_is_number(c) or (missing and _is_missing(c)) for c in cells)
    names = cells if header else None
    width = len(cells)
    keep = _select_columns(columns, drop_columns, names, width, path)
    usecols = None if keep == list(range(width)) else keep
    blocks: list[np.ndarray] = []
    pending = "" if header else first
    start = line_no + 1 if header else line_no
    while True:
        text = pending + fh.read(block_chars)
        pending = ""
        if not text:
            break
        if not text.endswith("\n"):
            text += fh.readline()
        block = _parse_block(text, start, path, delimiter, width, names, usecols, hint, missing)
        if block.size:
            blocks.append(block)
        start += text.count("\n")
    if not blocks:
        raise _error(f"{path!r} has a header but no data rows")
    values = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
    return Data(values, [names[j] for j in keep] if names is not None else None)


def _parse_block(
    text: str,
    start: int,
    path: str,
    delimiter: str,
    width: int,
    names: list[str] | None,
    usecols: list[int] | None,
    hint: str,
    missing: bool = False,
) -> np.ndarray:
    """Parse one block of lines (the first is line ``start``) with NumPy's parser; on any
    problem, re-read it cell by cell for a message naming the line and column."""
    try:
        block = np.loadtxt(
            _stdio.StringIO(text),
            delimiter=delimiter,
            quotechar='"',
            comments=None,
            ndmin=2,
            usecols=usecols,
            dtype=float,
        )
    except ValueError:
        block = None
    if block is not None and (usecols is not None or block.shape[1] in (0, width)):
        if missing or not np.isnan(block).any():
            return block
    return _parse_block_slowly(text, start, path, delimiter, width, names, usecols, hint, missing)


def _parse_block_slowly(
    text: str,
    start: int,
    path: str,
    delimiter: str,
    width: int,
    names: list[str] | None,
    usecols: list[int] | None,
    hint: str,
    missing: bool = False,
) -> np.ndarray:
    def column_name(j: int) -> str:
        return repr(names[j]) if names is not None else str(j + 1)

    rows = []
    for offset, line in enumerate(text.splitlines()):
        number = start + offset
        if not line.strip():
            continue
        row = _split(line, delimiter, f"{path!r} line {number}")
        if not any(row):
            continue
        if len(row) != width:
            raise _error(f"{path!r} line {number} has {len(row)} fields; expected {width}{hint}")
        picked = usecols if usecols is not None else range(width)
        for j in picked:
            cell = row[j]
            if _is_missing(cell):
                if missing:
                    continue
                raise _error(
                    f"{path!r} line {number}, column {column_name(j)}: missing value "
                    f"{cell!r}; remove or impute incomplete rows first, or fit them with "
                    "'latent-em fit --missing marginalize' (Gaussian mixtures)"
                )
            if not _is_number(cell):
                shown = cell if len(cell) <= 40 else cell[:37] + "..."
                raise _error(
                    f"{path!r} line {number}, column {column_name(j)}: {shown!r} is not a "
                    f"number{hint}"
                )
        rows.append([math.nan if _is_missing(row[j]) else float(row[j]) for j in picked])
    return np.array(rows, dtype=float).reshape(len(rows), len(usecols or range(width)))


def _read_categorical(
    fh: IO[str],
    path: str,
    header: bool | None,
    delimiter: str,
    columns: str | list[str] | None,
    drop_columns: str | None,
) -> Data:
    reader = csv.reader(fh, delimiter=delimiter)
    numbered = []
    try:
        for row in reader:
            cells = [cell.strip() for cell in row]
            if cells and any(cells):
                numbered.append((reader.line_num, cells))
    except csv.Error as exc:
        raise _error(
            f"{path!r} line {reader.line_num}: {exc} (a field longer than "
            f"{csv.field_size_limit()} characters: is this a CSV file with separator "
            f"{delimiter!r}?)"
        ) from None
    if not numbered:
        raise _error(f"{path!r} holds no data")
    lines = [line for line, _ in numbered]
    rows = [row for _, row in numbered]
    first = rows[0]
    if header is None:
        cols = list(zip(*rows[1:], strict=False))
        header = bool(cols) and all(
            not _is_number(cell) and cell not in column
            for cell, column in zip(first, cols, strict=False)
        )
    names = first if header else None
    body = rows[1:] if header else rows
    body_lines = lines[1:] if header else lines
    if not body:
        raise _error(f"{path!r} has a header but no data rows")
    width = len(names) if names is not None else len(body[0])
    hint = _separator_hint(delimiter.join(first), delimiter) if width == 1 else ""
    for line, row in zip(body_lines, body, strict=True):
        if len(row) != width:
            raise _error(f"{path!r} line {line} has {len(row)} fields; expected {width}{hint}")
    keep = _select_columns(columns, drop_columns, names, width, path)
    body = [[row[j] for j in keep] for row in body]
    kept_names = [names[j] for j in keep] if names is not None else None
    for line, row in zip(body_lines, body, strict=True):
        for j, cell in zip(keep, row, strict=True):
            if cell == "" or cell.upper() in ("NA", "NAN", "NULL"):
                shown = repr(names[j]) if names is not None else str(j + 1)
                raise _error(
                    f"{path!r} line {line}, column {shown}: missing value "
                    f"{cell!r}; remove or impute incomplete rows first"
                )
    if not all(_is_number(cell) for row in body for cell in row):
        return Data(np.array(body, dtype=str), kept_names)
    values = np.array([[float(cell) for cell in row] for row in body])
    if np.all(values == np.round(values)):
        values = values.astype(np.int64)
    return Data(values, kept_names)


class ProgressBar:
    """A one-line progress bar on stderr, shown only on a terminal and only for long runs.

    Nothing is written before ``delay`` seconds have passed, so quick fits stay silent,
    and nothing at all when ``stream`` is not a terminal (pipes, files, CI logs). Redraws
    come at most every ``interval`` seconds, so that updating after every EM iteration
    costs no terminal output per iteration.
    """

    def __init__(
        self,
        total: int,
        *,
        stream: IO[str] | None = None,
        enabled: bool | None = None,
        delay: float = 0.5,
        interval: float = 0.1,
        width: int = 30,
    ) -> None:
        import sys

        self.total = max(1, total)
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            enabled = is_terminal(self.stream)
        self.enabled = enabled
        self.delay = delay
        self.interval = interval
        self.width = width
        self.start = time.monotonic()
        self.shown = False
        self.drawn_at = -math.inf
        # characters to overwrite: a shorter line must blank out the rest of a longer one
        self.columns = width + 40

    def update(self, done: int, label: str = "") -> None:
        """Show that ``done`` of ``total`` steps are finished, with ``label``."""
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.start < self.delay or now - self.drawn_at < self.interval:
            return
        filled = math.floor(self.width * min(done, self.total) / self.total)
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"[{bar}] {done}/{self.total} {label}"
        self.columns = max(self.columns, len(line))
        self.stream.write("\r" + line.ljust(self.columns))
        self.stream.flush()
        self.shown = True
        self.drawn_at = now

    def close(self) -> None:
        """Erase the bar (if it was drawn) so the table below starts on a clean line."""
        if self.shown:
            self.stream.write("\r" + " " * self.columns + "\r")
            self.stream.flush()
            self.shown = False

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
