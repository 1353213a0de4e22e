"""A fitted estimator's summary, laid out like mclust's ``summary(fit, parameters = TRUE)``.

One function, :func:`summary_text`, writes the block shown by ``estimator.summary()``
and by ``latent-em fit``: the model in words, the log-likelihood, ``n``, the degrees of
freedom (free parameters), BIC and ICL, the clustering table (hard assignments per
component) and, on request, the labelled parameters. Components are numbered as
``predict`` labels them (0, 1, ...). BIC and ICL use latent_em's sign (smaller is
better); mclust prints their negatives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["Summary", "summary_text", "format_number", "format_table", "MCLUST_NAMES"]

#: covariance type -> (mclust model name for D >= 2, for D = 1, words)
MCLUST_NAMES: dict[str, tuple[str, str, str]] = {
    "full": ("VVV", "V", "ellipsoidal, varying volume, shape and orientation"),
    "tied": ("EEE", "E", "ellipsoidal, equal volume, shape and orientation"),
    "diag": ("VVI", "V", "diagonal, varying volume and shape"),
    "spherical": ("VII", "V", "spherical, varying volume"),
}


class Summary(str):
    """The summary text; shown as text (not as a quoted string) at the prompt."""

    def __repr__(self) -> str:
        return str(self)


def format_number(value: float, digits: int = 6) -> str:
    """A float with ``digits`` significant digits, without NumPy's repr noise."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    if value != 0 and (abs(value) >= 10**digits or abs(value) < 1e-4):
        return f"{value:.{max(digits - 1, 1)}e}"
    text = f"{value:.{digits}g}"
    if "e" in text:  # .g chose exponent notation for a moderate value; spell it out
        text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return text


def format_table(
    rows: Sequence[Any],
    columns: Sequence[Any],
    values: Any,
    *,
    corner: str = "",
    digits: int = 6,
) -> list[str]:
    """Right-aligned table lines: a header of ``columns``, one labelled line per row."""
    values = np.asarray(values, dtype=float).reshape(len(rows), len(columns))
    cells = [[format_number(v, digits) for v in row] for row in values]
    labels = [str(r) for r in rows]
    left = max([len(corner), *(len(label) for label in labels)])
    widths = [
        max(len(str(c)), *(len(cells[i][j]) for i in range(len(rows))))
        for j, c in enumerate(columns)
    ]
    lines = [
        corner.ljust(left)
        + "".join(f"  {str(c):>{w}}" for c, w in zip(columns, widths, strict=True))
    ]
    for label, row in zip(labels, cells, strict=True):
        lines.append(
            label.ljust(left) + "".join(f"  {v:>{w}}" for v, w in zip(row, widths, strict=True))
        )
    return lines


def feature_names(est: Any, d: int) -> list[str]:
    """Column names seen in ``fit`` (``feature_names_in_``), else ``x1 .. xD``."""
    names = getattr(est, "feature_names_in_", None)
    if names is not None and len(names) == d:
        return [str(n) for n in names]
    return [f"x{j + 1}" for j in range(d)]


def model_words(est: Any) -> str:
    """The fitted model in words, e.g. ``Gaussian mixture, full covariance (mclust VVV:
    ellipsoidal, varying volume, shape and orientation) with 2 components``."""
    k = int(est.n_components)
    plural = "component" if k == 1 else "components"
    describe = getattr(est, "_describe_model", None)
    what = describe() if callable(describe) else type(est).__name__
    return f"{what} with {k} {plural}"


def summary_text(est: Any, *, parameters: bool = False, digits: int = 6) -> Summary:
    """The summary block of a fitted estimator (see the module docstring).

    Parameters
    ----------
    est : MixtureEstimator
        A fitted estimator.
    parameters : bool, default False
        Also print the labelled parameters (weights, means, covariances, item-response
        probabilities, rates).
    digits : int, default 6
        Significant digits of the numbers.
    """
    est._check_fitted()
    result = est.result_
    n = float(result.n_observations)
    df = int(est.n_parameters_)
    ll = float(result.log_likelihood)
    bic = -2.0 * ll + df * math.log(n) if n > 0 else math.nan
    icl = getattr(est, "icl_", None)
    title = f"{type(est).__name__} fitted by EM (latent_em)"
    lines = [title, "-" * len(title), "", model_words(est) + ":", ""]
    n_text = str(int(n)) if n == int(n) else format_number(n, digits)
    names = ["log-likelihood", "n", "df", "BIC", "ICL"]
    # the criteria with one more digit, as mclust prints them (-1126.326, -2314.316)
    cells = [
        format_number(ll, digits + 1),
        n_text,
        str(df),
        format_number(bic, digits + 1),
        "-" if icl is None else format_number(icl, digits + 1),
    ]
    widths = [max(len(a), len(b)) for a, b in zip(names, cells, strict=True)]
    lines.append("  ".join(f"{c:>{w}}" for c, w in zip(names, widths, strict=True)))
    lines.append("  ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))
    lines.append("(BIC = -2 log L + df log n and ICL = BIC + classification entropy term:")
    lines.append(" smaller is better; mclust prints the negatives)")
    lines.append("")
    restarts = len(result.restarts)
    status = (
        f"converged after {result.n_iter} iterations"
        if result.converged
        else f"NOT converged: stopped at max_iter after {result.n_iter} iterations"
    )
    lines.append(f"EM {status} (best of {restarts} start{'s' if restarts != 1 else ''})")
    model = getattr(est, "model_", None)
    if getattr(model, "prior", None) is not None:
        # mclust's summary says "Prior: defaultPrior()"; the parts of the MAP objective
        lines.append(
            f"MAP-EM under mclust's conjugate prior: log-prior "
            f"{format_number(float(result.log_prior), digits + 1)}, log-likelihood + "
            f"log-prior {format_number(float(result.objective), digits + 1)} (the "
            "log-likelihood, BIC and ICL are at the MAP estimate)"
        )
    if getattr(model, "missing", "error") == "marginalize":
        lines.append(
            "Missing values: rows with missing entries fitted under missing-at-random "
            "(the density of each row's observed columns)"
        )
    counts = getattr(est, "classification_counts_", None)
    if counts is not None:
        lines += ["", "Clustering table (rows assigned to each component):"]
        counts = np.asarray(counts, dtype=float)
        text = [str(int(c)) if c == int(c) else format_number(c, 4) for c in counts]
        widths = [max(len(str(j)), len(t)) for j, t in enumerate(text)]
        lines.append("  ".join(f"{j:>{w}}" for j, w in enumerate(widths)))
        lines.append("  ".join(f"{t:>{w}}" for t, w in zip(text, widths, strict=True)))
    if parameters:
        blocks = est._parameter_blocks(digits)
        for heading, body in blocks:
            lines += ["", heading + ":"]
            lines += body
    return Summary("\n".join(lines) + "\n")


def weights_block(est: Any, digits: int) -> tuple[str, list[str]]:
    """The mixing proportions as a one-row table labelled by component."""
    w = np.asarray(est.weights_, dtype=float)
    return "Mixing probabilities", format_table(
        ["weight"], list(range(w.size)), w[None, :], digits=digits
    )


def by_feature_block(est: Any, heading: str, values: Any, digits: int) -> tuple[str, list[str]]:
    """A ``(K, D)`` parameter as a table: one row per feature, one column per component."""
    v = np.asarray(values, dtype=float)
    return heading, format_table(
        feature_names(est, v.shape[1]), list(range(v.shape[0])), v.T, digits=digits
    )


def matrix_block(names: list[str], matrix: Any, digits: int) -> list[str]:
    """A ``(D, D)`` matrix labelled by feature on both sides."""
    return format_table(names, names, matrix, digits=digits)
