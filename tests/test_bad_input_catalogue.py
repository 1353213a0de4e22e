# ruff: noqa: E501  (the catalogue holds exact messages; they are data and stay on one line)
"""The catalogue of bad inputs across the public API, tested, and the docs table it feeds.

Every case is one line of code, run after :data:`SETUP`, with the exact exception type and
the exact message a user sees. ``docs/bad-input.md`` shows :data:`SETUP` and the table
rendered by :func:`render_table`; :func:`test_docs_page_matches_the_catalogue` fails when
the page and this list differ, so they cannot drift. After changing a message, regenerate
the page with ``python tests/test_bad_input_catalogue.py`` and review the diff.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import warnings
from pathlib import Path

import pytest

DOCS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "bad-input.md"
START, END = "<!-- catalogue:start -->", "<!-- catalogue:end -->"

SETUP = """\
import json
import numpy as np
import latent_em
from latent_em import GaussianMixture, GaussianMixtureModel, fit

X = latent_em.datasets.load_faithful()  # (272, 2)
X_nan = X.copy()
X_nan[3, 1] = np.nan
X_inf = X.copy()
X_inf[5, 0] = np.inf
gm = GaussianMixture(2, random_state=0).fit(X)
model = GaussianMixtureModel(2)
start = model.initialize(X, np.random.default_rng(0))
# two foreign files in the current folder: one from a future latent_em, one not ours
with open("newer.json", "w") as fh:
    json.dump({"format": "latent_em", "format_version": 99, "latent_em_version": "9.0"}, fh)
with open("other.json", "w") as fh:
    json.dump({"hello": "world"}, fh)


class OnlyInitialize:  # no log_joint
    def initialize(self, x, rng):
        return None


class NoPosterior:  # neither latent_support() nor posterior()
    def initialize(self, x, rng):
        return 0.0

    def log_joint(self, params, x, z):
        return np.zeros(len(x))


class StatsWithoutMStep(NoPosterior):
    def latent_support(self):
        return np.arange(2)

    def expected_stats(self, params, x, posterior, weights):
        return posterior.sum(0)


class WrongShape(StatsWithoutMStep):  # log_joint returns one value, not one per row
    def log_joint(self, params, x, z):
        return np.zeros(1)

    def m_step(self, params, stats):
        return params


class UnnormalizedWeights(GaussianMixtureModel):  # m_step forgets to normalize
    def m_step(self, params, stats):
        return super().m_step(params, stats)._replace(weights=2 * params.weights)
"""


@dataclasses.dataclass(frozen=True)
class Case:
    """``code`` raises exactly ``error`` (a class name) with exactly ``message``."""

    topic: str
    code: str
    error: str
    message: str


CASES: list[Case] = [
    Case(
        "data",
        'GaussianMixture(2).fit("abc")',
        "TypeError",
        "X must be a numeric array; got a string",
    ),
    Case(
        "data",
        'GaussianMixture(2).fit([[1, "a"], [2, "b"]])',
        "TypeError",
        "X must contain numbers; got dtype <U21",
    ),
    Case(
        "data",
        "GaussianMixture(2).fit([[1, 2], [3]])",
        "TypeError",
        "X must be a numeric array-like; got list",
    ),
    Case(
        "data",
        "GaussianMixture(2).fit(np.array([[1 + 2j, 0.0], [1.0, 2.0]]))",
        "TypeError",
        "X must be real-valued; got dtype complex128",
    ),
    Case(
        "data",
        "GaussianMixture(2).fit(X[:, 0])",
        "ValueError",
        "X must be 2-D (n_samples, n_features); got shape (272,) (reshape a single feature with X.reshape(-1, 1))",
    ),
    Case(
        "data",
        "GaussianMixture(2).fit(X[None])",
        "ValueError",
        "X must be 2-D (n_samples, n_features); got shape (1, 272, 2)",
    ),
    Case(
        "data",
        "GaussianMixture(2).fit(np.empty((0, 2)))",
        "ValueError",
        "X is empty: it has 0 rows",
    ),
    Case("data", "GaussianMixture(2).fit(np.empty((5, 0)))", "ValueError", "X has 0 columns"),
    Case(
        "data",
        "GaussianMixture(2).fit(X_nan)",
        "ValueError",
        "X contains NaN or infinite values (first: NaN at row 3, column 1)",
    ),
    Case(
        "data",
        "GaussianMixture(2).fit(X_inf)",
        "ValueError",
        "X contains NaN or infinite values (first: infinite at row 5, column 0)",
    ),
    Case(
        "data",
        "GaussianMixture(3).fit(X[:2])",
        "ValueError",
        "X has 2 row(s) but at least 3 are needed (one per component)",
    ),
    Case("options", "GaussianMixture(0).fit(X)", "ValueError", "n_components must be >= 1; got 0"),
    Case(
        "options",
        "GaussianMixture(2.5).fit(X)",
        "TypeError",
        "n_components must be an integer; got 2.5",
    ),
    Case(
        "options",
        'GaussianMixture(2, covariance_type="ful").fit(X)',
        "ValueError",
        "unknown covariance_type 'ful'; expected one of 'full', 'tied', 'diag', 'spherical', "
        "'EII', 'VII', 'EEI', 'VEI', 'EVI', 'VVI', 'EEE', 'VEE', 'EVE', 'VVE', 'EEV', 'VEV', "
        "'EVV', 'VVV', 'E', 'V'",
    ),
    Case(
        "options",
        'GaussianMixture(2, init_params="kmeans+").fit(X)',
        "ValueError",
        "unknown init_params 'kmeans+'; expected one of 'kmeans', 'k-means++', 'random', 'random_from_data', 'hc', 'mclust'",
    ),
    Case(
        "options",
        "GaussianMixture(2, reg_covar=-1.0).fit(X)",
        "ValueError",
        "reg_covar must be a finite number >= 0; got -1.0",
    ),
    Case(
        "options",
        "GaussianMixture(2, tol=-1.0).fit(X)",
        "ValueError",
        "tol must be a finite number >= 0; got -1.0",
    ),
    Case(
        "options",
        "GaussianMixture(2, max_iter=-1).fit(X)",
        "ValueError",
        "max_iter must be >= 0; got -1",
    ),
    Case(
        "options", "GaussianMixture(2, n_init=0).fit(X)", "ValueError", "n_init must be >= 1; got 0"
    ),
    Case(
        "options",
        'GaussianMixture(2, random_state="seed").fit(X)',
        "TypeError",
        "random_state must be None, an int or a numpy Generator; got str",
    ),
    Case(
        "options",
        "GaussianMixture(2, random_state=-1).fit(X)",
        "ValueError",
        "random_state must be non-negative; got -1",
    ),
    Case(
        "options",
        'GaussianMixture(2, accelerate="turbo").fit(X)',
        "ValueError",
        "unknown accelerate option 'turbo'; expected None, 'squarem' or a latent_em.acceleration.Squarem instance",
    ),
    Case(
        "options",
        "GaussianMixture(2).set_params(n_component=3)",
        "ValueError",
        "invalid parameter 'n_component' for GaussianMixture; valid: ['accelerate', 'chunk_size', 'covariance_regularization', 'covariance_type', 'covariances_init', 'dtype', 'init_params', 'max_iter', 'means_init', 'missing', 'n_components', 'n_init', 'prior', 'random_state', 'reg_covar', 'tol', 'weights_init']",
    ),
    Case(
        "initial parameters",
        "GaussianMixture(2, weights_init=[0.5, 0.6]).fit(X)",
        "ValueError",
        "weights_init must sum to one; it sums to 1.1",
    ),
    Case(
        "initial parameters",
        "GaussianMixture(2, weights_init=[1.0]).fit(X)",
        "ValueError",
        "weights_init must have shape (2,); got (1,)",
    ),
    Case(
        "initial parameters",
        "GaussianMixture(2, weights_init=[1.5, -0.5]).fit(X)",
        "ValueError",
        "weights_init must be finite and non-negative",
    ),
    Case(
        "initial parameters",
        "GaussianMixture(2, means_init=np.zeros((3, 2))).fit(X)",
        "ValueError",
        "means_init must have shape (2, n_features); got (3, 2)",
    ),
    Case(
        "initial parameters",
        "GaussianMixture(2, means_init=np.zeros((2, 3))).fit(X)",
        "ValueError",
        "means_init has 3 features but X has 2",
    ),
    Case(
        "initial parameters",
        "GaussianMixture(2, covariances_init=np.zeros((2, 2, 2))).fit(X)",
        "ValueError",
        "covariances_init must be symmetric positive definite (component 0)",
    ),
    Case(
        "initial parameters",
        "GaussianMixture(2, covariances_init=np.ones((2, 2))).fit(X)",
        "ValueError",
        "covariances_init for covariance_type='full' must have shape (2, 2, 2); got (2, 2)",
    ),
    Case(
        "initial parameters",
        'GaussianMixture(2, covariance_type="diag", covariances_init=np.ones((2, 3))).fit(X)',
        "ValueError",
        "covariances_init has 3 features but X has 2",
    ),
    Case(
        "initial parameters",
        "fit(model, X, params=start, n_init=2)",
        "ValueError",
        "give either initial params or n_init > 1, not both",
    ),
    Case(
        "sample weights",
        "GaussianMixture(2).fit(X, sample_weight=-np.ones(272))",
        "ValueError",
        "sample_weight must be non-negative; found -1",
    ),
    Case(
        "sample weights",
        "GaussianMixture(2).fit(X, sample_weight=np.ones(10))",
        "ValueError",
        "sample_weight must have shape (272,), one weight per row; got (10,)",
    ),
    Case(
        "sample weights",
        "GaussianMixture(2).fit(X, sample_weight=np.zeros(272))",
        "ValueError",
        "sample_weight is zero for every row",
    ),
    Case(
        "sample weights",
        "GaussianMixture(2).fit(X, sample_weight=np.full(272, np.nan))",
        "ValueError",
        "sample_weight contains NaN or infinite values",
    ),
    Case(
        "sample weights",
        'GaussianMixture(2).fit(X, sample_weight="heavy")',
        "TypeError",
        "sample_weight must be numeric; got str",
    ),
    Case(
        "fitted estimator",
        "GaussianMixture(2).predict(X)",
        "NotFittedError",
        "this GaussianMixture is not fitted yet; call fit(X) first",
    ),
    Case(
        "fitted estimator",
        "gm.predict(X[:, :1])",
        "ValueError",
        "X has 1 features, but GaussianMixture is expecting 2 features as input (the number "
        "of columns seen in fit)",
    ),
    Case(
        "fitted estimator",
        "gm.predict_proba(X_nan)",
        "ValueError",
        "X contains NaN or infinite values (first: NaN at row 3, column 1)",
    ),
    Case("fitted estimator", "gm.sample(0)", "ValueError", "n_samples must be >= 1; got 0"),
    Case(
        "fitted estimator", "gm.sample(2.5)", "TypeError", "n_samples must be an integer; got 2.5"
    ),
    Case(
        "driver",
        'fit(model, X, tol=float("nan"))',
        "ValueError",
        "tol must be a finite number >= 0; got nan",
    ),
    Case(
        "driver",
        "fit(model, X, chunk_size=0)",
        "ValueError",
        "chunk_size must be >= 1; got 0",
    ),
    Case(
        "driver",
        "fit(model, X, max_iter=1.5)",
        "TypeError",
        "max_iter must be an integer; got 1.5",
    ),
    Case(
        "driver",
        "fit(model, X, max_iter=True)",
        "TypeError",
        "max_iter must be an integer; got True",
    ),
    Case(
        "driver",
        'fit(model, X, monotone_rtol=float("nan"))',
        "ValueError",
        "monotone_rtol must be a finite number >= 0; got nan",
    ),
    Case(
        "driver",
        "fit(model, X, params=start._replace(weights=np.array([0.5, 0.7])))",
        "ValueError",
        "params: the initial parameters of GaussianMixtureModel are invalid: field 'weights' violates Simplex(): probabilities must sum to one along the last axis; they sum to 1.2",
    ),
    Case(
        "driver",
        "fit(model, X, params=start._replace(means=start.means[:, :1]))",
        "ValueError",
        "params: field 'means' has shape (2, 1), but GaussianMixtureModel with these data needs shape (2, 2)",
    ),
    Case(
        "driver",
        "fit(model, X, params=tuple(start))",
        "TypeError",
        "params: GaussianMixtureModel takes its parameters as a GaussianMixtureParams (fields weights, means, covariances); got a tuple. Build them as GaussianMixtureParams(...) or start from a fit's result.params",
    ),
    Case(
        "driver",
        "latent_em.standard_errors(fit(model, X, sample_weight=np.full(len(X), 2.0)), X)",
        "ValueError",
        "sample_weight: the fit's total weight (n_observations = 544) is not the 272 rows of x, so the fit used row weights; pass them as standard_errors(..., sample_weight=w) (without them every row would count once and the standard errors would belong to other data)",
    ),
    Case(
        "custom models",
        "fit(UnnormalizedWeights(2), X, params=start)",
        "ModelContractError",
        "UnnormalizedWeights: the M-step of iteration 1 returned parameters outside the model's constraints: field 'weights' violates Simplex(): probabilities must sum to one along the last axis; they sum to 2.0. m_step must return parameters in their declared domain (normalize weights, keep variances positive, ...)",
    ),
    Case(
        "custom models",
        "fit(object(), X)",
        "ModelContractError",
        "object is missing required method(s) initialize, log_joint; every model needs initialize(x, rng) and log_joint(params, x, z)",
    ),
    Case(
        "custom models",
        "fit(OnlyInitialize(), X)",
        "ModelContractError",
        "OnlyInitialize is missing required method(s) log_joint; every model needs initialize(x, rng) and log_joint(params, x, z)",
    ),
    Case(
        "custom models",
        "fit(NoPosterior(), X)",
        "ModelContractError",
        "NoPosterior gives the driver no way to compute the posterior: provide latent_support() (discrete z, enumerated) or posterior(params, x)",
    ),
    Case(
        "custom models",
        "fit(StatsWithoutMStep(), X)",
        "ModelContractError",
        "StatsWithoutMStep defines expected_stats but not m_step; the closed-form path needs both",
    ),
    Case(
        "custom models",
        "fit(WrongShape(), X)",
        "ModelContractError",
        "WrongShape.log_joint returned shape (1,); expected (272,), one value per row",
    ),
    Case(
        "saving",
        'latent_em.io.save({"weights": [1.0]}, "d.json")',
        "TypeError",
        "save expects a fitted estimator or an EMResult; got dict",
    ),
    Case(
        "saving",
        'gm.save("model.npz")',
        "ValueError",
        "path must name the JSON metadata file (e.g. 'fit.json'), not the array file; got 'model.npz'",
    ),
    Case(
        "saving",
        'latent_em.io.load("newer.json")',
        "UnsupportedFormatError",
        "'newer.json' uses format version 99 (written by latent_em 9.0); this latent_em reads versions up to 1: upgrade latent_em to load it",
    ),
    Case(
        "saving",
        'latent_em.io.load("other.json")',
        "UnsupportedFormatError",
        '\'other.json\' is not a latent_em file (no "format": "latent_em" entry)',
    ),
    Case(
        "saving",
        'latent_em.io.load("missing.json")',
        "MissingModelFileError",
        "no such file: 'missing.json'",
    ),
    Case(
        "discrete",
        "latent_em.BernoulliMixture(2).fit([[0, 1], [1, 2], [0, 0]])",
        "ValueError",
        "X must be binary (0/1 or booleans) for a Bernoulli mixture: column 1 holds the value 2 at row 1",
    ),
    Case(
        "discrete",
        "latent_em.PoissonMixture(2).fit([[1, 2], [-1, 0], [3, 4]])",
        "ValueError",
        "X must hold non-negative counts for a Poisson mixture: column 0 holds -1 at row 1",
    ),
    Case(
        "discrete",
        "latent_em.PoissonMixture(2).fit([[1.5, 2], [1, 0], [3, 4]])",
        "ValueError",
        "X must hold integer counts for a Poisson mixture: column 0 holds 1.5 at row 0",
    ),
    Case(
        "discrete",
        'latent_em.CategoricalMixture(2).fit([["a", "x"], ["b", "x"], ["a", "x"]])',
        "ValueError",
        "column 1 has a single category ('x'): it carries no information about the classes; drop it",
    ),
    Case(
        "discrete",
        'latent_em.CategoricalMixture(2, random_state=0).fit([["a", "x"], ["b", "y"], ["a", "y"], ["b", "x"]]).predict([["c", "x"]])',
        "ValueError",
        "column 0 holds the category 'c' at row 0, which was not seen during fit (known categories: ['a', 'b'])",
    ),
    Case(
        "discrete",
        "latent_em.BernoulliMixture(2).fit([[0, 1], [1, 0], [0, 0]], frequency=[1, 2])",
        "ValueError",
        "frequency must have shape (3,), one count per row of X; got (2,)",
    ),
    Case(
        "discrete",
        "latent_em.PoissonMixture(2).fit([[1, 2], [0, 0], [3, 4]], frequency=[1, -2, 1])",
        "ValueError",
        "frequency must be non-negative counts; found -2",
    ),
]

#: issue 12 (Gaussian mixture): limits of float64 and of the likelihood, refused with the
#: real cause instead of an overflow, a NaN or an error that blames the model
CASES += [
    Case(
        "data",
        "GaussianMixture(2).fit(X * 1e150)",
        "ValueError",
        "X has a value of 9.6e+151 (row 148, column 1); with 272 rows and 2 columns, values beyond 4.29e+148 in absolute value make squared distances overflow float64. Rescale X (for example divide it by its largest absolute value)",
    ),
    Case(
        "fitted estimator",
        "gm.predict_proba(np.full((2, 2), 1e154))",
        "ValueError",
        "X has a value of 1e+154 (row 0, column 0); with 2 rows and 2 columns, values beyond 5e+149 in absolute value make squared distances overflow float64. Rescale X (for example divide it by its largest absolute value)",
    ),
    Case(
        "initial parameters",
        "GaussianMixture(2, weights_init=[1.0, 0.0]).fit(X)",
        "ValueError",
        "weights_init must be positive; component 1 has weight 0, so EM could never give it responsibility (drop the component, or give it a small positive weight)",
    ),
    Case(
        "initial parameters",
        "fit(model, X, params=start._replace(covariances=start.covariances * 1e-9))",
        "ValueError",
        "params: the covariance of component 0 has an eigenvalue of 1.26e-10, below reg_covar=1e-06; the fit maximizes the likelihood over covariances whose every eigenvalue is at least reg_covar. Raise them (model.covariance.apply_floor(covariances, reg_covar)) or lower reg_covar",
    ),
    Case(
        "sample weights",
        "GaussianMixture(2).fit(X, sample_weight=np.full(272, 5e-324))",
        "ValueError",
        "sample_weight is at most 4.94e-324: weights this small underflow float64 when multiplied by responsibilities, so the statistics lose their precision; multiply sample_weight by a constant (the fitted parameters depend only on the relative weights)",
    ),
    Case(
        "options",
        'GaussianMixture(2, covariance_regularization="ridge").fit(X)',
        "ValueError",
        "unknown covariance_regularization 'ridge'; expected one of 'floor', 'additive'",
    ),
    Case(
        "options",
        "GaussianMixture(4, reg_covar=0.0, random_state=0).fit(np.r_[X[:10], np.repeat(X[:1], 5, axis=0)])",
        "ValueError",
        "reg_covar=0: component 3 collapsed onto a single point (its variances are at the round-off level of the statistics, the largest variance of another component being 3.07); the likelihood has no maximum there. Use reg_covar > 0 (the default 1e-6 keeps every eigenvalue of every covariance at or above it) or fewer components",
    ),
]


def _namespace() -> dict:
    namespace: dict = {"__name__": "bad_input_catalogue"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exec(SETUP, namespace)
    return namespace


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("catalogue")


@pytest.fixture(scope="module")
def namespace(folder) -> dict:
    # SETUP writes two small files into the current folder
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        return _namespace()


def test_catalogue_is_large_and_unique():
    assert len(CASES) >= 30
    assert len({c.code for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[f"{i:02d}-{c.topic}" for i, c in enumerate(CASES)])
def test_bad_input_raises_the_catalogued_error(case, namespace, folder, monkeypatch):
    monkeypatch.chdir(folder)
    with pytest.raises(Exception) as info:
        exec(case.code, dict(namespace))
    assert type(info.value).__name__ == case.error, f"{case.code}: {info.value!r}"
    assert str(info.value) == case.message


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_table() -> str:
    """The Markdown table of :data:`CASES` (as in docs/bad-input.md)."""
    rows = ["| # | What | Code | Error | Message |", "|---|---|---|---|---|"]
    for i, case in enumerate(CASES, start=1):
        rows.append(
            f"| {i} | {case.topic} | `{_cell(case.code)}` | `{case.error}` | "
            f"`{_cell(case.message)}` |"
        )
    return "\n".join(rows)


def render_page_block() -> str:
    """The generated part of the docs page: the setup code and the table."""
    return f"{START}\n```python\n{SETUP}```\n\n{render_table()}\n{END}"


def test_docs_page_matches_the_catalogue():
    text = DOCS_PAGE.read_text(encoding="utf-8")
    match = re.search(re.escape(START) + ".*?" + re.escape(END), text, re.S)
    assert match, f"{DOCS_PAGE} lost its {START} ... {END} markers"
    assert match.group(0) == render_page_block(), (
        "docs/bad-input.md is out of date: run python tests/test_bad_input_catalogue.py"
    )


def _write_page() -> None:
    text = DOCS_PAGE.read_text(encoding="utf-8")
    block = render_page_block()
    new = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    DOCS_PAGE.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    _write_page()
    sys.stdout.write(f"rewrote {DOCS_PAGE}\n")
