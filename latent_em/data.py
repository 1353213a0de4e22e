"""Where the data of a fit live: in memory, on disk, in an iterable of chunks, or in Dask.

:func:`latent_em.fit` keeps an in-memory array-like on its original path. Everything else
becomes a :class:`DataSource`, which the driver reads chunk by chunk on every E-step; the
statistics of the chunks are added, which is exact because expected sufficient
statistics are additive (``docs/theory.md`` §3). Only closed-form models (those with
``expected_stats`` and ``m_step``) can be fitted this way: the generic numerical M-step
needs every posterior in memory.

Accepted data (``as_data_source``):

* the path of a ``.npy`` file, or a :class:`numpy.memmap` of a whole file: read with
  plain file reads, one chunk at a time, so resident memory stays bounded by the chunk
  (pages of a memory map would count towards the process's resident set); a
  copy-on-write map (``mode="c"``, as from ``np.load(path, mmap_mode="c")``) is read
  through the map instead, since its changes are not in the file;
* :class:`Chunks` around any re-iterable of array chunks (a list, or a zero-argument
  callable returning a fresh iterator, e.g. over files); an object whose ``__iter__``
  returns a fresh iterator and that has no length is taken as chunks too. A one-shot
  iterator (a generator) is refused: EM reads the data many times;
* a ``dask.array.Array``: the E-step of every block runs where the block lives (a
  ``distributed.Client`` is used when one is active, as for any Dask computation), the
  block statistics are combined by a tree reduction, and only the total reaches the
  client, which runs the M-step. No model knows about Dask.

Initialization sees a bounded subsample (at most ``INIT_SAMPLE_ROWS`` rows, drawn
without replacement and kept in file order); when the data have no more rows than that,
it sees all of them, so the fit starts exactly where an in-memory fit would.
"""

from __future__ import annotations

import functools
import mmap
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from ._tree import tree_add

__all__ = [
    "DataSource",
    "Chunks",
    "as_data_source",
    "check_chunk",
    "DEFAULT_CHUNK_ROWS",
    "INIT_SAMPLE_ROWS",
]

#: rows per chunk read from disk when ``chunk_size`` is not given (16 MB of 32 float64s)
DEFAULT_CHUNK_ROWS = 65_536
#: largest number of rows handed to ``model.initialize`` for data not in memory
INIT_SAMPLE_ROWS = 100_000

#: ``fn(index, x_chunk, w_chunk) -> (stats, log_likelihood)`` for one chunk
ChunkFunction = Callable[[int, np.ndarray, np.ndarray], tuple[Any, float]]


def check_chunk(model: Any, x: Any) -> Any:
    """Validate and convert one chunk with the model's own data check.

    A model may define ``check_chunk(x)`` for checks that make sense on a part of the
    data (no minimum number of rows, say); otherwise ``check_data`` is used, when the
    model has it.
    """
    check = getattr(model, "check_chunk", None) or getattr(model, "check_data", None)
    return check(x) if callable(check) else x


def _sum_parts(*parts: Any) -> Any:
    total = None
    for part in parts:
        total = tree_add(total, part)
    return total


class DataSource:
    """Data read chunk by chunk. Subclasses define ``n_rows`` and ``chunks``."""

    n_rows: int

    def chunks(self, chunk_size: int | None) -> Iterator[np.ndarray]:
        """Chunks of consecutive rows, in order, as NumPy arrays."""
        raise NotImplementedError

    def map_reduce(
        self, fn: ChunkFunction, weights: np.ndarray, chunk_size: int | None
    ) -> tuple[Any, float]:
        """``Σ_chunks fn(i, x_i, w_i)`` (leafwise), computed chunk by chunk in order."""
        total: Any = None
        start = 0
        for i, xc in enumerate(self.chunks(chunk_size)):
            stop = start + len(xc)
            total = tree_add(total, fn(i, xc, weights[start:stop]))
            start = stop
        if start != self.n_rows:
            raise ValueError(
                f"x yielded {start} rows on this pass but {self.n_rows} on the first; the "
                "chunks must be the same on every pass"
            )
        return total  # type: ignore[no-any-return]

    def init_sample(self, rng: np.random.Generator, max_rows: int | None = None) -> Any:
        """At most ``max_rows`` (default ``INIT_SAMPLE_ROWS``) rows for initialization,
        in data order.

        All rows when there are no more than ``max_rows`` (no random numbers are drawn
        then, so the initialization equals the in-memory one); otherwise a uniform
        sample without replacement.
        """
        n = self.n_rows
        max_rows = INIT_SAMPLE_ROWS if max_rows is None else max_rows
        if n <= max_rows:
            return np.concatenate(list(self.chunks(None)))
        picks = np.sort(rng.choice(n, size=max_rows, replace=False))
        parts, start = [], 0
        for xc in self.chunks(None):
            stop = start + len(xc)
            lo, hi = np.searchsorted(picks, [start, stop])
            if hi > lo:
                parts.append(np.asarray(xc)[picks[lo:hi] - start])
            start = stop
        return np.concatenate(parts)


class _NpyFile(DataSource):
    """A C-ordered array stored in a file at a byte offset (a ``.npy`` file's body)."""

    def __init__(
        self, path: str, offset: int, shape: tuple[int, ...], dtype: np.dtype, what: str
    ) -> None:
        if len(shape) < 1 or shape[0] == 0:
            raise ValueError(f"x ({what}) holds no rows: shape {shape}")
        self.path, self.offset, self.shape, self.dtype = path, offset, shape, dtype
        self.n_rows = int(shape[0])
        self.row_items = int(np.prod(shape[1:], dtype=np.int64))

    def chunks(self, chunk_size: int | None) -> Iterator[np.ndarray]:
        step = chunk_size or DEFAULT_CHUNK_ROWS
        row_bytes = self.row_items * self.dtype.itemsize
        with open(self.path, "rb") as f:
            for start in range(0, self.n_rows, step):
                rows = min(step, self.n_rows - start)
                f.seek(self.offset + start * row_bytes)
                block = np.fromfile(f, dtype=self.dtype, count=rows * self.row_items)
                if block.size != rows * self.row_items:
                    raise ValueError(f"{self.path} is shorter than its header says")
                yield block.reshape((rows, *self.shape[1:]))


def _open_npy(path: str) -> _NpyFile:
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        offset = f.tell()
    if fortran and len(shape) > 1:
        raise ValueError(
            f"x: {path} is stored in Fortran order; rows are not contiguous on disk. Save it "
            "in C order (np.save(path, np.ascontiguousarray(a)))"
        )
    if dtype.hasobject:
        raise TypeError(f"x: {path} holds Python objects, not numbers")
    return _NpyFile(path, offset, tuple(shape), dtype, what=path)


class _Indexed(DataSource):
    """Any array-like sliceable by rows (a view of a memory map, an HDF5 dataset...)."""

    def __init__(self, array: Any) -> None:
        self.array = array
        self.n_rows = int(array.shape[0])

    def chunks(self, chunk_size: int | None) -> Iterator[np.ndarray]:
        step = chunk_size or DEFAULT_CHUNK_ROWS
        for start in range(0, self.n_rows, step):
            yield np.asarray(self.array[start : start + step])


class Chunks(DataSource):
    """Data given as a re-iterable of array chunks (stacked along axis 0).

    Parameters
    ----------
    chunks : iterable of array-like, or callable returning an iterator
        A list of arrays, an object whose ``__iter__`` returns a fresh iterator, or a
        zero-argument callable that starts a new pass (e.g.
        ``lambda: (np.load(f) for f in files)``). Every pass must yield the same rows in
        the same order; the chunks are used as they come (``chunk_size`` is ignored).

    Examples
    --------
    >>> import numpy as np, latent_em
    >>> parts = [np.arange(6.0).reshape(3, 2), np.ones((2, 2))]
    >>> latent_em.data.Chunks(parts).n_rows
    5
    """

    def __init__(self, chunks: Iterable[Any] | Callable[[], Iterator[Any]]) -> None:
        if callable(chunks) and not hasattr(chunks, "__iter__"):
            self._start: Callable[[], Iterator[Any]] = chunks
        elif isinstance(chunks, Iterator):
            raise TypeError(
                "x is a one-shot iterator (a generator?); EM reads the data once per "
                "iteration. Pass a list of chunks or a function that starts a new pass, "
                "e.g. latent_em.data.Chunks(lambda: (np.load(f) for f in files))"
            )
        elif isinstance(chunks, Iterable):
            self._start = functools.partial(iter, chunks)
        else:
            raise TypeError(
                f"Chunks needs an iterable of arrays or a callable; got {type(chunks).__name__}"
            )
        n, trailing = 0, None
        for i, part in enumerate(self._start()):
            shape = np.shape(part)
            if len(shape) == 0:
                raise ValueError(f"x: chunk {i} is a scalar; chunks are arrays of rows")
            if trailing is None:
                trailing = shape[1:]
            elif shape[1:] != trailing:
                raise ValueError(
                    f"x: chunk {i} has rows of shape {shape[1:]} but chunk 0 has {trailing}"
                )
            n += shape[0]
        if n == 0:
            raise ValueError("x: the chunks hold no rows")
        self.n_rows = n

    def chunks(self, chunk_size: int | None) -> Iterator[np.ndarray]:
        for part in self._start():
            yield np.asarray(part)


class _DaskArray(DataSource):
    """A ``dask.array.Array`` whose blocks are reduced where they live."""

    #: how many partial results one task of the tree reduction adds
    split_every = 8

    def __init__(self, array: Any) -> None:
        if array.ndim < 1:
            raise ValueError("x: a dask array of rows needs at least one dimension")
        if any(np.isnan(c) for c in array.chunks[0]):
            raise ValueError(
                "x: the dask array has unknown chunk sizes along axis 0; call "
                "x.compute_chunk_sizes() first"
            )
        if any(len(c) > 1 for c in array.chunks[1:]):
            # one block per group of rows: every block holds whole rows
            array = array.rechunk({axis: -1 for axis in range(1, array.ndim)})
        self.array = array
        self.n_rows = int(array.shape[0])
        self.bounds = np.concatenate([[0], np.cumsum(array.chunks[0])]).astype(int)
        self._unit: tuple[Any, bool] | None = None

    def chunks(self, chunk_size: int | None) -> Iterator[np.ndarray]:
        for block in self.array.to_delayed().reshape(-1):
            yield np.asarray(block.compute())

    def _unit_weights(self, weights: np.ndarray) -> bool:
        # unit weights are rebuilt on the workers instead of being shipped every pass
        if self._unit is None or self._unit[0] is not weights:
            self._unit = (weights, bool(np.all(weights == 1.0)))
        return self._unit[1]

    def map_reduce(
        self, fn: ChunkFunction, weights: np.ndarray, chunk_size: int | None
    ) -> tuple[Any, float]:
        import dask

        unit = self._unit_weights(weights)
        blocks = self.array.to_delayed().reshape(-1)
        task = dask.delayed(_block_task, pure=False)
        parts = [
            task(fn, i, block, None if unit else weights[a:b])
            for i, (block, a, b) in enumerate(
                zip(blocks, self.bounds[:-1], self.bounds[1:], strict=True)
            )
        ]
        add = dask.delayed(_sum_parts, pure=False)
        while len(parts) > 1:
            parts = [
                add(*parts[j : j + self.split_every])
                for j in range(0, len(parts), self.split_every)
            ]
        (total,) = dask.compute(parts[0])
        return total  # type: ignore[no-any-return]

    def init_sample(self, rng: np.random.Generator, max_rows: int | None = None) -> Any:
        max_rows = INIT_SAMPLE_ROWS if max_rows is None else max_rows
        if self.n_rows <= max_rows:
            return np.asarray(self.array.compute())
        picks = np.sort(rng.choice(self.n_rows, size=max_rows, replace=False))
        return np.asarray(self.array[picks].compute())


def _block_task(fn: ChunkFunction, i: int, block: Any, weights: np.ndarray | None) -> Any:
    block = np.asarray(block)
    if weights is None:
        weights = np.ones(block.shape[0])
    return fn(i, block, weights)


def _memmap_file_offset(x: np.memmap) -> int | None:
    """Byte offset in ``x.filename`` of the first element of a C-contiguous memory map
    (or view of one), from its address inside the mapping; ``None`` when unknown."""
    base = x.base
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    if base is None or x.filename is None or not x.flags.c_contiguous or x.ndim < 1:
        return None
    mapped = np.frombuffer(base, dtype=np.uint8)
    inside = x.ctypes.data - mapped.ctypes.data
    if inside < 0 or inside + x.nbytes > mapped.size:
        return None
    # np.memmap maps the file from ``offset`` rounded down to the allocation granularity
    start = x.offset - x.offset % mmap.ALLOCATIONGRANULARITY
    return int(start + inside)


def _is_dask_array(x: Any) -> bool:
    # checked by module name so that importing latent_em never imports dask
    return type(x).__module__.split(".")[0] == "dask" and hasattr(x, "to_delayed")


def as_data_source(x: Any) -> DataSource | None:
    """The :class:`DataSource` for ``x``, or ``None`` when ``x`` is in-memory data.

    Raises
    ------
    TypeError
        For a one-shot iterator (EM needs many passes over the data).
    ValueError
        For a path that is not a ``.npy`` file, or a Fortran-ordered file.
    """
    if isinstance(x, DataSource):
        return x
    if isinstance(x, (str, os.PathLike)):
        path = os.fspath(x)
        if not path.endswith(".npy"):
            raise ValueError(
                f"x is a path ({path!r}) but not a .npy file; load other formats yourself "
                "or pass a latent_em.data.Chunks over them"
            )
        if not os.path.isfile(path):
            raise FileNotFoundError(f"x: no such .npy file: {path!r}")
        return _open_npy(path)
    if isinstance(x, np.memmap):
        # a copy-on-write map (mode "c") may differ from its file: its changes live in
        # private pages that only the map sees, so it is read through the map
        located = None if getattr(x, "mode", None) == "c" else _memmap_file_offset(x)
        if located is not None:
            # read its file directly: pages of the map would count as resident memory
            return _NpyFile(str(x.filename), located, tuple(x.shape), x.dtype, what=str(x.filename))
        return _Indexed(x)
    if _is_dask_array(x):
        return _DaskArray(x)
    if isinstance(x, np.ndarray) or hasattr(x, "__array__") or hasattr(x, "__len__"):
        return None
    if isinstance(x, Iterator):
        return Chunks(x)  # raises the one-shot error
    if isinstance(x, Iterable):
        return Chunks(x)
    return None
