#!/usr/bin/env python
"""Check TensorBoard itself on a run folder, in a real browser (docs/monitoring.md).

    python scripts/check_tensorboard.py runs/NAME [--screenshot docs/img/tensorboard.png]
    python scripts/check_tensorboard.py            # makes a smoke run in a temporary folder first

Starts ``tensorboard --logdir`` on the run's parent folder (as `tensorboard --logdir runs`) on localhost, opens it in headless Chromium (Debian's
``chromium`` package at /usr/bin/chromium, driven by Playwright for Python with that executable;
Playwright's own browser download is never used), and checks that

- the Scalars view loads and shows the documented tags (docs/monitoring.md): every ``rollout/``,
  ``train/``, ``aux/``, ``time/`` and ``env/`` tag the run wrote, with a chart;
- the Images view shows ``rollout/frames``;
- the Text view shows the ``config`` panel with the run's YAML.

Saves screenshots of the three views (the scalars one at ``--screenshot``, shown in
docs/monitoring.md). Exit status 0 when everything showed, 1 with the list of what did not.
Needs ``pip install -e '.[browser]'`` and ``apt install chromium``.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def logged_tags(run: Path) -> tuple[set[str], set[str], set[str]]:
    """(scalar, image, text) tags in the run's event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars, images, texts = set(), set(), set()
    for events in run.glob("events.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        tags = acc.Tags()
        scalars |= set(tags["scalars"])
        images |= set(tags["images"])
        texts |= {t.removesuffix("/text_summary") for t in tags.get("tensors", [])}
    return scalars, images, texts


def smoke_run(folder: Path) -> Path:
    """A short run with scalars, images and the config text (the CI smoke config)."""
    cmd = [sys.executable, "train_ppo.py", "--config", "configs/smoke.yaml", "--runs-dir", str(folder)]
    cmd += ["--run-name", "smoke", "log.progress=false", "total_frames=128"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return folder / "smoke"


def start_tensorboard(logdir: Path, port: int) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("tensorboard")
    proc = subprocess.Popen(
        [str(exe), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/data/logdir", timeout=2)
            return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"tensorboard exited: {proc.stderr.read().decode()[-2000:]}") from None
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("tensorboard did not answer within 60 s")


def _shows(page, text: str, timeout_ms: int = 15_000) -> bool:
    try:
        page.get_by_text(text, exact=True).first.wait_for(state="visible", timeout=timeout_ms)
        return True
    except Exception:  # playwright's TimeoutError: not shown
        return False


def check(
    url: str,
    run_name: str,
    scalars: set[str],
    images: set[str],
    texts: set[str],
    shots: Path,
    scalars_png: Path,
) -> list[str]:
    """Open the three views; returns what did not show."""
    from playwright.sync_api import sync_playwright

    missing: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        # Scalars: the time-series dashboard, one card per tag (rendered lazily: filter to each)
        page.goto(f"{url}/#timeseries", wait_until="networkidle")
        page.fill("input[placeholder='Filter runs (regex)']", f"^{run_name}$")
        tag_filter = page.locator("input[placeholder='Filter tags (regex)']")
        for tag in sorted(scalars):
            tag_filter.fill(f"^{tag}$")
            if not _shows(page, tag):
                missing.append(f"scalar {tag}")
        tag_filter.fill(
            "rollout/ep_return_mean|rollout/ep_len_mean|train/entropy|train/value_loss|time/fps|aux/bc_kl"
        )
        tag_filter.press("Escape")  # close the tag autocomplete over the charts
        try:  # fold the settings panel away for the screenshot
            page.locator("button:has-text('Settings')").first.click(timeout=3000)
        except Exception:
            pass
        page.wait_for_timeout(3000)
        if page.locator("line-chart canvas, line-chart svg, canvas").count() == 0:
            missing.append("scalar charts (nothing drawn)")
        page.screenshot(path=str(scalars_png))
        # Images
        page.goto(f"{url}/#images", wait_until="networkidle")
        for tag in sorted(images):
            if not _shows(page, tag, 30_000):
                missing.append(f"image {tag}")
        if page.locator("img").count() == 0:
            missing.append("image strip (no <img> drawn)")
        page.screenshot(path=str(shots / "tensorboard_images.png"))
        # Text
        page.goto(f"{url}/#text", wait_until="networkidle")
        for tag in sorted(texts):
            if not _shows(page, tag, 30_000):
                missing.append(f"text {tag}")
        try:  # the YAML sits in the text card's shadow DOM; playwright's text locators pierce it
            page.get_by_text(f"run_name: {run_name}", exact=False).first.wait_for(
                state="visible", timeout=30_000
            )
        except Exception:
            missing.append(f"config text (run_name: {run_name} not shown)")
        page.screenshot(path=str(shots / "tensorboard_text.png"))
        browser.close()
    return missing


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", nargs="?", type=Path, help="run folder (default: a fresh smoke run)")
    p.add_argument("--screenshot", type=Path, default=ROOT / "docs" / "img" / "tensorboard.png")
    args = p.parse_args()
    if not Path(CHROMIUM).is_file():
        raise SystemExit(
            f"{CHROMIUM} not found: apt install chromium (Playwright's browser download is not used)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or smoke_run(Path(tmp))
        scalars, images, texts = logged_tags(run)
        print(f"{run}: {len(scalars)} scalar tags, images {sorted(images)}, text {sorted(texts)}")
        port = free_port()
        tb = start_tensorboard(run.parent, port)  # the parent, as `tensorboard --logdir runs`
        try:
            args.screenshot.parent.mkdir(parents=True, exist_ok=True)
            missing = check(
                f"http://127.0.0.1:{port}",
                run.name,
                scalars,
                images,
                texts,
                args.screenshot.parent,
                args.screenshot,
            )
        finally:
            tb.terminate()
            tb.wait(timeout=10)
    if missing:
        print("not shown by TensorBoard:\n  " + "\n  ".join(missing))
        return 1
    print(f"TensorBoard shows every scalar, image and text tag; screenshot {args.screenshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
