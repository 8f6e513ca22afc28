"""Every user error exits 1 with one line naming the culprit and no traceback, and options are
checked before any data loads."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from graphnet.cli import main
from test_cli_train import SMALL, archive, cache  # noqa: F401 - fixtures


def error_of(argv, capsys) -> str:
    """Run the CLI, which must fail with status 1, and return its one stderr line."""
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"graphnet {argv[0]}: error: ")
    return err


@pytest.fixture
def no_data(monkeypatch):
    """Loading data fails the test: what it checks must be refused before."""
    import graphnet.data

    def refuse(*args, **kwargs):
        raise AssertionError("the data was loaded")

    monkeypatch.setattr(graphnet.data, "load_dataset", refuse)


def spec_file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("argv, message", [
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--device", "cpu", "--precision", "fp16"], "fp16 needs CUDA"),
    (["--batch-size", "40"], "batch size 40 does not split into the 16 ghost batches"),
    (["--recipe", "ema", "--batch-size", "24"], "use a multiple of 16"),
    (["graphnet.zoo.resnet9:build", "--rewrite", "nope"], "nope"),
])
def test_train_options_are_checked_before_the_data(argv, message, no_data, tmp_path, capsys):
    args = [a for a in argv if not a.startswith("graphnet.")]
    spec = [a for a in argv if a.startswith("graphnet.")]
    assert message in error_of(["train", *spec, *args, "--out", str(tmp_path / "out")], capsys)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("option, value", [("--width-mult", "inf"), ("--width-mult", "nan"), ("--width-mult", "0"),
                                           ("--cutout", "-1"), ("--out", ""), ("--subset", "0")])
def test_bad_option_values_are_refused_by_the_parser(option, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", option, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"graphnet train: error: argument {option}")


def test_out_a_file_or_unwritable(no_data, tmp_path, capsys):
    file = tmp_path / "file"
    file.write_text("")
    assert f"output folder {file} is a file" in error_of(["train", "-o", str(file)], capsys)
    assert "cannot write to output folder" in error_of(["train", "--out", str(file / "sub")], capsys)


def test_an_earlier_run_is_refused_unless_overwrite(no_data, tmp_path, capsys):
    (tmp_path / "run1").mkdir()
    (tmp_path / "run1" / "log.json").write_text("{}")
    assert "holds an earlier run (run1/log.json)" in error_of(["train", "--out", str(tmp_path)], capsys)
    assert (tmp_path / "run1" / "log.json").is_file()  # untouched


def test_overwrite_clears_the_earlier_run(archive, tmp_path, capsys):  # noqa: F811
    (tmp_path / "run2").mkdir()
    (tmp_path / "run2" / "checkpoint.pt").write_text("old")
    (tmp_path / "notes.txt").write_text("mine")
    argv = ["train", "--data", str(archive), "--epochs", "1", "--subset", "64", *SMALL, "--out", str(tmp_path)]
    assert main([*argv, "--overwrite"]) == 0
    assert not (tmp_path / "run2" / "checkpoint.pt").exists() and (tmp_path / "notes.txt").read_text() == "mine"
    log = json.loads((tmp_path / "log.json").read_text())
    assert log["status"] == "done" and log["provenance"]["command"].startswith("graphnet train --data")
    assert log["provenance"]["torch"] == torch.__version__ and "device_name" in log["provenance"]
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert checkpoint["data"]["source"] == str(archive.resolve()) and checkpoint["data"]["typed"] == str(archive)
    assert checkpoint["provenance"] == log["provenance"]
    assert "holds an earlier run" in error_of(argv, capsys)  # and now it is refused


@pytest.mark.parametrize("argv, message", [
    (["--subset", "100000"], "--subset 100000 is more than the 320 images of the train split"),
    (["--test-subset", "1000"], "--test-subset 1000 is more than the 100 images of the test split"),
    (["--cutout", "40"], "cutout 40 is larger than the 32x32 images"),
    (["--batch-size", "512", "--subset", "64"], "64 training images make no batch of 512"),
])
def test_data_dependent_errors(argv, message, archive, tmp_path, capsys):  # noqa: F811
    options = [*SMALL, *argv] if "--batch-size" not in argv else ["--width-mult", "0.125", "--device", "cpu", *argv]
    err = error_of(["train", "--data", str(archive), *options, "--out", str(tmp_path)], capsys)
    assert message in err
    assert not (tmp_path / "log.json").exists()  # refused before the header and the run


def test_debug_after_the_command_shows_the_traceback(no_data, tmp_path):
    with pytest.raises(Exception, match="unknown device"):
        main(["train", "--device", "tpu", "--debug", "--out", str(tmp_path)])
    with pytest.raises(Exception, match="unknown device"):
        main(["--debug", "train", "--device", "tpu", "--out", str(tmp_path)])


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("graphnet ")


# -- specs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, text, message", [
    ("syntax.py", "net = {\n  'a': (\n", "syntax.py:2: syntax error"),
    ("imports.py", "import os\nimport no_such_module_xyz\n", "imports.py:2: ModuleNotFoundError: No module named"),
    ("raises.py", "def build():\n    raise RuntimeError('widths must be even')\n",
     "build() raised RuntimeError: widths must be even (at "),
    ("dup.json", '{"a": ["relu", {}], "a": ["relu", {}]}', "key 'a' appears twice"),
    ("deep.json", "[" * 3000 + "]" * 3000, "nested too deeply"),
])
def test_bad_spec_files(name, text, message, tmp_path, no_data, capsys):
    path = spec_file(tmp_path, name, text)
    err = error_of(["train", path, "--out", str(tmp_path / "out")], capsys)
    assert message in err and (name in err or name.endswith(".json"))
    if name == "raises.py":
        assert "raises.py:2" in err


def test_json_folder_and_width_mult_on_json(tmp_path, no_data, capsys):
    folder = tmp_path / "spec.json"
    folder.mkdir()
    assert "is a folder" in error_of(["train", str(folder), "--out", str(tmp_path / "o")], capsys)
    spec = spec_file(tmp_path, "net.json", '{"a": ["relu", {}]}')
    assert "JSON spec, which takes no build options (width_mult)" in error_of(
        ["train", spec, "--width-mult", "0.5", "--out", str(tmp_path / "o")], capsys)


# -- checkpoints ---------------------------------------------------------------------------------

class NeedsCode:
    pass


@pytest.fixture(scope="module")
def checkpoint(archive, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("ckpt")
    assert main(["train", "--data", str(archive), "--epochs", "1", "--subset", "64", *SMALL, "--out", str(out)]) == 0
    return out / "checkpoint.pt"


@pytest.mark.parametrize("damage, message", [
    ("empty", "is empty"),
    ("truncated", "truncated or damaged"),
    ("garbage", "is not a graphnet checkpoint"),
    ("text", "is not a graphnet checkpoint"),
    ("code", "holds objects that need code to load"),
    ("missing", "weights do not fit its network: missing "),
    ("shape", "weights do not fit its network: "),
    ("other", "is not a graphnet checkpoint"),
])
def test_bad_checkpoints(damage, message, checkpoint, tmp_path, capsys):
    path = tmp_path / "checkpoint.pt"
    data = checkpoint.read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x80\x03garbage" * 100)
    elif damage == "text":
        path.write_text("not a checkpoint at all\n")
    elif damage == "code":
        torch.save({"format": "graphnet-checkpoint-v1", "x": NeedsCode()}, path)
    elif damage == "other":
        torch.save({"weights": {}}, path)
    else:
        saved = torch.load(checkpoint, weights_only=True)
        key = next(iter(saved["weights"]))
        if damage == "missing":
            del saved["weights"][key]
        else:
            saved["weights"][key] = torch.zeros(3, 1, 7)
        torch.save(saved, path)
    assert message in error_of(["eval", str(path), "--device", "cpu"], capsys)


def test_eval_from_another_folder_uses_the_absolute_source(checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["eval", str(checkpoint), "--device", "cpu"]) == 0
    assert "test acc" in capsys.readouterr().out


def test_damaged_decode_cache_is_rebuilt(archive, tmp_path, monkeypatch, capsys):  # noqa: F811
    from graphnet.data import load_dataset

    monkeypatch.setenv("GRAPHNET_CACHE", str(tmp_path))
    first = load_dataset(archive, progress=False)
    (entry,) = (tmp_path / "decoded").iterdir()
    (entry / "train_images.npy").write_bytes(b"\x93NUMPY garbage")
    again = load_dataset(archive, progress=False)
    err = capsys.readouterr().err
    assert f"the decode cache entry {entry} is damaged" in err and "decoding" in err
    assert torch.equal(first.train_images, again.train_images)


def test_an_interrupted_run_says_so_in_its_log(archive, tmp_path, monkeypatch, capsys):  # noqa: F811
    from graphnet.train import Trainer

    def interrupt(self, seed, on_epoch=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "run", interrupt)
    assert main(["train", "--data", str(archive), "--subset", "64", *SMALL, "--out", str(tmp_path)]) == 130
    log = json.loads((tmp_path / "log.json").read_text())
    assert log["status"] == "interrupted" and "KeyboardInterrupt" in log["reason"]
    assert not (tmp_path / "checkpoint.pt").exists()


def test_files_are_replaced_atomically(tmp_path):
    from graphnet.files import write_atomically
    from graphnet.train.log import write_json

    path = tmp_path / "log.json"
    write_json({"status": "done"}, path)

    def half_then_fail(tmp):
        tmp.write_text('{"stat')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, half_then_fail)
    assert json.loads(path.read_text()) == {"status": "done"}  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["log.json"]  # no temporary left


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGHUP"])
def test_a_run_stopped_by_a_signal_says_so_in_its_log(signal_name, archive, tmp_path):  # noqa: F811
    # what timeout, a cluster scheduler or a dropped ssh session sends: the run ends as Ctrl-C ends it
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "graphnet.cli", "train", "--data", str(archive), "--subset", "64", "--epochs", "500",
            *SMALL, "--out", str(tmp_path)]
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as run:
        for line in run.stdout:  # the header, the table's header, then the first epoch's row
            if line.split()[:1] == ["1"]:
                break
        run.send_signal(getattr(signal, signal_name))
        _, err = run.communicate(timeout=60)
    assert run.returncode == 128 + getattr(signal, signal_name)
    assert err.strip().splitlines()[-1] == f"graphnet train: stopped by {signal_name}"
    log = json.loads((tmp_path / "log.json").read_text())
    assert log["status"] == "interrupted" and log["reason"] == f"stopped by {signal_name}"
    assert log["rows"] and log["rows"][0]["epoch"] == 1  # the finished epochs are kept
    assert not (tmp_path / "checkpoint.pt").exists()


@pytest.mark.parametrize("command", ["trim", "ablate"])
@pytest.mark.parametrize("value", ["94", "0", "-0.5", "nan"])
def test_a_target_is_an_accuracy_as_a_fraction(command, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--target", value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"graphnet {command}: error: argument --target: {value}: an accuracy")
