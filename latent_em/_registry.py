"""The classes that :mod:`latent_em.io` may save and load, filled by the classes' own modules.

A bottom-layer store with no latent_em imports: the result records, the built-in models and
the estimators register themselves where they are defined (their packages call
:func:`register_all` on their ``__all__``), and users register their own classes through
:func:`latent_em.io.register_class`. :mod:`latent_em.io` reads the store and so needs to know
no estimator or model module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

__all__ = [
    "Kind",
    "register",
    "register_all",
    "registered",
    "classes_of_kind",
    "kind_of",
    "set_file_format",
    "file_format",
]

#: what a class is to the file format: a built-in value, an estimator (saved through its
#: constructor arguments and fitted attributes), or a user class
Kind = Literal["builtin", "estimator", "user"]

_CLASSES: dict[str, tuple[type, Kind]] = {}


def register(cls: type, kind: Kind = "builtin") -> type:
    """Add ``cls`` under its ``__name__``; a different class of the same name is an error."""
    if not isinstance(cls, type):
        raise TypeError(f"register_class expects a class; got {type(cls).__name__}")
    existing = _CLASSES.get(cls.__name__)
    if existing is not None and existing[0] is not cls:
        other = existing[0]
        raise ValueError(
            f"another class named {cls.__name__!r} is already registered "
            f"({other.__module__}.{other.__qualname__}); class names must be unique"
        )
    if existing is None or kind != "user":
        _CLASSES[cls.__name__] = (cls, kind)
    return cls


def register_all(namespace: Mapping[str, object], names: Iterable[str], kind: Kind) -> None:
    """Register every class among ``names`` in ``namespace`` (a package's ``__all__``)."""
    for name in names:
        obj = namespace.get(name)
        if isinstance(obj, type):
            register(obj, kind)


def registered() -> dict[str, type]:
    """Every registered class, by name."""
    return {name: cls for name, (cls, _) in _CLASSES.items()}


def classes_of_kind(kind: Kind) -> tuple[type, ...]:
    """The registered classes of one kind."""
    return tuple(cls for cls, k in _CLASSES.values() if k == kind)


def kind_of(cls: type) -> Kind | None:
    """The kind ``cls`` was registered with, or ``None``."""
    entry = _CLASSES.get(cls.__name__)
    return entry[1] if entry is not None and entry[0] is cls else None


_FILE_FORMAT: dict[str, Callable[..., Any]] = {}


def set_file_format(save: Callable[..., Any], load: Callable[..., Any]) -> None:
    """Install the functions behind ``EMResult.save``/``load`` (called by :mod:`latent_em.io`).

    The records sit below the file format in the layers; they reach it through this hook
    instead of importing it, so no import runs back up.
    """
    _FILE_FORMAT["save"] = save
    _FILE_FORMAT["load"] = load


def file_format() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``(save, load)`` of :mod:`latent_em.io` (installed when it is imported)."""
    if not _FILE_FORMAT:
        # latent_em/__init__ imports io, so this happens only while the package is half
        # initialized
        raise RuntimeError("latent_em.io is not imported yet; import latent_em first")
    return _FILE_FORMAT["save"], _FILE_FORMAT["load"]
