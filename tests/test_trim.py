"""Trimming epochs to a target: the search on a fake trial function, the answer as a train
command, TensorBoard records, and a tiny ``graphnet ablate SPEC --target``."""

import json
import math
import re
import sys

import pytest

from graphnet.cli.trim import train_command
from graphnet.train import TrainError
from graphnet.train.trim import Search, SeedRun, run_searches
from test_cli_train import _run, archive, cache  # noqa: F401  (fixtures: the coloured archive, a cache folder)
from test_trim_real import TINY


def saturating(epochs: float, seed: int) -> float:
    """A fake accuracy rising with the epochs (seeds shift it a little, in opposite directions)."""
    return 1 - math.exp(-epochs / 3) + (0.01 if seed % 2 else -0.01)


def fake_jobs(tried: list):
    def run(jobs):
        tried.extend(jobs)
        return [SeedRun(seed, saturating(epochs, seed), 10.0 * epochs) for _, epochs, seed in jobs]
    return run


def trim(target, start=10, max_epochs=20, resolution=0.25, slots=1, seeds=(0, 1)):
    search, tried = Search(target, start, max_epochs, resolution), []
    run_searches({"s": search}, seeds, fake_jobs(tried), slots)
    return search, tried


def test_bracket_then_bisect_finds_the_fewest_epochs_in_few_trials():
    search, tried = trim(0.6)  # 1 - exp(-e/3) >= 0.6 from e = 2.749: the grid's 2.75
    assert search.answer.epochs == 2.75 and search.below.epochs == 2.5
    assert search.answer.acc_mean >= 0.6 > search.below.acc_mean
    assert [e for _, e, _ in tried[::2]] == [10, 5, 2.5, 3.75, 3, 2.75]  # halving to a failure, then bisection
    assert len(set(tried)) == len(tried) and len(search.trials) <= 8  # nothing tried twice
    assert search.answer.to_dict()["seeds"] == [0, 1] and search.answer.time_mean == 27.5


def test_a_first_guess_too_low_doubles_up():
    search, tried = trim(0.9, start=1)  # from e = 6.91: 7
    assert search.answer.epochs == 7 and [e for _, e, _ in tried[::2]][:4] == [1, 2, 4, 8]


def test_parallel_slots_split_each_level_and_find_the_same_answer():
    serial, _ = trim(0.6)
    parallel, tried = trim(0.6, slots=6)  # 3 candidates of 2 seeds a round
    assert parallel.answer.epochs == serial.answer.epochs
    assert [e for _, e, _ in tried[:6:2]] == [10, 5, 20]  # the first round: the guess, its half and its double
    assert len(parallel.trials) > len(serial.trials)  # more trials, in fewer rounds


def test_the_first_grid_step_can_be_the_answer():
    search, _ = trim(0.05, start=0.25)
    assert search.answer.epochs == 0.25 and search.below is None and search.done


def test_an_unreachable_target_is_one_line_with_the_best_seen():
    search, tried = trim(0.999, max_epochs=12)
    assert [e for _, e, _ in tried[::2]] == [10, 12]
    with pytest.raises(TrainError, match=r"^target 0.999 not reached within 12 epochs: the best mean test accuracy "
                                         r"was 0\.9817 ± 0\.0141 at 12 epochs \(2 trials\); raise --max-epochs"):
        search.check()


def test_several_searches_share_the_rounds():
    searches, tried = {"a": Search(0.6, 10, 20), "b": Search(0.9, 10, 20)}, []
    run_searches(searches, (0,), fake_jobs(tried))
    assert tried[:2] == [("a", 10, 0), ("b", 10, 0)]  # one batch a round, every search in it
    assert (searches["a"].answer.epochs, searches["b"].answer.epochs) == (3, 7.25)  # seed 0: 0.01 below the mean


def test_the_answer_as_the_train_command():
    argv = ["--debug", "trim", "spec.py", "--target", "0.9", "--max-epochs=8", "--engine", "ray", "--data", "d.tar.gz",
            "--out", "o", "--overwrite", "--runs", "2"]
    assert train_command(argv, "7.25") == "graphnet --debug train spec.py --data d.tar.gz --runs 2 --epochs 7.25"


def test_tensorboard_records_scalars_and_hparams(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from graphnet.train.tensorboard import Board

    rows = [{"epoch": e, "lr": 0.1 * e, "train_loss": 2.0 / e, "test_acc": 0.3 * e} for e in (1, 2)]
    Board(tmp_path).record("step/seed0", {"epochs": 2, "passes": ("celu",)}, {"test_acc": 0.6}, rows)
    events = EventAccumulator(str(tmp_path / "step" / "seed0"))
    events.Reload()
    assert [s.value for s in events.Scalars("test/acc")] == pytest.approx([0.3, 0.6])
    assert [s.step for s in events.Scalars("train/loss")] == [1, 2]
    assert "_hparams_/session_start_info" in events.summary_metadata


def test_ablate_a_spec_at_a_target_skips_a_pass_that_finds_nothing(archive, tmp_path):  # noqa: F811
    out = _run(["ablate", "specs/resnet9.py", "--steps", "celu,celu", "--target", "0.05", "--max-epochs", "1",
                "--resolution", "1", "--data", str(archive), "--subset", "64", *TINY[2:], "--out", str(tmp_path)])
    assert re.search(r"^step celu: skipped: pass 'celu': .*already", out, re.M)
    table = out[out.index("ablation (specs/resnet9.py) at mean test acc 0.05"):]
    assert re.search(r"baseline +baseline recipe +1 +\S+ ± \S+ +\S+ ± \S+ +\S+ +1$", table, re.M)
    assert re.search(r"celu +\+ celu +1 ", table)
    rows = json.loads((tmp_path / "ablate.json").read_text())["rows"]
    assert [r["step"] for r in rows] == ["baseline", "celu"] and all(r["pflop"] > 0 for r in rows)


def test_ablate_a_replay_at_a_target_keeps_the_published_figures(archive, tmp_path):  # noqa: F811
    out = _run(["ablate", "--steps", "baseline,tta", "--target", "0.05", "--max-epochs", "1", "--resolution", "1",
                "--data", str(archive), "--subset", "64", *TINY[2:], "--out", str(tmp_path)])
    table = out[out.index("ablation (bag_of_tricks) at mean test acc 0.05"):]
    assert re.search(r"tta +test-time augmentation +1 .* +1 +26 s V100 +0\.9410$", table, re.M)
    searches = json.loads((tmp_path / "ablate.json").read_text())["searches"]
    assert [t["epochs"] for t in searches["baseline"]["trials"]] == [1]


def test_engine_options_are_checked_in_one_line(monkeypatch):
    from graphnet.train.engine import make_engine

    with pytest.raises(TrainError, match="^--ray-address needs --engine ray$"):
        make_engine("embedded", address="auto")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(TrainError, match=r"^--engine ray needs Ray: pip install 'graphnet\[ray\]'$"):
        make_engine("ray")
