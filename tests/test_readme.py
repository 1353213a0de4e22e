"""The README's quick start runs as written, and its stated numbers are what it prints."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.skipif(not README.exists(), reason="README.md is not shipped with the sdist tests")
def test_quick_start_runs_and_matches_its_comments():
    blocks = _python_blocks(README.read_text(encoding="utf-8"))
    assert blocks, "README has no python block"
    out = io.StringIO()
    namespace: dict = {}
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102
    gm, X = namespace["gm"], namespace["X"]
    # the comment in the quick start states these values
    assert round(gm.log_likelihood_, 3) == -1126.317
    assert round(gm.bic(X), 3) == 2314.297
    assert namespace["result"].log_likelihood == pytest.approx(gm.log_likelihood_, abs=1e-6)
