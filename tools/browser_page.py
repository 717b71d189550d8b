"""Drive the page "Try it: SSD in your browser" (docs/try.md) of a built site in headless Chromium,
as a reader would: with Playwright (PyPI) and Debian's ``chromium``, offline -- every request that
does not go to the local server is refused and recorded.

    python tools/browser_page.py site/ docs/screenshots/    # the screenshots the docs show

The tests (tests/test_browser.py) use :func:`open_try_page` and the small steps below.
"""
from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_site import browser_tab  # noqa: E402  (one headless Chromium tab on a locally served site)

PAGE = "try"
READY = "() => window.multissdPage && (window.multissdPage.ready || window.multissdPage.error)"


@contextlib.contextmanager
def open_try_page(site: Path, width: int = 1280, height: int = 1800):
    """The try page of ``site``, served locally and loaded in headless Chromium with the model run on
    the first sample; yields ``(page, refused)``: the Playwright page and the list of URLs it asked
    for outside the local server (refused, as with no network)."""
    refused: list[str] = []
    with browser_tab(Path(site), width, height) as (page, base_url):

        def offline(route):
            if route.request.url.startswith(base_url):
                return route.continue_()
            refused.append(route.request.url)
            return route.abort()

        page.route("**/*", offline)
        page.goto(f"{base_url}/{PAGE}/")
        wait_until_drawn(page)
        yield page, refused


def wait_until_drawn(page, timeout_ms: int = 120_000) -> dict:
    """Wait until the page has run its model and drawn; its ``window.multissdPage``. A page that
    failed raises with the page's own message."""
    page.wait_for_function(READY, timeout=timeout_ms)
    state = page.evaluate("window.multissdPage")
    if not state.get("ready"):
        raise RuntimeError(f"the page failed: {state.get('error')}")
    return state


def choose_sample(page, src: str) -> dict:
    """Click the sample button of ``src`` (``samples/NAME.png``) and wait for its detections."""
    page.evaluate("window.multissdPage.ready = false")
    page.click(f'#ssd-samples button[data-src="{src}"]')
    return wait_until_drawn(page)


def choose_model(page, index: int) -> dict:
    """Select the ``index``-th model of the selector (its first sample is then shown)."""
    page.evaluate("window.multissdPage.ready = false")
    page.select_option("#ssd-model", str(index))
    return wait_until_drawn(page)


def set_slider(page, element_id: str, value: float) -> dict:
    """Move the range input ``element_id`` to ``value`` as a reader's drag does (an input event)."""
    page.eval_on_selector(f"#{element_id}", "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }",
                          str(value))
    return page.evaluate("window.multissdPage")


def select(page, element_id: str, value: str) -> dict:
    """Pick ``value`` in the select ``element_id``."""
    page.select_option(f"#{element_id}", value)
    return page.evaluate("window.multissdPage")


def click_at(page, x: float, y: float) -> dict:
    """Click the picture after NMS at ``(x, y)``, fractions of its width and height."""
    box = page.locator("#ssd-after").bounding_box()
    page.mouse.click(box["x"] + x * box["width"], box["y"] + y * box["height"])
    return page.evaluate("window.multissdPage")


def drag(page, start: tuple[float, float], end: tuple[float, float]) -> dict:
    """Drag on the picture after NMS from ``start`` to ``end`` (fractions of its size)."""
    box = page.locator("#ssd-after").bounding_box()
    page.mouse.move(box["x"] + start[0] * box["width"], box["y"] + start[1] * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + end[0] * box["width"], box["y"] + end[1] * box["height"], steps=4)
    page.mouse.up()
    return page.evaluate("window.multissdPage")


def screenshots(site: Path, out: Path) -> list[Path]:
    """The docs' pictures of the page: a banana found, the anchors at a pixel, a labelling example,
    NMS before/after with a low threshold, and the page at a phone's width."""
    out.mkdir(parents=True, exist_ok=True)
    shots = []

    def shoot(page, name):
        path = out / f"try_{name}.png"
        page.locator("#ssd-app").screenshot(path=str(path))
        shots.append(path)

    with open_try_page(site) as (page, _):
        shoot(page, "banana")
        select(page, "ssd-mode", "anchors")
        select(page, "ssd-scale", "1")
        click_at(page, 0.5, 0.5)
        shoot(page, "anchors")
        select(page, "ssd-mode", "label")
        drag(page, (0.3, 0.3), (0.62, 0.58))
        shoot(page, "labelling")
        select(page, "ssd-mode", "detect")
        set_slider(page, "ssd-threshold", 0.3)
        set_slider(page, "ssd-nms", 0.45)
        shoot(page, "nms")
    with open_try_page(site, width=390, height=1600) as (page, _):
        path = out / "try_phone.png"
        page.screenshot(path=str(path), full_page=False)
        shots.append(path)
    return shots


def model_times(site: Path, runs: int = 10) -> dict[str, float]:
    """Median milliseconds of the banana model's forward pass over ``runs`` runs on one sample: in
    headless Chromium (ONNX Runtime Web, WebAssembly, one thread, as the page runs it) and in this
    Python process (ONNX Runtime, one thread, then its default threads), after one untimed run each;
    and the megabytes the page downloads (the runtime's files, the model, its script and a sample)."""
    import statistics
    import time

    import numpy as np
    import onnxruntime

    with open_try_page(site) as (page, _):
        browser = page.evaluate(f"window.multissdTime({runs})")[-runs:]
    onnx_file = Path(site) / "models" / "banana.onnx"
    images = np.random.default_rng(0).uniform(0, 255, (1, 3, 256, 256)).astype(np.float32)
    found = {"chromium_wasm_1_thread_ms": statistics.median(browser)}
    for threads in (1, 0):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        session.run(None, {"images": images})
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            session.run(None, {"images": images})
            times.append(1000 * (time.perf_counter() - started))
        found[f"python_onnxruntime_{threads or 'default'}_threads_ms"] = statistics.median(times)
    served = [*(Path(site) / "javascripts" / "ort").iterdir(), onnx_file, *(Path(site) / "javascripts" / "ssd").glob("*.js")]
    found["download_mb"] = sum(path.stat().st_size for path in served) / 1e6
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="a site built by mkdocs build")
    parser.add_argument("out", type=Path, help="folder for the screenshots")
    parser.add_argument("--time", action="store_true", help="also time the model here and in Chromium")
    args = parser.parse_args(argv)
    for path in screenshots(args.site, args.out):
        print(path)
    if args.time:
        print(model_times(args.site))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
