"""The verdict of a cross-check: a pure function of the EM fit and the relabeled draws.

:func:`judge` compares an EM estimate with posterior draws (already relabeled to the EM
solution) and says ``"agree"``, ``"disagree"`` or ``"inconclusive"``. It samples
nothing, so every signal is unit-tested on synthetic draws (``tests/test_bridges_verdict.py``).

Signals of disagreement (any one makes the verdict ``"disagree"``; each is stated in words):

``interval``
    The EM value lies outside the posterior central interval (94 % by default). A
    posterior sd inflated by a heavy tail hides this from a z-score: a variance with
    interval [1.16, 318] and EM at 0.85 has z = -0.4.
``z``
    ``|EM - posterior mean| / posterior sd`` above ``Thresholds.z`` (3).
``sd_ratio``
    The posterior sd is more than ``Thresholds.sd_ratio`` (3) times larger or smaller
    than the EM standard error (when standard errors are known). Under a well-identified
    model both estimate the same spread (Bernstein-von Mises).
``boundary``
    The EM estimate sits on a boundary of the parameter space: a component collapsed onto
    a point (variance at the floor), a weight or probability of exactly 0 or 1. The
    asymptotics behind standard errors fail there, and the posterior keeps the
    parameter inside.
``membership``
    EM's hard labels (most responsible component) and the posterior allocation (most
    probable component, averaged over draws) agree for fewer than
    ``Thresholds.label_agreement`` (90 %) of the rows.
``modes``
    Chains settled in different modes: for some parameter, the medians of two chains
    lie more than ``Thresholds.mode_separation`` (4) within-chain sds apart; or no
    chain settled near the EM estimate (every mode's medians lie further than that from
    it, in the mode's sds).
``log_likelihood``
    A posterior draw reaches a log-likelihood more than ``Thresholds.loglik_margin`` (1)
    above EM's: EM did not find the maximum.

With no signal, poor sampler diagnostics (divergences, R-hat above 1.05, bulk ESS below
100) make the verdict ``"inconclusive"``; otherwise it is ``"agree"``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from . import _compat

__all__ = ["Thresholds", "ParameterComparison", "Verdict", "judge", "element_names"]

SIGNALS = ("interval", "z", "sd_ratio", "boundary", "membership", "modes", "log_likelihood")


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """When a signal fires (see the module docstring).

    Attributes
    ----------
    interval : float, default 0.94
        Probability of the central posterior interval that must contain the EM value.
    z : float, default 3
        Largest ``|z|`` counted as agreement.
    sd_ratio : float, default 3
        Largest factor between posterior sd and EM standard error, either way.
    label_agreement : float, default 0.9
        Smallest fraction of rows whose EM hard label is the posterior's most probable
        component.
    mode_separation : float, default 4
        Largest distance between two chains' medians, in within-chain sds.
    loglik_margin : float, default 1
        Largest excess of a draw's log-likelihood over EM's (a likelihood ratio above e
        cannot happen at the maximum).
    r_hat : float, default 1.05
        Largest R-hat of a sampler in order.
    ess_bulk : float, default 100
        Smallest bulk ESS of a sampler in order.
    """

    interval: float = 0.94
    z: float = 3.0
    sd_ratio: float = 3.0
    label_agreement: float = 0.9
    mode_separation: float = 4.0
    loglik_margin: float = 1.0
    r_hat: float = 1.05
    ess_bulk: float = 100.0

    def __post_init__(self) -> None:
        if not 0.0 < self.interval < 1.0:
            raise ValueError(f"thresholds.interval must lie in (0, 1); got {self.interval!r}")
        for name in ("z", "mode_separation", "r_hat", "ess_bulk", "loglik_margin"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"thresholds.{name} must be a positive number; got {value!r}")
        if not self.sd_ratio > 1.0:
            raise ValueError(f"thresholds.sd_ratio must be > 1; got {self.sd_ratio!r}")
        if not 0.0 <= self.label_agreement <= 1.0:
            raise ValueError(
                f"thresholds.label_agreement must lie in [0, 1]; got {self.label_agreement!r}"
            )


@dataclasses.dataclass(frozen=True)
class ParameterComparison:
    """EM estimate against the posterior for one scalar parameter.

    Attributes
    ----------
    name : str
        E.g. ``"means[1,0]"``.
    em : float
        EM estimate.
    se : float or None
        Standard error of the EM estimate, when known.
    mean, sd : float
        Posterior mean and standard deviation (relabeled draws).
    lower, upper : float
        Central posterior interval (94 % by default: 3 % and 97 % quantiles).
    z : float
        Standardized difference ``(em - mean) / sd``.
    r_hat, ess_bulk : float
        Rank-normalized split R-hat and bulk ESS of the relabeled draws.
    verdict : str
        ``"agree"`` or ``"disagree"``.
    reasons : tuple of str
        Why it disagrees, in words (empty when it agrees).
    em_quantile : float
        Fraction of posterior draws below the EM value.
    sd_ratio : float or None
        Posterior sd divided by the standard error (``None`` without a standard error).
    signals : tuple of str
        Names of the signals that fired for this parameter (see :data:`SIGNALS`).
    """

    name: str
    em: float
    se: float | None
    mean: float
    sd: float
    lower: float
    upper: float
    z: float
    r_hat: float
    ess_bulk: float
    verdict: str
    reasons: tuple[str, ...]
    em_quantile: float = math.nan
    sd_ratio: float | None = None
    signals: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What :func:`judge` concluded.

    Attributes
    ----------
    verdict : str
        ``"agree"``, ``"disagree"`` or ``"inconclusive"``.
    reasons : tuple of str
        Every reason, in words.
    signals : tuple of str
        Names of the signals that fired (a subset of :data:`SIGNALS`).
    parameters : tuple of ParameterComparison
        One row per scalar parameter.
    diagnostics : dict
        ``divergences``, ``max_r_hat``, ``min_ess_bulk``, ``max_r_hat_before_relabeling``.
    membership : dict
        ``label_agreement`` (overall and ``label_agreement_per_chain``),
        ``max_abs_difference`` and ``mean_abs_difference`` of EM responsibilities and
        posterior membership probabilities (empty without them).
    modes : dict
        ``chain_mode`` (mode index of every chain; chains in one mode share it),
        ``n_modes``, ``em_mode`` (index of the mode holding the EM estimate, or ``None``)
        and ``separation`` (largest distance between two chains' medians in within-chain
        sds, and the parameter where it occurs).
    """

    verdict: str
    reasons: tuple[str, ...]
    signals: tuple[str, ...]
    parameters: tuple[ParameterComparison, ...]
    diagnostics: dict[str, Any]
    membership: dict[str, Any]
    modes: dict[str, Any]


def element_names(name: str, shape: tuple[int, ...], symmetric: bool) -> list[tuple[str, tuple]]:
    """``[(label, index), ...]`` of the scalar elements of a parameter, e.g. ``means[1,0]``.

    A symmetric matrix (the last two axes) is reported as its upper triangle only.
    """
    out = []
    for idx in np.ndindex(*shape):
        if symmetric and len(idx) >= 2 and idx[-2] > idx[-1]:
            continue
        label = f"{name}[{','.join(map(str, idx))}]" if idx else name
        out.append((label, idx))
    return out


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _compare(
    label: str,
    em: float,
    se: float | None,
    values: np.ndarray,
    boundary: str | None,
    t: Thresholds,
) -> ParameterComparison:
    """One row: the parameter-level signals (interval, z, sd ratio, boundary)."""
    flat = values.reshape(-1)
    mean = float(flat.mean())
    sd = float(flat.std(ddof=1)) if flat.size > 1 else math.nan
    tail = (1.0 - t.interval) / 2.0
    lower, upper = (float(q) for q in np.quantile(flat, [tail, 1.0 - tail]))
    quantile = float(np.mean(flat < em) + 0.5 * np.mean(flat == em))
    if sd > 0:
        z = (em - mean) / sd
    else:
        z = 0.0 if em == mean else math.copysign(math.inf, em - mean)
    multi_chain = values.shape[0] > 1 and values.shape[1] >= 4 and sd > 0
    r_hat = _compat.rhat(values) if multi_chain else math.nan
    ess = _compat.ess_bulk(values) if values.shape[1] >= 4 and sd > 0 else math.nan
    pct = f"{100 * t.interval:g}%"
    reasons: list[str] = []
    signals: list[str] = []
    if boundary is not None:
        signals.append("boundary")
        reasons.append(
            f"{boundary}; the posterior keeps it inside ({pct} [{_fmt(lower)}, {_fmt(upper)}])"
        )
    if not lower <= em <= upper:
        signals.append("interval")
        reasons.append(
            f"EM {_fmt(em)} outside the posterior {pct} interval [{_fmt(lower)}, "
            f"{_fmt(upper)}] (at its {100 * quantile:.3g}% quantile)"
        )
    if abs(z) > t.z:
        signals.append("z")
        reasons.append(f"|z| = {abs(z):.2f} > {t.z:g} (posterior mean {_fmt(mean)}, sd {_fmt(sd)})")
    ratio = None
    if se is not None and math.isfinite(se) and se > 0 and sd > 0:
        ratio = sd / se
        if not 1.0 / t.sd_ratio <= ratio <= t.sd_ratio:
            signals.append("sd_ratio")
            reasons.append(
                f"posterior sd {_fmt(sd)} is {ratio:.2g} times the EM standard error {_fmt(se)}"
            )
    return ParameterComparison(
        name=label,
        em=em,
        se=se,
        mean=mean,
        sd=sd,
        lower=lower,
        upper=upper,
        z=float(z),
        r_hat=r_hat,
        ess_bulk=ess,
        verdict="disagree" if signals else "agree",
        reasons=tuple(reasons),
        em_quantile=quantile,
        sd_ratio=ratio,
        signals=tuple(signals),
    )


def chain_modes(
    draws: Mapping[str, np.ndarray], separation: float
) -> tuple[np.ndarray, float, str | None, tuple[int, int] | None]:
    """Group chains into modes by the distance between their medians.

    Two chains are in one mode when, for every scalar parameter, their medians lie within
    ``separation`` pooled within-chain sds (single linkage over chains).

    Returns
    -------
    chain_mode : (chains,) int
        Mode index of every chain (0 for the first chain's mode).
    largest : float
        The largest distance found, in within-chain sds.
    where : str or None
        The parameter element where it occurs.
    pair : (int, int) or None
        The two chains.
    """
    arrays = {k: np.asarray(v, dtype=float) for k, v in draws.items()}
    n_chains = next(iter(arrays.values())).shape[0] if arrays else 0
    # linked[a, b]: chains a and b lie within ``separation`` on every parameter
    linked = np.ones((n_chains, n_chains), dtype=bool)
    largest, where, pair = 0.0, None, None
    for name, values in arrays.items():
        flat = values.reshape(values.shape[0], values.shape[1], -1)
        med = np.median(flat, axis=1)  # (chain, element)
        sd = flat.std(axis=1)
        for a in range(n_chains):
            for b in range(a + 1, n_chains):
                pooled = np.sqrt(0.5 * (sd[a] ** 2 + sd[b] ** 2))
                diff = np.abs(med[a] - med[b])
                with np.errstate(divide="ignore", invalid="ignore"):
                    dist = np.where(pooled > 0, diff / pooled, np.where(diff > 0, np.inf, 0.0))
                j = int(np.argmax(dist))
                if dist[j] > largest:
                    idx = np.unravel_index(j, values.shape[2:]) if values.ndim > 2 else ()
                    largest = float(dist[j])
                    where = f"{name}[{','.join(map(str, idx))}]" if idx else name
                    pair = (a, b)
                if np.any(dist > separation):
                    linked[a, b] = linked[b, a] = False
    # modes are the connected components of ``linked`` (single linkage)
    mode = np.full(n_chains, -1)
    current = 0
    for start in range(n_chains):
        if mode[start] >= 0:
            continue
        stack = [start]
        while stack:
            c = stack.pop()
            if mode[c] >= 0:
                continue
            mode[c] = current
            stack.extend(int(o) for o in np.flatnonzero(linked[c]) if mode[o] < 0)
        current += 1
    return mode, largest, where, pair


def _em_mode(
    draws: Mapping[str, np.ndarray], estimate: Mapping[str, np.ndarray], mode: np.ndarray
) -> tuple[int | None, list[float]]:
    """Distance of every mode from the EM estimate (largest over the parameters of
    ``|median - EM| / sd`` of the mode's pooled chains), and the closest mode."""
    distances = []
    for m in range(int(mode.max()) + 1 if mode.size else 0):
        chains = np.flatnonzero(mode == m)
        worst = 0.0
        for name, values in draws.items():
            v = np.asarray(values, dtype=float)[chains]
            flat = v.reshape(-1, *v.shape[2:])
            med = np.median(flat, axis=0)
            sd = flat.std(axis=0)
            diff = np.abs(med - np.asarray(estimate[name], dtype=float))
            with np.errstate(divide="ignore", invalid="ignore"):
                dist = np.where(sd > 0, diff / sd, np.where(diff > 0, np.inf, 0.0))
            worst = max(worst, float(np.max(dist)) if dist.size else 0.0)
        distances.append(worst)
    best = int(np.argmin(distances)) if distances else None
    return best, distances


def _membership(em_resp: Any, post: Any) -> dict[str, Any]:
    em = np.asarray(em_resp, dtype=float)
    per_chain = np.asarray(post, dtype=float)
    if per_chain.ndim == 2:
        per_chain = per_chain[None]
    if em.ndim != 2 or per_chain.shape[1:] != em.shape:
        raise ValueError(
            "membership must be (EM responsibilities (n, K), posterior membership (n, K) or "
            f"(chain, n, K)); got {em.shape} and {np.shape(post)}"
        )
    pm = per_chain.mean(axis=0)
    diff = np.abs(em - pm)
    labels = np.argmax(em, 1)
    return {
        "label_agreement": float(np.mean(labels == np.argmax(pm, 1))),
        "label_agreement_per_chain": [float(np.mean(labels == np.argmax(c, 1))) for c in per_chain],
        "max_abs_difference": float(diff.max()),
        "mean_abs_difference": float(diff.mean()),
    }


def judge(
    estimate: Mapping[str, Any],
    draws: Mapping[str, Any],
    *,
    standard_errors: Mapping[str, Any] | None = None,
    symmetric: Collection[str] = (),
    boundaries: Mapping[str, str] | None = None,
    membership: tuple[Any, Any] | None = None,
    log_likelihood: Mapping[str, float] | None = None,
    diverging: Any = None,
    raw_draws: Mapping[str, Any] | None = None,
    thresholds: Thresholds | None = None,
) -> Verdict:
    """Compare an EM estimate with relabeled posterior draws; no sampling.

    Parameters
    ----------
    estimate : dict of str to array
        EM values of the parameters, e.g. ``{"weights": (K,), "means": (K, D)}``.
    draws : dict of str to array
        Posterior draws ``(chain, draw, *shape)`` of the same parameters, relabeled to the
        EM solution.
    standard_errors : dict of str to array, optional
        Standard errors of (some of) the EM values, same shapes as ``estimate``.
    symmetric : collection of str
        Parameters whose last two axes are a symmetric matrix (upper triangle reported).
    boundaries : dict of str to str, optional
        EM values on a boundary of the parameter space, keyed by element label (e.g.
        ``"covariances[2,0,0]"``) with a description in words (e.g. ``"component 2
        collapsed: variance 1e-06 at the reg_covar floor"``). Every entry is a
        ``boundary`` signal.
    membership : (em_responsibilities, posterior_membership), optional
        EM's responsibilities ``(n, K)`` and the posterior allocation probabilities
        (relabeled responsibilities averaged over draws), ``(n, K)`` or per chain
        ``(chain, n, K)``. The signal fires when the hard labels agree for too few rows
        overall or within any one chain (a chain can leave EM's mode while the average
        over chains hides it).
    log_likelihood : dict, optional
        ``em`` (EM's log-likelihood) and ``posterior_max`` (largest over the draws
        evaluated).
    diverging : array of bool, optional
        Divergent transitions ``(chain, draw)``.
    raw_draws : dict of str to array, optional
        The draws before relabeling (for R-hat before relabeling).
    thresholds : Thresholds, optional
        When the signals fire.

    Returns
    -------
    Verdict
    """
    t = thresholds if thresholds is not None else Thresholds()
    if not isinstance(t, Thresholds):
        raise TypeError(f"thresholds must be a Thresholds record; got {type(t).__name__}")
    est = {k: np.asarray(v, dtype=float) for k, v in estimate.items()}
    values = {k: np.asarray(draws[k], dtype=float) for k in est if k in draws}
    missing = sorted(set(est) - set(values))
    if missing:
        raise ValueError(f"draws: no draws of {missing}")
    if not values:
        raise ValueError("estimate: no parameters to compare")
    shapes = {v.shape[:2] for v in values.values()}
    if len(shapes) != 1:
        raise ValueError(f"draws must share (chain, draw) dimensions; got {sorted(shapes)}")
    n_chains, n_draws = next(iter(shapes))
    for k, v in values.items():
        if v.shape[2:] != est[k].shape:
            raise ValueError(
                f"draws[{k!r}] must have shape (chain, draw, *{est[k].shape}); got {v.shape}"
            )
    ses = {k: np.asarray(v, dtype=float) for k, v in (standard_errors or {}).items()}
    bounds = dict(boundaries or {})

    rows: list[ParameterComparison] = []
    rhat_before: list[float] = []
    for name, em in est.items():
        sym = name in symmetric and em.ndim >= 2
        for label, idx in element_names(name, em.shape, sym):
            se = ses.get(name)
            rows.append(
                _compare(
                    label,
                    float(em[idx]),
                    None if se is None else float(se[idx]),
                    values[name][(slice(None), slice(None), *idx)],
                    bounds.get(label),
                    t,
                )
            )
            if raw_draws is not None and n_chains > 1 and n_draws >= 4 and name in raw_draws:
                before = np.asarray(raw_draws[name], dtype=float)[(slice(None), slice(None), *idx)]
                if np.std(before) > 0:
                    rhat_before.append(_compat.rhat(before))

    reasons: list[str] = []
    signals: list[str] = []
    pct = f"{100 * t.interval:g}%"
    labels = {p.name for p in rows}
    # boundary entries not tied to a reported element still count
    for label, text in bounds.items():
        if label not in labels:
            signals.append("boundary")
            reasons.append(f"{label}: {text}")
    disagreeing = [p for p in rows if p.verdict == "disagree"]
    for p in disagreeing:
        signals.extend(p.signals)
        reasons.append(f"{p.name}: " + "; ".join(p.reasons))

    member: dict[str, Any] = {}
    if membership is not None:
        member = _membership(*membership)
        per_chain = member["label_agreement_per_chain"]
        low = [c for c, a in enumerate(per_chain) if a < t.label_agreement and len(per_chain) > 1]
        if member["label_agreement"] < t.label_agreement or low:
            signals.append("membership")
            text = (
                f"membership: EM's hard labels match the posterior allocation for "
                f"{100 * member['label_agreement']:.1f}% of rows"
            )
            if len(member["label_agreement_per_chain"]) > 1:
                text += (
                    " (per chain: "
                    + ", ".join(f"{100 * a:.1f}%" for a in member["label_agreement_per_chain"])
                    + ")"
                )
            text += (
                f"; below {100 * t.label_agreement:g}%"
                + (f" in chain(s) {low}" if low else "")
                + f"; largest difference of a membership probability "
                f"{member['max_abs_difference']:.2f}"
            )
            reasons.append(text)

    modes: dict[str, Any] = {"chain_mode": [0] * n_chains, "n_modes": 1, "em_mode": 0}
    if n_draws >= 4:
        if n_chains > 1:
            mode, largest, where, pair = chain_modes(values, t.mode_separation)
        else:
            mode, largest, where, pair = np.zeros(1, dtype=int), 0.0, None, None
        em_mode, distances = _em_mode(values, est, mode)
        near = em_mode is not None and distances[em_mode] <= t.mode_separation
        modes = {
            "chain_mode": [int(m) for m in mode],
            "n_modes": int(mode.max()) + 1,
            "em_mode": em_mode if near else None,
            "em_distance": [float(d) for d in distances],
            "separation": {"largest": largest, "parameter": where, "chains": pair},
        }
        if modes["n_modes"] > 1:
            signals.append("modes")
            groups = "; ".join(
                f"mode {m}: chains {[int(c) for c in np.flatnonzero(mode == m)]}"
                + (" (holds the EM estimate)" if m == modes["em_mode"] else "")
                for m in range(modes["n_modes"])
            )
            reasons.append(
                f"chains settled in {modes['n_modes']} different modes ({groups}); "
                f"largest gap at {where}: chain medians {largest:.1f} within-chain sds apart "
                f"(chains {' and '.join(map(str, pair or ()))})"
            )
        if not near:
            signals.append("modes")
            reasons.append(
                "no chain settled near the EM estimate: the closest mode's medians lie "
                f"{min(distances):.1f} of its sds from it (> {t.mode_separation:g})"
            )

    ll = dict(log_likelihood or {})
    if "em" in ll and ll.get("posterior_max", -math.inf) > ll["em"] + t.loglik_margin:
        signals.append("log_likelihood")
        reasons.append(
            f"posterior draws reach log-likelihood {ll['posterior_max']:.3f}, above the "
            f"EM estimate's {ll['em']:.3f}: EM did not find the maximum (a poor local "
            "optimum or stopped early)"
        )

    n_div = 0 if diverging is None else int(np.sum(np.asarray(diverging, dtype=bool)))
    finite_rhat = [p.r_hat for p in rows if math.isfinite(p.r_hat)]
    finite_ess = [p.ess_bulk for p in rows if math.isfinite(p.ess_bulk)]
    diagnostics = {
        "divergences": n_div,
        "max_r_hat": max(finite_rhat) if finite_rhat else math.nan,
        "min_ess_bulk": min(finite_ess) if finite_ess else math.nan,
        "max_r_hat_before_relabeling": max(rhat_before) if rhat_before else math.nan,
    }
    problems = []
    if n_div:
        problems.append(f"{n_div} divergent transitions")
    if diagnostics["max_r_hat"] > t.r_hat:
        problems.append(f"max R-hat {diagnostics['max_r_hat']:.3f} > {t.r_hat}")
    if diagnostics["min_ess_bulk"] < t.ess_bulk:
        problems.append(f"min bulk ESS {diagnostics['min_ess_bulk']:.0f} < {t.ess_bulk:.0f}")
    if signals:
        verdict = "disagree"
        reasons += [f"sampler: {p}" for p in problems]
    elif problems:
        verdict = "inconclusive"
        reasons = [f"sampler: {p}" for p in problems]
    else:
        verdict = "agree"
        checks = [f"all {len(rows)} EM values inside the posterior {pct} intervals"]
        if ses:
            checks.append(f"posterior sd within {t.sd_ratio:g}x of the standard errors")
        if member:
            checks.append(f"memberships agree for {100 * member['label_agreement']:.1f}% of rows")
        if n_chains > 1:
            checks.append("all chains in one mode")
        if "posterior_max" in ll:
            checks.append("no posterior draw above the EM log-likelihood")
        checks.append("sampler diagnostics fine")
        reasons = ["; ".join(checks)]
    unique = tuple(s for s in SIGNALS if s in signals)
    return Verdict(
        verdict=verdict,
        reasons=tuple(reasons),
        signals=unique,
        parameters=tuple(rows),
        diagnostics=diagnostics,
        membership=member,
        modes=modes,
    )
