"""Execute every theory notebook in notebooks/ at small sizes, so none of them rots (the
training ones: test_notebooks_training.py)."""

import pytest
from notebook_runner import NOTEBOOK_DIR, run_notebook, TRAINING


NOTEBOOKS = sorted(p for p in NOTEBOOK_DIR.glob("*.ipynb") if p.stem not in TRAINING)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    run_notebook(path, monkeypatch)


def test_there_are_notebooks():
    names = {p.stem for p in NOTEBOOK_DIR.glob("*.ipynb")}
    assert NOTEBOOKS and set(TRAINING) <= names, names
