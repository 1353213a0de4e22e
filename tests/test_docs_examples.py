"""Run the Python code blocks of the documentation pages, so the examples stay true.

Each page's ```python blocks run in order in one namespace (later blocks use names from
earlier ones), in a temporary folder, with warnings as errors (pyproject). Blocks marked
```text are output or shell examples and are not run.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
FENCE = re.compile(r"^```python\n(.*?)^```\s*$", re.S | re.M)


def python_blocks(page: Path) -> list[str]:
    """The ```python blocks of a Markdown page, in order."""
    return FENCE.findall(page.read_text(encoding="utf-8"))


PAGES = sorted(p for p in DOCS.rglob("*.md") if python_blocks(p))


def test_the_docs_have_examples():
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    assert {"index.md", "theory.md", "cli.md", "saving.md", "bad-input.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(DOCS).as_posix() for p in PAGES])
def test_page_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # a real module, so that classes defined in the examples (dataclasses) resolve it
    module = types.ModuleType(f"docs_example_{page.stem.replace('-', '_')}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for i, block in enumerate(python_blocks(page)):
        # dont_inherit: the examples run as users run them, without this file's
        # ``from __future__`` imports
        code = compile(block, f"{page.relative_to(DOCS)} block {i + 1}", "exec", dont_inherit=True)
        exec(code, module.__dict__)
