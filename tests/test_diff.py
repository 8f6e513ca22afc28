import graphnet
from graphnet import diff
from graphnet.diff import MISSING, Change
from graphnet.ops import conv, relu

ACTS = [f"{b}/relu" for b in ("prep", "layer1", "layer1/residual/res1", "layer1/residual/res2", "layer2", "layer3",
                               "layer3/residual/res1", "layer3/residual/res2")]
NORMS = [a.replace("/relu", "/bn") for a in ACTS]


def test_celu_ghost_bn_changes_exactly_the_activations_and_norms(resnet9_spec):
    a = graphnet.build(resnet9_spec)
    d = diff(a, graphnet.rewrite(a, ["celu", "ghost_bn"]))
    assert sorted(d.changed) == sorted(ACTS + NORMS)
    assert d.added == d.removed == () and len(d.unchanged) == len(a) - 16
    assert d.changed["prep/relu"] == (Change("op", "", "relu", "celu"), Change("param", "alpha", MISSING, 0.075))
    assert d.change_lines("prep/relu") == ["relu → celu(0.075)"]
    assert d.change_lines("layer2/bn") == ["batch_norm → ghost_batch_norm(num_splits=16)"]
    assert d.status("prep/relu") == "changed" and d.status("prep/conv") == "same"
    log = str(d).splitlines()
    assert log[0].split() == ["~", "prep/bn", "batch_norm", "→", "ghost_batch_norm(num_splits=16)"]
    assert log[-1] == "16 changed, 0 added, 0 removed, 19 unchanged"


def test_added_removed_inputs_attrs_params(resnet9_spec):
    a = graphnet.build(resnet9_spec)
    b = graphnet.rewrite(a, ["whiten_input", "freeze_bn_scale"])
    d = diff(a, b)
    assert d.added == ("prep/whiten",) and d.removed == ()
    assert d.change_lines("prep/conv") == ["c_in 3 → 27", "kernel_size=1", "inputs: input → whiten"]
    assert d.change_lines("prep/bn") == ["weight_init=1", "frozen weight", "lr_mult bias=64", "wd_mult bias=0.015625"]
    assert d.change_lines("logits") == ["weight 0.125 → 0.0625"]
    back = diff(b, a)  # the other way round: the whitening conv is removed, placed where it was
    assert back.removed == ("prep/whiten",) and back.added == ()
    assert back.order[:2] == ("prep/whiten", "prep/conv")
    assert "- prep/whiten" in str(back) and str(back.changed["prep/conv"][0]) == "c_in 27 → 3"
    assert str(Change("param", "bias", False, MISSING)) == "−bias"


def test_same_graph_has_no_diff(resnet9_spec):
    a = graphnet.build(resnet9_spec)
    d = diff(a, graphnet.build(resnet9_spec))
    assert not d and not d.changed and len(d.unchanged) == len(a)
    assert str(d) == f"0 changed, 0 added, 0 removed, {len(a)} unchanged"
    assert diff(graphnet.build({"c": conv(3, 8), "r": relu()}), graphnet.build({"c": conv(3, 8)})).removed == ("r",)
