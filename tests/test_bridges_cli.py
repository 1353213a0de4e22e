"""``latent-em compare`` and ``latent-em demo --compare``.

The sampling run reuses the data and model structure of ``test_bridges_crosscheck`` (1-D,
K = 3, full covariance) so PyTensor's compile cache is shared.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.bridges

pytest.importorskip("pymc")

from latent_em.cli import main  # noqa: E402
from latent_em.cli.compare import load_csv  # noqa: E402


def three_clusters() -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.concatenate([rng.normal(-5, 1, 50), rng.normal(0, 1, 50), rng.normal(5, 1, 50)])[
        :, None
    ]


def test_compare_writes_report_and_plots(tmp_path, capsys):
    data = tmp_path / "data.csv"
    X = three_clusters()
    np.savetxt(data, X, delimiter=",", header="x", comments="")
    out = tmp_path / "out"
    code = main(
        [
            "compare",
            str(data),
            "--model",
            "gmm",
            "-k",
            "3",
            "--covariance",
            "full",
            "--draws",
            "200",
            "--tune",
            "300",
            "--seed",
            "1",
            "--n-init",
            "3",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "verdict: AGREE" in captured.out
    assert "sampling 2 chain(s)" in captured.err  # progress messages go to stderr
    for name in ("report.txt", "report.json", "em_trace.png", "forest.png", "membership.png"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["verdict"] == "agree"
    assert report["settings"]["draws"] == 200 and report["settings"]["n_observations"] == 150
    assert (out / "report.txt").read_text(encoding="utf-8").startswith("parameter")


def test_load_csv_header_and_errors(tmp_path):
    good = tmp_path / "a.csv"
    good.write_text("u,v\n1,2\n3,4.5\n", encoding="utf-8")
    np.testing.assert_array_equal(load_csv(str(good)), [[1, 2], [3, 4.5]])
    bad = tmp_path / "b.csv"
    bad.write_text("1,2\n3,x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2, column 2: .x. is not a number"):
        load_csv(str(bad))
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_csv(str(tmp_path / "missing.csv"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "missing.csv"], "no such file"),
        (["compare", "DATA", "--draws", "0"], "--draws must be >= 1"),
        (["compare", "DATA", "-k", "0"], "--n-components must be >= 1"),
        (["compare", "DATA", "--tune", "-1"], "--tune must be >= 0"),
        (["demo", "--compare", "--draws", "0"], "--draws must be >= 1"),
    ],
)
def test_user_errors_exit_2(tmp_path, capsys, args, message):
    data = tmp_path / "d.csv"
    data.write_text("1\n2\n3\n", encoding="utf-8")
    args = [str(data) if a == "DATA" else a for a in args]
    if "missing.csv" in args:
        args[args.index("missing.csv")] = str(tmp_path / "missing.csv")
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_unavailable_model_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import latent_em.estimators as est

    data = tmp_path / "d.csv"
    data.write_text("1\n0\n1\n", encoding="utf-8")
    monkeypatch.delattr(est, "PoissonMixture")
    assert main(["compare", str(data), "--model", "poisson", "--out", str(tmp_path)]) == 2
    assert "PoissonMixture is not available" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_compare(tmp_path, capsys):
    out = tmp_path / "demo.png"
    code = main(
        [
            "demo",
            "--kmax",
            "2",
            "--covariance",
            "diag",
            "--n-init",
            "2",
            "--compare",  # the demo's default 500 draws per chain: with 200, R-hat's own
            "--out",  # noise (about ±0.03) straddled the 1.05 threshold
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Cross-check against NUTS" in captured.out
    folder = tmp_path / "demo_compare"
    assert (folder / "report.json").is_file() and (folder / "forest.png").is_file()
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    # Old Faithful's two eruption types are well separated: K = 2 is well identified
    assert report["settings"]["model"] == "GaussianMixtureModel"
    assert report["verdict"] == "agree", report["reasons"]
