"""The cross-check verdict as a pure function of EM values and relabeled draws.

No sampling: synthetic draws shaped like the disagreements met on real data (issue 15)
must say "disagree" with the right reason, and draws centred on the EM estimate with the
spread of its standard errors must say "agree". The heavy-tailed posteriors are
log-normal with quantiles set to the measured intervals (the 3 % and 97 % quantiles of
``exp(N(m, s))`` are ``exp(m ± 1.8808 s)``, ``scipy.stats.norm.ppf(0.97) = 1.8808``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

pytestmark = pytest.mark.bridges

pytest.importorskip("arviz")

from latent_em.bridges.verdict import Thresholds, judge  # noqa: E402

CHAINS, DRAWS = 2, 500
#: a 1-D three-component fit: weights, means, variances
EM = {
    "weights": np.array([0.3, 0.5, 0.2]),
    "means": np.array([[-4.0], [0.0], [5.0]]),
    "covariances": np.array([[[1.0]], [[0.85]], [[2.0]]]),
}
SE = {
    "weights": np.array([0.04, 0.05, 0.035]),
    "means": np.array([[0.2], [0.15], [0.3]]),
    "covariances": np.array([[[0.25]], [[0.2]], [[0.6]]]),
}


def clean_draws(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Posterior draws centred on EM with sd equal to the standard errors, both chains alike."""
    return {
        k: v + SE[k] * rng.standard_normal((CHAINS, DRAWS, *np.shape(v))) for k, v in EM.items()
    }


def lognormal_with_interval(rng, lower, upper, size):
    """Draws whose 3 % / 97 % quantiles are ``lower`` / ``upper``."""
    q = stats.norm.ppf(0.97)
    m, s = (np.log(lower) + np.log(upper)) / 2, (np.log(upper) - np.log(lower)) / (2 * q)
    return np.exp(m + s * rng.standard_normal(size))


def responsibilities(rng, n, k, agreement):
    """EM responsibilities and a posterior allocation whose hard labels match for a given
    fraction of rows."""
    labels = rng.integers(0, k, n)
    em = np.full((n, k), 0.05 / (k - 1))
    em[np.arange(n), labels] = 0.95
    post_labels = labels.copy()
    flip = rng.permutation(n)[: int(round((1 - agreement) * n))]
    post_labels[flip] = (labels[flip] + 1) % k
    post = np.full((n, k), 0.1 / (k - 1))
    post[np.arange(n), post_labels] = 0.9
    return em, post


def test_clean_draws_agree(rng):
    em_resp, post = responsibilities(rng, 200, 3, 1.0)
    v = judge(
        EM,
        clean_draws(rng),
        standard_errors=SE,
        symmetric={"covariances"},
        membership=(em_resp, post),
        log_likelihood={"em": -300.0, "posterior_max": -300.4},
        diverging=np.zeros((CHAINS, DRAWS), bool),
    )
    assert v.verdict == "agree", v.reasons
    assert v.signals == ()
    assert len(v.parameters) == 9
    assert all(p.verdict == "agree" and p.reasons == () for p in v.parameters)
    assert all(0.5 < p.sd_ratio < 2 for p in v.parameters)
    assert v.modes["n_modes"] == 1 and v.modes["em_mode"] == 0
    assert v.membership["label_agreement"] == 1.0
    assert "inside the posterior 94% intervals" in v.reasons[0]


def test_variance_with_heavy_posterior_tail_disagrees(rng):
    # measured: posterior 94 % interval [1.16, 318], EM 0.85 at its 0.5-2.5 % quantile,
    # and a z-score of -0.38 against the inflated posterior sd
    draws = clean_draws(rng)
    draws["covariances"][:, :, 1, 0, 0] = lognormal_with_interval(rng, 1.16, 318, (CHAINS, DRAWS))
    v = judge(EM, draws, symmetric={"covariances"})
    assert v.verdict == "disagree"
    assert v.signals == ("interval",)
    row = next(p for p in v.parameters if p.name == "covariances[1,0,0]")
    assert abs(row.z) < 1  # the z-score alone would have said "agree"
    assert row.lower == pytest.approx(1.16, rel=0.2) and row.upper == pytest.approx(318, rel=0.4)
    assert 0.002 < row.em_quantile < 0.03
    assert row.signals == ("interval",)
    assert "EM 0.85 outside the posterior 94% interval" in row.reasons[0]
    assert any(r.startswith("covariances[1,0,0]: EM 0.85 outside") for r in v.reasons)
    # every other parameter still agrees
    assert [p.name for p in v.parameters if p.verdict == "disagree"] == ["covariances[1,0,0]"]


def test_the_standard_error_ratio_fires_with_the_heavy_tail(rng):
    draws = clean_draws(rng)
    draws["covariances"][:, :, 1, 0, 0] = lognormal_with_interval(rng, 1.16, 318, (CHAINS, DRAWS))
    v = judge(EM, draws, standard_errors=SE, symmetric={"covariances"})
    row = next(p for p in v.parameters if p.name == "covariances[1,0,0]")
    assert set(row.signals) == {"interval", "sd_ratio"}
    assert row.sd_ratio > 100
    assert any("times the EM standard error 0.2" in r for r in row.reasons)
    # a posterior far narrower than the standard error fires as well
    draws = clean_draws(rng)
    draws["means"][:, :, 0, 0] = -4.0 + 0.01 * rng.standard_normal((CHAINS, DRAWS))
    v = judge(EM, draws, standard_errors=SE, symmetric={"covariances"})
    assert v.signals == ("sd_ratio",)
    assert [p.name for p in v.parameters if p.verdict == "disagree"] == ["means[0,0]"]


def test_collapsed_component_disagrees(rng):
    # measured: a component collapsed onto one point, EM variance 1e-6 (the reg_covar
    # floor), posterior interval [6.7, 7033]
    est = {**EM, "covariances": np.array([[[1.0]], [[0.85]], [[1e-6]]])}
    draws = clean_draws(rng)
    draws["covariances"][:, :, 2, 0, 0] = lognormal_with_interval(rng, 6.7, 7033, (CHAINS, DRAWS))
    reason = "component 2 collapsed: variance 1e-06 at the reg_covar=1e-06 floor"
    v = judge(est, draws, symmetric={"covariances"}, boundaries={"covariances[2,0,0]": reason})
    assert v.verdict == "disagree"
    assert v.signals == ("interval", "boundary")
    row = next(p for p in v.parameters if p.name == "covariances[2,0,0]")
    assert row.signals == ("boundary", "interval")
    assert row.reasons[0].startswith(reason)
    assert any(r.startswith("covariances[2,0,0]: " + reason) for r in v.reasons)
    # a boundary not tied to a reported element is a reason of its own
    v = judge(EM, clean_draws(rng), boundaries={"component 1": "weight 0: an empty component"})
    assert v.verdict == "disagree" and v.signals == ("boundary",)
    assert v.reasons[0] == "component 1: weight 0: an empty component"


@pytest.mark.parametrize("agreement", [0.45, 0.88])
def test_membership_disagreement(rng, agreement):
    # measured on K = 4 and 5 fits: 45-88 % of rows keep their label
    em_resp, post = responsibilities(rng, 200, 3, agreement)
    v = judge(EM, clean_draws(rng), membership=(em_resp, post))
    assert v.verdict == "disagree"
    assert v.signals == ("membership",)
    assert v.membership["label_agreement"] == pytest.approx(agreement, abs=0.005)
    assert f"{100 * agreement:.1f}% of rows; below 90%;" in v.reasons[0]


def test_membership_disagreement_within_one_chain(rng):
    # chain 1 left EM's mode: the average over chains (about 92 %) hides it, its own
    # allocation (84 %) does not
    em_resp, good = responsibilities(rng, 200, 3, 1.0)
    _, bad = responsibilities(np.random.default_rng(5), 200, 3, 1.0)
    labels = np.argmax(em_resp, 1)
    bad = good.copy()
    moved = np.flatnonzero(labels == 0)[:32]
    bad[moved] = np.roll(bad[moved], 1, axis=1)
    v = judge(EM, clean_draws(rng), membership=(em_resp, np.stack([good, bad])))
    assert v.membership["label_agreement_per_chain"] == [1.0, pytest.approx(0.84)]
    assert v.membership["label_agreement"] > 0.9
    assert v.signals == ("membership",)
    assert "(per chain: 100.0%, 84.0%); below 90% in chain(s) [1]" in v.reasons[0]


def test_chains_in_different_modes(rng):
    # chain 1 settles where the middle and right components merge (another local mode)
    draws = clean_draws(rng)
    draws["means"][1, :, 1, 0] = 2.5 + 0.15 * rng.standard_normal(DRAWS)
    draws["covariances"][1, :, 1, 0, 0] = 6.0 + 0.5 * rng.standard_normal(DRAWS)
    v = judge(EM, draws, symmetric={"covariances"})
    assert v.verdict == "disagree"
    assert "modes" in v.signals
    assert v.modes["chain_mode"] == [0, 1] and v.modes["n_modes"] == 2
    assert v.modes["em_mode"] == 0
    assert v.modes["separation"]["largest"] > 10
    text = next(r for r in v.reasons if r.startswith("chains settled"))
    assert "mode 0: chains [0] (holds the EM estimate); mode 1: chains [1]" in text
    # the same two chains without the second mode are one mode
    assert judge(EM, clean_draws(rng)).modes["n_modes"] == 1
    # both chains in the other mode: one mode, but not EM's
    draws["means"][0] = draws["means"][1]
    draws["covariances"][0] = draws["covariances"][1]
    v = judge(EM, draws, symmetric={"covariances"})
    assert v.modes["n_modes"] == 1 and v.modes["em_mode"] is None
    assert v.signals == ("interval", "z", "modes")
    assert any(r.startswith("no chain settled near the EM estimate") for r in v.reasons)


def test_posterior_draws_above_the_em_maximum(rng):
    v = judge(EM, clean_draws(rng), log_likelihood={"em": -300.0, "posterior_max": -296.5})
    assert v.verdict == "disagree" and v.signals == ("log_likelihood",)
    assert "EM did not find the maximum" in v.reasons[0]


def test_sampler_problems_alone_are_inconclusive(rng):
    diverging = np.zeros((CHAINS, DRAWS), bool)
    diverging[0, :7] = True
    v = judge(EM, clean_draws(rng), diverging=diverging)
    assert v.verdict == "inconclusive"
    assert v.reasons == ("sampler: 7 divergent transitions",)
    # with a real disagreement they are listed after it
    v = judge(
        EM,
        clean_draws(rng),
        diverging=diverging,
        log_likelihood={"em": -300.0, "posterior_max": -290.0},
    )
    assert v.verdict == "disagree" and v.reasons[-1] == "sampler: 7 divergent transitions"


def test_thresholds_and_inputs_are_checked(rng):
    with pytest.raises(ValueError, match="thresholds.interval"):
        Thresholds(interval=1.5)
    with pytest.raises(ValueError, match="thresholds.sd_ratio"):
        Thresholds(sd_ratio=0.5)
    with pytest.raises(TypeError, match="thresholds must be a Thresholds"):
        judge(EM, clean_draws(rng), thresholds={"z": 2})
    draws = clean_draws(rng)
    with pytest.raises(ValueError, match=r"no draws of \['weights'\]"):
        judge(EM, {k: v for k, v in draws.items() if k != "weights"})
    with pytest.raises(ValueError, match=r"draws\['means'\] must have shape"):
        judge(EM, {**draws, "means": draws["means"][..., 0]})
    with pytest.raises(ValueError, match="membership must be"):
        judge(EM, draws, membership=(np.ones((3, 2)), np.ones((4, 2))))
    # a wider interval (99 %) takes the heavy-tailed variance back in
    draws["covariances"][:, :, 1, 0, 0] = lognormal_with_interval(rng, 1.16, 318, (CHAINS, DRAWS))
    assert judge(EM, draws, thresholds=Thresholds(interval=0.999)).verdict == "agree"
    assert math.isnan(judge(EM, draws).parameters[0].em_quantile) is False


def test_forest_plot_groups_on_natural_scales(rng, tmp_path):
    # no sampling: a report assembled from the verdict on synthetic draws
    pytest.importorskip("matplotlib")
    from latent_em.bridges import CrossCheckReport
    from latent_em.bridges.plots import forest_figure

    est = {**EM, "covariances": np.array([[[1.0]], [[0.85]], [[1e-6]]])}
    draws = clean_draws(rng)
    draws["covariances"][:, :, 2, 0, 0] = lognormal_with_interval(rng, 6.7, 7033, (CHAINS, DRAWS))
    v = judge(
        est,
        draws,
        standard_errors=SE,
        symmetric={"covariances"},
        boundaries={"covariances[2,0,0]": "component 2 collapsed"},
    )
    report = CrossCheckReport(
        verdict=v.verdict,
        reasons=v.reasons,
        parameters=v.parameters,
        diagnostics=v.diagnostics,
        log_likelihood={"em": -300.0},
        membership={},
        settings={"thresholds": {"interval": 0.94}},
        draws=draws,
        estimate=est,
    )
    fig = forest_figure(report)
    axes = fig.axes
    assert [ax.get_title(loc="left") for ax in axes] == ["weights", "means", "covariances"]
    # each group on its own scale: means span [-4, 5], weights [0, 1]
    assert axes[1].get_xlim()[1] - axes[1].get_xlim()[0] > 5
    assert axes[0].get_xlim()[1] < 1
    # a collapsed variance next to a posterior reaching thousands: log scale
    assert axes[2].get_xscale() == "log" and axes[0].get_xscale() == "linear"
    labels = [t.get_text() for t in axes[2].get_yticklabels()]
    assert "covariances[2,0,0]  (boundary, interval, sd_ratio)" in labels
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [
        "posterior 94% interval",
        "posterior mean",
        "EM estimate",
        "EM ± 2 SE",
        "disagrees",
    ]
    path = report.plot_forest(str(tmp_path / "forest.png"))
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
