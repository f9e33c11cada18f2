"""Layered (Sugiyama-style) layout of the flow map, computed in Python.

The browser only draws what is decided here, so the map is the same everywhere and
the geometry can be tested: no node overlaps another, every edge runs in the gaps
between layer columns (long edges through reserved "dummy" slots), so a line never
crosses a box it does not connect.

Steps: break cycles (DFS back edges are reversed) -> longest-path layers from the
entries (left) to the sinks (right) -> dummy nodes on long edges -> barycenter sweeps
to reduce crossings (best ordering kept) -> y coordinates by isotonic regression
towards the neighbours' barycenter under a minimum spacing -> ports spread along each
node's sides -> edges as cubic curves inside the layer gaps.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import networkx as nx

__all__ = ["NodeBox", "EdgeRoute", "Layout", "layered_layout", "count_crossings"]

LAYER_GAP = 120.0  # horizontal room between columns: curves and count labels live here
NODE_GAP = 18.0  # vertical room between two boxes of one column
DUMMY_GAP = 6.0  # vertical room around a long edge passing through a column
DUMMY_HEIGHT = 4.0
PORT_SPACING = 15.0  # between two incoming edge ends (each has a count label beside it)
OUT_PORT_SPACING = 6.0  # between two outgoing edge ends (no labels there)
MARGIN = 24.0
SWEEPS = 24


@dataclass(slots=True)
class NodeBox:
    id: str
    x: float
    y: float  # top
    w: float
    h: float
    layer: int

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


@dataclass(slots=True)
class EdgeRoute:
    source: str
    target: str
    points: list[tuple[float, float]]  # polyline through ports and dummy slots, source first
    path: str  # SVG path data
    label_x: float  # right end of the count label, just before the target
    label_y: float
    label_anchor: str = "end"  # SVG text-anchor of the count label
    reversed: bool = False  # drawn against the layering because it closed a cycle
    self_loop: bool = False


@dataclass(slots=True)
class Layout:
    width: float
    height: float
    nodes: dict[str, NodeBox] = field(default_factory=dict)
    edges: dict[tuple[str, str], EdgeRoute] = field(default_factory=dict)
    layers: int = 0
    crossings: int = 0


def _break_cycles(g: nx.DiGraph, roots: list[str]) -> set[tuple[str, str]]:
    """Back edges of an iterative DFS started at the entries first (deterministic)."""
    state: dict[str, int] = {}  # 1 = on stack, 2 = done
    back: set[tuple[str, str]] = set()
    starts = roots + sorted(n for n in g if g.in_degree(n) == 0 and n not in roots) + sorted(g)
    for start in starts:
        if start in state:
            continue
        state[start] = 1
        stack = [(start, iter(sorted(g.successors(start))))]
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(sorted(g.successors(nxt)))))
            elif state[nxt] == 1:
                back.add((node, nxt))
    return back


def _pairs_crossings(upper: list[str], lower_pos: dict[str, int], adj: Mapping[str, list[str]]) -> int:
    ends = []
    for u in upper:
        ends.extend(sorted(lower_pos[v] for v in adj.get(u, ())))
    # inversions in ``ends`` = crossings between the two layers
    crossings = 0
    tree = [0] * (len(lower_pos) + 2)
    for i, e in enumerate(ends):
        j, seen = e + 1, 0
        while j > 0:
            seen += tree[j]
            j -= j & -j
        crossings += i - seen
        j = e + 1
        while j < len(tree):
            tree[j] += 1
            j += j & -j
    return crossings


def count_crossings(order: list[list[str]], succ: Mapping[str, list[str]]) -> int:
    """Edge crossings between consecutive layers of a proper layered graph."""
    total = 0
    for upper, lower in zip(order, order[1:]):
        total += _pairs_crossings(upper, {n: i for i, n in enumerate(lower)}, succ)
    return total


def _isotonic(desired: list[float], seps: list[float]) -> list[float]:
    """Closest positions (least squares) to ``desired`` keeping ``y[i+1]-y[i] >= seps[i]``."""
    offsets = [0.0]
    for s in seps:
        offsets.append(offsets[-1] + s)
    z = [d - o for d, o in zip(desired, offsets)]
    blocks: list[list[float]] = []  # [mean, weight]
    for v in z:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2 = blocks.pop()
            m1, w1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2])
    out: list[float] = []
    for mean, weight in blocks:
        out.extend([mean] * int(weight))
    return [v + o for v, o in zip(out, offsets)]


def layered_layout(
    sizes: Mapping[str, tuple[float, float]],
    edges: Iterable[tuple[str, str]],
    *,
    entries: Iterable[str] = (),
) -> Layout:
    """Place boxes of the given (width, height) left to right and route ``edges``.

    ``entries`` are drawn in the first column when they have no incoming edge; node
    heights grow so that every edge end gets its own port (labels never collide).
    """
    g = nx.DiGraph()
    g.add_nodes_from(sorted(sizes))
    edge_list = []
    self_loops = []
    for s, t in edges:
        if s not in sizes or t not in sizes:
            raise ValueError(f"edge {s!r} -> {t!r} refers to an unknown node")
        if s == t:
            self_loops.append((s, t))
            continue
        edge_list.append((s, t))
        g.add_edge(s, t)
    roots = sorted(n for n in set(entries) if n in g)
    back = _break_cycles(g, roots)
    dag = nx.DiGraph()
    dag.add_nodes_from(g)
    for s, t in g.edges:
        if (s, t) in back:
            dag.add_edge(t, s)
        else:
            dag.add_edge(s, t)

    layer: dict[str, int] = {}
    for i, gen in enumerate(nx.topological_generations(dag)):
        for n in gen:
            layer[n] = i
    n_layers = max(layer.values(), default=-1) + 1

    # Proper layering: each DAG edge becomes a chain through one dummy per skipped column.
    succ: dict[str, list[str]] = defaultdict(list)
    pred: dict[str, list[str]] = defaultdict(list)
    chains: dict[tuple[str, str], list[str]] = {}
    is_dummy: dict[str, bool] = {n: False for n in dag}
    for s, t in sorted(dag.edges):
        chain = [s]
        for k in range(layer[s] + 1, layer[t]):
            d = f"\x00d{len(is_dummy)}"
            is_dummy[d] = True
            layer[d] = k
            chain.append(d)
        chain.append(t)
        for a, b in zip(chain, chain[1:]):
            succ[a].append(b)
            pred[b].append(a)
        chains[(s, t)] = chain

    # Initial order: DFS from the entries so related nodes start close together.
    order: list[list[str]] = [[] for _ in range(n_layers)]
    seen: set[str] = set()
    starts = roots + sorted(n for n in dag if not pred[n] and n not in roots) + sorted(is_dummy)
    for start in starts:
        if start in seen:
            continue
        stack = [start]
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            order[layer[n]].append(n)
            stack.extend(reversed(succ[n]))

    def sweep(order: list[list[str]], down: bool) -> None:
        rng = range(1, n_layers) if down else range(n_layers - 2, -1, -1)
        for li in rng:
            ref = order[li - 1] if down else order[li + 1]
            pos = {n: i for i, n in enumerate(ref)}
            nbrs = pred if down else succ
            current = order[li]
            keyed = []
            for i, n in enumerate(current):
                ps = [pos[m] for m in nbrs[n] if m in pos]
                keyed.append((sum(ps) / len(ps) if ps else float(i), i, n))
            keyed.sort()
            order[li] = [n for _, _, n in keyed]

    best = [list(l) for l in order]
    best_c = count_crossings(best, succ)
    for i in range(SWEEPS):
        if best_c == 0:
            break
        sweep(order, down=i % 2 == 0)
        c = count_crossings(order, succ)
        if c < best_c:
            best, best_c = [list(l) for l in order], c
    order = best

    # Box sizes: grow heights so every edge end has its own port. A back edge ends on its
    # target's right side, with its count label there: that side then needs label room.
    back_targets = {t for _, t in back}

    def out_spacing(n: str) -> float:
        return PORT_SPACING if n in back_targets else OUT_PORT_SPACING

    w: dict[str, float] = {}
    h: dict[str, float] = {}
    for n in is_dummy:
        if is_dummy[n]:
            w[n], h[n] = 0.0, DUMMY_HEIGHT
        else:
            bw, bh = sizes[n]
            w[n], h[n] = bw, max(bh, (len(pred[n]) + 1) * PORT_SPACING, (len(succ[n]) + 1) * out_spacing(n))

    col_w = [max((w[n] for n in layer_nodes), default=0.0) for layer_nodes in order]
    col_x = []
    x = MARGIN
    for cw in col_w:
        col_x.append(x)
        x += cw + LAYER_GAP

    def seps(nodes: list[str]) -> list[float]:
        out = []
        for a, b in zip(nodes, nodes[1:]):
            gap = DUMMY_GAP if is_dummy[a] or is_dummy[b] else NODE_GAP
            out.append((h[a] + h[b]) / 2 + gap)
        return out

    cy: dict[str, float] = {}
    for nodes in order:
        ys = _isotonic([0.0] * len(nodes), seps(nodes))
        cy.update(zip(nodes, ys))
    for i in range(8):
        down = i % 2 == 0
        rng = range(1, n_layers) if down else range(n_layers - 2, -1, -1)
        for li in rng:
            nodes = order[li]
            nbrs = pred if down else succ
            desired = []
            for n in nodes:
                ys = [cy[m] for m in nbrs[n]] + [cy[m] for m in (succ if down else pred)[n]]
                desired.append(sum(ys) / len(ys) if ys else cy[n])
            cy.update(zip(nodes, _isotonic(desired, seps(nodes))))
    top = min((cy[n] - h[n] / 2 for n in cy), default=0.0)
    for n in cy:
        cy[n] += MARGIN - top

    boxes = {
        n: NodeBox(n, col_x[layer[n]], cy[n] - h[n] / 2, w[n], h[n], layer[n])
        for n in is_dummy
        if not is_dummy[n]
    }

    # Ports: each side's edge ends spread evenly, sorted by the other end's height.
    out_port: dict[tuple[str, str], float] = {}
    in_port: dict[tuple[str, str], float] = {}
    for n in boxes:
        b = boxes[n]
        for nbrs, ports, spacing in ((succ[n], out_port, out_spacing(n)), (pred[n], in_port, PORT_SPACING)):
            ordered = sorted(nbrs, key=lambda m: (cy[m], m))
            k = len(ordered)
            for i, m in enumerate(ordered):
                key = (n, m) if ports is out_port else (m, n)
                ports[key] = b.cy + (i - (k - 1) / 2) * spacing

    routes: dict[tuple[str, str], EdgeRoute] = {}
    for s, t in edge_list:
        rev = (s, t) in back
        chain = chains[(t, s)] if rev else chains[(s, t)]
        pts: list[tuple[float, float]] = []
        d_parts: list[str] = []
        for i, (a, b) in enumerate(zip(chain, chain[1:])):
            ay = out_port[(a, b)] if not is_dummy[a] else cy[a]
            by = in_port[(a, b)] if not is_dummy[b] else cy[b]
            ax = col_x[layer[a]] + (w[a] if not is_dummy[a] else 0.0)
            col_right = col_x[layer[a]] + col_w[layer[a]]
            bx = col_x[layer[b]]
            if i == 0:
                pts.append((ax, ay))
                d_parts.append(f"M{ax:.1f},{ay:.1f}")
            # straight through the rest of the column (the box or the dummy slot owns this row)
            if col_right > ax:
                d_parts.append(f"H{col_right:.1f}")
                pts.append((col_right, ay))
            mx = (col_right + bx) / 2
            d_parts.append(f"C{mx:.1f},{ay:.1f} {mx:.1f},{by:.1f} {bx:.1f},{by:.1f}")
            pts.append((bx, by))
        if rev:
            pts.reverse()
            path = _path_from(pts)
        else:
            path = " ".join(d_parts)
        lx, ly = pts[-1]
        # the count sits in the gap just before the arrow head, above the line
        label_x = lx + 10 if rev else lx - 10
        routes[(s, t)] = EdgeRoute(s, t, pts, path, label_x, ly - 4, "start" if rev else "end", reversed=rev)

    for s, _ in self_loops:
        b = boxes[s]
        x0, y0 = b.x + b.w - 12, b.y
        path = f"M{x0:.1f},{y0:.1f} C{x0:.1f},{y0 - 22:.1f} {x0 + 24:.1f},{y0 - 22:.1f} {x0 + 10:.1f},{y0:.1f}"
        routes[(s, s)] = EdgeRoute(
            s, s, [(x0, y0), (x0 + 10, y0)], path, x0 + 20, y0 - 12, "start", self_loop=True
        )

    width = (col_x[-1] + col_w[-1] + MARGIN) if col_x else 2 * MARGIN
    height = max((b.y + b.h for b in boxes.values()), default=0.0) + MARGIN
    return Layout(width, height, boxes, routes, n_layers, best_c)


def _path_from(pts: list[tuple[float, float]]) -> str:
    """Curves between consecutive column edges, straight runs inside columns."""
    x0, y0 = pts[0]
    parts = [f"M{x0:.1f},{y0:.1f}"]
    for (ax, ay), (bx, by) in zip(pts, pts[1:]):
        if abs(ay - by) < 0.01:
            parts.append(f"L{bx:.1f},{by:.1f}")
        else:
            mx = (ax + bx) / 2
            parts.append(f"C{mx:.1f},{ay:.1f} {mx:.1f},{by:.1f} {bx:.1f},{by:.1f}")
    return " ".join(parts)
