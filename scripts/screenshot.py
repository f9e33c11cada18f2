#!/usr/bin/env python3
"""Screenshot a flowmap risk map in headless chromium (the picture in the README).

    .venv/bin/python scripts/screenshot.py reports/risk-map.html -o docs/risk-map.png --width 1500 --height 820 --no-select

(the README picture, as docs/report.md gives it: the whole map, no selection dimming it).

Opens the report from ``file://`` exactly as a reader would, fits the map to the
width, selects the worst call edge on the map (so the drill-down panel shows), and saves a PNG. Uses Debian's
``/usr/bin/chromium`` through Playwright; never downloads a browser.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def find_chromium() -> str:
    path = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not path:
        raise SystemExit("screenshot: chromium not found (apt-get install chromium)")
    return path


def screenshot(report: Path, out: Path, *, width: int = 1600, height: int = 1000, select: bool = True,
               full_page: bool = False) -> Path:
    from playwright.sync_api import sync_playwright

    out.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=1)
            page.goto(report.resolve().as_uri())
            page.wait_for_selector("#map")
            # the whole map at once: a reader of the README sees every operation
            page.click("#fit-toggle")
            if select:
                for kind in ("switched", "dropped", "orphaned"):
                    edge = page.query_selector(f"#map .edge.{kind}")
                    if edge is not None:
                        # click the visible line, which is what a reader does
                        edge.dispatch_event("click")
                        break
            page.screenshot(path=str(out), full_page=full_page)
        finally:
            browser.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path, help="risk map HTML (from `flowmap report`)")
    ap.add_argument("-o", "--out", type=Path, default=Path("docs/risk-map.png"))
    ap.add_argument("--width", type=int, default=1600)
    ap.add_argument("--height", type=int, default=1000)
    ap.add_argument("--no-select", action="store_true", help="do not open the worst edge's panel")
    ap.add_argument("--full-page", action="store_true")
    args = ap.parse_args(argv)
    if not args.report.is_file():
        print(f"screenshot: no such report: {args.report}", file=sys.stderr)
        return 2
    out = screenshot(args.report, args.out, width=args.width, height=args.height,
                     select=not args.no_select, full_page=args.full_page)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
