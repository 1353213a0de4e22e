"""Model files that are damaged, tampered with or incomplete (issue 17).

Every failure of :func:`latent_em.io.load` is a :class:`~latent_em.io.ModelFileError`
naming the file and what is wrong; loaded parameters are validated as ``fit`` validates
data; only referenced ``.npz`` members are read, after their declared size is checked;
``save`` leaves the previous model intact when interrupted.
"""

from __future__ import annotations

import hashlib
import io as stdio
import json
import os
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import latent_em
from latent_em import io
from latent_em.cli import main
from latent_em.io import ModelFileError


@pytest.fixture(scope="module")
def gm(faithful):
    return latent_em.GaussianMixture(2, random_state=0).fit(faithful)


@pytest.fixture
def saved(tmp_path, gm) -> Path:
    return gm.save(tmp_path / "model.json")


def _document(path: Path) -> dict:
    return json.loads(path.read_text())


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path.with_suffix(".npz"), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _rewrite(
    path: Path,
    document: dict,
    arrays: dict[str, np.ndarray] | None = None,
    blob: bytes | None = None,
) -> None:
    """Write a tampered pair whose checksum matches, so the checks behind it are reached."""
    if blob is None:
        buffer = stdio.BytesIO()
        np.savez(buffer, **(arrays if arrays is not None else _arrays(path)))
        blob = buffer.getvalue()
    path.with_suffix(".npz").write_bytes(blob)
    document["arrays_sha256"] = hashlib.sha256(blob).hexdigest()
    path.write_text(json.dumps(document))


def _param_key(document: dict, field: str) -> str:
    def walk(node):
        if isinstance(node, dict):
            if str(node.get("__namedtuple__", "")).endswith("Params"):
                return node["fields"][field]["__array__"]
            for value in node.values():
                found = walk(value)
                if found:
                    return found
        if isinstance(node, list):
            for value in node:
                found = walk(value)
                if found:
                    return found
        return None

    return walk(document)


def _tamper_param(path: Path, field: str, change) -> None:
    document, arrays = _document(path), _arrays(path)
    key = _param_key(document, field)
    arrays[key] = change(arrays[key].copy())
    _rewrite(path, document, arrays)


def _set(index, value):
    def change(a):
        a[index] = value
        return a

    return change


BAD_PARAMETERS = [
    ("weights", _set(0, np.nan), "weights contains NaN"),
    ("weights", lambda w: -w, "weights must be non-negative"),
    ("weights", lambda w: w * 7, "they sum to 7"),
    ("covariances", _set((0, 0, 0), np.nan), "covariances contains NaN"),
    ("covariances", _set((0, 0, 1), 5.0), "covariances is not symmetric"),
    ("covariances", lambda c: c.astype(complex), "covariances is complex"),
    ("covariances", lambda c: -c, "covariances[0] is not positive definite"),
    ("means", lambda m: m[:1], "means has shape (1, 2)"),
]


@pytest.mark.parametrize(("field", "change", "message"), BAD_PARAMETERS)
def test_invalid_parameters_are_refused(saved, field, change, message, capsys, faithful):
    _tamper_param(saved, field, change)
    with pytest.raises(ModelFileError, match=r"model\.json") as info:
        io.load(saved)
    assert message in str(info.value)
    # and the command line says so instead of printing 0,nan,nan
    data = saved.parent / "x.npy"
    np.save(data, faithful)
    assert main(["predict", str(saved), str(data)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("cls", "data", "field", "change", "message"),
    [
        ("BernoulliMixture", "binary", "probs", _set((0, 0), 1.5), r"outside \[0, 1\]"),
        ("PoissonMixture", "counts", "rates", _set((0, 0), -1.0), "rates must be non-negative"),
    ],
)
def test_invalid_discrete_parameters_are_refused(tmp_path, rng, cls, data, field, change, message):
    x = rng.integers(0, 2, (60, 3)) if data == "binary" else rng.poisson(3.0, (60, 3))
    path = getattr(latent_em, cls)(2, random_state=0).fit(x).save(tmp_path / "m.json")
    _tamper_param(path, field, change)
    with pytest.raises(ModelFileError, match=message):
        io.load(path)


def test_categorical_rows_must_sum_to_one(tmp_path):
    X = latent_em.datasets.load_carcinoma()
    path = latent_em.CategoricalMixture(2, random_state=0).fit(X).save(tmp_path / "m.json")
    document, arrays = _document(path), _arrays(path)
    tables = next(
        n for n in _walk(document) if str(n.get("__namedtuple__", "")).endswith("Params")
    )["fields"]["probs"]["__tuple__"]
    key = tables[0]["__array__"]
    arrays[key] = arrays[key] * 0.5
    _rewrite(path, document, arrays)
    with pytest.raises(ModelFileError, match=r"rows of parameter probs\[0\] do not sum to 1"):
        io.load(path)


def _walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_a_categorical_fit_on_a_dataframe_round_trips(tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": ["x", "y", "x", "y"] * 5, "b": ["u", "u", "v", "v"] * 5})
    lca = latent_em.CategoricalMixture(2, random_state=0).fit(df)
    again = io.load(lca.save(tmp_path / "c.json"))  # main: object arrays are not portable
    assert again.feature_names_in_.dtype == object
    assert list(again.feature_names_in_) == ["a", "b"]
    np.testing.assert_array_equal(again.predict_proba(df), lca.predict_proba(df))


# ----------------------------------------------------------------------------- error types


def test_missing_content_is_a_model_file_error(saved):
    document = _document(saved)
    del document["content"]
    saved.write_text(json.dumps(document))
    with pytest.raises(ModelFileError, match='has no "content" entry'):  # main: KeyError
        io.load(saved)


def test_empty_array_file(saved):
    with pytest.raises(ModelFileError, match="not a readable .npz"):  # main: EOFError
        _rewrite(saved, _document(saved), blob=b"")
        io.load(saved)


def test_bad_random_state(tmp_path, faithful):
    est = latent_em.GaussianMixture(2, random_state=np.random.default_rng(1)).fit(faithful)
    path = est.save(tmp_path / "g.json")
    document = _document(path)
    generator = next(n for n in _walk(document) if "__generator__" in n)
    generator["__generator__"]["__dict__"]["state"] = {"__dict__": {}}
    _rewrite(path, document)
    with pytest.raises(ModelFileError, match="random state"):  # main: KeyError/IndexError
        io.load(path)


def test_deeply_nested_json(saved):
    document = _document(saved)
    text = json.dumps({k: v for k, v in document.items() if k != "content"})
    saved.write_text(text[:-1] + ', "content": ' + "[" * 50_000 + "]" * 50_000 + "}")
    with pytest.raises(ModelFileError, match="nested"):  # main: RecursionError
        io.load(saved)


def _header(shape: tuple[int, ...]) -> bytes:
    buffer = stdio.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue()


def _replace_member(path: Path, key: str, data: bytes, compress: bool = False) -> None:
    arrays = _arrays(path)
    buffer = stdio.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, arr in arrays.items():
            member = stdio.BytesIO()
            np.lib.format.write_array(member, arr)
            zf.writestr(name + ".npy", data if name == key else member.getvalue())
        if key not in arrays:
            method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
            zf.writestr(key + ".npy", data, compress_type=method)
    _rewrite(path, _document(path), blob=buffer.getvalue())


def test_an_array_header_claiming_8_terabytes(saved):
    key = _param_key(_document(saved), "weights")
    _replace_member(saved, key, _header((10**12,)) + b"\0" * 16)
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match="declares shape"):  # main: MemoryError
        io.load(saved)
    assert time.perf_counter() - start < 1.0


def test_decompression_bomb_in_an_unreferenced_member_is_not_read(saved):
    zeros = np.zeros(25_000_000)  # 200 MB of zeros deflate to ~200 kB
    member = stdio.BytesIO()
    np.lib.format.write_array(member, zeros)
    del zeros
    _replace_member(saved, "bomb", member.getvalue(), compress=True)
    assert saved.with_suffix(".npz").stat().st_size < 2_000_000
    tracemalloc.start()
    start = time.perf_counter()
    io.load(saved)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert seconds < 2.0 and peak < 30e6, (seconds, peak)  # main: ~200 MB decompressed


def test_a_referenced_bomb_is_refused_before_decompressing(saved):
    key = _param_key(_document(saved), "means")
    member = stdio.BytesIO()
    np.lib.format.write_array(member, np.zeros(25_000_000))
    arrays = _arrays(saved)
    buffer = stdio.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, arr in arrays.items():
            if name == key:
                zf.writestr(name + ".npy", member.getvalue(), compress_type=zipfile.ZIP_DEFLATED)
            else:
                one = stdio.BytesIO()
                np.lib.format.write_array(one, arr)
                zf.writestr(name + ".npy", one.getvalue())
    _rewrite(saved, _document(saved), blob=buffer.getvalue())
    with pytest.raises(ModelFileError, match="more than 100 times"):
        io.load(saved)


# ----------------------------------------------------------------------------- files


def test_json_without_its_npz(saved, capsys):
    saved.with_suffix(".npz").unlink()
    with pytest.raises(io.MissingModelFileError, match="must be copied together"):
        io.load(saved)
    assert main(["predict", str(saved), str(saved)]) == 2
    assert "must be copied together" in capsys.readouterr().err


def test_interrupted_save_keeps_the_previous_model(saved, gm, faithful, monkeypatch):
    before = io.load(saved).predict_proba(faithful)
    other = latent_em.GaussianMixture(3, random_state=1).fit(faithful)
    calls = []

    def interrupted_write_text(self, *args, **kwargs):  # main writes the JSON this way
        raise KeyboardInterrupt

    real_fsync = os.fsync

    def interrupted_fsync(fd):  # ours: the second temporary file (the JSON)
        calls.append(fd)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_fsync(fd)

    monkeypatch.setattr(Path, "write_text", interrupted_write_text)
    monkeypatch.setattr(os, "fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        other.save(saved)
    monkeypatch.undo()
    np.testing.assert_array_equal(io.load(saved).predict_proba(faithful), before)
    assert sorted(p.name for p in saved.parent.iterdir()) == ["model.json", "model.npz"]


def test_save_replaces_a_model_completely(saved, faithful):
    other = latent_em.GaussianMixture(3, random_state=1).fit(faithful)
    other.save(saved)
    assert io.load(saved).n_components == 3
    assert sorted(p.name for p in saved.parent.iterdir()) == ["model.json", "model.npz"]


# ----------------------------------------------------------------------------- fuzzing


_REPLACEMENTS = [
    None,
    -1,
    0,
    10**30,
    1e308,
    "x",
    True,
    [],
    {},
    {"__array__": "a0"},
    {"__array__": "zz"},
    {"__float__": "nan"},
    {"__float__": "1"},
    {"__tuple__": 3},
    {"__namedtuple__": "GaussianMixtureParams", "fields": {}},
    {"__dataclass__": "EMResult", "fields": {}},
    {"__object__": "os", "state": {}},
    {"__generator__": {"__dict__": {"bit_generator": "PCG64", "state": 1}}},
    {"__strings__": [1], "shape": [1]},
    {"__dtype__": "O"},
    {"__scalar_type__": "<U3"},
]


def _mutate_json(document: dict, rng: np.random.Generator) -> None:
    nodes = [n for n in _walk(document["content"]) if n]
    node = nodes[rng.integers(len(nodes))]
    key = list(node)[rng.integers(len(node))]
    if rng.random() < 0.2:
        del node[key]
    else:
        node[key] = _REPLACEMENTS[rng.integers(len(_REPLACEMENTS))]


def _mutate_blob(blob: bytes, rng: np.random.Generator) -> bytes:
    data = bytearray(blob)
    if rng.random() < 0.3:
        return bytes(data[: rng.integers(len(data))])
    for _ in range(rng.integers(1, 8)):
        data[rng.integers(len(data))] = rng.integers(256)
    return bytes(data)


def _mutate_values(arrays: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    """Replace one array by a plausible-looking wrong one (same checksum path)."""
    key = sorted(arrays)[rng.integers(len(arrays))]
    a = np.asarray(arrays[key])
    choice = rng.integers(8)
    if a.dtype.kind not in "biuf" or a.size == 0:
        arrays[key] = np.zeros(3)
    elif choice == 0:
        arrays[key] = -a
    elif choice == 1:
        b = a.astype(float)
        b.flat[rng.integers(b.size)] = np.nan
        arrays[key] = b
    elif choice == 2:
        arrays[key] = a * 1e300
    elif choice == 3:
        arrays[key] = a.astype(complex)
    elif choice == 4:
        arrays[key] = a.ravel()[: max(a.size - 1, 0)]
    elif choice == 5:
        arrays[key] = a.T.copy() + 1
    elif choice == 6:
        arrays[key] = a.astype(float) * 0.5
    else:
        arrays[key] = a.astype(np.float32)


def test_fuzz_load_over_tampered_files(tmp_path, faithful):
    """Seeded random damage to the JSON and the .npz of several models: ``load`` either
    returns a model that predicts valid probabilities or raises ModelFileError."""
    rng = np.random.default_rng(20261127)
    x_cat = latent_em.datasets.load_carcinoma()
    models = [
        (latent_em.GaussianMixture(2, random_state=0).fit(faithful), faithful),
        (
            latent_em.GaussianMixture(
                2, covariance_type="tied", random_state=np.random.default_rng(0)
            ).fit(faithful),
            faithful,
        ),
        (latent_em.CategoricalMixture(2, random_state=0).fit(x_cat), x_cat),
    ]
    originals = []
    for i, (est, _) in enumerate(models):
        path = est.save(tmp_path / f"m{i}.json")
        originals.append((path, path.read_text(), path.with_suffix(".npz").read_bytes()))
    start, loaded, refused = time.perf_counter(), 0, 0
    for trial in range(300):
        i = trial % len(models)
        path, text, blob = originals[i]
        document = json.loads(text)
        draw = rng.random()
        if draw < 0.4:
            _mutate_json(document, rng)
            _rewrite(path, document, blob=blob)
        elif draw < 0.7:
            _rewrite(path, document, blob=_mutate_blob(blob, rng))
        else:
            with np.load(stdio.BytesIO(blob), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            _mutate_values(arrays, rng)
            _rewrite(path, document, arrays)
        try:
            obj = io.load(path)
        except ModelFileError:
            refused += 1
            continue
        loaded += 1
        if isinstance(obj, latent_em.MixtureEstimator) and hasattr(obj, "result_"):
            original = getattr(models[i][0], "categories_", None)
            if original is not None and not all(
                np.array_equal(a, b) for a, b in zip(original, obj.categories_, strict=True)
            ):
                continue  # relabelled categories: a valid model of other labels
            proba = obj.predict_proba(models[i][1])
            assert np.all(np.isfinite(proba)), trial
            np.testing.assert_allclose(proba.sum(axis=1), 1.0, err_msg=str(trial))
    assert refused > 100 and time.perf_counter() - start < 60
