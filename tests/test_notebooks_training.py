"""Execute the notebooks that train networks at small sizes."""

import pytest
from notebook_runner import NOTEBOOK_DIR, run_notebook, TRAINING


@pytest.mark.parametrize("name", TRAINING)
def test_notebook_runs(name, monkeypatch):
    run_notebook(NOTEBOOK_DIR / f"{name}.ipynb", monkeypatch)
