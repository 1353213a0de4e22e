"""``latent-em fit --missing marginalize`` and ``--prior default`` (Gaussian mixtures).

Oracles: the log-likelihood of the saved model recomputed from scipy's normal densities of
each row's observed coordinates (the missing-at-random likelihood, Ghahramani & Jordan
1994); the log-prior recomputed from scipy's normal and inverse-Wishart densities with
mclust's ``defaultPrior`` hyperparameters (shrinkage 0.01, column means, ``d + 2``
degrees of freedom, ``var(X) / K^(2/d)``).
"""

from __future__ import annotations

import csv
import math
import re

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import latent_em
from latent_em.cli import main
from latent_em.cli._common import read_data


def _holes(x: np.ndarray) -> np.ndarray:
    out = x.copy()
    out[3::10, 0] = np.nan
    out[5::17, 1] = np.nan
    return out


def _write(path, x: np.ndarray, blank: str = "") -> None:
    """A CSV with a header; NaN written as ``blank`` (and as ``NA`` on odd rows)."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["eruptions", "waiting"])
        for i, row in enumerate(x):
            cells = [repr(float(v)) if np.isfinite(v) else ("NA" if i % 2 else blank) for v in row]
            writer.writerow(cells)


def _mar_log_likelihood(x: np.ndarray, est) -> float:
    """sum_n log sum_k w_k N(x_n,obs; mu_k,obs, Sigma_k,obs) with scipy's densities."""
    k, d = est.means_.shape
    full = est.model_.covariance.to_full(est.covariances_, k, d)
    total = 0.0
    for row in x:
        seen = ~np.isnan(row)
        terms = []
        for j in range(k):
            term = math.log(est.weights_[j])
            if seen.any():  # a row with nothing observed has density 1
                mvn = stats.multivariate_normal(est.means_[j][seen], full[j][np.ix_(seen, seen)])
                term += mvn.logpdf(row[seen])
            terms.append(term)
        total += float(logsumexp(terms))
    return total


def test_reader_reads_empty_and_na_cells_as_nan_only_when_asked(tmp_path, faithful):
    x = _holes(faithful)
    _write(tmp_path / "h.csv", x)
    data = read_data(str(tmp_path / "h.csv"), missing=True)
    assert data.names == ["eruptions", "waiting"]
    np.testing.assert_array_equal(np.isnan(data.values), np.isnan(x))
    np.testing.assert_array_equal(data.values[~np.isnan(x)], x[~np.isnan(x)])
    # a header-less file whose first row has a gap is still data, not a header
    (tmp_path / "g.csv").write_text(",2\n3,4\n5,NaN\n")
    got = read_data(str(tmp_path / "g.csv"), missing=True)
    assert got.names is None
    np.testing.assert_array_equal(got.values, [[np.nan, 2], [3, 4], [5, np.nan]])


def test_fit_missing_marginalize_fits_the_mar_likelihood(tmp_path, faithful, capsys):
    x = _holes(faithful)
    _write(tmp_path / "h.csv", x)
    out = tmp_path / "m.json"
    args = ["fit", str(tmp_path / "h.csv"), "-k", "2", "--n-init", "2", "--no-plot"]
    assert main([*args, "--missing", "marginalize", "--out", str(out)]) == 0
    est = latent_em.io.load(out)
    assert est.missing == "marginalize"
    assert est.log_likelihood_ == pytest.approx(_mar_log_likelihood(x, est), rel=1e-9)
    # the same fit as the Python API on the same array
    api = latent_em.GaussianMixture(2, n_init=2, random_state=0, missing="marginalize")
    api.fit(x)
    assert est.log_likelihood_ == pytest.approx(api.log_likelihood_, rel=1e-10)
    text = capsys.readouterr().out
    assert f"{est.log_likelihood_:.3f}" in text
    assert "Missing values: rows with missing entries fitted under missing-at-random" in text
    # predict reads the gaps too, with the model's conditional responsibilities
    pred = tmp_path / "p.csv"
    assert main(["predict", str(out), str(tmp_path / "h.csv"), "--out", str(pred)]) == 0
    got = np.loadtxt(pred, delimiter=",", skiprows=1)
    np.testing.assert_allclose(got[:, 1:], api.predict_proba(x), rtol=1e-9, atol=1e-15)


def test_gaps_without_missing_marginalize_are_a_clear_error(tmp_path, faithful, capsys):
    _write(tmp_path / "h.csv", _holes(faithful))
    assert main(["fit", str(tmp_path / "h.csv"), "-k", "2", "--no-plot"]) == 2
    err = capsys.readouterr().err
    assert "line 5, column 'eruptions': missing value 'NA'" in err
    assert "--missing marginalize" in err and "Traceback" not in err


def test_fit_prior_default_is_mclusts_map_fit(tmp_path, faithful, capsys):
    path = tmp_path / "f.csv"
    _write(path, faithful)
    out = tmp_path / "m.json"
    args = ["fit", str(path), "-k", "3", "--covariance", "EEE", "--n-init", "2", "--no-plot"]
    assert main([*args, "--prior", "default", "--out", str(out)]) == 0
    est = latent_em.io.load(out)
    r = est.result_
    n, d = faithful.shape
    # log p(theta) from scipy with mclust's defaultPrior(faithful, G = 3, "EEE")
    scale = np.cov(faithful.T) / 3 ** (2 / d)
    mean = faithful.mean(axis=0)
    cov = est.covariances_
    expected = stats.invwishart(df=d + 2, scale=scale).logpdf(cov) + sum(
        stats.multivariate_normal(mean, cov / 0.01).logpdf(m) for m in est.means_
    )
    assert r.log_prior == pytest.approx(expected, rel=1e-10)
    assert r.objective == pytest.approx(r.log_likelihood + r.log_prior)
    # BIC from the log-likelihood at the MAP estimate, as mclust's
    del est.feature_names_in_  # the CSV's column names; the array below has none
    assert est.bic(faithful) == pytest.approx(-2 * r.log_likelihood + 11 * math.log(n))
    api = latent_em.GaussianMixture(3, covariance_type="EEE", prior="default", n_init=2)
    api.set_params(random_state=0).fit(faithful)
    assert r.objective == pytest.approx(api.result_.objective, rel=1e-10)
    # the summary names the prior and the two parts of the MAP objective
    text = capsys.readouterr().out
    assert "MAP-EM under mclust's conjugate prior: log-prior " in text
    shown = re.search(r"log-prior (-?[\d.]+), log-likelihood \+ log-prior (-?[\d.]+)", text)
    assert shown is not None
    assert float(shown.group(1)) == pytest.approx(r.log_prior, abs=1e-3)
    assert float(shown.group(2)) == pytest.approx(r.objective, abs=1e-2)
    assert "Missing values" not in text


def test_prior_with_all_fits_the_structures_that_have_one(tmp_path, faithful, capsys):
    path = tmp_path / "f.csv"
    _write(path, faithful)
    args = ["fit", str(path), "-k", "2", "--covariance", "all", "--n-init", "1", "--no-plot"]
    assert main([*args, "--prior", "default", "--out", str(tmp_path / "m.json")]) == 0
    text = capsys.readouterr().out
    rows = [line.split() for line in text.splitlines() if line.startswith("  2 ")]
    fitted = {row[1] for row in rows if row[1].isalpha()}
    # mclust's ten models with a prior (?defaultPrior), not VEE, EVE, VVE, EVV
    expected = {"EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "EEV", "VEV", "VVV"}
    assert fitted == expected
    assert "failed" not in text


def test_prior_on_a_structure_mclust_has_none_for(tmp_path, faithful, capsys):
    path = tmp_path / "f.csv"
    _write(path, faithful)
    args = ["fit", str(path), "-k", "2", "--covariance", "VEE", "--prior", "default"]
    assert main([*args, "--no-plot", "--out", str(tmp_path / "m.json")]) == 2
    err = capsys.readouterr().err
    assert "no conjugate prior for covariance_type='VEE'" in err
    assert "mclust has none for VEE either" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--missing", "marginalize"], "--missing applies to --model gmm only, not 'poisson'"),
        (["--prior", "default"], "--prior applies to --model gmm only, not 'poisson'"),
    ],
)
def test_missing_and_prior_are_for_the_gaussian_model(tmp_path, capsys, extra, message):
    (tmp_path / "c.csv").write_text("1,2\n3,4\n5,7\n")
    assert main(["fit", str(tmp_path / "c.csv"), "--model", "poisson", "-k", "1", *extra]) == 2
    assert message in capsys.readouterr().err


def test_help_lists_the_new_options(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = capsys.readouterr().out
    assert "--missing {error,marginalize}" in text and "--prior {none,default}" in text


def test_all_keeps_the_model_table_when_a_structure_fails(tmp_path, faithful, capsys, monkeypatch):
    # a failed candidate is listed as failed; the model x K table shows the others (it
    # raised KeyError on the missing score before)
    original = latent_em.GaussianMixture.fit

    def failing(self, *args, **kwargs):
        if self.covariance_type == "VEE":
            raise ValueError("simulated failure")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(latent_em.GaussianMixture, "fit", failing)
    path = tmp_path / "f.csv"
    _write(path, faithful)
    args = ["fit", str(path), "-k", "1-2", "--covariance", "all", "--n-init", "1", "--no-plot"]
    assert main([*args, "--out", str(tmp_path / "m.json")]) == 0
    text = capsys.readouterr().out
    assert "VEE  failed: ValueError: simulated failure" in text
    assert "Top 3 models based on the BIC criterion:" in text
    header = next(line for line in text.splitlines() if line.lstrip().startswith("EII"))
    assert "VEE" not in header.split() and "EVE" in header.split()


def test_nan_in_a_npy_file(tmp_path, faithful, capsys):
    x = _holes(faithful)
    np.save(tmp_path / "h.npy", x)
    args = ["fit", str(tmp_path / "h.npy"), "-k", "2", "--n-init", "1", "--no-plot"]
    assert main([*args, "--out", str(tmp_path / "a.json")]) == 2
    err = capsys.readouterr().err
    assert "has missing values (NaN; the first at row 4, column 1)" in err
    assert "--missing marginalize" in err
    assert main([*args, "--missing", "marginalize", "--out", str(tmp_path / "m.json")]) == 0
    est = latent_em.io.load(tmp_path / "m.json")
    assert est.log_likelihood_ == pytest.approx(_mar_log_likelihood(x, est), rel=1e-9)
