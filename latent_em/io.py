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
]

#: value of the ``"format"`` key of every file this module writes
FORMAT_NAME = "latent_em"
#: version of the file format written by this module (see the version history above)
FORMAT_VERSION = 1


class UnsupportedFormatError(ValueError):
    """The file is not a latent_em file, or was written by a newer format version."""


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
    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays
        self.registry = registered_classes()

    def _cls(self, name: Any) -> type:
        if not isinstance(name, str) or name not in self.registry:
            raise UnsupportedFormatError(
                f"the file refers to class {name!r}, which is not registered in this "
                "latent_em; register it with latent_em.io.register_class before loading"
            )
        return self.registry[name]

    def _array(self, ref: Any) -> np.ndarray:
        key = ref.get("__array__") if isinstance(ref, dict) else None
        if key not in self.arrays:
            raise UnsupportedFormatError(f"the array file has no array {key!r}")
        return self.arrays[key]

    def decode(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "__array__" in value:
            return self._array(value)
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
            random_state.set_state(state)
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
            est._store_result(result.model, result, None)
            for key, item in value.get("fitted", {}).items():
                setattr(est, key, self.decode(item))
        return est


_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


def _generator_from_state(state: Any) -> np.random.Generator:
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in _BIT_GENERATORS:
        raise UnsupportedFormatError(f"unknown bit generator {name!r}")
    bit_generator = getattr(np.random, name)()
    bit_generator.state = state
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

    Parameters
    ----------
    obj : MixtureEstimator or EMResult
        What to save (an unfitted estimator saves its constructor arguments only).
    path : str or os.PathLike
        The JSON metadata file, conventionally ``NAME.json``; arrays go to ``NAME.npz``
        next to it. Existing files are overwritten.

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
    array_path.write_bytes(blob)
    meta_path.write_text(text + "\n", encoding="utf-8")
    return meta_path


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
    UnsupportedFormatError
        If the file is not a latent_em file, was written by a newer format version, or
        does not match its array file.
    FileNotFoundError
        If either file is missing.
    """
    meta_path, _ = _paths(path)
    text = meta_path.read_text(encoding="utf-8")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnsupportedFormatError(f"{str(path)!r} is not a latent_em file: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise UnsupportedFormatError(
            f'{str(path)!r} is not a latent_em file (no "format": "{FORMAT_NAME}" entry)'
        )
    version = document.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UnsupportedFormatError(f"{str(path)!r} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise UnsupportedFormatError(
            f"{str(path)!r} uses format version {version} (written by latent_em "
            f"{document.get('latent_em_version', '?')}); this latent_em reads versions up to "
            f"{FORMAT_VERSION}: upgrade latent_em to load it"
        )
    array_name = document.get("arrays")
    if not isinstance(array_name, str) or Path(array_name).name != array_name:
        raise UnsupportedFormatError(f"{str(path)!r} names an invalid array file {array_name!r}")
    blob = (meta_path.parent / array_name).read_bytes()
    if hashlib.sha256(blob).hexdigest() != document.get("arrays_sha256"):
        raise UnsupportedFormatError(
            f"the array file {array_name!r} does not belong to {str(path)!r} (checksum "
            "mismatch): it was overwritten or the two files were mixed up"
        )
    with np.load(_stdio.BytesIO(blob), allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    return _Decoder(arrays).decode(document["content"])


# EMResult.save/load reach this module through the registry (see latent_em.result)
_registry.set_file_format(save, load)
