import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# each example -> the files it writes into the folder given on its command line
WRITES = {
    "01_write_a_spec.py": set(),
    "02_render.py": {"resnet9.svg", "resnet9.dot"},
    "03_build_and_run.py": {"resnet9.pt"},
    "04_write_a_rule.py": {"rule_before.svg", "rule_after.svg"},
    "05_torchvision.py": {"resnet18.dot", "resnet18_tricks.dot"},
}


def test_every_example_is_run():
    assert sorted(p.name for p in (ROOT / "examples").glob("*.py")) == sorted(WRITES)


@pytest.mark.parametrize("name", sorted(WRITES))
def test_example_runs(name, tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "examples" / name), str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert {p.name for p in tmp_path.iterdir()} == WRITES[name]
