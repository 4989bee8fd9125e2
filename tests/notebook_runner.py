"""Run a notebook's code cells at small sizes in one namespace in this process (no
Jupyter kernel needed). The notebooks are split over two test files so that, with
`--dist loadfile`, two workers share them."""

import json
import pathlib

import matplotlib.pyplot as plt


NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
# Notebooks that train networks; the theory ones run in test_notebooks.py.
TRAINING = ("train_flipflop", "reverse_engineering")


def run_notebook(path: pathlib.Path, monkeypatch) -> None:
    monkeypatch.setenv("MFRNN_NOTEBOOK_SMALL", "1")
    cells = json.loads(path.read_text())["cells"]
    namespace = {"__name__": "__main__"}
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        exec(compile(source, f"{path.name}[cell {i}]", "exec"), namespace)
    plt.close("all")
