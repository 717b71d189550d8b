"""Check a built documentation site as a reader's browser would load it.

    mkdocs build -d /tmp/site && python tools/check_site.py /tmp/site
    python tools/check_site.py /tmp/site --screenshots /tmp/shots   # also Chromium screenshots, to look at

Every internal link (``href``) and image (``src``) of every page must lead to a file of the site, and
a link's ``#anchor`` to an ``id`` on its page; no page may show a Sphinx role (``:func:``,
``:class:``, ...) as text. With ``--browser`` (needs Debian's ``chromium``), each page is also
loaded headless with its scripts running: every formula must be typeset by MathJax (no raw TeX
left), every image must load and decode (a figure a reader would see as a broken icon), and clicking
one "Paddle" tab must switch every linked tab set of the page to Paddle. With ``--screenshots``, each
chapter page is rendered headless to a PNG; with ``--figures NAME ...`` (Playwright), each named
figure is captured as it stands on its page, to look at.

    python tools/check_site.py /tmp/site --figures lesson9_nms.png lesson9_grid.png --out /tmp/figs
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import html
import json
import re
import shutil
import subprocess
import sys
import threading
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from page_notebooks import TABS  # noqa: E402  (the backend tab names, defined once)

ROLE = re.compile(r":(class|func|meth|data|mod|attr):[`<]")
PAGES = ("training", "labelling", "nms", "performance", "model", "export", "api")


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str]] = []  # (attribute, value)
        self.ids: set[str] = set()
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for key in ("href", "src"):
            if attrs.get(key) and not (tag == "link" and key == "href" and "canonical" in (attrs.get("rel") or "")):
                self.refs.append((key, attrs[key]))
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def check(site: Path) -> list[str]:
    """Problems found in the built site ``site`` (empty: none)."""
    site = Path(site)
    pages = {path: _parse(path) for path in site.rglob("*.html")}
    problems = []
    for path, page in pages.items():
        name = path.relative_to(site)
        if ROLE.search("".join(page.text)):
            problems.append(f"{name}: shows a Sphinx role as text: {ROLE.search(''.join(page.text)).group(0)}")
        for key, value in page.refs:
            parts = urlsplit(value)
            if parts.scheme or value.startswith(("//", "mailto:", "javascript:")):
                continue  # external: not this site's to check
            base = site if parts.path.startswith("/") else path.parent  # 404.html links from the site's root
            target = (base / unquote(parts.path.lstrip("/"))).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                problems.append(f"{name}: broken {key} {value!r}")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    problems.append(f"{name}: {value!r} names no element of {target.relative_to(site)}")
    return problems


# Appended to a copy of a page: once the page's scripts ran, count the formulas MathJax typeset,
# click the first "Paddle" tab, and record which tab every tab set shows, on <body data-probe>.
_PROBE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const shown = () => [...document.querySelectorAll(".tabbed-set")].map(set => {
    const inputs = [...set.querySelectorAll(":scope > input")];
    const labels = [...set.querySelectorAll(":scope > .tabbed-labels > label")];
    const i = inputs.findIndex(x => x.checked);
    return i < 0 || !labels[i] ? "?" : labels[i].textContent.trim();
  });
  const before = shown();
  const paddle = [...document.querySelectorAll(".tabbed-labels > label")].find(l => l.textContent.trim() === "Paddle");
  if (paddle) paddle.click();
  setTimeout(() => {
    const math = [...document.querySelectorAll(".arithmatex")];
    const images = [...document.querySelectorAll("article img")];
    document.body.setAttribute("data-probe", JSON.stringify({
      before, after: shown(), formulas: math.length,
      typeset: math.filter(m => m.querySelector("mjx-container")).length, images: images.length,
      broken: images.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute("src"))}));
  }, 1000);
}, 3000));
</script>"""


def chromium() -> str:
    """Debian's Chromium; a ``RuntimeError`` saying how to install it."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise RuntimeError("Chromium is not installed (Debian: apt-get install -y chromium)")
    return browser


@contextlib.contextmanager
def serve(site: Path):
    """Serve ``site`` over HTTP on a free local port while the block runs; yields the base URL.
    (Material links its tab sets through the page's storage, which a ``file://`` page lacks.)"""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def probe(site: Path, name: str, base_url: str) -> dict:
    """Load page ``name`` of ``site`` (served at ``base_url``) headless with its scripts and return
    what :data:`_PROBE` recorded: ``before``/``after`` (the tab each tab set shows before and after
    clicking a "Paddle" tab), ``formulas`` and ``typeset`` (how many of them MathJax rendered)."""
    page = Path(site) / name / "index.html"
    copy = page.with_name("_probe.html")
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    try:
        dom = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=15000",
                              "--dump-dom", f"{base_url}/{name}/_probe.html"],
                             check=True, capture_output=True, text=True, timeout=120).stdout
    finally:
        copy.unlink()
    found = re.search(r'data-probe="([^"]*)"', dom)
    if found is None:
        raise RuntimeError(f"{name}: the page's scripts did not finish in the headless browser")
    return json.loads(html.unescape(found.group(1)))


def browser_problems(site: Path) -> list[str]:
    """Problems a reader's browser would show on any page: formulas left as TeX, images that do not
    load, linked tabs that do not follow."""
    problems = []
    with serve(site) as base_url:
        for page in sorted(Path(site).glob("*/index.html")):
            problems += _page_problems(page.parent.name, probe(site, page.parent.name, base_url))
    return problems


def _page_problems(name: str, seen: dict) -> list[str]:
    """What :func:`probe` saw on page ``name`` that a reader would call broken."""
    problems = []
    if seen["typeset"] != seen["formulas"]:
        problems.append(f"{name}: {seen['formulas'] - seen['typeset']} of {seen['formulas']} formulas not typeset")
    linked = [after for before, after in zip(seen["before"], seen["after"]) if before in TABS]
    if any(after != "Paddle" for after in linked):
        problems.append(f"{name}: after clicking Paddle the tab sets show {linked}")
    for src in seen.get("broken", []):
        problems.append(f"{name}: image {src!r} did not load")
    return problems


@contextlib.contextmanager
def browser_tab(site: Path, width: int = 1280, height: int = 1200):
    """A headless Chromium tab (Playwright, Debian's ``chromium``) ``width x height``, with ``site``
    served locally while the block runs; yields ``(page, base_url)``, nothing loaded yet."""
    from playwright.sync_api import sync_playwright

    with serve(Path(site)) as base_url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            yield browser.new_page(viewport={"width": width, "height": height}), base_url
        finally:
            browser.close()


def figure_shots(site: Path, out: Path, figures, width: int = 1280) -> list[Path]:
    """Each figure of ``figures`` captured as a reader sees it: its ``<img>`` on the page that shows
    it, in headless Chromium (Playwright) ``width`` pixels wide, saved as ``out/<file name>``. A name
    without a folder is under ``docs/figures`` (``lesson9_nms.png``); one with a folder is relative to
    ``docs`` (``logs/small_objects.png``). The site's fixed header is hidden so that it does not lie
    over a tall figure. ``ValueError`` for a figure no page shows."""
    site, out = Path(site), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sources = {figure: figure if "/" in figure else f"figures/{figure}" for figure in figures}
    where = {}
    for page in sorted(site.glob("*/index.html")):
        text = page.read_text(encoding="utf-8")
        for figure, source in sources.items():
            if source in text:
                where.setdefault(figure, page.parent.name)
    missing = [figure for figure in figures if figure not in where]
    if missing:
        raise ValueError(f"no page of {site} shows {missing}")
    written = []
    with browser_tab(site, width) as (page, base_url):
        for figure in figures:
            page.goto(f"{base_url}/{where[figure]}/")
            page.add_style_tag(content=".md-header, .md-tabs { visibility: hidden !important; }")
            image = page.locator(f'article img[src$="{sources[figure]}"]').first
            image.scroll_into_view_if_needed()
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
            shot = out / Path(figure).name
            image.screenshot(path=str(shot))
            written.append(shot)
    return written


def screenshots(site: Path, out: Path, pages=PAGES) -> list[Path]:
    """Render each page of ``pages`` headless with Chromium (1280 x 2400) into ``out``."""
    browser = chromium()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in pages:
        shot = out / f"{name}.png"
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--window-size=1280,2400", f"--screenshot={shot}", (site / name / "index.html").as_uri()],
                       check=True, capture_output=True, timeout=120)
        written.append(shot)
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("site", help="the folder mkdocs built")
    p.add_argument("--browser", action="store_true",
                   help="also load every page in headless Chromium: formulas typeset, linked tabs switch together")
    p.add_argument("--screenshots", default=None, help="also render the chapter pages to PNGs in this folder")
    p.add_argument("--figures", nargs="+", default=(), metavar="NAME",
                   help="capture these figures as their pages show them, into --out: file names under docs/figures, or "
                        "paths under docs (logs/small_objects.png)")
    p.add_argument("--out", default="figure-shots", help="the folder for --figures (default figure-shots)")
    args = p.parse_args(argv)
    problems = check(Path(args.site))
    if args.browser:
        problems += browser_problems(Path(args.site))
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problems in {args.site}")
    if args.screenshots:
        for shot in screenshots(Path(args.site), Path(args.screenshots)):
            print(f"wrote {shot}")
    for shot in figure_shots(Path(args.site), Path(args.out), args.figures) if args.figures else ():
        print(f"wrote {shot}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
