"""``pip install`` of the built wheel (not editable) gives a working ``graphnet train``,
``graphnet ablate`` and ``graphnet render`` outside the source tree, with every package file in the wheel.

The wheel is built offline from a copy of the sources, then installed into a fresh virtual
environment whose only link to the test's environment is a ``.pth`` line naming its
site-packages (so torch is not installed again); graphnet itself comes from the wheel.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from test_cli_train import archive, cache  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parents[1]


def run(argv, cwd, env=None, timeout=300):
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{argv}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "graphnet", src / "graphnet", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(dist), str(src)], cwd=src)
    (path,) = dist.glob("graphnet-*.whl")
    return path


def test_the_wheel_holds_every_package_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    package = {p.relative_to(ROOT).as_posix() for p in (ROOT / "graphnet").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert "graphnet/zoo/resnet9.py" in package
    assert package <= names, sorted(package - names)


def test_installed_wheel_trains_and_renders_outside_the_repo(wheel, archive, tmp_path):  # noqa: F811
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    cwd=tmp_path).strip())
    (site / "shared.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # torch & co., not graphnet
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
         str(wheel)], cwd=tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    work = tmp_path / "work"
    work.mkdir()
    where = run([str(python), "-c", "import graphnet; print(graphnet.__file__)"], cwd=work, env=env)
    assert where.startswith(str(site)), where
    graphnet = str(venv / "bin" / "graphnet")
    assert run([graphnet, "--version"], cwd=work, env=env).strip() == "graphnet 0.1.0"
    out = run([graphnet, "train", "--data", str(archive), "--subset", "64", "--epochs", "1", "--width-mult", "0.125",
               "--batch-size", "32", "--device", "cpu", "--out", "run"], cwd=work, env=env)
    assert "graphnet.zoo.resnet9:build" in out and "final test acc" in out
    assert (work / "run" / "checkpoint.pt").is_file()
    out = run([graphnet, "ablate", "--steps", "tta", "--data", str(archive), "--subset", "64", "--epochs-scale", "0.1",
               "--width-mult", "0.125", "--batch-size", "32", "--device", "cpu", "--out", "ablate"], cwd=work, env=env)
    assert (work / "ablate" / "ablate.json").is_file()
    run([graphnet, "render", "graphnet.zoo.resnet9:build", "--rewrite", "celu", "-o", "net.dot"], cwd=work, env=env)
    assert "layer1" in (work / "net.dot").read_text()
