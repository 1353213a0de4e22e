"""Cross-check an EM fit against full Bayesian inference with NUTS.

:func:`crosscheck` builds the equivalent PyMC model (:func:`~latent_em.bridges.to_pymc`),
samples it with NUTS started at the EM estimate (or, with dispersed starts, some chains
at PyMC's default point), relabels every draw to the EM solution on its allocation
probabilities (:mod:`latent_em.bridges.relabel`), and compares the EM estimate with the
posterior. Relabeling comes first because chains of a mixture routinely settle in
permuted labelings; without it R-hat and every posterior summary would mix components.

The verdict is :func:`latent_em.bridges.verdict.judge`, a pure function of the EM fit and
the relabeled draws (its docstring lists the signals): ``"disagree"`` when any signal of
disagreement fires, ``"inconclusive"`` when none does but the sampler diagnostics are
poor, else ``"agree"``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import _compat
from .pymc import PyMCModel, build_pymc, resolve_data, resolve_fit
from .relabel import feature_permutations, permute_components, relabel_by_allocation
from .verdict import ParameterComparison, Thresholds, judge

__all__ = [
    "crosscheck",
    "relabel_draws",
    "CrossCheckReport",
    "ParameterComparison",
    "Thresholds",
]


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
        ``em``, and the ``posterior_mean`` / ``posterior_max`` over all draws and the
        per-chain means ``chain_means`` (when the builder maps draws to parameters).
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
    signals : tuple of str
        Names of the signals of disagreement that fired (see
        :func:`latent_em.bridges.verdict.judge`).
    modes : dict
        Which chains settled in which mode (``chain_mode``, ``n_modes``, ``em_mode``,
        ``separation``) and, with dispersed starts, where every chain started.
    inference_data : arviz.InferenceData or xarray.DataTree
        PyMC's own sampling result (draws *not* relabeled; every free variable, named dims
        ``component``, ``feature``, ``obs_id``) with the pointwise log-likelihood of the
        observed variable ``x``: ``az.loo``, ``az.compare`` (``az.waic`` on ArviZ 0.x) and
        ``pm.sample_posterior_predictive`` work on it (none of them depends on labels).
    pymc_model : pymc.Model
        The model that was sampled.
    """

    verdict: str
    reasons: tuple[str, ...]
    parameters: tuple[ParameterComparison, ...]
    diagnostics: dict[str, Any]
    log_likelihood: dict[str, Any]
    membership: dict[str, Any]
    settings: dict[str, Any]
    draws: dict[str, np.ndarray] = dataclasses.field(repr=False)
    estimate: dict[str, np.ndarray] = dataclasses.field(repr=False)
    em_responsibilities: np.ndarray | None = dataclasses.field(default=None, repr=False)
    posterior_membership: np.ndarray | None = dataclasses.field(default=None, repr=False)
    em_history: np.ndarray | None = dataclasses.field(default=None, repr=False)
    signals: tuple[str, ...] = ()
    modes: dict[str, Any] = dataclasses.field(default_factory=dict)
    inference_data: Any = dataclasses.field(default=None, repr=False)
    pymc_model: Any = dataclasses.field(default=None, repr=False)

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
            row["signals"] = ", ".join(row["signals"])
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
            "signals": list(self.signals),
            "modes": self.modes,
            "settings": self.settings,
        }

    def to_json(self, path: str) -> str:
        """Write :meth:`to_dict` as JSON to ``path`` (NaN written as ``null``); returns it."""
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(_json_safe(self.to_dict()), fh, indent=2)
            fh.write("\n")
        return path

    def to_table(self) -> str:
        """The report as a plain-text table, with every reason in words.

        Below a disagreeing parameter's row come its reasons; after the table the sampler,
        log-likelihood, membership and mode summaries, why a standard-error column is
        missing (when it is), and the verdict with its reasons.
        """
        has_se = any(p.se is not None for p in self.parameters)
        prob = float(self.settings.get("thresholds", {}).get("interval", 0.94))
        lo_name, hi_name = f"{100 * prob:g}% lower", f"{100 * prob:g}% upper"
        head = f"{'parameter':<18}{'EM':>11}"
        head += f"{'SE':>9}" if has_se else ""
        head += f"{'post.mean':>11}{'post.sd':>9}{lo_name:>12}{hi_name:>12}"
        head += f"{'z':>7}{'R-hat':>7}{'ESS':>7}  verdict"
        lines = [head, "-" * len(head)]
        for p in self.parameters:
            row = f"{p.name:<18}{p.em:>11.4g}"
            if has_se:
                row += f"{p.se:>9.3g}" if p.se is not None else f"{'':>9}"
            row += (
                f"{p.mean:>11.4g}{p.sd:>9.3g}{p.lower:>12.4g}{p.upper:>12.4g}"
                f"{p.z:>7.2f}{p.r_hat:>7.3f}{p.ess_bulk:>7.0f}  {p.verdict}"
            )
            if p.signals:
                row += f" ({', '.join(p.signals)})"
            lines.append(row)
            lines += [f"    - {r}" for r in p.reasons]
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
        if self.modes.get("chain_mode") and len(self.modes["chain_mode"]) > 1:
            em_mode = self.modes.get("em_mode")
            lines.append(
                f"modes: chain -> mode {self.modes['chain_mode']}; "
                + ("EM estimate in none of them" if em_mode is None else f"EM in mode {em_mode}")
                + "".join(f"; started {s}" for s in [self.modes.get("starts")] if s is not None)
            )
        note = str(self.settings.get("standard_errors", "not requested"))
        if has_se:
            lines.append(f"standard errors: {note}")
        else:
            lines.append(f"standard errors: no SE column; {note}")
        lines.append(f"verdict: {self.verdict.upper()}")
        # parameter reasons are printed under their rows; name the parameters here
        rows = {p.name for p in self.parameters if p.verdict == "disagree"}
        fit_reasons = [r for r in self.reasons if r.split(": ", 1)[0] not in rows]
        if rows:
            names = [p.name for p in self.parameters if p.name in rows]
            lines.append(
                f"  - {len(names)} of {len(self.parameters)} parameters disagree (reasons "
                f"under their rows): {', '.join(names)}"
            )
        lines += [f"  - {r}" for r in fit_reasons]
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.to_table()

    # ------------------------------------------------------------------ plots
    def loo(self) -> dict[str, Any]:
        """PSIS-LOO of the posterior (``az.loo`` on :attr:`inference_data`).

        Returns ``elpd``, ``se``, ``p`` (effective number of parameters), ``pareto_k``
        (one per observation), ``n_bad_k`` (Pareto k above 0.7) and ``warning``, with the
        same keys on ArviZ 0.x and 1.x.
        """
        if self.inference_data is None:
            raise ValueError("this report has no inference data (no observed variable)")
        return _compat.loo(self.inference_data)

    def posterior_predictive(self, random_seed: int | None = None) -> Any:
        """Replicated data sets ``x`` from the posterior, one per draw (chain, draw, obs_id, ...).

        ``pm.sample_posterior_predictive`` on :attr:`inference_data`; the result is also
        added to it as the ``posterior_predictive`` group.
        """
        import pymc as pm

        if self.inference_data is None or self.pymc_model is None:
            raise ValueError("this report has no inference data (no observed variable)")
        with self.pymc_model, warnings.catch_warnings():
            # PyTensor 3 compiles random draws with Numba, which runs the Python generator
            # of a CustomDist in object mode and warns so; the draws are the same
            warnings.filterwarnings(
                "ignore", message="Numba will use object mode", category=UserWarning
            )
            pm.sample_posterior_predictive(
                self.inference_data,
                random_seed=random_seed,
                progressbar=False,
                extend_inferencedata=True,
            )
        return np.asarray(self.inference_data["posterior_predictive"]["x"].values)

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
    found by the Hungarian algorithm (:func:`scipy.optimize.linear_sum_assignment`). The
    cross-check relabels on allocation probabilities instead whenever it can
    (:mod:`latent_em.bridges.relabel`): features that leave out part of a component (its
    variance, say) mislabel draws where a small component wanders.
    """
    perms = feature_permutations(reference, features)
    return permute_components(draws, perms, component_axes), perms


# ----------------------------------------------------------------------------- check


def _check_count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


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
    thresholds: Thresholds | None = None,
    cores: int = 1,
    relabeling: str = "allocation",
    starts: str = "em",
    nuts_sampler: str = "pymc",
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
        NUTS settings (where the chains start: ``starts``).
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
        Largest ``|z|`` counted as agreement (``thresholds.z``).
    thresholds : Thresholds, optional
        When each signal of disagreement fires (see
        :func:`latent_em.bridges.verdict.judge`); a ``threshold`` other than 3 overrides
        its ``z``.
    cores : int, default 1
        Processes for the chains.
    relabeling : {"allocation", "features"}, default "allocation"
        How draws are matched to the EM components: on allocation probabilities
        (Stephens' KL to the EM responsibilities, the whole component; needs a builder
        with ``to_params``, else falls back to features) or on the builder's
        ``match_features`` (see :mod:`latent_em.bridges.relabel`). Every draw's
        responsibilities and log-likelihood are evaluated either way when the builder
        maps draws back to latent_em parameters.
    starts : {"em", "dispersed", "restarts"}, default "em"
        Where the chains start: all at the EM estimate; or even chains (0, 2, ...) at the
        EM estimate and odd chains at PyMC's default initial point, jittered
        (``"dispersed"``), or at the optimum of another EM run from one random start
        (``"restarts"``; a model with fixed initial values such as ``means_init`` lands on
        the same optimum), seeded by ``random_seed`` and the chain. Then whether the
        posterior has another mode is not left to luck; ``report.modes`` says where every
        chain started and in which mode it settled.
    nuts_sampler : {"pymc", "nutpie", "numpyro", "blackjax"}, default "pymc"
        Passed to ``pm.sample`` (the others need their package installed).
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
    if nuts_sampler not in ("pymc", "nutpie", "numpyro", "blackjax"):
        raise ValueError(
            f"nuts_sampler must be 'pymc', 'nutpie', 'numpyro' or 'blackjax'; got {nuts_sampler!r}"
        )
    if starts not in ("em", "dispersed", "restarts"):
        raise ValueError(f"starts must be 'em', 'dispersed' or 'restarts'; got {starts!r}")
    if relabeling not in ("allocation", "features"):
        raise ValueError(f"relabeling must be 'allocation' or 'features'; got {relabeling!r}")
    if not (isinstance(threshold, (int, float)) and threshold > 0):
        raise ValueError(f"threshold must be a positive number; got {threshold!r}")
    if random_seed is not None:
        random_seed = _check_count(random_seed, "random_seed", 0)
    if thresholds is not None and not isinstance(thresholds, Thresholds):
        raise TypeError(f"thresholds must be a Thresholds record; got {type(thresholds).__name__}")
    limits = thresholds if thresholds is not None else Thresholds()
    if thresholds is None or threshold != 3.0:
        limits = dataclasses.replace(limits, z=float(threshold))
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

    start_points, start_names = _starts(rec, chains, starts, random_seed, em_model, x, priors)
    raw, diverging, idata = _compat.sample_nuts(
        rec.model,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores,
        random_seed=random_seed,
        initvals=start_points,
        var_names=names,
        progressbar=progressbar,
        nuts_sampler=nuts_sampler,
    )
    relabeled, perms, ll_info, em_resp, post_resp, used = _relabel(
        em_model, params, x, rec, raw, relabeling
    )
    identity = np.arange(perms.shape[-1])
    relabeled_fraction = float(np.mean(np.any(perms != identity, axis=-1)))
    verdict = judge(
        rec.estimate,
        relabeled,
        standard_errors=ses,
        symmetric=rec.symmetric,
        boundaries=rec.boundaries,
        membership=None if post_resp is None else (em_resp, post_resp),
        log_likelihood=ll_info,
        diverging=diverging,
        raw_draws=raw,
        thresholds=limits,
    )
    diagnostics = {**verdict.diagnostics, "relabeled_fraction": relabeled_fraction}
    import arviz
    import pymc

    settings = {
        "draws": draws,
        "tune": tune,
        "chains": chains,
        "random_seed": random_seed,
        "threshold": limits.z,
        "thresholds": dataclasses.asdict(limits),
        "model": type(em_model).__name__,
        "standard_errors": se_note,
        "relabeling": used,
        "starts": starts,
        "nuts_sampler": nuts_sampler,
        "n_observations": int(len(x)),
        "pymc": pymc.__version__,
        "arviz": arviz.__version__,
    }
    history = getattr(getattr(fitted, "result_", fitted), "history", None)
    return CrossCheckReport(
        verdict=verdict.verdict,
        reasons=verdict.reasons,
        parameters=verdict.parameters,
        diagnostics=diagnostics,
        log_likelihood=ll_info,
        membership=verdict.membership,
        settings=settings,
        draws=relabeled,
        estimate={k: np.asarray(v) for k, v in rec.estimate.items()},
        em_responsibilities=em_resp,
        posterior_membership=None if post_resp is None else post_resp.mean(axis=0),
        em_history=None if history is None else np.asarray(history),
        signals=verdict.signals,
        modes={**verdict.modes, "starts": start_names},
        inference_data=idata,
        pymc_model=rec.model,
    )


def _starts(
    rec: PyMCModel,
    chains: int,
    starts: str,
    random_seed: int | None,
    em_model: Any = None,
    x: Any = None,
    priors: Mapping[str, Any] | None = None,
) -> tuple[Any, list[str]]:
    """Start values per chain and their description.

    ``"dispersed"``: odd chains at PyMC's default initial point, jittered. ``"restarts"``:
    odd chains at the optimum of another EM run (one random start each, seeded by
    ``random_seed`` and the chain), which may be another local maximum.
    """
    if starts == "em":
        return rec.initvals, ["EM"] * chains
    seed = 0 if random_seed is None else random_seed
    points, names = [], []
    if starts == "dispersed":
        from pymc.initial_point import make_initial_point_fn

        jittered = make_initial_point_fn(
            model=rec.model, jitter_rvs=set(rec.model.free_RVs), return_transformed=False
        )
    for c in range(chains):
        if c % 2 == 0:
            points.append(dict(rec.initvals))
            names.append("EM")
        elif starts == "dispersed":
            points.append(jittered(seed * 1009 + c))
            names.append("PyMC default (jittered)")
        else:
            from ..em import fit

            run = fit(em_model, x, n_init=1, random_state=seed * 1009 + c, warn_not_converged=False)
            points.append(dict(build_pymc((em_model, run.params), x, priors).initvals))
            names.append(
                f"EM restart (random_state={seed * 1009 + c}, log-likelihood "
                f"{run.log_likelihood:.3f})"
            )
    return points, names


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


def _relabel(
    em_model: Any,
    params: Any,
    x: Any,
    rec: PyMCModel,
    raw: Mapping[str, np.ndarray],
    relabeling: str,
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, Any], np.ndarray, np.ndarray | None, str]:
    """Relabel the draws; log-likelihood and posterior membership of every draw.

    Returns ``(relabeled, perms, log_likelihood info, EM responsibilities, posterior
    membership per chain (chain, n, K) or None, the relabeling used)``.
    """
    from ..em import posterior

    em_resp, em_lm = posterior(em_model, params, x)
    em_resp = np.asarray(em_resp, dtype=float)
    info: dict[str, Any] = {"em": float(np.sum(em_lm))}
    if rec.to_params is None or rec.to_params(rec.estimate) is None:
        reference = rec.match_features(rec.estimate)
        relabeled, perms = relabel_draws(raw, reference, rec.match_features(raw), rec.parameters)
        return relabeled, perms, info, em_resp, None, "features (no latent_em parameters)"

    to_params = rec.to_params

    def allocate(values: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
        resp, lm = posterior(em_model, to_params(values), x)
        return np.asarray(resp, dtype=float), float(np.sum(lm))

    if relabeling == "allocation":
        relabeled, perms, post, loglik = relabel_by_allocation(
            raw, rec.parameters, em_resp, allocate
        )
        used = "allocation (Stephens' KL to the EM responsibilities)"
    else:
        reference = rec.match_features(rec.estimate)
        relabeled, perms = relabel_draws(raw, reference, rec.match_features(raw), rec.parameters)
        # the draws are already relabeled: the identity reference keeps their labels
        first = next(iter(relabeled.values()))
        loglik = np.empty((first.shape[0], first.shape[1]))
        post = np.zeros((loglik.shape[0], *em_resp.shape))
        for i in range(loglik.shape[0]):
            for j in range(loglik.shape[1]):
                resp, loglik[i, j] = allocate({k: v[i, j] for k, v in relabeled.items()})
                post[i] += resp
        post /= loglik.shape[1]
        used = "features"
    info["posterior_mean"] = float(np.mean(loglik))
    info["posterior_max"] = float(np.max(loglik))
    info["chain_means"] = [float(v) for v in loglik.mean(axis=1)]
    return relabeled, perms, info, em_resp, post, used
