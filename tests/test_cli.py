"""End-to-end tests of ``latent-em fit`` and ``latent-em predict``.

Oracle for the fitted numbers: scikit-learn's GaussianMixture on the same data (its BIC
uses the same convention, ``-2 log L + p log n``).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io as stdio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import latent_em
from latent_em.cli import main
from latent_em.cli._common import ProgressBar, read_data
from latent_em.cli.fit import MODELS, ModelSpec, parse_k_range

ROOT = Path(__file__).resolve().parents[1]


def _write_faithful(path: Path, x: np.ndarray) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["eruptions", "waiting"])
        writer.writerows(x.tolist())
    return path


@pytest.fixture
def faithful_csv(tmp_path, faithful) -> Path:
    return _write_faithful(tmp_path / "faithful.csv", faithful)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, faithful) -> tuple[Path, str]:
    """One 'latent-em fit' run shared by the tests that read its output."""
    folder = tmp_path_factory.mktemp("fit")
    data = _write_faithful(folder / "faithful.csv", faithful)
    out = folder / "models" / "fit.json"
    stdout, stderr = stdio.StringIO(), stdio.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        rc = main(["fit", str(data), "-k", "1-3", "--n-init", "2", "--out", str(out)])
    assert rc == 0, stderr.getvalue()
    assert stderr.getvalue() == ""  # not a terminal: no progress bar
    return out, stdout.getvalue()


def test_fit_chooses_k_by_bic_and_matches_scikit_learn(fitted, faithful):
    from sklearn.mixture import GaussianMixture

    out, text = fitted
    assert out.exists() and out.with_suffix(".npz").exists()
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the table has one row per K, the chosen one starred
    rows = [line for line in text.splitlines() if line[:3].strip() in ("1", "2", "3")]
    assert [r.split()[0] for r in rows[:3]] == ["1", "2", "3"]
    assert [r.endswith("*") for r in rows[:3]] == [False, True, False]
    assert "Chosen: K=2, covariance=full" in text
    est = latent_em.io.load(out)
    assert list(est.feature_names_in_) == ["eruptions", "waiting"]
    assert est.feature_names_in_.dtype == object  # as scikit-learn's
    reference = GaussianMixture(2, tol=1e-10, max_iter=5000, n_init=5, random_state=0)
    reference.fit(faithful)
    # sklearn 1.x: bic = -2 * score * n + p * log n; at its optimum BIC = 2322.19
    # the model remembers the CSV's column names, so (as in scikit-learn) data with the
    # same names is scored without a warning about missing feature names
    pd = pytest.importorskip("pandas")
    named = pd.DataFrame(faithful, columns=["eruptions", "waiting"])
    assert est.bic(named) == pytest.approx(reference.bic(faithful), rel=1e-7)
    assert f"{reference.bic(faithful):.3f}" in rows[1]


def test_predict_writes_labels_and_probabilities(tmp_path, fitted, faithful_csv, faithful, capsys):
    out, _ = fitted
    pred = tmp_path / "pred.csv"
    assert main(["predict", str(out), str(faithful_csv), "--out", str(pred)]) == 0
    with open(pred, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["label", "p0", "p1"]
    labels = np.array([int(r[0]) for r in rows[1:]])
    proba = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    est = latent_em.io.load(out)
    pd = pytest.importorskip("pandas")
    named = pd.DataFrame(faithful, columns=["eruptions", "waiting"])  # names as in the CSV
    assert np.array_equal(proba, est.predict_proba(named))  # repr keeps every digit
    assert np.array_equal(labels, np.argmax(proba, axis=1))
    assert np.allclose(proba.sum(axis=1), 1.0)
    # to standard output when --out is not given
    assert main(["predict", str(out), str(faithful_csv)]) == 0
    assert capsys.readouterr().out == pred.read_text()


def test_npy_and_headerless_csv_read_like_the_csv(tmp_path, faithful, faithful_csv):
    np.save(tmp_path / "x.npy", faithful)
    bare = tmp_path / "bare.csv"
    bare.write_text("\n".join(",".join(repr(v) for v in row) for row in faithful.tolist()))
    for path in (tmp_path / "x.npy", bare, faithful_csv):
        data = read_data(str(path))
        assert np.array_equal(data.values, faithful)
    assert read_data(str(faithful_csv)).names == ["eruptions", "waiting"]
    assert read_data(str(bare)).names is None


def test_one_column_data_gets_a_criterion_plot(tmp_path, faithful, capsys):
    np.save(tmp_path / "x.npy", faithful[:, 1])
    out = tmp_path / "w.json"
    args = ["fit", str(tmp_path / "x.npy"), "-k", "1,2", "--select", "aic", "--n-init", "1"]
    assert main([*args, "--covariance", "spherical", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "AIC (smaller is better" in text and (tmp_path / "w.png").exists()


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda d: ["fit", str(d / "missing.csv")], "no such file: "),
        (lambda d: ["fit", str(d / "text.csv")], "line 3, column 'b': 'x' is not a number"),
        (lambda d: ["fit", str(d / "ragged.csv")], "line 3 has 1 fields; expected 2"),
        (lambda d: ["fit", str(d / "gap.csv")], "line 2, column 2: missing value ''"),
        (lambda d: ["fit", str(d / "ok.csv"), "-k", "9"], "K=9 is larger than the number of rows"),
        (lambda d: ["fit", str(d / "ok.csv"), "--out", "m.txt"], "--out must end in .json"),
        (lambda d: ["fit", str(d / "ok.csv"), "--n-init", "0"], "--n-init must be >= 1; got 0"),
        (
            lambda d: ["fit", str(d / "ok.csv"), "--model", "poisson", "--covariance", "full"],
            "--covariance applies to --model gmm only, not 'poisson'",
        ),
        (lambda d: ["predict", str(d / "newer.json"), str(d / "ok.csv")], "upgrade latent_em"),
        (lambda d: ["predict", str(d / "ok.csv"), str(d / "ok.csv")], "is not a latent_em file"),
    ],
)
def test_user_errors_exit_2_with_a_message(tmp_path, capsys, make_args, message):
    (tmp_path / "text.csv").write_text("a,b\n1,2\n3,x\n")
    (tmp_path / "ragged.csv").write_text("1,2\n\n3\n")  # blank lines count
    (tmp_path / "gap.csv").write_text("1,2\n3,\n")
    (tmp_path / "ok.csv").write_text("1,2\n3,4\n5,7\n")
    (tmp_path / "newer.json").write_text(json.dumps({"format": "latent_em", "format_version": 99}))
    assert main(make_args(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("latent-em ") and ": error: " in err
    assert message in err
    assert "Traceback" not in err


def test_unavailable_model_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(MODELS, "bernoulli", ModelSpec("NoSuchMixture", "missing"))
    (tmp_path / "b.csv").write_text("0,1\n1,1\n0,0\n")
    assert main(["fit", str(tmp_path / "b.csv"), "--model", "bernoulli", "-k", "1"]) == 2
    err = capsys.readouterr().err
    assert "model 'bernoulli' is not available in this version of latent_em" in err


def test_predict_checks_column_names(tmp_path, fitted, capsys):
    out, _ = fitted
    (tmp_path / "renamed.csv").write_text("a,b\n1,50\n")
    assert main(["predict", str(out), str(tmp_path / "renamed.csv")]) == 2
    assert "but the model was fitted on ['eruptions', 'waiting']" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["fit"], ["predict"], ["demo"]])
def test_help_on_every_command(capsys, command):
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: latent-em")


def test_bad_k_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["fit", "x.csv", "-k", "3-1"])
    assert info.value.code == 2
    assert "invalid K '3-1'" in capsys.readouterr().err
    assert parse_k_range("1-3,6") == [1, 2, 3, 6]


class _Terminal(stdio.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal():
    tty = _Terminal()
    with ProgressBar(4, stream=tty, delay=0.0, width=8) as bar:
        bar.update(2, "K=2")
        assert tty.getvalue().startswith("\r[####----] 2/4 K=2")
    assert tty.getvalue().endswith("\r")  # erased on close
    pipe = stdio.StringIO()
    with ProgressBar(4, stream=pipe, delay=0.0) as bar:
        bar.update(2)
    assert pipe.getvalue() == ""
    quick = _Terminal()
    with ProgressBar(4, stream=quick, delay=60.0) as bar:
        bar.update(2)  # a fit shorter than the delay shows nothing
    assert quick.getvalue() == ""


def test_progress_bar_throttles_redraws_and_blanks_longer_lines():
    tty = _Terminal()
    with ProgressBar(4, stream=tty, delay=0.0, interval=60.0, width=8) as bar:
        bar.update(1, "K=1")
        bar.update(2, "K=2")  # within the interval: not drawn
        assert "K=2" not in tty.getvalue()
    tty = _Terminal()
    with ProgressBar(4, stream=tty, delay=0.0, interval=0.0, width=8) as bar:
        bar.update(1, "x" * 80)
        bar.update(2, "K=2")
        long_line, short_line = tty.getvalue().split("\r")[1:3]
        # the shorter line overwrites every character of the longer one
        assert len(short_line) == len(long_line) and short_line.rstrip().endswith("K=2")
    assert tty.getvalue().endswith("\r" + " " * len(long_line) + "\r")


_ITERATION = re.compile(r"\] 0/1 K=3 full  init (\d)/2  iter (\d+) *$")


def _run_one_candidate(monkeypatch, tmp_path, faithful, stream, **options):
    """run_fit on a single candidate (K=3, full, 2 restarts) with the bar on ``stream``."""
    import latent_em.cli._common as common
    from latent_em.cli.fit import run_fit

    bar = functools.partial(common.ProgressBar, stream=stream, delay=0.0, interval=0.0)
    monkeypatch.setattr(common, "ProgressBar", bar)
    return run_fit(
        faithful,
        ks=[3],
        covariances=("full",),
        n_init=2,
        out=str(tmp_path / "fit.json"),
        **options,
    )


def test_progress_advances_per_em_iteration_on_a_terminal(monkeypatch, tmp_path, faithful):
    tty = _Terminal()
    text = _run_one_candidate(monkeypatch, tmp_path, faithful, tty)
    shown: dict[int, list[int]] = {}
    for line in tty.getvalue().split("\r"):
        match = _ITERATION.search(line)
        if match:
            shown.setdefault(int(match[1]), []).append(int(match[2]))
    # both restarts of the one candidate, each counting its EM iterations up from 0
    assert sorted(shown) == [1, 2]
    for iterations in shown.values():
        assert iterations == list(range(len(iterations))) and len(iterations) > 2
    # the chosen restart's last E-step is the fit's iteration count in the table
    row = next(line for line in text.splitlines() if line.split()[:2] == ["3", "full"])
    assert int(row.split()[5]) in {its[-1] for its in shown.values()}
    assert tty.getvalue().endswith("\r")  # erased before the table is printed


def test_no_progress_callback_off_a_terminal(monkeypatch, tmp_path, faithful):
    import latent_em.cli.fit as fit_command

    def no_callback(*args):
        raise AssertionError("a progress callback was made without a terminal")

    monkeypatch.setattr(fit_command, "_CandidateProgress", no_callback)
    pipe = stdio.StringIO()
    _run_one_candidate(monkeypatch, tmp_path, faithful, pipe)
    assert pipe.getvalue() == ""
    tty = _Terminal()  # --no-progress: nothing even on a terminal
    _run_one_candidate(monkeypatch, tmp_path, faithful, tty, progress=False)
    assert tty.getvalue() == ""


def test_console_script_exit_code_and_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "latent_em", "fit", str(tmp_path / "nope.csv")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("latent-em fit: error: no such file:")
    assert "Traceback" not in proc.stderr
