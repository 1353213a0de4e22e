"""Cross-check an EM fit against full Bayesian inference with NUTS.

:func:`crosscheck` builds the equivalent PyMC model (:func:`~latent_em.bridges.to_pymc`),
samples it with NUTS started at the EM estimate in every chain, relabels every draw to the
EM solution by optimal matching, and compares, per parameter, the EM estimate with the
posterior. Relabeling comes first because chains of a mixture routinely settle in
permuted labelings; without it R-hat and every posterior summary would mix components.

Verdicts (``threshold`` defaults to 3):

* a parameter *disagrees* when ``|z| = |EM - posterior mean| / posterior sd > threshold``;
* the fit *disagrees* when a parameter does, or when posterior draws reach a
  log-likelihood more than 1 above the EM maximum (EM stopped short of, or away from,
  the maximum: a likelihood ratio above e cannot happen at the maximum);
* it is *inconclusive* when everything agrees but the sampler diagnostics are poor
  (divergences, R-hat > 1.05 or bulk ESS < 100 after relabeling);
* otherwise it *agrees*.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from . import _compat
from .pymc import PyMCModel, build_pymc, resolve_data, resolve_fit

__all__ = ["crosscheck", "relabel_draws", "CrossCheckReport", "ParameterComparison"]

RHAT_MAX = 1.05
ESS_MIN = 100.0
#: posterior draws above the EM log-likelihood by more than this mean EM missed the maximum
LOGLIK_MARGIN = 1.0


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
        Standard error of the EM estimate, when one was given.
    mean, sd : float
        Posterior mean and standard deviation (relabeled draws).
    lower, upper : float
        94 % equal-tailed posterior interval (3 % and 97 % quantiles).
    z : float
        Standardized difference ``(em - mean) / sd``.
    r_hat, ess_bulk : float
        Rank-normalized split R-hat and bulk ESS of the relabeled draws.
    verdict : str
        ``"agree"`` or ``"disagree"``.
    reasons : tuple of str
        Why (empty when everything is in order).
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


@dataclasses.dataclass(frozen=True)
class CrossCheckReport:
    """What :func:`crosscheck` found.

    Attributes
    ----------
    verdict : str
        ``"agree"``, ``"disagree"`` or ``"inconclusive"`` (see the module docstring).
    reasons : tuple of str
        Why, in words.
    parameters : tuple of ParameterComparison
        One row per scalar parameter.
    diagnostics : dict
        ``divergences``, ``max_r_hat``, ``min_ess_bulk``, ``max_r_hat_before_relabeling``
        and ``relabeled_fraction`` (draws whose labels were permuted).
    log_likelihood : dict
        ``em`` and the ``posterior_mean`` / ``posterior_max`` over the draws used for
        membership.
    membership : dict
        ``max_abs_difference``, ``mean_abs_difference`` between EM responsibilities and
        posterior membership probabilities, and ``label_agreement`` (same most probable
        component).
    settings : dict
        Draws, tune, chains, seed, threshold and library versions.
    draws : dict of str to numpy.ndarray
        Relabeled posterior draws ``(chain, draw, ...)`` of the reported parameters.
    estimate : dict of str to numpy.ndarray
        EM values of the reported parameters.
    em_responsibilities, posterior_membership : numpy.ndarray or None
        ``(n, K)`` arrays (``None`` when the builder cannot map draws to parameters).
    em_history : numpy.ndarray or None
        EM log-likelihood trace of the fit.
    """

    verdict: str
    reasons: tuple[str, ...]
    parameters: tuple[ParameterComparison, ...]
    diagnostics: dict[str, Any]
    log_likelihood: dict[str, float]
    membership: dict[str, float]
    settings: dict[str, Any]
    draws: dict[str, np.ndarray] = dataclasses.field(repr=False)
    estimate: dict[str, np.ndarray] = dataclasses.field(repr=False)
    em_responsibilities: np.ndarray | None = dataclasses.field(default=None, repr=False)
    posterior_membership: np.ndarray | None = dataclasses.field(default=None, repr=False)
    em_history: np.ndarray | None = dataclasses.field(default=None, repr=False)

    @property
    def agrees(self) -> bool:
        """Whether the verdict is ``"agree"``."""
        return self.verdict == "agree"

    def to_dataframe(self) -> Any:
        """One row per parameter (pandas is imported lazily)."""
        import pandas as pd

        rows = [dataclasses.asdict(p) for p in self.parameters]
        for row in rows:
            row["reasons"] = "; ".join(row["reasons"])
        return pd.DataFrame(rows).set_index("name")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no draws)."""
        return {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "parameters": [
                {**dataclasses.asdict(p), "reasons": list(p.reasons)} for p in self.parameters
            ],
            "diagnostics": self.diagnostics,
            "log_likelihood": self.log_likelihood,
            "membership": self.membership,
            "settings": self.settings,
        }

    def to_json(self, path: str) -> str:
        """Write :meth:`to_dict` as JSON to ``path`` (NaN written as ``null``); returns it."""
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(_json_safe(self.to_dict()), fh, indent=2)
            fh.write("\n")
        return path

    def to_table(self) -> str:
        """The report as a plain-text table."""
        has_se = any(p.se is not None for p in self.parameters)
        head = f"{'parameter':<18}{'EM':>11}"
        head += f"{'SE':>9}" if has_se else ""
        head += f"{'post.mean':>11}{'post.sd':>9}{'94% lower':>11}{'94% upper':>11}"
        head += f"{'z':>7}{'R-hat':>7}{'ESS':>7}  verdict"
        lines = [head, "-" * len(head)]
        for p in self.parameters:
            row = f"{p.name:<18}{p.em:>11.4g}"
            if has_se:
                row += f"{p.se:>9.3g}" if p.se is not None else f"{'':>9}"
            row += (
                f"{p.mean:>11.4g}{p.sd:>9.3g}{p.lower:>11.4g}{p.upper:>11.4g}"
                f"{p.z:>7.2f}{p.r_hat:>7.3f}{p.ess_bulk:>7.0f}  {p.verdict}"
            )
            lines.append(row)
        d = self.diagnostics
        ll = self.log_likelihood
        lines += [
            "",
            f"sampler: {self.settings['chains']} chains x {self.settings['draws']} draws "
            f"(tune {self.settings['tune']}), {d['divergences']} divergences, max R-hat "
            f"{d['max_r_hat']:.3f} (before relabeling {d['max_r_hat_before_relabeling']:.3f}), "
            f"min bulk ESS {d['min_ess_bulk']:.0f}, relabeled draws "
            f"{100 * d['relabeled_fraction']:.1f}%",
            f"log-likelihood: EM {ll['em']:.3f}; posterior draws mean "
            f"{ll.get('posterior_mean', math.nan):.3f}, "
            f"max {ll.get('posterior_max', math.nan):.3f}",
        ]
        if self.membership:
            m = self.membership
            lines.append(
                f"membership: max |EM - posterior| {m['max_abs_difference']:.3g}, mean "
                f"{m['mean_abs_difference']:.3g}, same most probable component for "
                f"{100 * m['label_agreement']:.1f}% of rows"
            )
        lines.append(f"verdict: {self.verdict.upper()}")
        lines += [f"  - {r}" for r in self.reasons]
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.to_table()

    # ------------------------------------------------------------------ plots
    def plot_forest(self, path: str) -> str:
        """EM estimate (± 2 SE when known) next to the posterior 94 % interval; PNG."""
        from .plots import plot_forest_comparison

        return plot_forest_comparison(self, path)

    def plot_membership(self, path: str) -> str:
        """EM responsibilities against posterior membership probabilities; PNG."""
        from .plots import plot_membership

        return plot_membership(self, path)

    def plot_trace(self, path: str) -> str:
        """EM log-likelihood trace; PNG."""
        from .plots import plot_em_trace

        if self.em_history is None:
            raise ValueError("this report has no EM history (fit given without one)")
        return plot_em_trace(self.em_history, path)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


# ----------------------------------------------------------------------------- relabeling


def relabel_draws(
    draws: Mapping[str, np.ndarray],
    reference: np.ndarray,
    features: np.ndarray,
    component_axes: Mapping[str, int | None],
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Permute the components of every draw to best match a reference solution.

    Parameters
    ----------
    draws : dict of str to (chain, draw, ...) arrays
    reference : (K, F)
        Features of the reference (EM) components.
    features : (chain, draw, K, F)
        Features of the components of every draw.
    component_axes : dict of str to int or None
        Axis of each parameter (after chain and draw) that indexes components.

    Returns
    -------
    relabeled : dict of str to numpy.ndarray
    permutations : (chain, draw, K)
        ``permutations[c, s, i]`` is the draw's component now labeled ``i``.

    Notes
    -----
    For each draw the assignment minimizing ``Σ_i ‖reference_i - features_perm(i)‖²`` is
    found by the Hungarian algorithm (:func:`scipy.optimize.linear_sum_assignment`).
    """
    features = np.asarray(features, dtype=float)
    reference = np.asarray(reference, dtype=float)
    c, s, k = features.shape[:3]
    perms = np.empty((c, s, k), dtype=np.intp)
    for i in range(c):
        for j in range(s):
            diff = reference[:, None, :] - features[i, j][None, :, :]
            cost = np.einsum("abf,abf->ab", diff, diff)
            _, cols = linear_sum_assignment(cost)
            perms[i, j] = cols
    out: dict[str, np.ndarray] = {}
    for name, values in draws.items():
        axis = component_axes.get(name)
        values = np.asarray(values)
        if axis is None:
            out[name] = values
            continue
        moved = np.moveaxis(values, axis + 2, 2)  # (chain, draw, K, ...)
        idx = perms.reshape(c, s, k, *([1] * (moved.ndim - 3)))
        picked = np.take_along_axis(moved, idx, axis=2)
        out[name] = np.moveaxis(picked, 2, axis + 2)
    return out, perms


# ----------------------------------------------------------------------------- check


def _check_count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _element_names(name: str, shape: tuple[int, ...], symmetric: bool) -> list[tuple[str, tuple]]:
    out = []
    for idx in np.ndindex(*shape):
        # a covariance matrix is symmetric: report the upper triangle only
        if symmetric and idx[-2] > idx[-1]:
            continue
        label = f"{name}[{','.join(map(str, idx))}]" if idx else name
        out.append((label, idx))
    return out


def crosscheck(
    fitted: Any,
    X: Any,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
    random_seed: int | None = None,
    priors: Mapping[str, Any] | None = None,
    standard_errors: Mapping[str, Any] | str | None = "auto",
    threshold: float = 3.0,
    cores: int = 1,
    membership_draws: int = 200,
    progressbar: bool = False,
    model: Any = None,
) -> CrossCheckReport:
    """Sample the equivalent PyMC model with NUTS from the EM estimate and compare.

    Parameters
    ----------
    fitted : estimator, EMResult or (model, params)
        The EM fit to check.
    X : array-like
        The data it was fitted on.
    draws, tune, chains : int
        NUTS settings (every chain starts at the EM estimate).
    random_seed : int, optional
        Seed of the sampler (reproducible results for an int).
    priors : mapping, optional
        Prior settings for the builder (see :func:`~latent_em.bridges.to_pymc`).
    standard_errors : "auto", mapping of str to array-like, or None
        Standard errors of the EM estimates shown next to them: ``"auto"`` computes them
        from the observed information (:func:`latent_em.uncertainty.standard_errors`) and
        leaves them out, saying why in ``settings["standard_errors"]``, when that fails or
        warns (e.g. an estimate on a boundary); a mapping gives them keyed like the
        reported parameters (e.g. ``{"means": (K, D) array}``); ``None`` omits them.
    threshold : float, default 3
        Largest ``|z|`` counted as agreement.
    cores : int, default 1
        Processes for the chains.
    membership_draws : int, default 200
        Draws (evenly thinned) used for posterior membership and log-likelihoods.
    progressbar : bool, default False
        Show PyMC's progress bar while sampling.
    model : optional
        The latent_em model, when ``fitted`` is an EMResult of another model object.

    Returns
    -------
    CrossCheckReport
    """
    draws = _check_count(draws, "draws", 1)
    tune = _check_count(tune, "tune", 0)
    chains = _check_count(chains, "chains", 1)
    cores = _check_count(cores, "cores", 1)
    membership_draws = _check_count(membership_draws, "membership_draws", 1)
    if not (isinstance(threshold, (int, float)) and threshold > 0):
        raise ValueError(f"threshold must be a positive number; got {threshold!r}")
    if random_seed is not None:
        random_seed = _check_count(random_seed, "random_seed", 0)
    em_model, params = resolve_fit(fitted, model)
    x = resolve_data(fitted, em_model, X)
    rec = build_pymc((em_model, params), x, priors)
    names = list(rec.parameters)
    se_note = "given" if isinstance(standard_errors, Mapping) else "not requested"
    if isinstance(standard_errors, str):
        if standard_errors != "auto":
            raise ValueError(
                f"standard_errors must be 'auto', a mapping or None; got {standard_errors!r}"
            )
        standard_errors, se_note = _observed_information_se(em_model, params, x, rec)
    ses = _standard_errors(standard_errors, rec)

    raw, diverging = _compat.sample_nuts(
        rec.model,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores,
        random_seed=random_seed,
        initvals=rec.initvals,
        var_names=names,
        progressbar=progressbar,
    )
    reference = rec.match_features(rec.estimate)
    relabeled, perms = relabel_draws(raw, reference, rec.match_features(raw), rec.parameters)
    identity = np.arange(perms.shape[-1])
    relabeled_fraction = float(np.mean(np.any(perms != identity, axis=-1)))

    rows: list[ParameterComparison] = []
    rhat_before: list[float] = []
    for name in names:
        est = np.asarray(rec.estimate[name], dtype=float)
        values = np.asarray(relabeled[name], dtype=float)
        before = np.asarray(raw[name], dtype=float)
        symmetric = name in rec.symmetric and est.ndim >= 2
        for label, idx in _element_names(name, est.shape, symmetric):
            chain_draws = values[(slice(None), slice(None), *idx)]
            rows.append(
                _compare(
                    label,
                    float(est[idx]),
                    None if ses.get(name) is None else float(ses[name][idx]),
                    chain_draws,
                    threshold,
                )
            )
            if chains > 1:
                rhat_before.append(_compat.rhat(before[(slice(None), slice(None), *idx)]))

    reasons: list[str] = []
    disagreeing = [p for p in rows if p.verdict == "disagree"]
    if disagreeing:
        worst = max(disagreeing, key=lambda p: abs(p.z) if math.isfinite(p.z) else math.inf)
        reasons.append(
            f"{len(disagreeing)} of {len(rows)} parameters disagree (|z| > {threshold:g}); "
            f"worst {worst.name}: EM {worst.em:.4g} vs posterior {worst.mean:.4g} ± "
            f"{worst.sd:.3g} (z = {worst.z:.2f})"
        )

    ll_info, membership, em_resp, post_resp = _likelihood_and_membership(
        em_model, params, x, rec, relabeled, membership_draws
    )
    if ll_info.get("posterior_max", -math.inf) > ll_info["em"] + LOGLIK_MARGIN:
        reasons.append(
            f"posterior draws reach log-likelihood {ll_info['posterior_max']:.3f}, above the "
            f"EM estimate's {ll_info['em']:.3f}: EM did not find the maximum (a poor local "
            "optimum or stopped early)"
        )
    n_div = int(diverging.sum())
    finite_rhat = [p.r_hat for p in rows if math.isfinite(p.r_hat)]
    finite_ess = [p.ess_bulk for p in rows if math.isfinite(p.ess_bulk)]
    diagnostics = {
        "divergences": n_div,
        "max_r_hat": max(finite_rhat) if finite_rhat else math.nan,
        "min_ess_bulk": min(finite_ess) if finite_ess else math.nan,
        "max_r_hat_before_relabeling": max(rhat_before) if rhat_before else math.nan,
        "relabeled_fraction": relabeled_fraction,
    }
    problems = []
    if n_div:
        problems.append(f"{n_div} divergent transitions")
    if diagnostics["max_r_hat"] > RHAT_MAX:
        problems.append(f"max R-hat {diagnostics['max_r_hat']:.3f} > {RHAT_MAX}")
    if diagnostics["min_ess_bulk"] < ESS_MIN:
        problems.append(f"min bulk ESS {diagnostics['min_ess_bulk']:.0f} < {ESS_MIN:.0f}")
    if reasons:
        verdict = "disagree"
        reasons += [f"sampler: {p}" for p in problems]
    elif problems:
        verdict = "inconclusive"
        reasons = [f"sampler: {p}" for p in problems]
    else:
        verdict = "agree"
        reasons = [
            f"all {len(rows)} parameters within {threshold:g} posterior sd of the EM estimate; "
            "no posterior draw above the EM log-likelihood; sampler diagnostics fine"
        ]
    import arviz
    import pymc

    settings = {
        "draws": draws,
        "tune": tune,
        "chains": chains,
        "random_seed": random_seed,
        "threshold": threshold,
        "model": type(em_model).__name__,
        "standard_errors": se_note,
        "n_observations": int(len(x)),
        "pymc": pymc.__version__,
        "arviz": arviz.__version__,
    }
    history = getattr(getattr(fitted, "result_", fitted), "history", None)
    return CrossCheckReport(
        verdict=verdict,
        reasons=tuple(reasons),
        parameters=tuple(rows),
        diagnostics=diagnostics,
        log_likelihood=ll_info,
        membership=membership,
        settings=settings,
        draws=relabeled,
        estimate={k: np.asarray(v) for k, v in rec.estimate.items()},
        em_responsibilities=em_resp,
        posterior_membership=post_resp,
        em_history=None if history is None else np.asarray(history),
    )


def _observed_information_se(
    em_model: Any, params: Any, x: Any, rec: PyMCModel
) -> tuple[dict[str, np.ndarray] | None, str]:
    """Standard errors from latent_em.uncertainty, keyed like the reported parameters."""
    try:
        from ..uncertainty import standard_errors as observed_information_se
    except ImportError:
        return None, "unavailable: latent_em.uncertainty is not installed"
    try:
        with warnings.catch_warnings():
            # a warning here means the information is not usable (not positive definite,
            # estimate on a boundary): better no standard errors than misleading ones
            warnings.simplefilter("error")
            result = observed_information_se(em_model, x, params=params)
    except (Warning, ValueError, ArithmeticError, np.linalg.LinAlgError, TypeError) as exc:
        return None, f"unavailable: {exc}"
    except Exception as exc:  # a model without constraints raises ModelContractError
        return None, f"unavailable: {type(exc).__name__}: {exc}"
    out: dict[str, np.ndarray] = {}
    for field in getattr(result.se, "_fields", ()):
        value = getattr(result.se, field)
        if value is None:
            continue
        parts = (
            {f"{field}_{j}": v for j, v in enumerate(value)}
            if isinstance(value, (tuple, list))
            else {field: value}
        )
        for name, v in parts.items():
            if name in rec.estimate and np.shape(v) == np.shape(rec.estimate[name]):
                out[name] = np.asarray(v, dtype=float)
    return out, f"observed information ({result.method})"


def _standard_errors(
    standard_errors: Mapping[str, Any] | None, rec: PyMCModel
) -> dict[str, np.ndarray]:
    if standard_errors is None:
        return {}
    if not isinstance(standard_errors, Mapping):
        raise TypeError("standard_errors must be a mapping of parameter name to array")
    out = {}
    for name, value in standard_errors.items():
        if name not in rec.estimate:
            raise ValueError(
                f"standard_errors: unknown parameter {name!r}; known: {sorted(rec.estimate)}"
            )
        arr = np.asarray(value, dtype=float)
        if arr.shape != np.shape(rec.estimate[name]):
            raise ValueError(
                f"standard_errors[{name!r}] must have shape {np.shape(rec.estimate[name])}; "
                f"got {arr.shape}"
            )
        out[name] = arr
    return out


def _compare(
    label: str, em: float, se: float | None, values: np.ndarray, threshold: float
) -> ParameterComparison:
    flat = values.reshape(-1)
    mean = float(flat.mean())
    sd = float(flat.std(ddof=1)) if flat.size > 1 else math.nan
    lower, upper = (float(q) for q in np.quantile(flat, [0.03, 0.97]))
    if sd > 0:
        z = (em - mean) / sd
    else:
        z = 0.0 if em == mean else math.copysign(math.inf, em - mean)
    multi_chain = values.shape[0] > 1 and values.shape[1] >= 4 and sd > 0
    r_hat = _compat.rhat(values) if multi_chain else math.nan
    ess = _compat.ess_bulk(values) if values.shape[1] >= 4 and sd > 0 else math.nan
    reasons: list[str] = []
    if abs(z) > threshold:
        reasons.append(f"|z| = {abs(z):.2f} > {threshold:g}")
    if se is not None and se > 0 and sd > 0:
        ratio = sd / se
        if not 1.0 / 3.0 <= ratio <= 3.0:
            reasons.append(f"posterior sd is {ratio:.2g} times the EM standard error")
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
        verdict="disagree" if abs(z) > threshold else "agree",
        reasons=tuple(reasons),
    )


def _likelihood_and_membership(
    em_model: Any,
    params: Any,
    x: Any,
    rec: PyMCModel,
    draws: Mapping[str, np.ndarray],
    n_draws: int,
) -> tuple[dict[str, float], dict[str, float], np.ndarray | None, np.ndarray | None]:
    """EM vs posterior: log-likelihoods over draws and membership probabilities."""
    from ..em import posterior

    em_resp, em_lm = posterior(em_model, params, x)
    info: dict[str, float] = {"em": float(np.sum(em_lm))}
    if rec.to_params is None or rec.to_params(rec.estimate) is None:
        return info, {}, np.asarray(em_resp), None
    first = next(iter(draws.values()))
    c, s = first.shape[:2]
    total = c * s
    picks = np.unique(np.linspace(0, total - 1, min(n_draws, total)).round().astype(int))
    flat = {k: np.asarray(v).reshape(total, *np.shape(v)[2:]) for k, v in draws.items()}
    acc = np.zeros_like(np.asarray(em_resp, dtype=float))
    lls = []
    for i in picks:
        p = rec.to_params({k: v[i] for k, v in flat.items()})
        resp, lm = posterior(em_model, p, x)
        acc += np.asarray(resp)
        lls.append(float(np.sum(lm)))
    post = acc / len(picks)
    em_resp = np.asarray(em_resp, dtype=float)
    info["posterior_mean"] = float(np.mean(lls))
    info["posterior_max"] = float(np.max(lls))
    diff = np.abs(em_resp - post)
    membership = {
        "max_abs_difference": float(diff.max()),
        "mean_abs_difference": float(diff.mean()),
        "label_agreement": float(np.mean(np.argmax(em_resp, 1) == np.argmax(post, 1))),
    }
    return info, membership, em_resp, post
