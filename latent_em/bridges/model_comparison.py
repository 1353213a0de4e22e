"""EM's information criteria next to the posterior's LOO, across numbers of components.

:func:`compare_components` fits the estimator for every K (through
:func:`latent_em.select_components`), cross-checks every fit with NUTS
(:func:`~latent_em.bridges.crosscheck`) and puts in one table: EM's log-likelihood, BIC
and ICL (smaller is better), and the posterior's PSIS-LOO expected log predictive density
``elpd_loo`` (larger is better) with its standard error, its difference to the best K and
the standard error of that difference (from the pointwise values, as ``az.compare``
computes it: ``se_diff = sqrt(n · var_n(elpd_i(best) - elpd_i(K)))``), the number of
observations with a high Pareto k, and the cross-check's verdict.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["ComponentComparison", "ComparisonRow", "compare_components"]


@dataclasses.dataclass(frozen=True)
class ComparisonRow:
    """One K of :class:`ComponentComparison`.

    Attributes
    ----------
    n_components : int
    log_likelihood, bic, icl : float
        EM's maximized log-likelihood and criteria (smaller is better).
    elpd_loo, se, p_loo : float
        PSIS-LOO of the posterior: expected log predictive density, its standard error
        and the effective number of parameters.
    elpd_diff, se_diff : float
        ``elpd_loo`` of the best K minus this K's (0 for the best) and the standard
        error of that difference.
    n_bad_k : int
        Observations whose Pareto k exceeds ArviZ's threshold (LOO unreliable there).
    verdict : str
        The cross-check's verdict for this K.
    """

    n_components: int
    log_likelihood: float
    bic: float
    icl: float
    elpd_loo: float
    se: float
    p_loo: float
    elpd_diff: float
    se_diff: float
    n_bad_k: int
    verdict: str


@dataclasses.dataclass(frozen=True)
class ComponentComparison:
    """What :func:`compare_components` found.

    Attributes
    ----------
    rows : tuple of ComparisonRow
        One row per K, in the order given.
    best_bic, best_icl, best_loo : int
        The K chosen by each criterion.
    reports : dict of int to CrossCheckReport
        The cross-check of every K.
    """

    rows: tuple[ComparisonRow, ...]
    best_bic: int
    best_icl: int
    best_loo: int
    reports: dict[int, Any] = dataclasses.field(repr=False)

    def to_dataframe(self) -> Any:
        """The table as a :class:`pandas.DataFrame` indexed by K."""
        import pandas as pd

        return pd.DataFrame([dataclasses.asdict(r) for r in self.rows]).set_index("n_components")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready table."""
        return {
            "rows": [dataclasses.asdict(r) for r in self.rows],
            "best_bic": self.best_bic,
            "best_icl": self.best_icl,
            "best_loo": self.best_loo,
        }

    def to_json(self, path: str) -> str:
        """Write :meth:`to_dict` to ``path`` (NaN as ``null``); returns ``path``."""

        def clean(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            return v

        data = self.to_dict()
        data["rows"] = [{k: clean(v) for k, v in r.items()} for r in data["rows"]]
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        return path

    def to_table(self) -> str:
        """Fixed-width text; ``*`` marks the K each criterion chooses."""
        head = (
            f"{'K':>3} {'logL':>11} {'BIC':>11}  {'ICL':>11}  {'elpd_loo':>10} {'se':>7} "
            f"{'p_loo':>6} {'elpd_diff':>10} {'se_diff':>8} {'bad k':>6}  verdict"
        )
        lines = [head, "-" * len(head)]
        for r in self.rows:
            k = r.n_components
            lines.append(
                f"{k:>3} {r.log_likelihood:11.3f} {r.bic:11.3f}{'*' if k == self.best_bic else ' '}"
                f" {r.icl:11.3f}{'*' if k == self.best_icl else ' '} {r.elpd_loo:10.3f}"
                f"{'*' if k == self.best_loo else ' '}{r.se:6.2f} {r.p_loo:6.2f} "
                f"{r.elpd_diff:10.3f} {r.se_diff:8.3f} {r.n_bad_k:>6}  {r.verdict}"
            )
        lines += [
            "",
            f"BIC chooses K={self.best_bic}, ICL K={self.best_icl}, LOO K={self.best_loo} "
            "(BIC/ICL: smaller is better; elpd_loo: larger is better; an elpd difference "
            "within about 2 se_diff is not decisive)",
        ]
        bad = [r.n_components for r in self.rows if r.n_bad_k]
        if bad:
            lines.append(f"LOO unreliable for some observations (high Pareto k) at K = {bad}")
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.to_table()


def compare_components(
    estimator: Any,
    X: Any,
    k_range: Iterable[int],
    **crosscheck_options: Any,
) -> ComponentComparison:
    """EM's BIC/ICL and the posterior's LOO for every number of components.

    Parameters
    ----------
    estimator : estimator
        An unfitted latent_em estimator (e.g. ``GaussianMixture(2, n_init=5)``), cloned
        for every K with its other settings.
    X : array-like
        Data.
    k_range : iterable of int
        Numbers of components (each >= 1).
    **crosscheck_options
        Passed to :func:`~latent_em.bridges.crosscheck` (``draws``, ``tune``, ``chains``,
        ``random_seed``, ...).

    Returns
    -------
    ComponentComparison
    """
    from ..selection import select_components
    from . import _compat
    from .crosscheck import crosscheck

    selection = select_components(estimator, X, k_range, criterion="bic")
    reports: dict[int, Any] = {}
    loos: dict[int, dict[str, Any]] = {}
    for row in selection.rows:
        k = row.n_components
        reports[k] = crosscheck(selection.fits[k], X, **crosscheck_options)
        if reports[k].inference_data is None:
            raise ValueError(f"K={k}: the cross-check has no log-likelihood group for LOO")
        loos[k] = _compat.loo(reports[k].inference_data)
    best_loo = max(loos, key=lambda k: loos[k]["elpd"])
    best = loos[best_loo]["elpd_i"]
    rows = []
    for row in selection.rows:
        k = row.n_components
        diff = best - loos[k]["elpd_i"]
        rows.append(
            ComparisonRow(
                n_components=k,
                log_likelihood=row.log_likelihood,
                bic=row.bic,
                icl=row.icl,
                elpd_loo=loos[k]["elpd"],
                se=loos[k]["se"],
                p_loo=loos[k]["p"],
                elpd_diff=float(np.sum(diff)),
                se_diff=float(np.sqrt(diff.size * np.var(diff))) if k != best_loo else 0.0,
                n_bad_k=loos[k]["n_bad_k"],
                verdict=reports[k].verdict,
            )
        )
    by = {r.n_components: r for r in rows}
    return ComponentComparison(
        rows=tuple(rows),
        best_bic=min(by, key=lambda k: by[k].bic),
        best_icl=min(by, key=lambda k: by[k].icl),
        best_loo=best_loo,
        reports=reports,
    )
