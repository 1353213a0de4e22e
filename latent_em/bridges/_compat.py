"""The one place that knows the differences between PyMC 5 / ArviZ 0.2x and PyMC 6 / ArviZ 1.x.

ArviZ 0.2x returns ``InferenceData`` and takes keyword groups in ``from_dict``; ArviZ 1.x
returns ``xarray.DataTree``, takes one nested dict, reports an equal-tailed interval in
``summary`` (``ci_prob``) and draws with ``arviz_plots`` (a ``PlotCollection``). PyMC 6's
``pm.sample`` returns a ``DataTree``. Everything else in the bridges goes through here.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "arviz_major",
    "sample_nuts",
    "loo",
    "from_dict",
    "group_names",
    "summary",
    "rhat",
    "ess_bulk",
    "to_netcdf",
    "from_netcdf",
    "plot_forest",
]


def _major(version: str) -> int:
    return int(version.split(".")[0])


def arviz_major() -> int:
    """Major version of the installed ArviZ (0 or 1)."""
    import arviz

    return _major(arviz.__version__)


def sample_nuts(
    model: Any,
    *,
    draws: int,
    tune: int,
    chains: int,
    cores: int,
    random_seed: Any,
    initvals: Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]],
    var_names: Sequence[str],
    progressbar: bool,
    nuts_sampler: str = "pymc",
    init: str = "adapt_diag",
) -> tuple[dict[str, np.ndarray], np.ndarray, Any]:
    """NUTS from ``initvals``; returns ``({name: (chain, draw, ...)}, diverging, idata)``.

    ``initvals`` is one start for every chain or a list with one per chain (a chain whose
    entry is empty starts at PyMC's default initial point). ``init="adapt_diag"`` starts
    exactly there (``jitter+`` would move every chain away from the EM estimate before
    tuning). ``idata`` is PyMC's own result (InferenceData or DataTree) with every free
    variable and the pointwise log-likelihood of the observed variable, so ``az.loo`` and
    ``pm.sample_posterior_predictive`` work on it.
    """
    import pymc as pm

    kwargs: dict[str, Any] = {}
    if nuts_sampler != "pymc":
        kwargs["nuts_sampler"] = nuts_sampler
    starts: Any = (
        [dict(v) for v in initvals] if not isinstance(initvals, Mapping) else dict(initvals)
    )
    # Threaded BLAS on few shared cores slowed multi-chain sampling ~3x (pymc-notes). An
    # environment variable only acts on a BLAS loaded after it is set: here, that of the
    # worker processes PyMC starts for cores > 1. This process's BLAS is already loaded
    # (numpy): threadpoolctl limits it at run time.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        limit: Any = contextlib.nullcontext()
    else:
        limit = threadpool_limits(limits=1, user_api="blas")
    with limit, model:
        out = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            random_seed=random_seed,
            initvals=starts,
            init=init,
            progressbar=progressbar,
            compute_convergence_checks=False,
            return_inferencedata=True,
            **kwargs,
        )
        if model.observed_RVs:
            pm.compute_log_likelihood(out, model=model, progressbar=False)
    # both InferenceData and DataTree index groups by name
    post = out["posterior"]
    values = {name: np.asarray(post[name].values) for name in var_names}
    diverging = np.asarray(out["sample_stats"]["diverging"].values, dtype=bool)
    return values, diverging, out


def loo(obj: Any) -> dict[str, Any]:
    """PSIS-LOO of an object with a log-likelihood group, the same keys on both majors.

    Returns ``elpd`` (elpd_loo), ``se``, ``p`` (effective number of parameters),
    ``pareto_k`` and ``elpd_i`` (one per observation), ``good_k`` (the Pareto k threshold
    for this number of draws, ``min(1 - 1 / log10(S), 0.7)``), ``n_bad_k`` (observations
    above it) and
    ``warning`` (ArviZ's flag), with ArviZ's warning messages in ``messages``: they are
    returned rather than raised, so the caller reports them.
    """
    az: Any = importlib.import_module("arviz")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = az.loo(obj, pointwise=True)
    if arviz_major() >= 1:
        elpd, se, p, flag, k = res.elpd, res.se, res.p, res.warning, res.pareto_k
        pointwise = res.elpd_i
        n_samples = int(res.n_samples)
    else:
        elpd, se, p, flag, k = (
            res["elpd_loo"],
            res["se"],
            res["p_loo"],
            res["warning"],
            res["pareto_k"],
        )
        pointwise = res["loo_i"]
        n_samples = int(res["n_samples"])
    k = np.asarray(getattr(k, "values", k), dtype=float).reshape(-1)
    good_k = min(1.0 - 1.0 / np.log10(n_samples), 0.7) if n_samples > 1 else 0.7
    return {
        "elpd": float(elpd),
        "se": float(se),
        "p": float(p),
        "pareto_k": k,
        "elpd_i": np.asarray(getattr(pointwise, "values", pointwise), dtype=float).reshape(-1),
        "good_k": float(good_k),
        "n_bad_k": int(np.sum(k > good_k)),
        "warning": bool(flag),
        "messages": [str(w.message) for w in caught],
    }


def from_dict(
    groups: Mapping[str, Mapping[str, np.ndarray]],
    *,
    dims: Mapping[str, Sequence[str]] | None = None,
    coords: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> Any:
    """ArviZ object from ``{group: {variable: array}}`` (InferenceData or DataTree)."""
    az: Any = importlib.import_module("arviz")

    kwargs: dict[str, Any] = {
        "dims": dict(dims or {}),
        "coords": dict(coords or {}),
        "attrs": dict(attrs or {}),
    }
    if arviz_major() >= 1:
        # 1.x takes attrs per group; "/" is the root, where DataTree.attrs reads them
        kwargs["attrs"] = {"/": kwargs["attrs"]}
        return az.from_dict({g: dict(v) for g, v in groups.items()}, **kwargs)
    return az.from_dict(**{g: dict(v) for g, v in groups.items()}, **kwargs)


def group_names(obj: Any) -> list[str]:
    """Names of the groups of an InferenceData or DataTree."""
    if hasattr(obj, "groups") and callable(obj.groups) and not hasattr(obj, "children"):
        return list(obj.groups())
    return list(obj.children)


def summary(obj: Any, var_names: Sequence[str] | None = None) -> Any:
    """``arviz.summary`` with a 94 % interval and unrounded numbers, as a DataFrame.

    The interval columns are renamed ``lower`` and ``upper`` on both majors (ArviZ 0.2x
    reports an HDI, 1.x an equal-tailed interval).
    """
    az: Any = importlib.import_module("arviz")

    names = list(var_names) if var_names is not None else None
    if arviz_major() >= 1:
        df = az.summary(obj, var_names=names, ci_prob=0.94, round_to="none")
        return df.rename(columns={"eti94_lb": "lower", "eti94_ub": "upper"})
    df = az.summary(obj, var_names=names, hdi_prob=0.94, round_to="none")
    return df.rename(columns={"hdi_3%": "lower", "hdi_97%": "upper"})


def rhat(values: np.ndarray) -> float:
    """Rank-normalized split R-hat of a ``(chain, draw)`` array."""
    az: Any = importlib.import_module("arviz")

    return float(np.asarray(az.rhat(np.asarray(values, dtype=float))))


def ess_bulk(values: np.ndarray) -> float:
    """Bulk effective sample size of a ``(chain, draw)`` array."""
    az: Any = importlib.import_module("arviz")

    return float(np.asarray(az.ess(np.asarray(values, dtype=float), method="bulk")))


def to_netcdf(obj: Any, path: str) -> str:
    """Write an InferenceData or DataTree to netCDF (h5netcdf engine); returns ``path``."""
    obj.to_netcdf(path, engine="h5netcdf")
    return path


def from_netcdf(path: str) -> Any:
    """Read what :func:`to_netcdf` wrote (files of either major read in the other).

    Both majors store one netCDF group per ArviZ group and the root attributes, so no
    conversion is needed; ``tests/test_netcdf_cross_major.py`` reads files written by each.
    """
    az: Any = importlib.import_module("arviz")

    return az.from_netcdf(path)


def plot_forest(objs: Mapping[str, Any], var_names: Sequence[str], path: str) -> str:
    """``arviz.plot_forest`` of several models side by side, saved as PNG."""
    az: Any = importlib.import_module("arviz")
    import matplotlib

    matplotlib.use("Agg")
    if arviz_major() >= 1:
        # without skipna the statistics of models with different draw counts (padded
        # with NaN when ArviZ stacks the models) are NaN and the plot comes out empty
        skip = {"skipna": True}
        pc = az.plot_forest(
            dict(objs),
            var_names=list(var_names),
            combined=True,
            backend="matplotlib",
            stats={"trunk": skip, "twig": skip, "point_estimate": skip},
        )
        pc.savefig(path)
        import matplotlib.pyplot as plt

        plt.close("all")
        return path
    axes = az.plot_forest(
        list(objs.values()),
        model_names=list(objs),
        var_names=list(var_names),
        combined=True,
        hdi_prob=0.94,
    )
    fig = np.ravel(axes)[0].figure
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
