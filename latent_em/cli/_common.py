"""Helpers shared by the ``fit`` and ``predict`` commands: reading data, a progress bar."""

from __future__ import annotations

import csv
import math
import os
import time
from typing import IO, Any

import numpy as np

__all__ = ["read_data", "Data", "ProgressBar", "CommandError"]


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


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_data(path: str, *, header: bool | None = None, categorical: bool = False) -> Data:
    """Read ``path`` (``.npy``, or CSV with an optional header) as an ``(n, D)`` matrix.

    Parameters
    ----------
    path : str
        A ``.npy`` file (loaded with ``allow_pickle=False``) or a comma-separated file.
    header : bool or None
        Whether the CSV's first line holds column names; ``None`` guesses: numeric data
        has a header when a cell of its first line is not a number; categorical data when
        none of the first line's cells occurs again in its column.
    categorical : bool
        Keep non-numeric cells as category labels instead of refusing them.
    """

    if not os.path.exists(path):
        raise CommandError(f"no such file: {path!r}")
    if path.endswith(".npy"):
        try:
            arr = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise CommandError(f"{path!r} is not a readable .npy file ({exc})") from exc
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise CommandError(f"{path!r} must hold a 1-D or 2-D array; got shape {arr.shape}")
        return Data(arr, None)
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        # keep each row's line number for error messages; blank lines are skipped
        numbered = [
            (reader.line_num, [cell.strip() for cell in row])
            for row in reader
            if row and any(cell.strip() for cell in row)
        ]
    if not numbered:
        raise CommandError(f"{path!r} holds no data")
    lines = [line for line, _ in numbered]
    rows = [row for _, row in numbered]
    if header is None:
        first = rows[0]
        if categorical:
            columns = list(zip(*rows[1:], strict=False))
            header = bool(columns) and all(
                not _is_number(cell) and cell not in column
                for cell, column in zip(first, columns, strict=False)
            )
        else:
            header = not all(_is_number(cell) for cell in first)
    names = rows[0] if header else None
    body = rows[1:] if header else rows
    body_lines = lines[1:] if header else lines
    if not body:
        raise CommandError(f"{path!r} has a header but no data rows")
    width = len(names) if names is not None else len(body[0])
    for line, row in zip(body_lines, body, strict=True):
        if len(row) != width:
            raise CommandError(f"{path!r} line {line} has {len(row)} fields; expected {width}")

    def column_name(j: int) -> str:
        return repr(names[j]) if names is not None else str(j + 1)

    for line, row in zip(body_lines, body, strict=True):
        for j, cell in enumerate(row):
            if cell == "" or cell.upper() in ("NA", "NAN", "NULL"):
                raise CommandError(
                    f"{path!r} line {line}, column {column_name(j)}: missing value "
                    f"{cell!r}; remove or impute incomplete rows first"
                )
            if not categorical and not _is_number(cell):
                raise CommandError(
                    f"{path!r} line {line}, column {column_name(j)}: {cell!r} is not a number"
                )
    if categorical and not all(_is_number(cell) for row in body for cell in row):
        return Data(np.array(body, dtype=str), names)
    values = np.array([[float(cell) for cell in row] for row in body])
    if categorical and np.all(values == np.round(values)):
        values = values.astype(np.int64)
    return Data(values, names)


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
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
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
