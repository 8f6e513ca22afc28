"""The recipes match /work/shared/bag_of_tricks_recipes.md, step by step."""

import pytest

from graphnet import build
from graphnet.train import DEFAULT, RECIPES, STEPS, Recipe, get_recipe, make_graphs

# step: (epochs, lr knots, lr values, cutout, V100 seconds), from the recipes doc's table
DOC = {
    "baseline": (24, (0, 5, 24), (0, 0.4, 0), 8, 75),
    "gpu_preprocessing": (24, (0, 5, 24), (0, 0.4, 0), 8, 70),
    "moved_max_pool": (25, (0, 5, 25), (0, 0.4, 0), 8, 64),
    "label_smoothing": (23, (0, 23 / 5, 23), (0, 0.4, 0), 8, 59),
    "celu": (20, (0, 4, 20), (0, 0.4, 0), 8, 52),
    "ghost_bn": (18, (0, 18 / 5, 18), (0, 0.6, 0), 8, 46),
    "frozen_bn_scale": (17, (0, 17 / 5, 17), (0, 0.6, 0), 8, 43),
    "whitening": (14, (0, 14 / 5, 14), (0, 1.0, 0), 5, 36),
    "ema": (13, (0, 13 / 5, 11), (0, 1.0, 0.1), 5, 34),
    "tta": (10, (0, 2, 8), (0, 1.0, 0.1), 0, 26),
}
# the pass each step adds
ADDED = {
    "moved_max_pool": "pool_before_norm", "label_smoothing": "label_smoothing", "celu": "celu",
    "ghost_bn": "ghost_bn", "frozen_bn_scale": "freeze_bn_scale", "whitening": "whiten_input", "tta": "tta_flip",
}


def test_steps_in_order_and_as_published():
    assert [r.name for r in STEPS] == list(DOC)
    for r in STEPS:
        epochs, knots, values, cutout, v100 = DOC[r.name]
        assert (r.epochs, r.cutout, r.published_time, r.published_acc, r.published_on) == (
            epochs, cutout, v100, 0.941, "V100"), r.name
        assert r.lr_knots == pytest.approx(knots) and r.lr_values == pytest.approx(values), r.name
        assert (r.batch_size, r.weight_decay, r.momentum) == (512, 5e-4, 0.9)
        assert r.gpu_preprocessing == (r.name != "baseline")
        assert r.ema == ({"momentum": 0.99, "every": 5} if r.name in ("ema", "tta") else None)


def test_each_step_adds_its_pass():
    for before, after in zip(STEPS, STEPS[1:]):
        added = [name for name, _ in after.passes[len(before.passes):]]
        assert after.passes[:len(before.passes)] == before.passes
        assert added == ([ADDED[after.name]] if after.name in ADDED else []), after.name
    assert dict(get_recipe("celu").passes)["celu"] == {"alpha": 0.075}
    assert dict(get_recipe("ghost_bn").passes)["ghost_bn"] == {"num_splits": 16}
    assert dict(get_recipe("label_smoothing").passes)["label_smoothing"] == {"alpha": 0.2}


def test_final_recipe_is_the_default_and_matches_the_spec():
    import bag_of_tricks

    assert RECIPES[DEFAULT] is RECIPES["tta"] is STEPS[-1]
    assert list(STEPS[-1].passes) == [(name, dict(params)) for name, params in bag_of_tricks.PASSES]


def test_every_recipe_rewrites_the_baseline(resnet9_spec):
    net = build(resnet9_spec)
    for r in STEPS:
        graphs = make_graphs(net, r.passes)
        assert bool(graphs.net.find(op="ghost_batch_norm")) == ("ghost_bn" in dict(r.passes))
        assert bool(graphs.loss.find(op="neg_mean")) == ("label_smoothing" in dict(r.passes))
        assert bool(graphs.eval.find(op="flip_lr")) == ("tta_flip" in dict(r.passes))


def test_epochs_rescale_the_knots():
    r = get_recipe("tta").with_epochs(5)
    assert r.epochs == 5 and r.lr_knots == pytest.approx((0, 1, 4)) and r.lr_values == (0, 1.0, 0.1)
    assert get_recipe("baseline").scaled(0.5).epochs == 12
    assert get_recipe("tta").scaled(0.01).epochs == 1
    with pytest.raises(ValueError):
        get_recipe("tta").with_epochs(0)


def test_round_trip_and_errors():
    for r in STEPS:
        assert Recipe.from_dict(r.to_dict()) == r
    with pytest.raises(ValueError, match="unknown recipe 'nope'"):
        get_recipe("nope")
    with pytest.raises(ValueError, match="same length"):
        Recipe("x", "x", 1, (0, 1), (0,), cutout=0)
