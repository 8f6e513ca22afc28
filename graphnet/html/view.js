// graphnet's interactive view: lays out the graph in the page (layered, namespaces as nested
// boxes), collapses/expands a namespace on click, shows a node's details on hover, finds by path.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("graphnet-data").textContent);
  const NS = "http://www.w3.org/2000/svg", PAD = 8, HDR = 18, GAP = 14, RANKGAP = 26, LANE = 10, LINE = 15;
  const items = new Map(D.items.map((it) => ["n:" + it.id, it]));
  const clusters = new Map(D.clusters.map((c) => ["c:" + c.id, c]));
  const collapsed = new Set(D.collapsed.map((id) => "c:" + id));
  let lr = D.rankdir === "LR", scale = 1, pinned = null, found = null;

  // the chain of cluster keys around an item or cluster, outermost first
  const chainCache = new Map();
  function chain(key) {
    if (!chainCache.has(key)) {
      const parentId = key.startsWith("n:") ? items.get(key).cluster : clusters.get(key).parent;
      chainCache.set(key, parentId === "" ? [] : [...chain("c:" + parentId), "c:" + parentId]);
    }
    return chainCache.get(key);
  }
  const kids = new Map([["", []]]); // cluster key ('' = top) -> child keys in execution order
  for (const key of [...items.keys()]) {
    let outer = "";
    for (const c of [...chain(key), key]) {
      if (!kids.has(outer)) kids.set(outer, []);
      if (!kids.get(outer).includes(c)) kids.get(outer).push(c);
      outer = c;
    }
  }
  function visible(key) { // the item itself, or its outermost collapsed cluster
    return chain(key).find((c) => collapsed.has(c)) || key;
  }

  const ctx = document.createElement("canvas").getContext("2d");
  ctx.font = "12px sans-serif";
  function textSize(lines) {
    return { w: Math.max(...lines.map((l) => ctx.measureText(l).width)) + 16, h: lines.length * LINE + 8 };
  }
  function leafLines(key) {
    if (key.startsWith("n:")) return items.get(key).lines;
    const c = clusters.get(key);
    return [c.label, ...c.box];
  }
  // sizes along the layering axis (m) and across it (c)
  function oriented(s) { return lr ? { c: s.h, m: s.w } : { c: s.w, m: s.h }; }
  const padStart = () => (lr ? { c: PAD + HDR, m: PAD } : { c: PAD, m: PAD + HDR });

  function layout() {
    // graph edges between visible keys, each filed under the cluster that holds both ends
    const levelEdges = new Map(), drawn = [];
    for (const [s, t, status, label] of D.edges) {
      const vs = visible("n:" + s), vt = visible("n:" + t);
      if (vs === vt) continue;
      const cs = [...chain(vs), vs], ct = [...chain(vt), vt];
      let i = 0;
      while (cs[i] === ct[i]) i++;
      const lca = i === 0 ? "" : cs[i - 1];
      if (!levelEdges.has(lca)) levelEdges.set(lca, []);
      levelEdges.get(lca).push([cs[i], ct[i]]);
      drawn.push({ vs, vt, lca, a: cs[i], b: ct[i], status, label });
    }
    const blocks = new Map(), lanes = new Map();
    function block(ckey) { // lays out an expanded cluster's children; sizes in (c, m)
      const ch = kids.get(ckey), index = new Map(ch.map((k, i) => [k, i]));
      const size = new Map(ch.map((k) => [k, k.startsWith("c:") && !collapsed.has(k) ? block(k) : oriented(textSize(leafLines(k)))]));
      const layer = new Map(ch.map((k) => [k, 0])), preds = new Map(ch.map((k) => [k, []]));
      for (const [a, b] of levelEdges.get(ckey) || []) if (index.get(a) < index.get(b)) preds.get(b).push(a);
      for (const k of ch) for (const p of preds.get(k)) layer.set(k, Math.max(layer.get(k), layer.get(p) + 1));
      const rows = [];
      for (const k of ch) (rows[layer.get(k)] = rows[layer.get(k)] || []).push(k);
      const at = new Map();
      rows.forEach((row, r) => {
        if (r > 0) {
          const bary = (k) => (preds.get(k).length ? preds.get(k).reduce((s, p) => s + at.get(p), 0) / preds.get(k).length : 1e9);
          row.sort((a, b) => bary(a) - bary(b) || index.get(a) - index.get(b));
        }
        row.forEach((k, i) => at.set(k, i));
      });
      const width = Math.max(...rows.map((row) => row.reduce((s, k) => s + size.get(k).c, 0) + GAP * (row.length - 1)));
      const long = (levelEdges.get(ckey) || []).filter(([a, b]) => layer.get(b) - layer.get(a) !== 1);
      const laneOf = new Map(long.map(([a, b], i) => [a + ">" + b, i]));
      const p0 = padStart(), pos = new Map();
      let m = p0.m;
      for (const row of rows) {
        const rowW = row.reduce((s, k) => s + size.get(k).c, 0) + GAP * (row.length - 1);
        const rowM = Math.max(...row.map((k) => size.get(k).m));
        let c = p0.c + (width - rowW) / 2;
        for (const k of row) {
          pos.set(k, { c, m: m + (rowM - size.get(k).m) / 2 });
          c += size.get(k).c + GAP;
        }
        m += rowM + RANKGAP;
      }
      const b = { c: p0.c + width + laneOf.size * LANE + PAD, m: m - RANKGAP + PAD, pos, size, layer, laneOf,
                  laneC: p0.c + width + LANE / 2 };
      blocks.set(ckey, b);
      return b;
    }
    const root = block("");
    const rect = new Map(); // key -> absolute {c, m, cs, ms}
    function place(ckey, c0, m0) {
      const b = blocks.get(ckey);
      for (const [k, p] of b.pos) {
        const s = b.size.get(k);
        rect.set(k, { c: c0 + p.c, m: m0 + p.m, cs: s.c, ms: s.m });
        if (blocks.has(k) && !collapsed.has(k)) place(k, c0 + p.c, m0 + p.m);
      }
    }
    rect.set("", { c: 0, m: 0, cs: root.c, ms: root.m });
    place("", 0, 0);
    return { root, rect, drawn, blocks };
  }

  const svg = document.createElementNS(NS, "svg");
  document.getElementById("stage").appendChild(svg);
  function el(tag, attrs, parent) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }
  const xy = (c, m) => (lr ? [m, c] : [c, m]);
  function box(r) { const [x, y] = xy(r.c, r.m), [w, h] = lr ? [r.ms, r.cs] : [r.cs, r.ms]; return { x, y, w, h }; }
  function texts(g, lines, b, top) {
    lines.forEach((l, i) => {
      const t = el("text", { x: b.x + b.w / 2, y: top + 4 + LINE * (i + 0.8), "text-anchor": "middle" }, g);
      t.textContent = l;
      if (i === 0 && lines.length > 1) t.setAttribute("font-weight", "bold");
    });
  }

  function draw() {
    const L = layout();
    svg.textContent = "";
    el("defs", {}, svg).innerHTML = '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" ' +
      'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#555"/></marker>';
    const [W, H] = lr ? [L.root.m, L.root.c] : [L.root.c, L.root.m];
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("width", W * scale);
    svg.setAttribute("height", H * scale);
    const layers = { clusters: el("g", {}, svg), edges: el("g", {}, svg), nodes: el("g", {}, svg) };
    for (const [key, r] of L.rect) {
      if (!key) continue;
      const b = box(r);
      if (key.startsWith("c:") && !collapsed.has(key)) { // an expanded namespace
        const c = clusters.get(key);
        const g = el("g", { class: `cluster st-${c.status}${c.fold > 1 ? " fold" : ""}`, "data-ns": c.id }, layers.clusters);
        el("rect", { x: b.x, y: b.y, width: b.w, height: b.h, rx: 6 }, g);
        el("title", {}, g).textContent = `${c.id}: click to collapse`;
        el("text", { x: b.x + 6, y: b.y + 13 }, g).textContent = c.label + "  ▾";
        g.addEventListener("click", (ev) => { ev.stopPropagation(); collapsed.add(key); draw(); });
        continue;
      }
      const isBox = key.startsWith("c:"), it = isBox ? clusters.get(key) : items.get(key);
      const kind = isBox ? "box" : it.kind;
      const g = el("g", { class: `${kind} st-${it.status}${!isBox && it.hinted ? " hinted" : ""}`,
                          [isBox ? "data-ns" : "data-path"]: it.id }, layers.nodes);
      if (kind === "input") {
        el("path", { d: `M${b.x},${b.y}h${b.w}v${b.h * 0.6}l${-b.w / 2},${b.h * 0.4}l${-b.w / 2},${-b.h * 0.4}z`,
                     fill: "#525252" }, g);
      } else {
        if (isBox) el("rect", { class: "back", x: b.x + 4, y: b.y - 4, width: b.w, height: b.h, rx: 4 }, g);
        el("rect", { x: b.x, y: b.y, width: b.w, height: b.h, rx: 6, fill: isBox ? "#ececec" : it.colour }, g);
      }
      texts(g, isBox ? [it.label, ...it.box] : it.lines, b, b.y);
      if (kind === "input") g.querySelectorAll("text").forEach((t) => t.setAttribute("fill", "white"));
      if (found === key) g.classList.add("found");
      const info = isBox ? { namespace: it.id, contents: it.box.join("; "), "": "click to expand" } : it.info;
      g.addEventListener("mouseenter", () => { if (!pinned) show(info); });
      g.addEventListener("mouseleave", () => { if (!pinned) hide(); });
      g.addEventListener("click", (ev) => {
        ev.stopPropagation();
        if (isBox) { collapsed.delete(key); draw(); return; }
        pinned = pinned === key ? null : key;
        show(info);
      });
    }
    for (const e of L.drawn) {
      const s = L.rect.get(e.vs), t = L.rect.get(e.vt), blk = L.blocks.get(e.lca);
      const sc = s.c + s.cs / 2, sm = s.m + s.ms, tc = t.c + t.cs / 2, tm = t.m;
      let d;
      const lane = blk.laneOf.get(e.a + ">" + e.b);
      if (lane === undefined) {
        const mid = (sm + tm) / 2;
        d = [[sc, sm], [sc, mid], [tc, mid], [tc, tm]];
      } else { // around the layers between, in this block's lane
        const lc = L.rect.get(e.lca).c + blk.laneC + lane * LANE;
        d = [[sc, sm], [sc, sm + 10], [lc, sm + 10], [lc, sm + 10], [lc, tm - 10], [lc, tm - 10], [tc, tm - 10], [tc, tm]];
      }
      const p = d.map(([c, m]) => xy(c, m));
      let path = `M${p[0]}C${p[1]} ${p[2]} ${p[3]}`;
      if (p.length > 4) path += `L${p[4]}C${p[5]} ${p[6]} ${p[7]}`;
      const pe = el("path", { class: `edge st-${e.status}`, d: path, "marker-end": "url(#arrow)" }, layers.edges);
      if (e.label) {
        const [x, y] = xy((sc + tc) / 2 + 4, (sm + tm) / 2);
        el("text", { x, y, "font-size": 9 }, layers.edges).textContent = e.label;
      }
      el("title", {}, pe).textContent = `${e.vs.slice(2)} → ${e.vt.slice(2)}`;
    }
  }

  const infoBox = document.getElementById("info");
  function show(info) {
    infoBox.innerHTML = "<table></table>";
    for (const [k, v] of Object.entries(info)) {
      const tr = infoBox.firstChild.insertRow();
      tr.insertCell().textContent = k;
      tr.insertCell().textContent = v;
    }
    infoBox.style.display = "block";
  }
  function hide() { infoBox.style.display = "none"; }

  function find(query) {
    query = query.trim();
    const keys = [...items.keys()].filter((k) => items.get(k).kind === "node");
    const key = keys.find((k) => k.slice(2) === query) || keys.find((k) => k.slice(2).includes(query));
    document.getElementById("status").textContent = key ? "" : `no node matches ${query}`;
    if (!key) return;
    chain(key).forEach((c) => collapsed.delete(c));
    found = key;
    pinned = key;
    draw();
    show(items.get(key).info);
    svg.querySelector(".found").scrollIntoView({ block: "center", inline: "center" });
  }

  const search = document.getElementById("search"), list = document.getElementById("paths");
  for (const it of D.items) if (it.kind === "node") list.appendChild(new Option(it.id));
  search.addEventListener("keydown", (ev) => { if (ev.key === "Enter") find(search.value); });
  search.addEventListener("change", () => find(search.value));
  const on = (id, fn) => document.getElementById(id).addEventListener("click", () => { fn(); draw(); });
  on("expand", () => collapsed.clear());
  on("collapse", () => kids.get("").filter((k) => k.startsWith("c:")).forEach((k) => collapsed.add(k)));
  on("flip", () => { lr = !lr; });
  on("zoomin", () => { scale *= 1.25; });
  on("zoomout", () => { scale /= 1.25; });
  svg.addEventListener("click", () => { pinned = null; hide(); });
  if (!D.diff) document.querySelector("#bar .legend").remove();
  draw();
})();
