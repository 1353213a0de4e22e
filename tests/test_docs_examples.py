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


CONSOLE = re.compile(r"^```console\n(.*?)^```\s*$", re.S | re.M)
CONSOLE_PAGES = sorted(p for p in DOCS.rglob("*.md") if CONSOLE.search(p.read_text("utf-8")))


def _console_steps(block: str) -> list[tuple[str, list[str]]]:
    """``$ latent-em ...`` commands, each with the output lines shown after it."""
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps and line.strip() and line.strip() != "...":
            steps[-1][1].append(" ".join(line.split()))
    return steps


def test_the_cli_page_has_console_examples():
    assert "cli.md" in {p.name for p in CONSOLE_PAGES}


@pytest.mark.parametrize(
    "page", CONSOLE_PAGES, ids=[p.relative_to(DOCS).as_posix() for p in CONSOLE_PAGES]
)
def test_page_console_examples_run(page, tmp_path, monkeypatch):
    """Every ``$ latent-em ...`` line of a ```console block runs (exit code 0) in a folder
    holding the bundled CSV files, and every output line shown appears in its output."""
    import contextlib
    import io
    import shlex
    import shutil

    from latent_em.cli import main
    from latent_em.datasets import data_path

    monkeypatch.chdir(tmp_path)
    for name in ("faithful.csv", "carcinoma.csv"):
        shutil.copy(data_path(name), tmp_path / name)
    for block in CONSOLE.findall(page.read_text(encoding="utf-8")):
        for command, expected in _console_steps(block):
            words = shlex.split(command)
            assert words[0] == "latent-em", command
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(words[1:])
            assert code == 0, f"{command}: {err.getvalue()}"
            shown = {
                " ".join(line.split()) for line in (out.getvalue() + err.getvalue()).splitlines()
            }
            missing = [line for line in expected if line not in shown]
            assert not missing, f"{command}: lines not in the output: {missing}"
