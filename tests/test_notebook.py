"""examples/bag_of_tricks.ipynb runs top to bottom: its code cells executed in order in one
namespace, in a fresh process, on a small generated ImageFolder (outputs are not committed)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "bag_of_tricks.ipynb"
RUN_CELLS = """
import json, sys
for i, cell in enumerate(c for c in json.load(open(sys.argv[1]))["cells"] if c["cell_type"] == "code"):
    print(f"--- cell {i}", flush=True)
    exec(compile("".join(cell["source"]), f"cell {i}", "exec"), globals())
"""


def image_folder(root: Path, per_class: dict[str, int], classes: int = 10) -> Path:
    rng = np.random.default_rng(0)
    for split, n in per_class.items():
        for c in range(classes):
            (root / split / f"class{c}").mkdir(parents=True)
            for i in range(n):  # a class's images share a tint, so that there is something to learn
                pixels = rng.integers(0, 48, (32, 32, 3)) + np.array([20 * c, 100, 200 - 20 * c])
                Image.fromarray(pixels.astype(np.uint8)).save(root / split / f"class{c}" / f"{i}.png")
    return root


def test_notebook_is_committed_without_outputs():
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in cells if c["cell_type"] == "code")


def test_notebook_runs(tmp_path):
    data = image_folder(tmp_path / "data", {"train": 52, "test": 13})
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRAPHNET_DATA": str(data), "GRAPHNET_OUT": str(tmp_path / "out"),
           "GRAPHNET_SUBSET": "512", "GRAPHNET_TARGET": "0.25"}
    out = subprocess.run([sys.executable, "-c", RUN_CELLS, str(NOTEBOOK)], cwd=ROOT / "examples", env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "epoch 1: train loss" in out.stdout
    assert (tmp_path / "out" / "ghost_bn_celu_diff.dot").exists()
    steps = (tmp_path / "out" / "ablate" / "ablate.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in steps[1:]] == ["baseline", "pool_before_norm", "celu"]
