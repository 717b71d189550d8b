"""Check a built documentation site as a reader's browser would load it.

    mkdocs build -d /tmp/site && python tools/check_site.py /tmp/site
    python tools/check_site.py /tmp/site --screenshots /tmp/shots   # also Chromium screenshots, to look at

Every internal link (``href``) and image (``src``) of every page must lead to a file of the site, and
a link's ``#anchor`` to an ``id`` on its page; no page may show a Sphinx role (``:func:``,
``:class:``, ...) as text. With ``--screenshots`` (needs Debian's ``chromium``), each chapter page
is rendered headless to a PNG.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

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


def screenshots(site: Path, out: Path, pages=PAGES) -> list[Path]:
    """Render each page of ``pages`` headless with Chromium (1280 x 2400) into ``out``."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise RuntimeError("Chromium is not installed (Debian: apt-get install -y chromium)")
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
    p.add_argument("--screenshots", default=None, help="also render the chapter pages to PNGs in this folder")
    args = p.parse_args(argv)
    problems = check(Path(args.site))
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problems in {args.site}")
    if args.screenshots:
        for shot in screenshots(Path(args.site), Path(args.screenshots)):
            print(f"wrote {shot}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
