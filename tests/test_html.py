"""The interactive HTML view: the page itself, and in a real headless Chromium (Playwright)."""
import json
import os
import re
import shutil
from pathlib import Path

import pytest

import graphnet
from graphnet.cli import main
from graphnet.ops import add, batch_norm, conv, identity, relu

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("GRAPHNET_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def deep_spec(stages=(16, 17, 17), c=8) -> dict:
    """A 50-block residual net: three stages of bottleneck-free residual blocks, 7 nodes each."""
    def conv_bn(ci, co):
        return {"conv": conv(ci, co), "bn": batch_norm(co), "relu": relu()}

    spec = {"stem": conv_bn(3, c)}
    for s, n in enumerate(stages, 1):
        spec[f"stage{s}"] = {str(i): {"in": identity(), "a": conv_bn(c, c), "conv": conv(c, c), "bn": batch_norm(c),
                                      "add": add(inputs=["in", "bn"])} for i in range(n)}
    return spec


def page_data(text: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="graphnet-data">(.*?)</script>', text, re.S)
                      .group(1))


def test_html_is_self_contained(resnet9_spec, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # the engine named is never used: the page is laid out in the browser
    assert main(["render", str(ROOT / "specs" / "resnet9.py"), "-o", "r9.html", "--engine", "dot"]) == 0
    text = (tmp_path / "r9.html").read_text(encoding="utf-8")
    assert not re.search(r'(src|href)=["\']?(https?:)?//', text) and "<script src" not in text
    data = page_data(text)
    assert len([i for i in data["items"] if i["kind"] == "node"]) == 35
    conv = next(i for i in data["items"] if i["id"] == "layer1/conv")
    assert conv["info"]["output shape"] == "1×128×32×32" and conv["info"]["parameters"] == "73,728"
    html = graphnet.build(resnet9_spec)._repr_html_()
    assert html.startswith("<iframe srcdoc=") and "graphnet-data" in html


def test_html_depth_and_fold(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = str(ROOT / "specs" / "bag_of_tricks.py")
    assert main(["render", spec, "--depth", "1", "--fold", "--rankdir", "LR", "-o", "b.html"]) == 0
    data = page_data((tmp_path / "b.html").read_text(encoding="utf-8"))
    assert data["collapsed"] == ["prep", "layer1", "layer2", "layer3"] and data["rankdir"] == "LR"
    assert next(c for c in data["clusters"] if c["id"] == "layer1/residual/res1")["label"] == "res1…res2 ×2"


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set GRAPHNET_CHROMIUM)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def open_page(browser, path: Path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    return page, errors


def overlapping_nodes(page) -> int:
    return page.evaluate("""() => {
        const r = [...document.querySelectorAll('g.node rect, g.box rect:not(.back)')]
            .map(e => e.getBoundingClientRect());
        const apart = (a, b) => a.right - 1 <= b.left || b.right - 1 <= a.left || a.bottom - 1 <= b.top
            || b.bottom - 1 <= a.top;
        let n = 0;
        for (let i = 0; i < r.length; i++) for (let j = i + 1; j < r.length; j++) if (!apart(r[i], r[j])) n++;
        return n; }""")


CASES = {  # spec -> (a namespace to collapse, a node inside it to search for)
    "resnet9": ("layer1", "layer1/conv"),
    "deep50": ("stage2", "stage2/16/a/conv"),
    "torchvision:resnet50": ("layer2", "layer2/3/conv2"),
}


@pytest.mark.parametrize("which", list(CASES))
def test_in_chromium(browser, which, resnet9_spec, tmp_path):
    spec = {"resnet9": resnet9_spec, "deep50": deep_spec()}.get(which) or graphnet.load_spec(which)
    graph = graphnet.build(spec)
    ns, inner = CASES[which]
    table = graphnet.summary(graph, (1, 3, 32, 32))
    path = graphnet.render(graph, tmp_path / f"{which.replace(':', '_')}.html", summary=table)
    page, errors = open_page(browser, path)
    nodes = page.locator("g.node")
    assert nodes.count() == len(graph)
    assert overlapping_nodes(page) == 0

    inside = [p for p in graph.order if p.startswith(ns + "/")]
    page.locator(f'g.cluster[data-ns="{ns}"] > text').click()  # collapse
    assert page.locator(f'g.node[data-path^="{ns}/"]').count() == 0
    assert nodes.count() == len(graph) - len(inside)
    assert page.locator(f'g.box[data-ns="{ns}"]').count() == 1 and overlapping_nodes(page) == 0

    page.locator("#search").fill(inner)  # search expands the namespace and finds the node
    page.locator("#search").press("Enter")
    assert page.locator(f'g.node.found[data-path="{inner}"]').count() == 1 and nodes.count() == len(graph)
    page.locator("svg").click(position={"x": 2, "y": 2})  # unpin

    page.locator(f'g.node[data-path="{inner}"]').hover()
    info = page.locator("#info")
    assert info.is_visible() and "×".join(map(str, table.shapes[inner])) in info.inner_text()
    assert "FLOPs" in info.inner_text() and inner in info.inner_text()
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    size = page.locator("svg").bounding_box()
    page.locator("#flip").click()  # left to right
    flipped = page.locator("svg").bounding_box()
    assert flipped["width"] > size["width"] and flipped["height"] < size["height"] and overlapping_nodes(page) == 0
    assert (tmp_path / "page.png").stat().st_size > 10_000
    assert errors == []


def test_depth_and_fold_in_chromium(browser, tmp_path):
    graph = graphnet.build(deep_spec())
    path = graphnet.render(graph, tmp_path / "deep.html", depth=1, fold=True, rankdir="LR")
    page, errors = open_page(browser, path)
    # stem, stage1, and stage2 standing for stage2 and stage3 (identical), each holding one block ×N
    assert page.locator("g.box").count() == 3 and page.locator("g.node").count() == 0
    assert page.locator('g.box[data-ns="stage2"] text').first.text_content() == "stage2…stage3 ×2"
    page.locator('g.box[data-ns="stage2"]').click()
    assert page.locator('g.cluster.fold[data-ns="stage2/0"] > text').text_content().startswith("0…16 ×17")
    assert page.locator("g.node").count() == 7 and overlapping_nodes(page) == 0
    page.screenshot(path=str(tmp_path / "deep.png"))
    assert errors == []


def test_diff_in_chromium(browser, resnet9_spec, tmp_path):
    a = graphnet.build(resnet9_spec)
    b = graphnet.rewrite(a, ["whiten_input", "celu", "ghost_bn"])
    path = graphnet.render(graphnet.diff(a, b), tmp_path / "d.html")
    page, errors = open_page(browser, path)
    assert page.locator("g.node.st-changed").count() == 17 and page.locator("g.node.st-added").count() == 1
    assert page.locator("path.edge.st-removed").count() == 1 and page.locator(".legend").is_visible()
    page.locator('g.node[data-path="prep/relu"]').hover()
    assert "relu → celu(0.075)" in page.locator("#info").inner_text()
    page.locator('g.node[data-path="prep/relu"]').click()
    page.screenshot(path=str(tmp_path / "d.png"), full_page=True)
    assert errors == []


def test_render_torchvision_resnet50_to_html(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["render", "torchvision:resnet50", "-o", "r50.html"]) == 0
    nodes = [i for i in page_data((tmp_path / "r50.html").read_text(encoding="utf-8"))["items"] if i["kind"] == "node"]
    assert len(nodes) == len(graphnet.build(graphnet.load_spec("torchvision:resnet50")))
