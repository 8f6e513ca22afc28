import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# specs/ is a folder of spec files that import each other by plain name, as scripts do
sys.path.insert(0, str(ROOT / "specs"))

import pytest  # noqa: E402


@pytest.fixture
def resnet9_spec():
    import resnet9
    return resnet9.build()
