"""Models assembled from components: :class:`Mixture` and :class:`Independent`.

``Mixture`` turns components (:mod:`latent_em.components`) into a model for the generic
driver :func:`latent_em.fit`, with the closed-form fast path: the posterior is the
softmax of the ``(n, K)`` table ``log φ_k + log p(x_n | θ_k)``, the expected statistics
are the components' weighted statistics under the responsibilities, and the M-step is
``φ_k = N_k / N`` plus each component's weighted MLE. ``Independent`` is itself a
component: a product over groups of columns, for rows of mixed type.

Parameters are a ``dict`` of arrays. A homogeneous mixture ``Mixture(c, n_components=K)``
keeps the component's names with a leading ``K`` axis (``{"weights", "mean", "cov"}``);
a heterogeneous one prefixes each component's names with its index
(``{"weights", "0.mean", "0.cov", "1.shape", "1.rate"}``, no batch axis). Inside
``Independent`` the names of group ``i`` are prefixed with ``"g{i}."``.

In a heterogeneous mixture a row needs to lie in the support of one component only; the
others give it probability zero (a Gaussian and a gamma fit data with negative values).
Components without closed-form statistics (Student-t, negative binomial) make
``Mixture(...)`` a :class:`NumericalMixture`, fitted by the driver's numerical M-step.

Examples
--------
>>> import numpy as np
>>> import latent_em
>>> from latent_em.components import Gamma, Gaussian
>>> rng = np.random.default_rng(0)
>>> x = np.concatenate([rng.gamma(2.0, 1.0, 400), rng.normal(10.0, 1.0, 200)])
>>> model = latent_em.Mixture([Gaussian(), Gamma()])
>>> result = latent_em.fit(model, x, n_init=5, random_state=0)
>>> float(np.round(result.params["0.mean"][0])), float(np.round(result.params["1.shape"][0]))
(10.0, 2.0)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ._registry import register_all
from ._validation import check_int
from .components import Component, Gaussian, Params, Stats, as_data_matrix
from .constraints import Constraint, Simplex
from .models import GaussianMixtureModel, GaussianMixtureParams
from .models._discrete import partition_from_data, posterior_from_table

__all__ = ["Mixture", "NumericalMixture", "Independent", "initial_partition"]


def _prefixed(prefix: str, tree: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{prefix}{k}": v for k, v in tree.items()}


def _unprefixed(prefix: str, tree: Mapping[str, Any]) -> dict[str, Any]:
    n = len(prefix)
    return {k[n:]: v for k, v in tree.items() if k.startswith(prefix)}


def initial_partition(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Soft initial responsibilities ``(n, k)``: ``k`` distinct rows drawn as centres
    (standardized columns, NaN treated as the column mean), every row assigned to the
    nearest, mixed 9:1 with uniform so that no component starts empty or on a boundary."""
    feats = np.array(x, dtype=float)
    mean = np.nanmean(feats, axis=0)
    feats = np.where(np.isnan(feats), mean, feats)
    scale = feats.std(axis=0)
    feats = (feats - mean) / np.where(scale > 0, scale, 1.0)
    # the discrete mixtures' start: k distinct rows as centres, nearest centre wins
    resp = 0.1 / k + 0.9 * partition_from_data(feats, k, rng)
    return resp


# ----------------------------------------------------------------------------- Independent


def _density_grad(comp: Component) -> Callable[[Params, np.ndarray, np.ndarray], Params]:
    """A component's ``log_density_grad`` (callers check that it has one)."""
    fn = getattr(comp, "log_density_grad", None)
    if not callable(fn):
        raise TypeError(f"{type(comp).__name__} has no log_density_grad")
    return fn


def _columns(spec: Any, name: str) -> tuple[int, ...]:
    if isinstance(spec, (bool, np.bool_)):
        raise TypeError(f"{name}: a column must be an int, a range or a tuple of ints")
    if isinstance(spec, (int, np.integer)):
        cols: tuple[int, ...] = (int(spec),)
    elif isinstance(spec, range):
        cols = tuple(spec)
    elif isinstance(spec, (tuple, list)) and all(
        isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in spec
    ):
        cols = tuple(int(c) for c in spec)
    else:
        raise TypeError(f"{name}: columns must be an int, a range or a tuple of ints; got {spec!r}")
    if not cols or min(cols) < 0:
        raise ValueError(f"{name}: columns must be non-empty and non-negative; got {spec!r}")
    return cols


@dataclasses.dataclass(frozen=True, init=False)
class Independent(Component):
    """Product of components over disjoint groups of columns (rows of mixed type).

    Parameters
    ----------
    groups : mapping
        ``{columns: component}`` with ``columns`` an int, a range or a tuple of ints;
        together the groups must cover the columns ``0 .. D-1`` exactly once.
    missing : {"error", "skip"}, default "error"
        ``"skip"``: a group whose cells in a row contain NaN drops out of that row's
        product (its factor is 1, and the row adds nothing to the group's statistics),
        which is the maximum-likelihood treatment of values missing at random. Give each
        column its own group to skip single cells.

    Notes
    -----
    ``log p(x | θ_k) = Σ_g log p_g(x_g | θ_gk)``; the statistics and the MLE are those of
    each group, since the log-likelihood separates.
    """

    groups: tuple[tuple[tuple[int, ...], Component], ...]
    missing: str

    def __init__(self, groups: Any, missing: str = "error") -> None:
        items = groups.items() if isinstance(groups, Mapping) else groups
        parts = []
        seen: set[int] = set()
        for i, item in enumerate(items):
            try:
                spec, comp = item
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"groups must be a mapping {{columns: component}}; got {type(groups).__name__}"
                ) from exc
            cols = _columns(spec, f"groups[{i}]")
            if not isinstance(comp, Component):
                raise TypeError(
                    f"groups[{spec!r}] must be a component (latent_em.components); got "
                    f"{type(comp).__name__}"
                )
            overlap = seen.intersection(cols)
            if overlap:
                raise ValueError(f"groups: column {min(overlap)} is in more than one group")
            seen.update(cols)
            parts.append((cols, comp))
        if not parts:
            raise ValueError("groups must hold at least one {columns: component} entry")
        if seen != set(range(len(seen))):
            gap = min(set(range(max(seen) + 1)) - seen)
            raise ValueError(f"groups must cover columns 0..{max(seen)}; column {gap} is missing")
        if missing not in ("error", "skip"):
            raise ValueError(f"missing must be 'error' or 'skip'; got {missing!r}")
        object.__setattr__(self, "groups", tuple(parts))
        object.__setattr__(self, "missing", missing)

    @property
    def closed_form(self) -> bool:  # type: ignore[override]
        """Whether every group has closed-form statistics."""
        return all(comp.closed_form for _, comp in self.groups)

    @property
    def n_columns(self) -> int:
        return sum(len(cols) for cols, _ in self.groups)

    @property
    def constraints(self) -> Mapping[str, Constraint]:
        out: dict[str, Constraint] = {}
        for i, (_, comp) in enumerate(self.groups):
            out.update(_prefixed(f"g{i}.", comp.constraints))
        return out

    def _view(self, x: np.ndarray, cols: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray | None]:
        """The group's columns with missing rows filled by an observed row, and the
        mask of observed rows (``None`` when all are observed)."""
        xg = x[:, cols]
        if self.missing != "skip":
            return xg, None
        observed = ~np.any(np.isnan(xg), axis=1)
        if np.all(observed):
            return xg, None
        if not np.any(observed):
            return np.zeros_like(xg), observed
        fill = xg[np.flatnonzero(observed)[0]]
        return np.where(observed[:, None], xg, fill[None]), observed

    def check_data(self, x: Any, name: str = "X") -> np.ndarray:
        arr = as_data_matrix(x, name)
        if arr.shape[1] != self.n_columns:
            raise ValueError(
                f"{name} has {arr.shape[1]} columns but the groups cover {self.n_columns}"
            )
        out = arr.copy()
        for cols, comp in self.groups:
            xg, observed = self._view(arr, cols)
            if observed is not None and not np.any(observed):
                raise ValueError(f"{name}: columns {list(cols)} are missing (NaN) in every row")
            try:
                checked = comp.check_data(xg, name)
            except ValueError as exc:
                raise ValueError(f"columns {list(cols)} ({type(comp).__name__}): {exc}") from exc
            if observed is None:
                out[:, cols] = checked
        return out

    def invalid(self, x: np.ndarray) -> np.ndarray:
        """Cells outside a group's support (a missing group is not invalid when
        ``missing="skip"``)."""
        out = np.zeros(x.shape, dtype=bool)
        for cols, comp in self.groups:
            xg, observed = self._view(x, cols)
            bad = comp.invalid(xg)
            if observed is not None:
                bad &= observed[:, None]
            out[:, cols] = bad
        return out

    @property
    def log_density_grad(self) -> Any:
        """``Σ_n r_nk ∂ log p / ∂θ`` when every group has it (else ``None``)."""
        if not all(callable(getattr(c, "log_density_grad", None)) for _, c in self.groups):
            return None
        return self._log_density_grad

    def _log_density_grad(self, params: Params, x: np.ndarray, resp: np.ndarray) -> Params:
        out: dict[str, np.ndarray] = {}
        for i, (cols, comp) in enumerate(self.groups):
            xg, observed = self._view(x, cols)
            r = resp if observed is None else resp * observed[:, None]
            sub = _unprefixed(f"g{i}.", params)
            out.update(_prefixed(f"g{i}.", _density_grad(comp)(sub, xg, r)))
        return out

    def log_density(self, params: Params, x: np.ndarray) -> np.ndarray:
        total = None
        for i, (cols, comp) in enumerate(self.groups):
            xg, observed = self._view(x, cols)
            table = comp.log_density(_unprefixed(f"g{i}.", params), xg)
            if observed is not None:
                table = np.where(observed[:, None], table, 0.0)
            total = table if total is None else total + table
        assert total is not None
        return total

    def stats(self, params: Params | None, x: np.ndarray, resp: np.ndarray) -> Stats:
        out: dict[str, Any] = {"count": resp.sum(axis=0)}
        for i, (cols, comp) in enumerate(self.groups):
            xg, observed = self._view(x, cols)
            r = resp if observed is None else resp * observed[:, None]
            sub = None if params is None else _unprefixed(f"g{i}.", params)
            out[f"g{i}"] = comp.stats(sub, xg, r)
        return out

    def mle(self, stats: Stats, old: Params | None) -> Params:
        out: dict[str, np.ndarray] = {}
        for i, (_, comp) in enumerate(self.groups):
            sub_old = None if old is None else _unprefixed(f"g{i}.", old)
            out.update(_prefixed(f"g{i}.", comp.mle(stats[f"g{i}"], sub_old)))
        return out

    def sample(self, params: Params, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.empty((z.shape[0], self.n_columns))
        for i, (cols, comp) in enumerate(self.groups):
            out[:, cols] = comp.sample(_unprefixed(f"g{i}.", params), z, rng)
        return out

    def initialize(self, x: np.ndarray, resp: np.ndarray, rng: np.random.Generator) -> Params:
        out: dict[str, np.ndarray] = {}
        for i, (cols, comp) in enumerate(self.groups):
            xg, observed = self._view(x, cols)
            r = resp if observed is None else resp * observed[:, None]
            out.update(_prefixed(f"g{i}.", comp.initialize(xg, r, rng)))
        return out

    def n_free(self, params: Params) -> int:
        return sum(
            comp.n_free(_unprefixed(f"g{i}.", params)) for i, (_, comp) in enumerate(self.groups)
        )


# ----------------------------------------------------------------------------- Mixture


def _gaussian_params(params: Mapping[str, np.ndarray]) -> GaussianMixtureParams:
    return GaussianMixtureParams(params["weights"], params["mean"], params["cov"])


@dataclasses.dataclass(frozen=True, init=False)
class Mixture:
    """A finite mixture of components, for :func:`latent_em.fit`.

    Parameters
    ----------
    components : Component or sequence of Component
        One component with ``n_components`` (a homogeneous mixture, vectorized over the
        components), or a list of components, one per mixture component (heterogeneous:
        each may be of another family, e.g. a Gaussian and a gamma).
    n_components : int, optional
        Number of components of a homogeneous mixture; must be omitted (or equal the
        list's length) for a list.

    Notes
    -----
    The model has ``latent_support``, ``posterior``, ``expected_stats`` + ``m_step``
    (the driver's closed-form path), ``constraints``, ``n_parameters``, ``check_data``,
    ``repair`` (reports empty components) and ``sample``. A homogeneous mixture of a
    :class:`~latent_em.components.Gaussian` runs on the E-step kernels of
    :class:`~latent_em.GaussianMixtureModel` (same statistics, same M-step, same
    k-means start), so it is as fast as the built-in model and gives the same fit.
    """

    components: tuple[Component, ...]
    n_components: int

    def __new__(cls, components: Any = (), n_components: int | None = None) -> Mixture:
        # a component without closed-form statistics: the numerical M-step's class
        comps = (components,) if isinstance(components, Component) else components
        numerical = isinstance(comps, Sequence) and any(
            isinstance(c, Component) and not c.closed_form for c in comps
        )
        target = NumericalMixture if numerical and cls is Mixture else cls
        return object.__new__(target)

    def __init__(self, components: Any, n_components: int | None = None) -> None:
        if isinstance(components, Component):
            if n_components is None:
                raise ValueError(
                    "n_components is required with a single component (a homogeneous "
                    "mixture); or give a list of components"
                )
            check_int(n_components, "n_components", minimum=1)
            comps: tuple[Component, ...] = (components,)
            k = int(n_components)
        elif isinstance(components, Sequence) and not isinstance(components, (str, bytes)):
            comps = tuple(components)
            if not comps:
                raise ValueError("components must hold at least one component")
            for i, c in enumerate(comps):
                if not isinstance(c, Component):
                    raise TypeError(
                        f"components[{i}] must be a component (latent_em.components); got "
                        f"{type(c).__name__}"
                    )
                if isinstance(c, Gaussian) and c.covariance_type == "tied":
                    raise ValueError(
                        f"components[{i}]: a tied covariance is shared by the components of "
                        "a homogeneous mixture; use Mixture(Gaussian('tied'), n_components=K)"
                    )
            if len(comps) == 1 and n_components is not None:
                # (component,) with n_components: homogeneous (the form a Mixture keeps,
                # so that dataclasses.replace(model, n_components=K) works)
                check_int(n_components, "n_components", minimum=1)
                k = int(n_components)
            elif n_components is not None and n_components != len(comps):
                raise ValueError(
                    f"n_components={n_components!r} does not match the {len(comps)} components"
                )
            else:
                k = len(comps)
        else:
            raise TypeError(
                "components must be a component or a list of components; got "
                f"{type(components).__name__}"
            )
        object.__setattr__(self, "components", comps)
        object.__setattr__(self, "n_components", k)

    # ---- structure
    @functools.cached_property
    def _gaussian_kernels(self) -> GaussianMixtureModel | None:
        # cached on the instance (not a dataclass field: not compared, not saved)
        comp = self.components[0]
        if len(self.components) != 1 or not isinstance(comp, Gaussian):
            return None
        return GaussianMixtureModel(
            n_components=self.n_components,
            covariance_type=comp.covariance_type,
            reg_covar=comp.reg_covar,
        )

    def _gmm(self) -> GaussianMixtureModel | None:
        """The built-in Gaussian mixture with the same structure, whose kernels a
        homogeneous Gaussian mixture runs on; ``None`` for any other mixture."""
        return self._gaussian_kernels

    def _parts(self, params: Mapping[str, np.ndarray]) -> list[tuple[Component, Params]]:
        """Each mixture component with its parameters as a batch of one (heterogeneous),
        or the single component with the whole batch (homogeneous)."""
        if len(self.components) == 1:
            return [(self.components[0], {k: v for k, v in params.items() if k != "weights"})]
        return [
            (c, {k: np.asarray(v)[None] for k, v in _unprefixed(f"{i}.", params).items()})
            for i, c in enumerate(self.components)
        ]

    def _pack(self, parts: Sequence[Params]) -> dict[str, np.ndarray]:
        if len(self.components) == 1:
            return dict(parts[0])
        out: dict[str, np.ndarray] = {}
        for i, p in enumerate(parts):
            out.update(_prefixed(f"{i}.", {k: np.asarray(v)[0] for k, v in p.items()}))
        return out

    # ---- data and parameters
    def check_data(self, x: Any) -> np.ndarray:
        """Validate ``x`` (1-D is one column) against every component."""
        arr = self.check_chunk(x)
        if arr.shape[0] < self.n_components:
            raise ValueError(
                f"X has {arr.shape[0]} row(s) but at least {self.n_components} are needed "
                "(one per component)"
            )
        return arr

    def check_chunk(self, x: Any) -> np.ndarray:
        """The checks of :meth:`check_data` that apply to a part of the rows.

        A homogeneous mixture needs every row in its component's support. In a
        heterogeneous one each row must lie in the support of at least one component
        (a Gaussian and a gamma: negative values belong to the Gaussian alone); a
        component gives probability zero to the rows outside its support.
        """
        arr = as_data_matrix(x, "X")
        if len(self.components) == 1:
            return self.components[0].check_data(arr, "X")
        supported = self._supports(arr)
        covered = np.any(supported, axis=0)
        if not np.all(covered):
            row = int(np.flatnonzero(~covered)[0])
            reasons = []
            for i, comp in enumerate(self.components):
                try:
                    comp.check_data(arr[row : row + 1], "X")
                except ValueError as exc:
                    reasons.append(f"components[{i}] ({type(comp).__name__}): {exc}")
            raise ValueError(
                f"X row {row} lies outside the support of every component: " + "; ".join(reasons)
            )
        return arr

    def _supports(self, x: np.ndarray) -> np.ndarray:
        """``(K, n)``: whether each row lies in each component's support."""
        return np.stack([~np.any(c.invalid(x), axis=1) for c in self.components])

    @staticmethod
    def _inside(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``x`` with the rows outside a component's support replaced by a row inside
        it (their weight is zero; this only keeps the arithmetic finite)."""
        if np.all(mask) or not np.any(mask):
            return x
        return np.where(mask[:, None], x, x[int(np.flatnonzero(mask)[0])][None])

    @property
    def constraints(self) -> Mapping[str, Constraint]:
        """Weights on the simplex, then every component's constraints."""
        out: dict[str, Constraint] = {"weights": Simplex()}
        if len(self.components) == 1:
            out.update(self.components[0].constraints)
        else:
            for i, c in enumerate(self.components):
                out.update(_prefixed(f"{i}.", c.constraints))
        return out

    def n_parameters(self, params: Mapping[str, np.ndarray]) -> int:
        """``K - 1`` plus every component's free parameters."""
        return self.n_components - 1 + sum(c.n_free(p) for c, p in self._parts(params))

    def component_fields(self, params: Mapping[str, np.ndarray]) -> tuple[str, ...]:
        """Fields whose axis 0 indexes the components (permuted by the bootstrap's label
        alignment). None for a heterogeneous mixture: its components are told apart by
        their position (their parameters cannot be permuted across families)."""
        if len(self.components) != 1:
            return ()
        shapes = {k: np.shape(v) for k, v in params.items()}
        return tuple(k for k, s in shapes.items() if len(s) >= 1 and s[0] == self.n_components)

    def initialize(self, x: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Component parameters from a soft partition of the rows (k-means for a
        homogeneous Gaussian mixture, as :class:`~latent_em.GaussianMixtureModel`)."""
        gmm = self._gmm()
        if gmm is not None:
            p = gmm.initialize(x, rng)
            return {"weights": p.weights, "mean": p.means, "cov": p.covariances}
        k = self.n_components
        resp = initial_partition(x, k, rng)
        if len(self.components) == 1:
            weights = resp.sum(axis=0) / resp.sum()
            parts = [self.components[0].initialize(x, resp, rng)]
            return {"weights": weights, **self._pack(parts)}
        supports = self._supports(x)
        for i in np.flatnonzero(~np.any(supports, axis=1)):
            raise ValueError(
                f"components[{i}] ({type(self.components[i]).__name__}): no row of X lies "
                "in its support"
            )
        # which cluster of the partition goes to which family matters (a gamma on the
        # Gaussian's cluster is a poor start): try the assignments (all of them up to
        # K = 4, else 24 at random) and keep the one with the highest likelihood
        if k <= 4:
            orders = [np.array(o) for o in itertools.permutations(range(k))]
        else:
            orders = [np.arange(k)] + [rng.permutation(k) for _ in range(23)]
        best: dict[str, np.ndarray] | None = None
        best_ll = -np.inf
        for order in orders:
            r = resp[:, order] * supports.T
            r /= r.sum(axis=1, keepdims=True)
            parts = [
                c.initialize(self._inside(x, supports[i]), r[:, i : i + 1], rng)
                for i, c in enumerate(self.components)
            ]
            candidate = {"weights": r.sum(axis=0) / r.sum(), **self._pack(parts)}
            with np.errstate(all="ignore"):
                ll = float(
                    np.sum(posterior_from_table(self.log_weighted_densities(candidate, x))[1])
                )
            if best is None or ll > best_ll:
                best, best_ll = candidate, ll
        assert best is not None
        return best

    # ---- the contract
    def log_weighted_densities(self, params: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        """``(n, K)`` table of ``log φ_k + log p(x_n | θ_k)``."""
        parts = self._parts(params)
        if len(parts) == 1:
            table = parts[0][0].log_density(parts[0][1], x)
        else:
            supports = self._supports(x)
            table = np.concatenate(
                [
                    np.where(m[:, None], c.log_density(p, self._inside(x, m)), -np.inf)
                    for (c, p), m in zip(parts, supports, strict=True)
                ],
                axis=1,
            )
        with np.errstate(divide="ignore"):
            return table + np.log(np.asarray(params["weights"], dtype=float))[None]

    def latent_support(self) -> np.ndarray:
        """z is the component index ``0 .. K-1``."""
        return np.arange(self.n_components)

    def log_joint(self, params: Mapping[str, np.ndarray], x: np.ndarray, z: Any) -> np.ndarray:
        """``log φ_z + log p(x_n | θ_z)``, shape ``(n,)``."""
        table = self.log_weighted_densities(params, x)
        z = np.asarray(z, dtype=np.intp).reshape(-1)
        return table[np.arange(table.shape[0]), z]

    @property
    def log_joint_grad(self) -> Any:
        """Analytic gradient of ``log_joint`` for the numerical M-step, when every
        component states ``log_density_grad`` (else ``None``: finite differences)."""
        if not all(callable(getattr(c, "log_density_grad", None)) for c in self.components):
            return None
        return self._log_joint_grad

    def _log_joint_grad(
        self, params: Mapping[str, np.ndarray], x: np.ndarray, z: Any, weights: np.ndarray
    ) -> dict[str, np.ndarray]:
        z = np.asarray(z, dtype=np.intp).reshape(-1)
        k = self.n_components
        resp = np.zeros((z.shape[0], k))
        resp[np.arange(z.shape[0]), z] = np.asarray(weights, dtype=float)
        w = np.asarray(params["weights"], dtype=float)
        out: dict[str, np.ndarray] = {"weights": resp.sum(axis=0) / w}
        parts = self._parts(params)
        if len(parts) == 1:
            comp, p = parts[0]
            out.update(_density_grad(comp)(p, x, resp))
            return out
        supports = self._supports(x)
        for i, (comp, p) in enumerate(parts):
            m = supports[i]
            g = _density_grad(comp)(p, self._inside(x, m), resp[:, i : i + 1] * m[:, None])
            out.update(_prefixed(f"{i}.", {key: v[0] for key, v in g.items()}))
        return out

    def posterior(
        self, params: Mapping[str, np.ndarray], x: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Responsibilities ``(n, K)`` and ``log p(x_n)``."""
        gmm = self._gmm()
        if gmm is not None:
            return gmm.posterior(_gaussian_params(params), x)
        return posterior_from_table(self.log_weighted_densities(params, x))

    def expected_stats(
        self,
        params: Mapping[str, np.ndarray],
        x: np.ndarray,
        posterior: np.ndarray,
        weights: np.ndarray,
    ) -> Any:
        """``{"counts": N_k, "component": ...}`` (homogeneous) or ``{"counts": N_k, "0":
        ..., "1": ...}`` (heterogeneous), the components' statistics; additive over rows."""
        gmm = self._gmm()
        if gmm is not None:
            return gmm.expected_stats(_gaussian_params(params), x, posterior, weights)
        rw = np.asarray(posterior, dtype=float) * np.asarray(weights, dtype=float)[:, None]
        if len(self.components) == 1:
            comp, p = self._parts(params)[0]
            return {"counts": rw.sum(axis=0), "component": comp.stats(p, x, rw)}
        out: dict[str, Any] = {"counts": rw.sum(axis=0)}
        supports = self._supports(x)
        for i, (comp, p) in enumerate(self._parts(params)):
            m = supports[i]
            out[str(i)] = comp.stats(p, self._inside(x, m), rw[:, i : i + 1] * m[:, None])
        return out

    def m_step(self, params: Mapping[str, np.ndarray], stats: Any) -> dict[str, np.ndarray]:
        """``φ_k = N_k / N`` and each component's weighted MLE (an empty component keeps
        its parameters and gets weight 0)."""
        gmm = self._gmm()
        if gmm is not None:
            new = gmm.m_step(_gaussian_params(params), stats)
            return {"weights": new.weights, "mean": new.means, "cov": new.covariances}
        counts = np.asarray(stats["counts"], dtype=float)
        weights = counts / counts.sum()
        if len(self.components) == 1:
            comp, old = self._parts(params)[0]
            return {"weights": weights, **comp.mle(stats["component"], old)}
        parts = [comp.mle(stats[str(i)], old) for i, (comp, old) in enumerate(self._parts(params))]
        return {"weights": weights, **self._pack(parts)}

    def e_step(
        self, params: Mapping[str, np.ndarray], x: np.ndarray, weights: np.ndarray
    ) -> tuple[Any, np.ndarray]:
        """Fused E-step (statistics and ``log p(x_n)`` in one pass)."""
        gmm = self._gmm()
        if gmm is not None:
            return gmm.e_step(_gaussian_params(params), x, weights)
        post, lm = self.posterior(params, x)
        return self.expected_stats(params, x, post, weights), lm

    def fit_context(self) -> Any:
        """The Gaussian kernels' BLAS thread limit; nothing otherwise."""
        gmm = self._gmm()
        return gmm.fit_context() if gmm is not None else contextlib.nullcontext()

    def repair(
        self, params: Mapping[str, np.ndarray], stats: Any, rng: np.random.Generator
    ) -> tuple[Any, tuple[str, ...]]:
        """Report empty components (the Gaussian kernels' own repair for a Gaussian)."""
        gmm = self._gmm()
        if gmm is not None:
            old = _gaussian_params(params)
            new, messages = gmm.repair(old, stats, rng)
            if new is old:
                return params, messages
            return {"weights": new.weights, "mean": new.means, "cov": new.covariances}, messages
        if stats is None:  # the numerical M-step keeps no statistics
            return params, ()
        counts = np.asarray(stats["counts"], dtype=float)
        total = float(counts.sum())
        empty = np.flatnonzero(counts <= 10 * np.finfo(float).eps * total)
        return params, tuple(
            f"component {int(k)} is empty (no responsibility, weight 0); try other "
            "restarts or fewer components"
            for k in empty
        )

    def sample(
        self, params: Mapping[str, np.ndarray], n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` rows: ``(x (n, D), z (n,))``."""
        z = rng.choice(self.n_components, size=n, p=np.asarray(params["weights"], dtype=float))
        parts = self._parts(params)
        if len(parts) == 1:
            return parts[0][0].sample(parts[0][1], z, rng), z
        draws = [
            c.sample(p, np.zeros(int(np.sum(z == i)), dtype=np.intp), rng)
            for i, (c, p) in enumerate(parts)
        ]
        d = max(dr.shape[1] for dr in draws)
        out = np.empty((n, d))
        for i, dr in enumerate(draws):
            out[z == i] = dr
        return out, z


@dataclasses.dataclass(frozen=True, init=False)
class NumericalMixture(Mixture):
    """A :class:`Mixture` with a component that has no closed-form statistics
    (``Mixture(...)`` returns one): the driver maximizes ``Q`` numerically over the
    unconstrained parameters (``constraints``), warm-started at the current θ."""

    expected_stats = None  # type: ignore[assignment]
    m_step = None  # type: ignore[assignment]
    e_step = None  # type: ignore[assignment]


# the classes latent_em.io may save and load
register_all(globals(), __all__, "builtin")
