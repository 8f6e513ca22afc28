"""The trainer on a small learnable task: it learns, runs repeat exactly, a non-finite loss stops it."""

import dataclasses
import io
import json

import pytest
import torch

from graphnet import build
from graphnet.data import Dataset
from graphnet.train import NonFiniteLoss, Options, Trainer, get_recipe, make_setup, train_runs

# ten well separated colours: the class of an image is its colour, under noise
PALETTE = torch.tensor([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                        [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [128, 128, 128]])


def coloured_images(n: int, seed: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """n uint8 N×H×W×3 images, each its class's colour plus pixel noise; labels cycle 0..9."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(PALETTE)
    noise = 20 * torch.randn(n, size, size, 3, generator=generator)
    return (PALETTE[labels][:, None, None, :] + noise).clamp(0, 255).to(torch.uint8), labels


def coloured_dataset(n_train: int = 320, n_test: int = 100) -> Dataset:
    return Dataset(*coloured_images(n_train, 0), *coloured_images(n_test, 1), [f"c{i}" for i in range(10)])


def small(recipe_name: str, epochs: int = 3, batch_size: int = 32, **changes):
    """A recipe cut down for the CPU: fewer epochs, small batches."""
    recipe = get_recipe(recipe_name).with_epochs(epochs)
    return dataclasses.replace(recipe, batch_size=batch_size, **changes)


def tiny_net_graph():
    import resnet9
    return build(resnet9.build(width_mult=0.125))


@pytest.fixture(scope="module")
def tiny_net():
    return tiny_net_graph()


def test_final_recipe_learns(tiny_net):
    recipe = small("tta", epochs=8)  # 80 steps: enough for EMA's horizon of 100 steps to settle
    setup = make_setup(tiny_net, recipe)
    result = Trainer(setup.graphs, recipe, coloured_dataset(), Options(device="cpu")).run(seed=0)
    assert [r["epoch"] for r in result.rows] == list(range(1, 9))
    assert result.test_acc == result.rows[-1]["tta_acc"] > 0.6
    assert result.train_time == pytest.approx(result.prep_time + sum(r["train_time"] for r in result.rows))
    assert result.rows[-1]["lr"] == pytest.approx(0.1)


def test_runs_restart_from_their_seed(tiny_net):
    recipe = small("baseline", epochs=2)  # augmentation on the CPU, batches moved to the device
    setup = make_setup(tiny_net, recipe)
    trainer = Trainer(setup.graphs, recipe, coloured_dataset(), Options(device="cpu"))
    first, again, other = trainer.run(seed=1), trainer.run(seed=1), trainer.run(seed=2)

    def losses(result):
        return [(r["train_loss"], r["test_loss"]) for r in result.rows]

    assert losses(first) == losses(again) != losses(other)
    assert all(torch.equal(first.state[k], again.state[k]) for k in first.state)


def test_non_finite_loss_stops_and_keeps_the_log(tiny_net, tmp_path):
    # the lr turns NaN at step 15, so the loss of step 16 (epoch 2, step 6 of 10) is NaN
    recipe = small("baseline", epochs=3, lr_knots=(0, 1.5, 3), lr_values=(0.01, 0.01, float("nan")))
    setup = make_setup(tiny_net, recipe)
    with pytest.raises(NonFiniteLoss, match="epoch 2, step 6 of 10") as stop:
        train_runs(setup, coloured_dataset(), Options(device="cpu"), [0], tmp_path, io.StringIO())
    assert (stop.value.epoch, stop.value.step) == (2, 6)
    log = json.loads((tmp_path / "log.json").read_text())
    assert [r["epoch"] for r in log["rows"]] == [1] and log["status"] == "failed"
    assert "NonFiniteLoss" in log["reason"] and "epoch 2, step 6" in log["reason"]
    assert (tmp_path / "log.tsv").read_text().count("\n") == 2  # header and epoch 1


def test_compiled_trainers_warm_up_without_recompiles(tiny_net, monkeypatch):
    # torch.compile caches per code object: trainers sharing one would hit the recompile
    # limit (8) at the third, which then ran uncompiled (graphnet ablate --compile). The test
    # set (40) is no multiple of the batch (32): its last batch is padded, so a run compiles nothing new.
    from torch._dynamo.utils import counters

    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compile_(fn, backend="eager", **kw))
    torch._dynamo.reset()
    recipe = small("tta", epochs=2)
    setup = make_setup(tiny_net, recipe)
    graphs = [counters["stats"]["unique_graphs"]]
    for _ in range(3):
        trainer = Trainer(setup.graphs, recipe, coloured_dataset(64, 40), Options(device="cpu", compile=True))
        graphs.append(counters["stats"]["unique_graphs"])
    trainer.run(seed=0)
    after_run = counters["stats"]["unique_graphs"]
    torch._dynamo.reset()
    # per trainer one graph for the train step, one for each epoch's test and one for the final
    # evaluation (with TTA), all in the warm-up; a fourth meant a recompile once the first,
    # checked calls were done
    assert [b - a for a, b in zip(graphs, graphs[1:])] == [3, 3, 3]
    assert after_run == graphs[-1]


@pytest.mark.parametrize("name", ["airbench94", "airbench94_muon"])
def test_compiled_airbench_runs_never_recompile_after_the_warm_up(name, monkeypatch):
    # the whitening bias freezes after epoch 3 (frozen_after) and the lookahead starts at epoch
    # 3: neither may change what the compiled train step sees
    from torch._dynamo.utils import counters

    from graphnet.spec_source import load_spec

    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compile_(fn, backend="eager", **kw))
    torch._dynamo.reset()
    recipe = small(name, epochs=5, batch_size=16, whiten_images=64)
    setup = make_setup(build(load_spec(recipe.network, width_mult=0.125)), recipe)
    trainer = Trainer(setup.graphs, recipe, coloured_dataset(64, 40), Options(device="cpu", compile=True),
                      io.StringIO())
    graphs = counters["stats"]["unique_graphs"]
    with torch._dynamo.config.patch(error_on_recompile=True):
        result = trainer.run(seed=0)
    assert counters["stats"]["unique_graphs"] == graphs and len(result.rows) == 5
    torch._dynamo.reset()


@pytest.mark.parametrize("name", ["airbench94", "airbench94_muon", "tta"])
def test_the_warm_up_changes_no_result(name):
    # the warm-up runs a discarded run's first steps (optimizer, EMA or lookahead, whitening,
    # augmentation draws) on the trainer's own networks: a run after it is bitwise the run without
    from graphnet.spec_source import load_spec

    recipe = small(name, epochs=4, batch_size=16, whiten_images=64)
    network = tiny_net_graph() if name == "tta" else build(load_spec(recipe.network, width_mult=0.125))
    setup = make_setup(network, recipe)
    results = []
    for warm in (False, True):
        trainer = Trainer(setup.graphs, recipe, coloured_dataset(64, 40), Options(device="cpu"), io.StringIO())
        if warm:
            trainer._warm_up()
        result = trainer.run(seed=1)
        results.append(([(r["train_loss"], r["test_loss"], r["test_acc"]) for r in result.rows], result.state))
    (rows, state), (warm_rows, warm_state) = results
    assert rows == warm_rows
    assert all(torch.equal(state[k], warm_state[k]) for k in state)
