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


@pytest.fixture(autouse=True, scope="session")
def _fp32_on_every_cpu():
    """The suite computes in fp32 on every CPU, so that its figures do not depend on whether the
    machine has bf16 units; the bf16 path and the auto choice are tested on their own
    (test_train_precision.py)."""
    from graphnet.train import environment

    patch = pytest.MonkeyPatch()
    patch.setattr(environment, "native_bf16", lambda: False)
    yield
    patch.undo()
