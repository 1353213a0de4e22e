"""Saving and loading fitted estimators and :class:`~latent_em.EMResult` records.

The format is portable and never uses pickle:

* ``NAME.json`` holds the metadata: the format name and version, the latent_em version
  that wrote it, the class of the saved object, constructor arguments, scalars, strings,
  and references to arrays;
* ``NAME.npz`` (next to it, same stem) holds every NumPy array, written with
  :func:`numpy.savez` and read with ``allow_pickle=False``. Its SHA-256 digest is stored
  in the JSON file, so a mismatched pair of files is detected.

Loading never executes code from the file: the JSON names classes only by their name,
and a name is resolved against an explicit registry — the core records
(:class:`~latent_em.EMResult`, :class:`~latent_em.Event`,
:class:`~latent_em.RestartOutcome`), every class exported by :mod:`latent_em.models` and
:mod:`latent_em.estimators`, and classes the user registers with :func:`register_class`.
Anything else is refused.

Loading checks what it reads, because a file may be damaged or hostile: only the arrays the
JSON refers to are read from the ``.npz``, each after its declared size was checked (a
compressed member may not expand more than :data:`MAX_EXPANSION` times, and all arrays
together may not exceed :data:`MAX_ARRAY_BYTES`), and every loaded parameter is validated
as :func:`latent_em.fit` validates data (finite, real, weights on the simplex, probabilities
in [0, 1], symmetric positive definite covariances, shapes that agree). Every failure is a
:class:`ModelFileError` naming the file and what is wrong.

Saving writes both files completely under temporary names in the target folder, then
renames them into place one right after the other, so an interrupted save leaves the
model that was there before intact (up to the instant between the two renames).

Round trips are exact: arrays keep their dtype and bytes, floats are written with
Python's shortest round-trip representation (non-finite values as tagged strings),
and tuples, NamedTuples, dataclasses and NumPy scalars keep their type.

Format version history
----------------------
1
    First version (latent_em 0.1).

Examples
--------
>>> import tempfile, os
>>> import numpy as np
>>> import latent_em
>>> from latent_em.io import load
>>> X = latent_em.datasets.load_faithful()
>>> gm = latent_em.GaussianMixture(2, random_state=0).fit(X)
>>> path = os.path.join(tempfile.mkdtemp(), "faithful.json")
>>> _ = gm.save(path)
>>> again = load(path)
>>> bool(np.array_equal(again.predict_proba(X), gm.predict_proba(X)))
True
"""

from __future__ import annotations

import dataclasses
import hashlib
import io as _stdio
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import _registry
from ._version import __version__
from .result import EMResult

__all__ = [
    "save",
    "load",
    "register_class",
    "registered_classes",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "UnsupportedFormatError",
    "ModelFileError",
    "MissingModelFileError",
    "MAX_ARRAY_BYTES",
    "MAX_EXPANSION",
    "MAX_DEPTH",
]

#: value of the ``"format"`` key of every file this module writes
FORMAT_NAME = "latent_em"
#: version of the file format written by this module (see the version history above)
FORMAT_VERSION = 1


#: most bytes all arrays of one file may occupy once read (4 GiB)
MAX_ARRAY_BYTES = 4 << 30
#: most a compressed ``.npz`` member may expand (``save`` never compresses)
MAX_EXPANSION = 100
#: deepest nesting of values in a file (ours are a few levels deep)
MAX_DEPTH = 64


class ModelFileError(ValueError):
    """A model file that cannot be loaded: missing, damaged, tampered with or foreign.

    The message names the file and what is wrong. It is the one error :func:`load`
    raises for anything in the files; subclasses say more.
    """


class UnsupportedFormatError(ModelFileError):
    """The file is not a latent_em file, or was written by a newer format version."""


class MissingModelFileError(ModelFileError, FileNotFoundError):
    """The JSON file, or the ``.npz`` array file that travels with it, does not exist."""


# ----------------------------------------------------------------------------- registry


def register_class(cls: type) -> type:
    """Allow instances of ``cls`` to be saved and loaded (usable as a decorator).

    Needed only for classes outside :mod:`latent_em.models` and
    :mod:`latent_em.estimators`: custom models, their parameter NamedTuples and
    statistics. Classes are identified by ``cls.__name__``, which must be unique.

    Parameters
    ----------
    cls : type
        A NamedTuple, a dataclass, a :class:`~latent_em.MixtureEstimator` subclass or a
        plain class whose instance ``__dict__`` holds saveable values.

    Returns
    -------
    type
        ``cls`` itself.
    """
    return _registry.register(cls, "user")


def registered_classes() -> dict[str, type]:
    """Every class :func:`load` may instantiate, by name."""
    return _registry.registered()


def _is_namedtuple(obj: Any) -> bool:
    return isinstance(obj, tuple) and hasattr(type(obj), "_fields")


def _is_estimator(obj: Any) -> bool:
    # the estimator classes registered themselves (and user subclasses registered as user
    # classes are estimators too)
    return isinstance(obj, _registry.classes_of_kind("estimator"))


# ----------------------------------------------------------------------------- encoding


class _Encoder:
    """Turns a Python object into JSON-compatible data, collecting arrays on the side."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.registry = registered_classes()

    def _array(self, value: np.ndarray, where: str) -> dict[str, Any]:
        if value.dtype == object and all(isinstance(v, str) for v in value.flat):
            # column names (``feature_names_in_``) and string category labels
            return {"__strings__": list(value.flat), "shape": list(value.shape)}
        if value.dtype == object or value.dtype.hasobject:
            raise TypeError(f"cannot save {where}: object arrays are not portable")
        key = f"a{len(self.arrays)}"
        self.arrays[key] = value
        return {"__array__": key}

    def _class_name(self, obj: Any, where: str) -> str:
        cls = type(obj)
        if self.registry.get(cls.__name__) is not cls:
            raise TypeError(
                f"cannot save {where}: class {cls.__module__}.{cls.__qualname__} is not "
                "registered; call latent_em.io.register_class on it"
            )
        return cls.__name__

    def encode(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            return {"__float__": repr(value)}
        if isinstance(value, np.ndarray):
            return self._array(value, where)
        if isinstance(value, np.generic):
            return {"__scalar__": self._array(np.asarray(value), where)}
        if isinstance(value, np.dtype):
            return {"__dtype__": value.str}
        if isinstance(value, type) and issubclass(value, np.generic):
            # a NumPy scalar type such as the ``dtype=np.float32`` option
            return {"__scalar_type__": np.dtype(value).str}
        if isinstance(value, np.random.Generator):
            return {"__generator__": self.encode(value.bit_generator.state, where)}
        if isinstance(value, np.random.RandomState):
            return {"__random_state__": self.encode(value.get_state(legacy=False), where)}
        if _is_namedtuple(value):
            name = self._class_name(value, where)
            fields = {f: self.encode(getattr(value, f), f"{where}.{f}") for f in value._fields}
            return {"__namedtuple__": name, "fields": fields}
        if isinstance(value, tuple):
            return {"__tuple__": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise TypeError(f"cannot save {where}: dictionary keys must be strings")
            return {"__dict__": {k: self.encode(v, f"{where}[{k!r}]") for k, v in value.items()}}
        if _is_estimator(value):
            return self._estimator(value, where)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            name = self._class_name(value, where)
            # fields with init=False are derived state that __post_init__ rebuilds
            fields = {
                f.name: self.encode(getattr(value, f.name), f"{where}.{f.name}")
                for f in dataclasses.fields(value)
                if f.init
            }
            return {"__dataclass__": name, "fields": fields}
        if _registry.kind_of(type(value)) == "user" and hasattr(value, "__dict__"):
            name = self._class_name(value, where)
            state = {k: self.encode(v, f"{where}.{k}") for k, v in vars(value).items()}
            return {"__object__": name, "state": state}
        raise TypeError(
            f"cannot save {where}: values of type {type(value).__module__}."
            f"{type(value).__qualname__} are not supported (use arrays, numbers, strings, "
            "tuples, lists, dicts, NamedTuples or registered classes)"
        )

    def _estimator(self, est: Any, where: str) -> dict[str, Any]:
        name = self._class_name(est, where)
        init = {k: self.encode(v, f"{where}.{k}") for k, v in est.get_params().items()}
        out: dict[str, Any] = {"__estimator__": name, "init": init}
        if hasattr(est, "result_"):
            out["result"] = self.encode(est.result_, f"{where}.result_")
            # every other public fitted attribute (``name_``), so estimators with extra
            # fitted state (category codes, ...) round-trip without code here
            fitted = {}
            for key, value in vars(est).items():
                if key.endswith("_") and not key.startswith("_") and key not in _DERIVED:
                    fitted[key] = self.encode(value, f"{where}.{key}")
            out["fitted"] = fitted
        return out


#: fitted attributes rebuilt from ``result_`` on loading (not stored twice)
_DERIVED = frozenset({"result_", "model_", "params_"})


class _Decoder:
    def __init__(self, arrays: _ArrayReader) -> None:
        self.arrays = arrays
        self.registry = registered_classes()
        self.depth = 0

    def _cls(self, name: Any) -> type:
        if not isinstance(name, str) or name not in self.registry:
            raise UnsupportedFormatError(
                f"the file refers to class {name!r}, which is not registered in this "
                "latent_em; register it with latent_em.io.register_class before loading"
            )
        return self.registry[name]

    def _array(self, ref: Any) -> np.ndarray:
        key = ref.get("__array__") if isinstance(ref, dict) else None
        if not isinstance(key, str):
            raise ModelFileError(f"invalid array reference {ref!r}")
        return self.arrays.get(key)

    def decode(self, value: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise ModelFileError(f"values are nested more than {MAX_DEPTH} levels deep")
            return self._decode(value)
        finally:
            self.depth -= 1

    def _decode(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "__array__" in value:
            return self._array(value)
        if "__strings__" in value:
            items, shape = value["__strings__"], value.get("shape")
            if not (isinstance(items, list) and all(isinstance(v, str) for v in items)):
                raise ModelFileError("a string array holds values that are not strings")
            if not (isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape)):
                raise ModelFileError(f"invalid shape {shape!r} of a string array")
            out = np.empty(len(items), dtype=object)
            out[:] = items
            return out.reshape(shape)
        if "__float__" in value:
            text = value["__float__"]
            if text not in ("nan", "inf", "-inf"):
                raise UnsupportedFormatError(f"invalid tagged float {text!r}")
            return float(text)
        if "__dtype__" in value:
            return np.dtype(str(value["__dtype__"]))
        if "__scalar_type__" in value:
            return np.dtype(str(value["__scalar_type__"])).type
        if "__scalar__" in value:
            return self._array(value["__scalar__"])[()]
        if "__generator__" in value:
            return _generator_from_state(self.decode(value["__generator__"]))
        if "__random_state__" in value:
            state = self.decode(value["__random_state__"])
            if not isinstance(state, dict) or state.get("bit_generator") != "MT19937":
                raise UnsupportedFormatError("invalid RandomState entry")
            random_state = np.random.RandomState()
            try:
                random_state.set_state(state)
            except (TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:
                raise ModelFileError(f"invalid MT19937 random state ({exc})") from None
            return random_state
        if "__tuple__" in value:
            return tuple(self.decode(v) for v in value["__tuple__"])
        if "__dict__" in value:
            return {k: self.decode(v) for k, v in value["__dict__"].items()}
        if "__namedtuple__" in value:
            cls = self._cls(value["__namedtuple__"])
            return cls(**{k: self.decode(v) for k, v in value["fields"].items()})
        if "__dataclass__" in value:
            cls = self._cls(value["__dataclass__"])
            fields = {k: self.decode(v) for k, v in value["fields"].items()}
            obj = cls(**fields)
            # __post_init__ may normalise values (e.g. weights_init / sum); restore the
            # saved ones exactly
            for key, field_value in fields.items():
                object.__setattr__(obj, key, field_value)
            return obj
        if "__object__" in value:
            cls = self._cls(value["__object__"])
            obj = object.__new__(cls)
            obj.__dict__.update({k: self.decode(v) for k, v in value["state"].items()})
            return obj
        if "__estimator__" in value:
            return self._estimator(value)
        raise UnsupportedFormatError(f"unrecognised entry with keys {sorted(value)}")

    def _estimator(self, value: dict[str, Any]) -> Any:
        cls = self._cls(value["__estimator__"])
        est = cls(**{k: self.decode(v) for k, v in value["init"].items()})
        if "result" in value:
            result = self.decode(value["result"])
            if not isinstance(result, EMResult):
                raise ModelFileError(f"the fitted result is a {type(result).__name__}")
            _check_params(result.params, result.model)  # before anything is derived from them
            est._store_result(result.model, result, None)
            fitted = value.get("fitted", {})
            if not isinstance(fitted, dict):
                raise ModelFileError("the fitted attributes are not a mapping")
            saved = {key: self.decode(item) for key, item in fitted.items()}
            if not all(
                isinstance(key, str) and key.endswith("_") and not key.startswith("_")
                for key in saved
            ):
                raise ModelFileError("a fitted attribute name is not of the form 'name_'")
            _derived_attributes_agree(est, saved)
            for key, item in saved.items():
                setattr(est, key, item)
        return est


_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


def _generator_from_state(state: Any) -> np.random.Generator:
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in _BIT_GENERATORS:
        raise UnsupportedFormatError(f"unknown bit generator {name!r}")
    bit_generator = getattr(np.random, name)()
    try:
        bit_generator.state = state
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:
        raise ModelFileError(f"invalid {name} random state ({exc})") from None
    return np.random.Generator(bit_generator)


# ----------------------------------------------------------------------------- files


def _paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike; got {type(path).__name__}")
    meta = Path(path)
    arrays = meta.with_suffix(".npz")
    if arrays == meta:
        raise ValueError(
            f"path must name the JSON metadata file (e.g. 'fit.json'), not the array file; "
            f"got {str(path)!r}"
        )
    return meta, arrays


def save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Save a fitted estimator or an :class:`~latent_em.EMResult`.

    Both files are written completely under temporary names in the target folder and
    then renamed into place, the arrays first: an interrupted save leaves the files that
    were there before (up to the instant between the two renames, after which the
    checksum tells that the pair does not match).

    Parameters
    ----------
    obj : MixtureEstimator or EMResult
        What to save (an unfitted estimator saves its constructor arguments only).
    path : str or os.PathLike
        The JSON metadata file, conventionally ``NAME.json``; arrays go to ``NAME.npz``
        next to it. Existing files are overwritten. The two files travel together.

    Returns
    -------
    pathlib.Path
        The path of the JSON file.

    Raises
    ------
    TypeError
        If ``obj`` (or a value inside it) is of a class that is not registered.
    """
    if not (isinstance(obj, EMResult) or _is_estimator(obj)):
        raise TypeError("save expects a fitted estimator or an EMResult; got " + type(obj).__name__)
    meta_path, array_path = _paths(path)
    encoder = _Encoder()
    content = encoder.encode(obj, type(obj).__name__)
    buffer = _stdio.BytesIO()
    np.savez(buffer, allow_pickle=False, **encoder.arrays)
    blob = buffer.getvalue()
    document = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "latent_em_version": __version__,
        "arrays": array_path.name,
        "arrays_sha256": hashlib.sha256(blob).hexdigest(),
        "content": content,
    }
    text = json.dumps(document, indent=1, allow_nan=False)
    temporary = [_write_temporary(array_path, blob)]
    try:
        temporary.append(_write_temporary(meta_path, (text + "\n").encode("utf-8")))
        os.replace(temporary[0], array_path)
        os.replace(temporary[1], meta_path)
    finally:
        for name in temporary:
            if os.path.exists(name):
                os.unlink(name)
    return meta_path


def _write_temporary(target: Path, data: bytes) -> str:
    """Write ``data`` to a new file next to ``target`` and flush it to disk."""
    import tempfile

    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        os.unlink(name)
        raise
    return name


class _ArrayReader:
    """Reads single arrays from a ``.npz`` on demand, after checking their declared size.

    Only members the JSON refers to are read; each member's header is parsed first and
    its shape and dtype must match the member's size; the bytes actually decompressed are
    bounded by :data:`MAX_ARRAY_BYTES` (all arrays together) and :data:`MAX_EXPANSION`.
    """

    def __init__(self, path: Path) -> None:
        import zipfile

        self.zip = zipfile.ZipFile(path)
        self.cache: dict[str, np.ndarray] = {}
        self.budget = MAX_ARRAY_BYTES

    def close(self) -> None:
        self.zip.close()

    def get(self, key: str) -> np.ndarray:
        if key in self.cache:
            return self.cache[key]
        try:
            info = self.zip.getinfo(key + ".npy")
        except KeyError:
            raise ModelFileError(f"the array file has no array {key!r}") from None
        if info.file_size > max(info.compress_size, 1024) * MAX_EXPANSION:
            raise ModelFileError(
                f"array {key!r} would expand from {info.compress_size} to {info.file_size} "
                f"bytes (more than {MAX_EXPANSION} times): refused"
            )
        if info.file_size > self.budget:
            raise ModelFileError(
                f"array {key!r} declares {info.file_size} bytes; the arrays of one file may "
                f"hold at most {MAX_ARRAY_BYTES} bytes together"
            )
        fmt = np.lib.format
        with self.zip.open(info) as fh:
            version = fmt.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(fh)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = fmt.read_array_header_2_0(fh)
            else:
                raise ModelFileError(f"array {key!r} has an unknown .npy version {version}")
            if dtype.hasobject:
                raise ModelFileError(f"array {key!r} holds Python objects: refused")
            count = 1
            for n in shape:
                count *= int(n)
            nbytes = count * dtype.itemsize
            if nbytes != info.file_size - fh.tell():
                raise ModelFileError(
                    f"array {key!r} declares shape {shape} of {dtype} ({nbytes} bytes), but "
                    f"its member holds {info.file_size - fh.tell()} bytes of data"
                )
            data = bytearray(fh.read(nbytes))
        if len(data) != nbytes:
            raise ModelFileError(f"array {key!r} is truncated")
        self.budget -= nbytes
        flat = np.frombuffer(data, dtype=dtype, count=count)
        arr = flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)
        self.cache[key] = arr
        return arr


# ----------------------------------------------------------------------------- checks


def _numeric_leaves(value: Any, where: str) -> list[tuple[np.ndarray, str]]:
    """The arrays and numbers inside a parameter value (arrays, lists and tuples of them)."""
    if isinstance(value, (list, tuple)) and not isinstance(value, str):
        out = []
        for i, item in enumerate(value):
            out += _numeric_leaves(item, f"{where}[{i}]")
        return out
    if isinstance(value, (np.ndarray, np.generic, float, int, complex)) and not isinstance(
        value, bool
    ):
        return [(np.asarray(value), where)]
    return []


def _check_params(params: Any, model: Any) -> None:
    """Validate loaded parameters as ``fit`` validates data: finite, real, and for the
    parameters the built-in models share by name, their constraints."""
    fields = getattr(params, "_fields", None)
    if fields is None:
        return
    for field in fields:
        for arr, where in _numeric_leaves(getattr(params, field), f"parameter {field}"):
            if arr.dtype.kind == "c":
                raise ModelFileError(f"{where} is complex; parameters must be real")
            if arr.dtype.kind not in "biuf":
                raise ModelFileError(f"{where} has the non-numeric dtype {arr.dtype}")
            if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                raise ModelFileError(f"{where} contains NaN or infinite values")
    k = getattr(model, "n_components", None)
    weights = getattr(params, "weights", None)
    if weights is not None:
        w = np.asarray(weights, dtype=float)
        if w.ndim != 1 or (isinstance(k, int) and w.shape != (k,)):
            raise ModelFileError(f"parameter weights has shape {w.shape}; expected ({k},)")
        if np.any(w < 0) or abs(float(w.sum()) - 1.0) > 1e-6:
            raise ModelFileError(
                f"parameter weights must be non-negative and sum to 1; they sum to "
                f"{float(w.sum())!r} (smallest {float(w.min())!r})"
            )
        k = w.shape[0]
    for name in ("means", "rates"):
        value = getattr(params, name, None)
        if value is not None and (np.ndim(value) < 1 or np.shape(value)[0] != k):
            raise ModelFileError(
                f"parameter {name} has shape {np.shape(value)}; its first axis must be K={k}"
            )
    rates = getattr(params, "rates", None)
    if rates is not None and np.any(np.asarray(rates) < 0):
        raise ModelFileError("parameter rates must be non-negative")
    probs = getattr(params, "probs", None)
    if probs is not None:
        tables = list(probs) if isinstance(probs, (list, tuple)) else [probs]
        for j, table in enumerate(tables):
            t = np.asarray(table, dtype=float)
            if t.ndim != 2 or t.shape[0] != k:
                raise ModelFileError(
                    f"parameter probs[{j}] has shape {t.shape}; expected (K={k}, C)"
                )
            if np.any(t < 0) or np.any(t > 1):
                raise ModelFileError(f"parameter probs[{j}] holds values outside [0, 1]")
            if isinstance(probs, (list, tuple)) and np.any(np.abs(t.sum(axis=1) - 1) > 1e-6):
                raise ModelFileError(f"the rows of parameter probs[{j}] do not sum to 1")
        categories = getattr(model, "n_categories", None)
        if isinstance(probs, (list, tuple)) and categories is not None:
            if tuple(np.shape(t)[1] for t in tables) != tuple(categories):
                raise ModelFileError(
                    "parameter probs does not match the model's numbers of categories "
                    f"{tuple(categories)}"
                )
    covariances = getattr(params, "covariances", None)
    if covariances is not None:
        _check_covariances(np.asarray(covariances), params, model, k)


def _check_covariances(cov: np.ndarray, params: Any, model: Any, k: int | None) -> None:
    means = getattr(params, "means", None)
    structure: Any = getattr(model, "covariance", None)
    if means is not None and np.ndim(means) == 2 and hasattr(structure, "shape"):
        expected = tuple(structure.shape(k, np.shape(means)[1]))
        if cov.shape != expected:
            raise ModelFileError(
                f"parameter covariances has shape {cov.shape}; expected {expected}"
            )
    if cov.ndim >= 2 and cov.shape[-1] == cov.shape[-2]:
        scale = float(np.max(np.abs(cov))) if cov.size else 0.0
        if not np.allclose(cov, np.swapaxes(cov, -1, -2), rtol=0, atol=1e-9 * max(scale, 1e-300)):
            raise ModelFileError("parameter covariances is not symmetric")
        for i, matrix in enumerate(cov.reshape(-1, cov.shape[-1], cov.shape[-1])):
            try:
                np.linalg.cholesky(matrix)
            except np.linalg.LinAlgError:
                raise ModelFileError(
                    f"parameter covariances[{i}] is not positive definite"
                ) from None
    elif np.any(cov <= 0):
        raise ModelFileError("parameter covariances must be positive (variances)")


def _as_model_reads(model: Any, option: str, value: Any) -> Any:
    """``value`` of ``option`` as ``model``'s class stores it (a model may store an alias
    under its canonical name, e.g. mclust's ``"EEE"`` as ``"tied"``); ``value`` itself if
    the model is not a dataclass or refuses it."""
    if not dataclasses.is_dataclass(model) or isinstance(model, type):
        return value
    try:
        return getattr(dataclasses.replace(model, **{option: value}), option, value)
    except (TypeError, ValueError):
        return value


def _check_loaded(obj: Any) -> None:
    """Validate a decoded estimator or result (see :func:`_check_params`)."""
    if isinstance(obj, EMResult):
        _check_params(obj.params, obj.model)
        return
    if not _is_estimator(obj) or not hasattr(obj, "result_"):
        return
    result = obj.result_
    if not isinstance(result, EMResult):
        raise ModelFileError(f"the fitted result is a {type(result).__name__}, not an EMResult")
    _check_params(result.params, result.model)
    for option in ("n_components", "covariance_type"):
        mine, theirs = getattr(obj, option, None), getattr(result.model, option, None)
        if mine is not None and theirs is not None and mine != theirs:
            mine = _as_model_reads(result.model, option, mine)
        if mine is not None and theirs is not None and mine != theirs:
            raise ModelFileError(
                f"the estimator's {option}={mine!r} disagrees with its fitted model's {theirs!r}"
            )
    categories = getattr(obj, "categories_", None)
    n_categories = getattr(result.model, "n_categories", None)
    if categories is not None and n_categories is not None:
        sizes = tuple(len(c) for c in categories)
        if sizes != tuple(n_categories):
            raise ModelFileError(
                f"categories_ lists {sizes} categories per item, but the fitted model has "
                f"{tuple(n_categories)}"
            )
        if any(len(set(np.asarray(c).tolist())) != len(c) for c in categories):
            raise ModelFileError("categories_ lists a category twice")
    n_features = getattr(obj, "n_features_in_", None)
    means = getattr(result.params, "means", None)
    if n_features is not None and means is not None and np.shape(means)[-1] != n_features:
        raise ModelFileError(
            f"n_features_in_={n_features!r} disagrees with the means' shape {np.shape(means)}"
        )
    counts = getattr(obj, "classification_counts_", None)
    if counts is not None:
        c = np.asarray(counts)
        if c.dtype.kind not in "biuf" or not np.all(np.isfinite(c)) or np.any(c < 0):
            raise ModelFileError("classification_counts_ must be finite non-negative counts")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)):
        return (
            isinstance(b, (list, tuple))
            and len(a) == len(b)
            and all(_same(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        try:
            return bool(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True))
        except TypeError:
            return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    return bool(a == b) or (a != a and b != b)


def _derived_attributes_agree(est: Any, saved: dict[str, Any]) -> None:
    """Fitted attributes that the parameters determine must equal what they determine."""
    for key, value in saved.items():
        if key not in vars(est):
            continue
        if not _same(vars(est)[key], value):
            raise ModelFileError(f"the fitted attribute {key} disagrees with the fitted parameters")


def load(path: str | os.PathLike[str]) -> Any:
    """Load an estimator or an :class:`~latent_em.EMResult` written by :func:`save`.

    Parameters
    ----------
    path : str or os.PathLike
        The JSON metadata file; the array file named inside it must sit next to it.

    Returns
    -------
    MixtureEstimator or EMResult
        An object equal, array for array, to the one that was saved.

    Raises
    ------
    ModelFileError
        For anything wrong with the files, with the file name and what is wrong:
        :class:`MissingModelFileError` (also a ``FileNotFoundError``) if the JSON file
        or its array file is missing, :class:`UnsupportedFormatError` if the file is
        not a latent_em file or was written by a newer format version, and
        :class:`ModelFileError` itself for damaged, tampered or invalid content
        (including parameters that fail validation and oversized arrays).
    """
    meta_path, _ = _paths(path)
    name = str(path)
    if not meta_path.is_file():
        raise MissingModelFileError(f"no such file: {name!r}")
    try:
        text = meta_path.read_text(encoding="utf-8")
        document = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
        reason = "values nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise UnsupportedFormatError(f"{name!r} is not a latent_em file: {reason}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise UnsupportedFormatError(
            f'{name!r} is not a latent_em file (no "format": "{FORMAT_NAME}" entry)'
        )
    version = document.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UnsupportedFormatError(f"{name!r} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise UnsupportedFormatError(
            f"{name!r} uses format version {version} (written by latent_em "
            f"{document.get('latent_em_version', '?')}); this latent_em reads versions up to "
            f"{FORMAT_VERSION}: upgrade latent_em to load it"
        )
    if "content" not in document:
        raise ModelFileError(f'{name!r} is damaged: it has no "content" entry')
    array_name = document.get("arrays")
    if not isinstance(array_name, str) or Path(array_name).name != array_name or not array_name:
        raise UnsupportedFormatError(f"{name!r} names an invalid array file {array_name!r}")
    array_path = meta_path.parent / array_name
    if not array_path.is_file():
        raise MissingModelFileError(
            f"{name!r} keeps its arrays in {array_name!r}, which is not next to it: a model "
            "is two files (NAME.json and NAME.npz) that must be copied together"
        )
    digest = hashlib.sha256()
    with open(array_path, "rb") as fh:  # streamed: the archive is not held in memory
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != document.get("arrays_sha256"):
        raise UnsupportedFormatError(
            f"the array file {array_name!r} does not belong to {name!r} (checksum "
            "mismatch): it was overwritten, the two files were mixed up, or a save was "
            "interrupted"
        )
    try:
        reader = _ArrayReader(array_path)
    except Exception as exc:  # zipfile.BadZipFile, EOFError, ... from a damaged archive
        raise ModelFileError(
            f"the array file {array_name!r} of {name!r} is not a readable .npz archive "
            f"({type(exc).__name__}: {exc})"
        ) from None
    try:
        obj = _Decoder(reader).decode(document["content"])
        _check_loaded(obj)
    except ModelFileError as exc:
        raise type(exc)(f"{name!r}: {exc}") from None
    except Exception as exc:  # KeyError, IndexError, BadZipFile, zlib.error, ...: any damage
        raise ModelFileError(
            f"{name!r} is damaged or was altered: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        reader.close()
    return obj


# EMResult.save/load reach this module through the registry (see latent_em.result)
_registry.set_file_format(save, load)
