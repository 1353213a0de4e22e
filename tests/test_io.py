"""Saving and loading: exact round trips, no pickle, clear errors for foreign files.

The oracle of a round trip is the saved object itself: every array must come back with
the same dtype, shape and bytes, every scalar with the same type and value.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import latent_em
from latent_em import _registry, io

from ._exponential import ExponentialMixture, ExpParams


def assert_identical(a: Any, b: Any, where: str = "obj") -> None:
    """Recursive exact equality, including types, dtypes and NaN positions."""
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert a.tobytes() == b.tobytes(), where
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), where
    elif isinstance(a, float):
        assert (a == b) or (np.isnan(a) and np.isnan(b)), f"{where}: {a!r} != {b!r}"
    elif isinstance(a, tuple) and hasattr(a, "_fields"):
        for field in a._fields:
            assert_identical(getattr(a, field), getattr(b, field), f"{where}.{field}")
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_identical(a[key], b[key], f"{where}[{key!r}]")
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_identical(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, latent_em.MixtureEstimator):
        assert_identical(a.get_params(), b.get_params(), f"{where}.get_params()")
        fitted_a = {k: v for k, v in vars(a).items() if k.endswith("_")}
        fitted_b = {k: v for k, v in vars(b).items() if k.endswith("_")}
        assert fitted_a.keys() == fitted_b.keys(), where
        for key in fitted_a:
            assert_identical(fitted_a[key], fitted_b[key], f"{where}.{key}")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_gaussian_mixture_round_trip_is_exact(tmp_path, faithful, covariance_type):
    gm = latent_em.GaussianMixture(
        3, covariance_type=covariance_type, n_init=2, random_state=1
    ).fit(faithful)
    path = gm.save(tmp_path / "gm.json")
    assert path == tmp_path / "gm.json"
    assert (tmp_path / "gm.npz").exists()
    again = latent_em.GaussianMixture.load(path)
    assert_identical(gm, again, "estimator")
    # the loaded estimator behaves identically, bit for bit
    assert np.array_equal(again.predict_proba(faithful), gm.predict_proba(faithful))
    assert np.array_equal(again.score_samples(faithful), gm.score_samples(faithful))
    assert again.bic(faithful) == gm.bic(faithful)
    x1, z1 = gm.sample(50, random_state=3)
    x2, z2 = again.sample(50, random_state=3)
    assert np.array_equal(x1, x2) and np.array_equal(z1, z2)


def test_loaded_estimator_refits_to_the_same_result(tmp_path, faithful):
    means_init = np.array([[2.0, 55.0], [4.5, 80.0]])
    gm = latent_em.GaussianMixture(2, means_init=means_init, random_state=7)
    gm.save(tmp_path / "unfitted.json")
    again = io.load(tmp_path / "unfitted.json")
    assert not hasattr(again, "result_")
    assert_identical(gm.get_params(), again.get_params())
    assert np.array_equal(gm.fit(faithful).means_, again.fit(faithful).means_)


def test_emresult_round_trip_keeps_events_and_restarts(tmp_path):
    # a constant column makes the covariance collapse onto the reg_covar floor: an event
    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(size=40), np.full(40, 2.5)]
    result = latent_em.fit(latent_em.GaussianMixtureModel(1), x, n_init=3, random_state=0)
    assert result.events and len(result.restarts) == 3
    result.save(tmp_path / "result.json")
    again = latent_em.EMResult.load(tmp_path / "result.json")
    assert_identical(result, again, "result")
    assert again.bic == result.bic
    latent_em.GaussianMixture(2).save(tmp_path / "estimator.json")
    with pytest.raises(TypeError, match="holds a GaussianMixture, not an EMResult"):
        latent_em.EMResult.load(tmp_path / "estimator.json")


def test_generator_random_state_round_trips(tmp_path, faithful):
    gen = np.random.default_rng(42)
    gen.standard_normal(3)  # advance: the saved state is the current one
    gm = latent_em.GaussianMixture(2, random_state=gen)
    gm.save(tmp_path / "g.json")
    loaded = io.load(tmp_path / "g.json").random_state
    assert isinstance(loaded, np.random.Generator)
    assert np.array_equal(loaded.standard_normal(5), gen.standard_normal(5))
    legacy = np.random.RandomState(3)
    legacy.uniform(size=2)
    latent_em.GaussianMixture(2, random_state=legacy).save(tmp_path / "r.json")
    loaded = io.load(tmp_path / "r.json").random_state
    assert isinstance(loaded, np.random.RandomState)
    assert np.array_equal(loaded.uniform(size=5), legacy.uniform(size=5))


def test_custom_model_needs_registration(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.exponential(1.0, 200), rng.exponential(10.0, 200)])
    result = latent_em.fit(ExponentialMixture(), x, random_state=0)
    with pytest.raises(TypeError) as info:
        io.save(result, tmp_path / "r.json")
    assert "is not registered; call latent_em.io.register_class on it" in str(info.value)
    # user registrations made here are undone after the test
    monkeypatch.setattr(_registry, "_CLASSES", dict(_registry._CLASSES))
    for cls in (ExponentialMixture, ExpParams):
        io.register_class(cls)
    io.save(result, tmp_path / "r.json")
    assert_identical(result, io.load(tmp_path / "r.json"))


def test_files_are_plain_json_and_pickle_free_npz(tmp_path, faithful):
    gm = latent_em.GaussianMixture(2, random_state=0).fit(faithful)
    gm.save(tmp_path / "m.json")

    def no_constants(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    doc = json.loads((tmp_path / "m.json").read_text(), parse_constant=no_constants)
    assert doc["format"] == "latent_em" and doc["format_version"] == io.FORMAT_VERSION
    assert doc["content"]["__estimator__"] == "GaussianMixture"
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:
        assert all(npz[key].dtype != object for key in npz.files)


def _rewrite(path: Path, **changes: Any) -> None:
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))


@pytest.fixture
def saved(tmp_path, faithful) -> Path:
    return latent_em.GaussianMixture(2, random_state=0).fit(faithful).save(tmp_path / "m.json")


def test_newer_format_version_is_refused(saved):
    _rewrite(saved, format_version=io.FORMAT_VERSION + 1, latent_em_version="9.0")
    with pytest.raises(io.UnsupportedFormatError) as info:
        io.load(saved)
    assert str(info.value) == (
        f"{str(saved)!r} uses format version {io.FORMAT_VERSION + 1} (written by latent_em "
        f"9.0); this latent_em reads versions up to {io.FORMAT_VERSION}: upgrade latent_em "
        "to load it"
    )


def test_foreign_json_is_refused(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(io.UnsupportedFormatError, match="is not a latent_em file"):
        io.load(path)
    path.write_text("not json at all")
    with pytest.raises(io.UnsupportedFormatError, match="is not a latent_em file"):
        io.load(path)


def test_loading_never_instantiates_unregistered_classes(saved):
    doc = json.loads(saved.read_text())
    doc["content"]["__estimator__"] = "Popen"
    saved.write_text(json.dumps(doc))
    with pytest.raises(io.UnsupportedFormatError, match="class 'Popen', which is not registered"):
        io.load(saved)


def test_mismatched_array_file_is_detected(tmp_path, faithful, saved):
    other = latent_em.GaussianMixture(3, random_state=0).fit(faithful)
    other.save(tmp_path / "other.json")
    (tmp_path / "m.npz").write_bytes((tmp_path / "other.npz").read_bytes())
    with pytest.raises(io.UnsupportedFormatError, match="checksum mismatch"):
        io.load(saved)


def test_array_file_outside_the_folder_is_refused(saved):
    _rewrite(saved, arrays="../../etc/passwd")
    with pytest.raises(io.UnsupportedFormatError, match="names an invalid array file"):
        io.load(saved)


def test_load_checks_the_estimator_class(saved):
    class OtherMixture(latent_em.MixtureEstimator):
        def __init__(self, n_components: int = 1) -> None:
            self.n_components = n_components

    with pytest.raises(TypeError, match="holds a GaussianMixture, not a OtherMixture"):
        OtherMixture.load(saved)


def test_save_rejects_other_objects_and_npz_paths(tmp_path):
    with pytest.raises(TypeError, match="save expects a fitted estimator or an EMResult"):
        io.save({"a": 1}, tmp_path / "x.json")
    gm = latent_em.GaussianMixture(2)
    with pytest.raises(ValueError, match="path must name the JSON metadata file"):
        gm.save(tmp_path / "x.npz")


class LabelledMixture(latent_em.GaussianMixture):
    """An estimator with extra fitted state, as categorical models have (category codes)."""

    def fit(self, X, y=None, sample_weight=None):
        super().fit(X, sample_weight=sample_weight)
        self.categories_ = [np.array(["a", "b"]), np.array([1, 2, 3])]
        self.note_ = {"source": "test", "scale": 2.5}
        return self


def test_extra_fitted_attributes_round_trip_generically(tmp_path, monkeypatch, faithful):
    # user registrations made here are undone after the test
    monkeypatch.setattr(_registry, "_CLASSES", dict(_registry._CLASSES))
    io.register_class(LabelledMixture)
    est = LabelledMixture(2, random_state=0).fit(faithful)
    est.save(tmp_path / "l.json")
    again = LabelledMixture.load(tmp_path / "l.json")
    assert_identical(est, again)
    assert again.categories_[0].dtype.kind == "U"


@pytest.mark.parametrize("dtype", [np.float32, np.dtype("float32"), "float32"])
def test_dtype_option_round_trips(tmp_path, dtype):
    from latent_em import GaussianMixture

    X = np.random.default_rng(0).normal(size=(60, 2))
    gm = GaussianMixture(2, dtype=dtype, random_state=0).fit(X)
    gm.save(tmp_path / "gm")
    back = GaussianMixture.load(tmp_path / "gm")
    assert back.dtype == dtype
    np.testing.assert_array_equal(back.predict_proba(X), gm.predict_proba(X))
