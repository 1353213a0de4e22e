"""Small data sets bundled with latent_em (no network access needed)."""

from __future__ import annotations

import csv
from importlib import resources

import numpy as np

__all__ = ["load_faithful", "load_carcinoma", "data_path"]


def data_path(name: str) -> str:
    """Filesystem path of a bundled data file (e.g. ``"faithful.csv"``)."""
    return str(resources.files("latent_em").joinpath("data", name))


def _read_csv(name: str) -> tuple[list[str], np.ndarray]:
    with resources.files("latent_em").joinpath("data", name).open("r", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    return header, np.array([[float(v) for v in row] for row in body])


def load_faithful(return_names: bool = False) -> np.ndarray | tuple[np.ndarray, list[str]]:
    """Old Faithful geyser eruptions: 272 rows × (eruption minutes, waiting minutes).

    Härdle (1991), *Smoothing Techniques with Implementation in S*; distributed with R's
    ``datasets`` package as ``faithful``.
    """
    header, data = _read_csv("faithful.csv")
    return (data, header) if return_names else data


def load_carcinoma(return_names: bool = False) -> np.ndarray | tuple[np.ndarray, list[str]]:
    """Agresti (2002): seven pathologists (A–G) rate 118 slides, 1 = no carcinoma, 2 = yes.

    Distributed with R's poLCA package as ``carcinoma``; the standard latent class example.
    """
    header, data = _read_csv("carcinoma.csv")
    data = data.astype(int)
    return (data, header) if return_names else data
