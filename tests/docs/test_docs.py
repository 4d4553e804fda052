"""The documentation works: README.md and docs/*.md run, docs/passes.md lists every rule, and links resolve.

Every ```python block runs. The blocks of one page run in order in one namespace, on a fresh default graph,
as a reader would paste them into one session; a failing block is reported at its own line of the page. A
block preceded by an ``<!-- no-run -->`` line is skipped (an excerpt of library code, or a sketch that uses
names the page does not define): use it sparingly.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from pathlib import Path

import pytest

import graphc as gc
from graphc.passes.pipeline import pipeline

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PASSES_PAGE = ROOT / "docs" / "passes.md"
NO_RUN = "<!-- no-run -->"
PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
ANY_BLOCK = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """(line of the block's first line of code, the code, whether it runs) for every ```python block."""
    blocks = []
    for match in PYTHON_BLOCK.finditer(text):
        line_before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        first_line = text.count("\n", 0, match.start(1)) + 1
        blocks.append((first_line, match.group(1), line_before != NO_RUN))
    return blocks


# -- the code runs -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_python_blocks_run(page, monkeypatch):
    monkeypatch.delenv("GRAPHC_OPT_EXCLUDE", raising=False)  # the pages show what the defaults do
    monkeypatch.delenv("GRAPHC_VERIFY", raising=False)
    gc.reset_default_graph()
    namespace = {"__name__": f"docs:{page.name}"}
    try:
        for line, code, runs in python_blocks(page.read_text(encoding="utf-8")):
            if runs:
                # padded with newlines so that a traceback names the block's line in the page
                compiled = compile("\n" * (line - 1) + code, page_id(page), "exec")
                with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    exec(compiled, namespace)  # running the documentation is the point
    finally:
        gc.reset_default_graph()


def test_blocks_are_found():
    blocks = [b for page in PAGES for b in python_blocks(page.read_text(encoding="utf-8"))]
    assert len(blocks) >= 25 and sum(runs for _, _, runs in blocks) >= 0.8 * len(blocks)


# -- docs/passes.md lists the rules the tables hold --------------------------------------------------------
def rule_names() -> set[str]:
    return {rule.name for p in pipeline() if p.rules is not None for rule in p.rules}


def documented_rules() -> set[str]:
    """The names listed as ``- `name`: ...`` between <!-- rules --> and <!-- /rules --> in docs/passes.md."""
    text = PASSES_PAGE.read_text(encoding="utf-8")
    section = text.split("<!-- rules -->", 1)[1].split("<!-- /rules -->", 1)[0]
    return set(re.findall(r"^- `([A-Za-z0-9_]+)`", section, re.MULTILINE))


def test_passes_page_lists_every_rule():
    missing = sorted(rule_names() - documented_rules())
    assert not missing, f"docs/passes.md does not list these rules (add a line each to its rule lists): {missing}"


def test_passes_page_lists_only_existing_rules():
    stale = sorted(documented_rules() - rule_names())
    assert not stale, f"docs/passes.md lists rules that no table holds: {stale}"


def test_passes_page_names_every_pass():
    text = PASSES_PAGE.read_text(encoding="utf-8")
    assert [p.name for p in pipeline() if f"`{p.name}`" not in text] == []


# -- links between pages resolve -----------------------------------------------------------------------------
def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return "".join(c for c in heading.strip().lower() if c.isalnum() or c in " -_").replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = ANY_BLOCK.sub("", page.read_text(encoding="utf-8"))
    return {slug(heading) for heading in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_links_between_pages_resolve(page):
    prose = CODE_SPAN.sub("", ANY_BLOCK.sub("", page.read_text(encoding="utf-8")))
    broken = []
    for target in LINK.findall(prose):
        if "://" in target:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    assert not broken, f"{page.name} links to missing pages or headings: {broken}"


def test_ops_page_documents_gather_indices():
    row = next(line for line in (ROOT / "docs" / "ops.md").read_text().splitlines()
               if line.startswith("| `gather("))
    assert "Negative indices count from the end" in row and "numpy" in row
    assert "`ShapeError` when the graph runs, naming the gather node" in row
