"""``latent-em predict``: labels and membership probabilities from a saved model."""

from __future__ import annotations

import argparse
import csv
import sys
from typing import Any

import numpy as np

__all__ = ["register", "run_predict"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "predict",
        help="label new data with a model saved by 'latent-em fit'",
        description=(
            "Load a model saved by 'latent-em fit' (or MixtureEstimator.save) and write, "
            "for every row of DATA, the most probable component and the membership "
            "probabilities of all components, as CSV (columns label, p0, p1, ...)."
        ),
    )
    p.add_argument("model", metavar="MODEL.json", help="a model file written by 'latent-em fit'")
    p.add_argument("data", metavar="DATA", help="a .csv file (header optional) or a .npy file")
    from .fit import add_reader_options

    p.add_argument("--out", default=None, help="output CSV file (default: standard output)")
    add_reader_options(p)
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    import os

    from ..estimators import MixtureEstimator
    from ..io import load
    from ._common import CommandError, header_of, missing_file_error
    from .fit import read_args_data

    if not os.path.isfile(args.model):
        raise missing_file_error(args.model, "model file")
    est = load(args.model)
    if not isinstance(est, MixtureEstimator) or not hasattr(est, "result_"):
        raise CommandError(f"{args.model!r} does not hold a fitted estimator")
    from .fit import MODELS

    categorical = any(
        spec.categorical and spec.estimator == type(est).__name__ for spec in MODELS.values()
    )
    expected = getattr(est, "feature_names_in_", None)
    if args.columns is None and args.drop_columns is None and expected is not None:
        # a file with more columns than the model's (an id, the labels, ...): take the
        # model's columns by name, in the model's order
        header = header_of(args.data, args.sep) if args.header is not False else None
        wanted = [str(n) for n in expected]
        if header is not None and set(wanted) <= set(header) and header != wanted:
            args.columns = wanted
    # a model fitted with missing='marginalize' predicts rows with missing cells too
    missing = getattr(est, "missing", "error") == "marginalize"
    data = read_args_data(args, categorical=categorical, missing=missing)
    if data.names is not None and expected is not None and list(data.names) != list(expected):
        hint = ""
        if set(expected) <= set(data.names):
            hint = f" (pick them with --columns {','.join(str(n) for n in expected)})"
        raise CommandError(
            f"the columns of {args.data!r} are {data.names}, but the model was fitted on "
            f"{[str(n) for n in expected]}{hint}"
        )
    import warnings

    with warnings.catch_warnings():
        # the column names were compared above; the values go in as a plain array
        warnings.filterwarnings("ignore", "X does not have valid feature names", UserWarning)
        text = run_predict(est, data.values)
    if args.out is None:
        sys.stdout.write(text)
    else:
        with open(args.out, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    return 0


def run_predict(est: Any, x: Any) -> str:
    """CSV text with a header ``label,p0,...`` and one line per row of ``x``."""
    import io

    proba = np.asarray(est.predict_proba(x))
    labels = np.argmax(proba, axis=1)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["label", *(f"p{k}" for k in range(proba.shape[1]))])
    for label, row in zip(labels, proba, strict=True):
        # repr keeps every digit: probabilities read back are exactly the computed ones
        writer.writerow([int(label), *(repr(float(p)) for p in row)])
    return buffer.getvalue()
