"""Execute every notebook in notebooks/ at small sizes, so none of them rots. Code cells
run in one namespace in this process (no Jupyter kernel needed)."""

import json
import os
import pathlib

import matplotlib.pyplot as plt
import pytest


NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    monkeypatch.setenv("MFRNN_NOTEBOOK_SMALL", "1")
    cells = json.loads(path.read_text())["cells"]
    namespace = {"__name__": "__main__"}
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        exec(compile(source, f"{path.name}[cell {i}]", "exec"), namespace)
    plt.close("all")


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ is empty"
    assert os.path.exists(NOTEBOOKS[0])
