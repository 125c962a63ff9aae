"""Open the dashboard in headless Chromium with networking off; the charts must render.

CI installs the browser with ``apt-get update && apt-get install -y chromium`` (Debian). The
page is opened inside ``unshare -n`` (a network namespace with no interfaces), or, where
that is not permitted, with Chromium's proxy and DNS pointed nowhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from feedback import write_demo_dashboard

pytestmark = pytest.mark.slow


def _chromium() -> str | None:
    for name in (os.environ.get("AGENTUNE_CHROMIUM"), "chromium", "chromium-browser"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _offline_prefix() -> tuple[list[str], list[str]]:
    """(command prefix, extra flags) that cut the browser off the network."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"], []
    return [], [
        "--proxy-server=http://127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
        "--host-resolver-rules=MAP * ~NOTFOUND",
    ]


def _run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    prefix, extra = _offline_prefix()
    cmd = [
        *prefix,
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *extra,
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


class _ChartCounter(HTMLParser):
    """Counts drawn SVG elements (with geometry) per dashboard section."""

    def __init__(self) -> None:
        super().__init__()
        self.section: str | None = None
        self.counts: dict[str, dict[str, int]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self.section = a.get("id")
        if self.section is None:
            return
        c = self.counts.setdefault(self.section, {"svg": 0, "path": 0, "use": 0, "text": 0})
        if tag == "svg":
            c["svg"] += 1
        elif tag == "path" and len(a.get("d") or "") > 10:
            c["path"] += 1
        elif tag == "use":
            c["use"] += 1
        elif tag == "text":
            c["text"] += 1


def test_dashboard_renders_offline_in_chromium(tmp_path: Path) -> None:
    binary = _chromium()
    if binary is None:
        pytest.skip("chromium not installed (CI: apt-get update && apt-get install -y chromium)")
    page = write_demo_dashboard(tmp_path / "dashboard.html", seed=0)
    url = page.resolve().as_uri()

    dom = _run_chromium(binary, tmp_path / "p1", "--virtual-time-budget=3000", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    parser = _ChartCounter()
    parser.feed(dom.stdout)
    progress, curves = parser.counts["progress"], parser.counts["curves"]
    assert progress["svg"] == 1 and curves["svg"] == 1
    assert progress["use"] >= 80  # one marker per run
    assert progress["path"] >= 10  # best-so-far line, escalations, axes
    assert curves["path"] >= 150  # one line per run and panel
    assert progress["text"] >= 5  # tick labels and legend as text

    shot = tmp_path / "dashboard.png"
    res = _run_chromium(
        binary, tmp_path / "p2", "--window-size=1400,1400", f"--screenshot={shot}", url
    )
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]  # (H, W, 3) floats in [0, 1]
    assert pixels.shape[0] >= 1000 and pixels.std() > 0.05

    def near(hex_color: str) -> int:
        rgb = np.array([int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5)])
        return int((np.abs(pixels - rgb).max(axis=-1) < 0.12).sum())

    # the tier colours of the chart marks were painted
    assert near("#4C72B0") > 50 and near("#DD8452") > 50 and near("#55A868") > 50
