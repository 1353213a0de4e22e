"""The command line as users meet it (issue 17): the CSV reader (speed, memory,
separators, column choice, huge fields), mclust-like output, ``-k`` checked up front,
defaults in ``--help``, one missing-file message, and quiet output off a terminal.

Oracles: NumPy's own parser (``numpy.loadtxt``) for the values read, scikit-learn's BIC
for the numbers printed, mclust's model names (``mclustModelNames``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io as stdio
import os
import subprocess
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest

import latent_em
from latent_em.cli import build_parser, main
from latent_em.cli._common import read_data
from latent_em.cli.compare import load_csv


def run(args: list[str]) -> tuple[int, str, str]:
    out, err = stdio.StringIO(), stdio.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def faithful_csv(tmp_path, faithful) -> Path:
    path = tmp_path / "faithful.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["eruptions", "waiting"])
        writer.writerows(faithful.tolist())
    return path


# ----------------------------------------------------------------------------- reader


def test_reader_is_fast_and_bounded(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300_000, 3)) * 100
    path = tmp_path / "big.csv"
    with open(path, "w") as fh:
        fh.write("a,b,c\n")
        np.savetxt(fh, x, delimiter=",", fmt="%.12g")
    megabytes = path.stat().st_size / 1e6
    start = time.perf_counter()
    data = read_data(str(path))
    seconds = time.perf_counter() - start
    tracemalloc.start()
    read_data(str(path))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    np.testing.assert_array_equal(data.values, np.loadtxt(path, delimiter=",", skiprows=1))
    assert data.names == ["a", "b", "c"]
    # measured ~100 MB/s on the 2-core CI machine (main's csv-module reader: ~1.2 MB/s);
    # the bound leaves room for a busy machine
    assert megabytes / seconds > 30, f"{megabytes / seconds:.1f} MB/s"
    # memory: the result and one concatenation copy plus one text block, not Python lists
    assert peak < 2.5 * data.values.nbytes + 20e6, peak


def test_reader_messages_name_the_line_and_column_in_any_block(tmp_path):
    path = tmp_path / "late.csv"
    lines = ["x,y"] + [f"{i},{i + 1}" for i in range(5000)]
    lines[4001] = "7,oops"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"line 4002, column 'y': 'oops' is not a number"):
        read_data(str(path), block_chars=1000)
    np.testing.assert_array_equal(
        read_data(str(tmp_path / "late.csv"), columns="x", block_chars=1000).values[:3, 0],
        [0, 1, 2],
    )


@pytest.mark.parametrize("categorical", [False, True])
def test_a_huge_field_is_a_message_not_a_traceback(tmp_path, categorical):
    path = tmp_path / "huge.csv"
    path.write_text("a,b\n1,2\n3," + "x" * 200_000 + "\n")
    model = "categorical" if categorical else "gmm"
    code, _, err = run(["fit", str(path), "-k", "1", "--model", model, "--no-plot"])
    assert code == 2
    assert "Traceback" not in err and "line 3" in err


def test_separators_and_the_hint(tmp_path, faithful):
    semi = tmp_path / "semi.csv"
    semi.write_text("u;v\n" + "\n".join(f"{a};{b}" for a, b in faithful.tolist()) + "\n")
    tab = tmp_path / "tab.tsv"
    tab.write_text("u\tv\n" + "\n".join(f"{a}\t{b}" for a, b in faithful.tolist()) + "\n")
    np.testing.assert_array_equal(read_data(str(semi), delimiter=";").values, faithful)
    np.testing.assert_array_equal(read_data(str(tab), delimiter="\t").values, faithful)
    code, _, err = run(["fit", str(semi), "-k", "1", "--no-plot"])
    assert code == 2 and "looks semicolon-separated: try --sep ';'" in err
    code, _, err = run(["fit", str(tab), "-k", "1", "--no-plot"])
    assert code == 2 and "looks tab-separated: try --sep 'tab'" in err
    out = tmp_path / "m.json"
    code, text, _ = run(
        ["fit", str(tab), "--sep", "tab", "-k", "2", "--no-plot", "--out", str(out)]
    )
    assert code == 0 and "272" in text
    assert (
        run(["fit", str(semi), "--delimiter", ";", "-k", "2", "--no-plot", "--out", str(out)])[0]
        == 0
    )


def test_columns_choose_and_drop(tmp_path, faithful):
    path = tmp_path / "ids.csv"
    rows = [f"id{i},{a},{b},note {i}" for i, (a, b) in enumerate(faithful.tolist())]
    path.write_text("id,eruptions,waiting,comment\n" + "\n".join(rows) + "\n")
    chosen = read_data(str(path), columns="waiting,eruptions")
    assert chosen.names == ["waiting", "eruptions"]
    np.testing.assert_array_equal(chosen.values, faithful[:, ::-1])
    np.testing.assert_array_equal(read_data(str(path), columns="2,3").values, faithful)
    np.testing.assert_array_equal(read_data(str(path), drop_columns="id,comment").values, faithful)
    with pytest.raises(ValueError, match=r"has no column 'wait' \(columns: id, eruptions"):
        read_data(str(path), columns="wait")
    out = tmp_path / "m.json"
    code, text, _ = run(
        ["fit", str(path), "--drop-columns", "id,4", "-k", "2", "--no-plot", "--out", str(out)]
    )
    assert code == 0, text
    assert list(latent_em.io.load(out).feature_names_in_) == ["eruptions", "waiting"]


def test_compare_reads_like_fit(tmp_path):
    bad = tmp_path / "b.csv"
    bad.write_text("u,v\n1,2\n3,x\n")
    with pytest.raises(ValueError) as from_compare:
        load_csv(str(bad))
    with pytest.raises(ValueError) as from_fit:
        read_data(str(bad))
    assert str(from_compare.value) == str(from_fit.value)
    code, _, err = run(["compare", str(bad), "--out", str(tmp_path / "o")])
    assert code == 2 and "line 3, column 'v': 'x' is not a number" in err


def test_one_missing_file_message_everywhere(tmp_path, faithful_csv):
    missing = str(tmp_path / "nope.csv")
    commands = [
        ["fit", missing],
        ["compare", missing],
        ["predict", str(tmp_path / "nope.json"), str(faithful_csv)],
    ]
    for args in commands:
        code, _, err = run(args)
        target = args[1]
        assert code == 2
        assert err == f"latent-em {args[0]}: error: no such file: {target!r}\n", err


# ----------------------------------------------------------------------------- arguments


def test_a_huge_k_range_is_refused_at_once(tmp_path, faithful_csv):
    start = time.perf_counter()
    err = stdio.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as info:
        main(["fit", str(faithful_csv), "-k", "1-10000000"])
    assert time.perf_counter() - start < 2.0
    assert info.value.code == 2 and "10000000 values of K" in err.getvalue()
    code, _, err = run(["fit", str(faithful_csv), "-k", "1-300", "--no-plot"])
    assert code == 2 and "K=273 is larger than the number of rows (272)" in err


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", ["fit", "predict", "compare", "demo"])
def test_help_shows_every_default(command):
    sub = _subparsers(build_parser())[command]
    text = sub.format_help()
    for action in sub._actions:
        if not action.option_strings or action.nargs == 0 or action.default is None:
            continue
        if action.default is argparse.SUPPRESS:
            continue
        options = text.split("\noptions:\n", 1)[1]
        block = options.split(action.option_strings[-1], 1)[1].split("\n  -", 1)[0]
        assert "default" in block, f"{command} {action.option_strings}: {block!r}"
    if command == "fit":
        assert "(default: 1-6)" in text and "(default: 3)" in text


# ----------------------------------------------------------------------------- output


def test_fit_prints_an_mclust_like_summary(tmp_path, faithful_csv, faithful):
    sklearn_mixture = pytest.importorskip("sklearn.mixture")
    out = tmp_path / "m.json"
    code, text, err = run(
        [
            "fit",
            str(faithful_csv),
            "-k",
            "3",
            "--covariance",
            "tied",
            "--parameters",
            "--no-plot",
            "--out",
            str(out),
            "--tol",
            "1e-10",
        ]
    )
    assert code == 0 and err == ""
    assert "mclust EEE: ellipsoidal, equal volume, shape and orientation" in text
    lines = text.splitlines()
    i = next(
        i for i, line in enumerate(lines) if line.split() == "log-likelihood n df BIC ICL".split()
    )
    ll, n, df, bic, icl = lines[i + 1].split()
    assert (n, df) == ("272", "11")
    sk = sklearn_mixture.GaussianMixture(
        3, covariance_type="tied", tol=1e-10, max_iter=5000, n_init=5, random_state=0
    ).fit(faithful)
    assert float(bic) == pytest.approx(sk.bic(faithful), abs=0.01)
    est = latent_em.io.load(out)
    pd = pytest.importorskip("pandas")
    named = pd.DataFrame(faithful, columns=["eruptions", "waiting"])
    counts = np.bincount(est.predict(named), minlength=3)
    table = text.split("Clustering table")[1].splitlines()
    assert [int(c) for c in table[2].split()] == [int(c) for c in counts]
    tied = text.split("Covariance (tied: shared by all components):")[1].splitlines()
    assert tied[1].split() == ["eruptions", "waiting"]
    np.testing.assert_allclose(
        [float(v) for v in tied[3].split()[1:]], est.covariances_[1], rtol=1e-5
    )
    assert "array(" not in text


def test_fit_lists_item_response_probabilities_of_a_categorical_fit(tmp_path):
    X = latent_em.datasets.load_carcinoma()
    path = tmp_path / "lca.csv"
    path.write_text(
        "A,B,C,D,E,F,G\n" + "\n".join(",".join(str(v) for v in row) for row in X.tolist())
    )
    code, text, _ = run(
        [
            "fit",
            str(path),
            "--model",
            "categorical",
            "-k",
            "2",
            "--parameters",
            "--no-plot",
            "--out",
            str(tmp_path / "m.json"),
        ]
    )
    assert code == 0
    for item in "ABCDEFG":
        assert f"Item-response probabilities of {item} (P({item} = category | class))" in text


def test_non_convergence_is_said_on_stderr(tmp_path, faithful_csv):
    code, text, err = run(
        [
            "fit",
            str(faithful_csv),
            "-k",
            "3",
            "--max-iter",
            "2",
            "--no-plot",
            "--out",
            str(tmp_path / "m.json"),
        ]
    )
    assert code == 0
    assert "warning: the chosen fit (K=3 full) did not converge" in err
    assert "NOT converged" in text


def test_pymc_noise_stays_off_a_non_terminal(monkeypatch, tmp_path, faithful_csv):
    import latent_em.cli.compare as compare

    seen = {}

    def fake_run_compare(X, **options):
        seen.update(options)
        return ""

    monkeypatch.setattr(compare, "run_compare", fake_run_compare)
    assert run(["compare", str(faithful_csv), "--out", str(tmp_path / "o")])[0] == 0
    assert seen["progressbar"] is False  # stderr is not a terminal here
    import logging

    pymc_logger = logging.getLogger("pymc")
    level = pymc_logger.level
    try:
        pymc_logger.setLevel(logging.INFO)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with contextlib.redirect_stderr(stdio.StringIO()):
                compare.quiet_pytensor_off_a_terminal()
            warnings.warn(
                "PyTensor could not link to a BLAS installation", UserWarning, stacklevel=1
            )
        assert caught == []
        assert not pymc_logger.isEnabledFor(logging.INFO)
    finally:
        pymc_logger.setLevel(level)


def test_no_traceback_from_the_console_script_for_a_huge_k(tmp_path, faithful_csv):
    proc = subprocess.run(
        [sys.executable, "-m", "latent_em", "fit", str(faithful_csv), "-k", "1-10000000"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_predict_takes_the_model_columns_from_a_wider_file(tmp_path, faithful):
    path = tmp_path / "ids.csv"
    rows = [f"id{i},{b},{a}" for i, (a, b) in enumerate(faithful.tolist())]
    path.write_text("id,waiting,eruptions\n" + "\n".join(rows) + "\n")  # other order
    out = tmp_path / "m.json"
    args = ["--columns", "eruptions,waiting", "-k", "2", "--no-plot", "--out", str(out)]
    assert run(["fit", str(path), *args])[0] == 0
    code, text, err = run(["predict", str(out), str(path)])
    assert code == 0, err
    proba = np.array([[float(v) for v in line.split(",")[1:]] for line in text.splitlines()[1:]])
    expected = latent_em.io.load(out).predict_proba(
        pytest.importorskip("pandas").DataFrame(faithful, columns=["eruptions", "waiting"])
    )
    np.testing.assert_array_equal(proba, expected)
    # a file lacking a model column is still a clear error
    (tmp_path / "short.csv").write_text("id,waiting\nx,1\ny,2\n")
    code, _, err = run(["predict", str(out), str(tmp_path / "short.csv"), "--drop-columns", "id"])
    assert code == 2 and "but the model was fitted on ['eruptions', 'waiting']" in err
