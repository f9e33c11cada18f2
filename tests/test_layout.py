"""The flow map's layout: readable at 50+ operations by construction, checked geometrically."""

from __future__ import annotations

import random
import re

import pytest

from flowmap.layout import PORT_SPACING, Layout, count_crossings, layered_layout
from flowmap.report_data import build_report_data
from report_fixture import build_analysis

_NUM = r"(-?\d+(?:\.\d+)?)"


def _sample_path(d: str, steps: int = 24) -> list[tuple[float, float]]:
    """Points along an SVG path made of M, H, L and C commands (what the layout emits)."""
    pts: list[tuple[float, float]] = []
    x = y = 0.0
    for cmd, args in re.findall(r"([MHLC])([^MHLC]*)", d):
        nums = [float(n) for n in re.findall(_NUM, args)]
        if cmd == "M":
            x, y = nums
            pts.append((x, y))
        elif cmd in "HL":
            nx_, ny = (nums[0], y) if cmd == "H" else (nums[0], nums[1])
            pts.extend((x + (nx_ - x) * k / steps, y + (ny - y) * k / steps) for k in range(1, steps + 1))
            x, y = nx_, ny
        else:
            c1x, c1y, c2x, c2y, ex, ey = nums
            for k in range(1, steps + 1):
                t = k / steps
                a, b, c, e = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3
                pts.append((a * x + b * c1x + c * c2x + e * ex, a * y + b * c1y + c * c2y + e * ey))
            x, y = ex, ey
    return pts


def _assert_readable(layout: Layout) -> None:
    boxes = list(layout.nodes.values())
    # no two boxes overlap (so no two labels overlap: labels live inside their boxes)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            separate = a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y
            assert separate, f"{a.id} overlaps {b.id}"
        assert 0 <= a.x and a.x + a.w <= layout.width and 0 <= a.y and a.y + a.h <= layout.height
    # no edge runs through a box it does not connect
    for (s, t), route in layout.edges.items():
        if route.self_loop:
            continue
        for px, py in _sample_path(route.path):
            for b in boxes:
                if b.id in (s, t):
                    continue
                inside = b.x + 0.5 < px < b.x + b.w - 0.5 and b.y + 0.5 < py < b.y + b.h - 0.5
                assert not inside, f"edge {s}->{t} crosses box {b.id} at ({px:.0f},{py:.0f})"
    # count labels before one target never collide (one port each)
    by_target: dict[tuple[str, bool], list[float]] = {}  # back edges end on the right side
    for (_, t), route in layout.edges.items():
        if not route.self_loop:
            by_target.setdefault((t, route.reversed), []).append(route.label_y)
    for t, ys in by_target.items():
        ys.sort()
        assert all(b - a >= PORT_SPACING - 0.01 for a, b in zip(ys, ys[1:])), t


def test_fixture_map_of_60_operations_is_readable():
    data = build_report_data(build_analysis())
    sizes = {n.id: (n.w, n.h) for n in data.nodes}
    assert len(sizes) >= 55
    layout = layered_layout(
        {n.id: (n.w, 44.0) for n in data.nodes},
        [(e.source, e.target) for e in data.edges],
        entries=[n.id for n in data.nodes if n.entry],
    )
    _assert_readable(layout)
    # entries on the left, data boundaries to their right
    entry_ids = {n.id for n in data.nodes if n.entry and n.boundary == "http.server"}
    assert {layout.nodes[i].layer for i in entry_ids} == {0}
    data_ids = [n.id for n in data.nodes if n.boundary in {"db", "vector", "cache"} and not n.entry]
    assert min(layout.nodes[i].layer for i in data_ids) >= 1


def test_report_data_uses_the_same_geometry():
    data = build_report_data(build_analysis())
    boxes = [(n.x, n.y, n.w, n.h) for n in data.nodes]
    assert len(set(boxes)) == len(boxes)
    assert all(e.path.startswith("M") for e in data.edges if e.source != e.target)
    assert 0 < data.width and 0 < data.height


def test_long_edges_route_around_the_columns_they_skip():
    sizes = {n: (160.0, 44.0) for n in "abcdefg"}
    edges = [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d"), ("a", "e"), ("e", "f"), ("f", "g"),
             ("b", "g"), ("a", "g")]
    layout = layered_layout(sizes, edges, entries=["a"])
    _assert_readable(layout)
    assert layout.nodes["a"].layer == 0
    assert layout.nodes["d"].layer == 3 and layout.nodes["g"].layer == 3
    # a->g skips two columns: its route passes through them, between their boxes
    assert len(layout.edges[("a", "g")].points) >= 6


def test_crossing_reduction_untangles_two_chains():
    # two parallel chains given in an order that starts crossed
    sizes = {n: (120.0, 40.0) for n in ["a1", "a2", "b1", "b2", "c1", "c2"]}
    edges = [("a1", "b2"), ("a2", "b1"), ("b2", "c1"), ("b1", "c2")]
    layout = layered_layout(sizes, edges, entries=["a1", "a2"])
    assert layout.crossings == 0
    ys = {n: b.cy for n, b in layout.nodes.items()}
    assert (ys["a1"] < ys["a2"]) == (ys["b2"] < ys["b1"]) == (ys["c1"] < ys["c2"])


def test_count_crossings():
    assert count_crossings([["a", "b"], ["c", "d"]], {"a": ["d"], "b": ["c"]}) == 1
    assert count_crossings([["a", "b"], ["c", "d"]], {"a": ["c"], "b": ["d"]}) == 0


def test_cycles_are_broken_and_still_drawn():
    sizes = {n: (140.0, 44.0) for n in ["entry", "agent", "tool", "delegate"]}
    edges = [("entry", "agent"), ("agent", "tool"), ("tool", "delegate"), ("delegate", "agent"),
             ("agent", "agent")]
    layout = layered_layout(sizes, edges, entries=["entry"])
    _assert_readable(layout)
    assert layout.nodes["entry"].layer == 0 and layout.nodes["agent"].layer == 1
    back = layout.edges[("delegate", "agent")]
    assert back.reversed
    # drawn from delegate (right) back to agent: starts at delegate, ends at agent
    assert back.points[0][0] == pytest.approx(layout.nodes["delegate"].x)
    assert back.points[-1][0] == pytest.approx(layout.nodes["agent"].x + layout.nodes["agent"].w)
    assert layout.edges[("agent", "agent")].self_loop


def test_heights_grow_so_every_incoming_edge_has_its_own_port():
    sizes = {f"s{i}": (120.0, 40.0) for i in range(12)} | {"sink": (120.0, 40.0)}
    layout = layered_layout(sizes, [(f"s{i}", "sink") for i in range(12)])
    assert layout.nodes["sink"].h >= 13 * PORT_SPACING
    _assert_readable(layout)


def test_unknown_node_in_edge_is_an_error():
    with pytest.raises(ValueError):
        layered_layout({"a": (10.0, 10.0)}, [("a", "b")])


@pytest.mark.parametrize("seed", range(6))
def test_random_graphs_are_readable_and_deterministic(seed):
    rng = random.Random(seed)
    n = rng.randint(20, 70)
    names = [f"op{i} {'x' * rng.randint(0, 30)}" for i in range(n)]
    sizes = {name: (120.0 + 6 * len(name), 44.0) for name in names}
    edges = set()
    for i in range(1, n):
        edges.add((names[rng.randrange(0, i)], names[i]))
    for _ in range(n // 3):  # extra edges, some backwards (cycles), some long
        a, b = rng.sample(names, 2)
        edges.add((a, b))
    edges = sorted(edges)
    one = layered_layout(sizes, edges, entries=[names[0]])
    _assert_readable(one)
    two = layered_layout(sizes, list(reversed(edges)), entries=[names[0]])
    assert {k: (b.x, b.y) for k, b in one.nodes.items()} == {k: (b.x, b.y) for k, b in two.nodes.items()}
