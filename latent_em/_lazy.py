"""Deferred imports of scipy submodules, so that ``import latent_em`` stays fast.

``scipy.linalg``, ``scipy.special`` and ``scipy.optimize`` take most of a cold
``import latent_em`` (0.5-0.7 s of 0.75 s on a loaded 2-core machine). A module that
needs them writes ``linalg = lazy_module("scipy.linalg")`` or
``gammaln, xlogy = lazy_functions("scipy.special", "gammaln", "xlogy")`` and uses the
names as before; the submodule is imported on first use (then Python's module cache
makes every later use a dictionary lookup).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_functions", "lazy_module"]


class LazyModule:
    """Stands for the module ``name``; imports it when an attribute is first read."""

    def __init__(self, name: str) -> None:
        self.module_name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self.module_name), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self.module_name!r}>"


def lazy_module(name: str) -> Any:
    """A stand-in for module ``name`` that imports it on first attribute access."""
    return LazyModule(name)


def lazy_functions(module: str, *names: str) -> tuple[Callable[..., Any], ...]:
    """Functions ``module.name`` (for each name) that import ``module`` on first call."""

    def make(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return getattr(importlib.import_module(module), name)(*args, **kwargs)

        call.__name__ = call.__qualname__ = name
        call.__doc__ = f"``{module}.{name}``, imported on first call."
        return call

    return tuple(make(n) for n in names)
