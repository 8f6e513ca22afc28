"""A tiny real ``graphnet trim``, its answer checked against ``graphnet train`` runs at the answer
and one resolution step below, its trials recorded for TensorBoard."""

import json
import re

from test_cli_train import _run, archive, cache  # noqa: F401  (fixtures: the coloured archive, a cache folder)

TINY = ["--recipe", "baseline", "--width-mult", "0.125", "--batch-size", "32", "--device", "cpu"]


def test_a_tiny_trim_agrees_with_runs_at_the_answer_and_one_step_below(archive, tmp_path):  # noqa: F811
    out = _run(["trim", *TINY, "--data", str(archive), "--target", "0.5", "--max-epochs", "6", "--resolution", "1",
                "--out", str(tmp_path / "trim"), "--tensorboard", str(tmp_path / "tb")])
    assert len(re.findall(r"^trial \d+: ", out, re.M)) <= 4
    record = json.loads((tmp_path / "trim" / "trim.json").read_text())
    answer = record["answer"]["epochs"]
    assert record["train_command"] == (f"graphnet train {' '.join(TINY)} --data {archive} --epochs {answer}")
    assert f"train it: {record['train_command']}" in out
    assert len((tmp_path / "trim" / "trials.tsv").read_text().splitlines()) == len(record["trials"]) + 1

    def trained(epochs):
        folder = tmp_path / f"train{epochs}"
        _run(["train", *TINY, "--data", str(archive), "--epochs", str(epochs), "--out", str(folder)])
        return json.loads((folder / "log.json").read_text())["result"]["test_acc"]

    assert trained(answer) >= 0.5 > trained(answer - 1)
    runs = {p.parent.parent.name for p in (tmp_path / "tb" / "baseline").glob("*ep/seed0/events.out.tfevents.*")}
    assert len(runs) == len(record["trials"])  # a run folder per trial, with its scalars and hparams
