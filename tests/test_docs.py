"""The repository is self-contained and its documentation is complete: no file refers to
notes outside the repository, every `docs/...` page a file cites exists, and every
public name of `mfrnn` has an entry in the API reference (docs/api/). Text only, no
import of mfrnn: well under a second."""

import ast
import pathlib
import re


ROOT = pathlib.Path(__file__).resolve().parents[1]
# Where users read: sources, tests, benchmarks, notebooks, docs and the top-level files.
TREES = ("src", "tests", "benchmarks", "notebooks", "docs")
FILES = ("README.md", "Makefile", "pyproject.toml", "mkdocs.yml")
SUFFIXES = {".py", ".md", ".ipynb", ".yml", ".yaml", ".toml", ".txt", ".cfg", ".js", ".json"}
SKIP = {"__pycache__", ".ipynb_checkpoints", "results"}
# Internal notes that are not part of the repository (written in two parts, so that this
# file does not match itself).
OUTSIDE = tuple(
    a + b
    for a, b in [
        ("THEORY", ".md"), ("TASKS", ".md"), ("DESIGN", ".md"), ("STYLE", ".md"),
        ("../", "shared"), ("/work", "/shared"), ("/work", "/main"),
    ]
)


def _text_files():
    for tree in TREES:
        for path in sorted((ROOT / tree).rglob("*")):
            if path.is_file() and path.suffix in SUFFIXES and not SKIP & set(path.parts):
                yield path
    for name in FILES:
        if (ROOT / name).is_file():
            yield ROOT / name


def test_no_reference_outside_the_repository():
    found = []
    for path in _text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for needle in OUTSIDE:
            for match in re.finditer(re.escape(needle), text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(ROOT)}:{line}: {needle}")
    assert not found, "References to files outside the repository (cite docs/ pages):\n" + (
        "\n".join(found)
    )


def test_cited_docs_pages_exist():
    missing = []
    for path in _text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for page in re.findall(r"(?<![\w/.])docs/[\w\-/]+\.md", text):
            if not (ROOT / page).is_file():
                missing.append(f"{path.relative_to(ROOT)}: {page}")
    assert not missing, "Cited documentation pages that do not exist:\n" + "\n".join(missing)


def _public_names() -> set[str]:
    tree = ast.parse((ROOT / "src" / "mfrnn" / "__init__.py").read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names |= {a.asname or a.name for a in node.names}
    return {n for n in names if not n.startswith("_")}


def test_api_reference_lists_every_public_name():
    listed = set()
    for page in (ROOT / "docs" / "api").glob("*.md"):
        listed |= set(re.findall(r"^::: mfrnn\.(\w+)", page.read_text(), re.M))
    public = _public_names()
    assert not public - listed, (
        "Public names without an entry in docs/api/*.md (add `::: mfrnn.NAME` to the page "
        f"of its topic): {sorted(public - listed)}"
    )
    assert not listed - public, f"docs/api/*.md lists names mfrnn does not export: {sorted(listed - public)}"
