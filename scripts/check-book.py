#!/usr/bin/python3
"""Open every page of the built book in headless Chromium, as a reader would, and fail on what
the reader would see broken: an include mdBook left unexpanded, a link to a page or an anchor that
does not exist, an image that does not load, a request that fails, or a script error. Saves a
screenshot of each chapter under target/book-screenshots/.

    scripts/check-book.py [BOOK_DIR]     check the built book (default: book/build)
    scripts/check-book.py --self-test    break a tiny book in each of those ways; each must fail

Uses Debian's chromium, chromium-driver and python3-selenium (scripts/setup.sh installs them),
hence /usr/bin/python3 above: Debian's Python is the one that sees python3-selenium.
"""

import argparse
import base64
import ctypes
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

PROG = "check-book"
TOP = Path(__file__).resolve().parent.parent
WIDTH = 1280
# A screenshot shows the whole page down to this many pixels (the checks see all of it): enough
# for every chapter's diagrams, small enough that the matrix does not make a 100 MB picture.
MAX_HEIGHT = 12000
# Pages that are not chapters: the print page repeats every chapter (checked, no screenshot),
# the sidebar's fallback for readers without JavaScript, and 404.html, which uses <base href="/">
# and so only works at the root of a web server (mdBook shows it for a missing URL).
NOT_CHAPTERS = {"print.html", "toc.html", "index.html"}
SKIPPED = {"404.html"}


def die(message, hint=None):
    print(f"{PROG}: error: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
    sys.exit(1)


# Runs in the page once it has loaded: waits for the fonts and the images, then reports what the
# Python side checks. Links are read from the DOM after the book's scripts ran, so the sidebar
# (built by toc.js) and anything a theme script adds is checked too.
PAGE_STATE_JS = r"""
const done = arguments[arguments.length - 1];
(async () => {
    const settle = (ms) => new Promise((r) => setTimeout(r, ms));
    await Promise.race([document.fonts.ready, settle(5000)]);
    document.querySelectorAll('img[loading="lazy"]').forEach((img) => { img.loading = 'eager'; });
    const images = Array.from(document.images);
    await Promise.race([
        Promise.all(images.map((img) => img.complete ? null : new Promise((r) => {
            img.addEventListener('load', r, { once: true });
            img.addEventListener('error', r, { once: true });
        }))),
        settle(10000),
    ]);
    // One frame and a short pause, so timers a page sets on load have run (and thrown).
    await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 150)));
    const html = document.documentElement.outerHTML;
    return {
        includes: Array.from(new Set(html.match(/\{\{#[^}\n]{0,100}\}?\}?/g) || [])),
        ids: Array.from(document.querySelectorAll('[id]'), (e) => e.id)
            .concat(Array.from(document.querySelectorAll('a[name]'), (e) => e.name)),
        links: Array.from(document.querySelectorAll('a[href]'), (a) => ({
            href: a.getAttribute('href'),
            url: a.href,
            text: a.textContent.trim().replace(/\s+/g, ' ').slice(0, 50),
        })),
        sidebar: Array.from(document.querySelectorAll('#sidebar a[href]'), (a) => a.href),
        images: images.filter((img) => !img.complete || img.naturalWidth === 0)
            .map((img) => img.getAttribute('src')),
        image_count: images.length,
        height: Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0),
    };
})().then(done, (e) => done({ failed: String(e) }));
"""


class Browser:
    """Headless Chromium under chromedriver, in a temporary directory of its own (profile, HOME,
    TMPDIR) that close() removes after making sure no process it started is still running."""

    def __init__(self):
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        chromedriver = shutil.which("chromedriver") or (
            "/usr/bin/chromedriver" if os.access("/usr/bin/chromedriver", os.X_OK) else None)
        if not chromium or not chromedriver:
            die("chromium and chromedriver are needed to check the book in a browser",
                "run scripts/setup.sh, or: apt-get install chromium chromium-driver python3-selenium")
        try:
            from selenium import webdriver
            from selenium.webdriver.chrome.service import Service
        except ImportError:
            die(f"the Python module selenium is not installed for {sys.executable}",
                "run scripts/setup.sh (it installs python3-selenium for /usr/bin/python3, which "
                "scripts/check-book.py runs under when started as a command)")

        # PR_SET_CHILD_SUBREAPER (prctl(2)): the browser's helpers that outlive their parent become
        # our children, not init's, so close() can wait for every one of them.
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(36, 1, 0, 0, 0) != 0:
            die(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")
        self.tmp = tempfile.mkdtemp(prefix="check-book.")
        self.driver = None
        env = dict(os.environ)
        for var, sub in [("HOME", "home"), ("TMPDIR", "tmp"), ("XDG_CONFIG_HOME", "config"),
                         ("XDG_CACHE_HOME", "cache"), ("XDG_DATA_HOME", "data")]:
            os.makedirs(os.path.join(self.tmp, sub))
            env[var] = os.path.join(self.tmp, sub)

        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for arg in ["--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
                    f"--user-data-dir={self.tmp}/profile", f"--window-size={WIDTH},900",
                    "--hide-scrollbars", "--no-first-run", "--no-default-browser-check",
                    "--disable-extensions", "--disable-background-networking", "--disable-sync",
                    "--disable-component-update", "--force-color-profile=srgb"]:
            options.add_argument(arg)
        if os.geteuid() == 0:
            options.add_argument("--no-sandbox")  # Chromium refuses to run as root with its sandbox
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.log_path = os.path.join(self.tmp, "chromedriver.log")
        service = Service(executable_path=chromedriver, log_path=self.log_path, env=env)
        try:
            self.driver = webdriver.Chrome(service=service, options=options)
        except Exception as e:  # selenium's own exception types say little more
            log = Path(self.log_path).read_text(errors="replace")[-2000:] if os.path.exists(self.log_path) else ""
            self.close()
            die(f"cannot start headless chromium: {str(e).strip().splitlines()[0]}",
                "its log ends with: " + log.strip().replace("\n", " | ")[-500:] if log else None)
        self.driver.set_page_load_timeout(30)
        self.driver.set_script_timeout(30)
        # The print page prints itself on load; a headless browser has nothing to print to.
        self.cdp("Page.addScriptToEvaluateOnNewDocument", {"source": "window.print = () => {};"})

    def cdp(self, cmd, params):
        return self.driver.execute_cdp_cmd(cmd, params)

    def logs(self):
        return self.driver.get_log("browser")

    def close(self):
        if self.driver is not None:
            try:
                self.driver.quit()
            except Exception:
                pass
            self.driver = None
        # quit() ends the browser; its helpers (zygotes, crash handler) may outlive it by a
        # moment. As their subreaper we are their parent now: wait for them, reap them, and end
        # any that stay, so that nothing of the browser is left running, nor as a zombie.
        deadline = time.monotonic() + 5
        while (left := self._reap()) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if left:
            print(f"{PROG}: warning: killed {len(left)} browser processes still running after it quit",
                  file=sys.stderr)
            while self._reap() and time.monotonic() < deadline + 5:
                time.sleep(0.05)
        shutil.rmtree(self.tmp, ignore_errors=True)

    @staticmethod
    def _reap():
        """Reap the children that have exited; return the pids of those still running."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return []
            if pid == 0:
                break
        me = str(os.getpid())
        children = []
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/stat") as f:
                    # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[1] == me:
                children.append(int(entry))
        return children


def classify(entry, book):
    """One line for a SEVERE entry of the browser's log (exceptions, console.error, failed loads),
    with the book's own URLs shortened to their path in the book."""
    message = entry.get("message", "").replace(book.as_uri() + "/", "")
    source = entry.get("source", "")
    if source == "network":
        return f"failed request: {message}"
    if source == "console-api":
        return f"console error: {message}"
    return f"script error: {message}"


def check_book(browser, book, shots=None):
    """Check every page of the built book in `book`; return (problems, stats). With `shots`, save a
    screenshot of each chapter there."""
    book = Path(book).resolve()
    pages = sorted(p.relative_to(book).as_posix() for p in book.rglob("*.html"))
    pages = [p for p in pages if p not in SKIPPED]
    if not pages:
        die(f"no pages in {book}", "build the book first: scripts/build-book.sh")
    # index.html first: its sidebar says which pages are chapters, and in which order.
    if "index.html" in pages:
        pages.remove("index.html")
        pages.insert(0, "index.html")
    if shots:
        shots = Path(shots)
        shots.mkdir(parents=True, exist_ok=True)
        for old in shots.glob("*.png"):
            old.unlink()

    problems = []
    states = {}
    chapters = None
    browser.logs()  # drop what an earlier book left
    for page in pages:
        url = (book / page).as_uri()
        try:
            browser.driver.get(url)
            state = browser.driver.execute_async_script(PAGE_STATE_JS)
        except Exception as e:
            problems.append((page, f"the page did not load: {str(e).strip().splitlines()[0]}"))
            continue
        if not isinstance(state, dict) or "failed" in state:
            problems.append((page, f"cannot read the page: {state}"))
            continue
        states[page] = state
        if chapters is None:
            chapters = []
            for target in state["sidebar"]:
                rel = book_path(book, target)
                if rel and rel not in chapters and rel not in NOT_CHAPTERS:
                    chapters.append(rel)
        for text in state["includes"]:
            problems.append((page, f"unexpanded include: {text}"))
        for src in state["images"]:
            problems.append((page, f"image did not load: {src}"))
        if shots and (page in chapters if chapters else page not in NOT_CHAPTERS):
            number = chapters.index(page) + 1 if chapters else len(list(shots.glob("*.png"))) + 1
            name = f"{number:02d}-{Path(page).stem}.png"
            screenshot(browser, state["height"], shots / name)
        for entry in browser.logs():
            if entry.get("level") == "SEVERE":
                problems.append((page, classify(entry, book)))

    problems += check_links(book, states)
    stats = {
        "pages": len(states),
        "links": sum(len(s["links"]) for s in states.values()),
        "images": sum(s["image_count"] for s in states.values()),
        "screenshots": len(list(shots.glob("*.png"))) if shots else 0,
    }
    return grouped(problems), stats


def grouped(problems):
    """One line per problem, naming the page; the same problem on many pages (a broken link in the
    sidebar, an error in a theme script) is one line that names the first and counts the rest."""
    pages = {}
    for page, message in problems:
        pages.setdefault(message, [])
        if page not in pages[message]:
            pages[message].append(page)
    return [f"{where[0]}{f' and {len(where) - 1} more pages' if len(where) > 1 else ''}: {message}"
            for message, where in pages.items()]


def book_path(book, url):
    """The path inside the book of a file:// URL, or None for one outside it or not a file."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "file":
        return None
    path = Path(urllib.parse.unquote(parts.path))
    try:
        return path.relative_to(book).as_posix()
    except ValueError:
        return None


def check_links(book, states):
    """Every link to the book's own pages must reach a page that exists, and an anchor in it."""
    problems = []
    for page, state in states.items():
        for link in state["links"]:
            parts = urllib.parse.urlsplit(link["url"])
            if parts.scheme != "file":
                continue  # http(s) to other hosts, mailto:, javascript:
            target = book_path(book, link["url"].split("#")[0])
            fragment = urllib.parse.unquote(parts.fragment)
            shown = f'"{link["href"]}"' + (f' ("{link["text"]}")' if link["text"] else "")
            if target is None:
                why = "leads out of the book"
            elif not (book / target).is_file():
                why = f"no page {target} in the book"
            elif target.endswith(".html") and fragment and target in states \
                    and fragment not in states[target]["ids"]:
                why = f'{target} has no element with id "{fragment}"'
            elif target.endswith(".html") and fragment and target not in states:
                why = f"{target} was not checked, so its anchors are unknown"
            else:
                continue
            kind = "broken anchor" if fragment and target and (book / target).is_file() else "broken link"
            problems.append((page, f"{kind} {shown}: {why}"))
    return problems


def screenshot(browser, height, path):
    """The page at WIDTH pixels wide and its whole height (up to MAX_HEIGHT), as PNG."""
    height = max(600, min(int(height), MAX_HEIGHT))
    browser.cdp("Emulation.setDeviceMetricsOverride",
                {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False})
    try:
        browser.driver.execute_async_script(
            "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(done));")
        # Faster encoding for a somewhat larger file: a 12000-pixel page takes half the time.
        data = browser.cdp("Page.captureScreenshot", {"format": "png", "optimizeForSpeed": True})["data"]
    finally:
        browser.cdp("Emulation.clearDeviceMetricsOverride", {})
    path.write_bytes(base64.b64decode(data))


# The self-test: a two-page book that passes, and copies of it broken in one way each. Every
# broken copy must fail with the expected kind of problem, and the clean one must pass.
FIXTURE = {
    "index.html": """<!DOCTYPE html><html><head><meta charset="utf-8"><title>fixture</title>
<link rel="stylesheet" href="style.css"></head><body>
<h1 id="top">A fixture</h1>
<p><a href="other.html">next</a> <a href="other.html#part-two">part two</a> <a href="#top">top</a>
<a href="https://example.invalid/elsewhere">outside</a> <a href="mailto:x@example.invalid">mail</a></p>
<p><img src="diagrams/flow.svg" alt="a diagram"></p>
<script src="book.js"></script>
<!--BREAK-->
</body></html>
""",
    "other.html": """<!DOCTYPE html><html><head><meta charset="utf-8"><title>other</title></head>
<body><h2 id="part-two">Part two</h2><a href="index.html#top">back</a></body></html>
""",
    "style.css": "body { font-family: sans-serif; }\n",
    "book.js": "window.bookLoaded = true;\n",
    # Like Graphviz's output: a size in points and a viewBox.
    "diagrams/flow.svg": """<svg xmlns="http://www.w3.org/2000/svg" width="62pt" height="44pt"
viewBox="0 0 62 44"><rect x="1" y="1" width="60" height="42" fill="none" stroke="black"/></svg>
""",
    # Some tools write only a viewBox: a valid image all the same.
    "diagrams/scalable.svg": """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">
<circle cx="5" cy="5" r="4"/></svg>
""",
}
# (what is broken, what the page gets instead of <!--BREAK-->, files replaced, expected problem)
BREAKAGES = [
    ("nothing (a viewBox-only SVG is a valid image)", '<img src="diagrams/scalable.svg">', {}, None),
    ("an include left unexpanded", "<p>{{#include ../../steps/step01/src/main.rs:run}}</p>", {},
     "unexpanded include: {{#include ../../steps/step01/src/main.rs:run}}"),
    ("an anchor missing on another page", '<a href="other.html#part-three">3</a>', {},
     'broken anchor "other.html#part-three" ("3"): other.html has no element with id "part-three"'),
    ("an anchor missing on the same page", '<a href="#bottom">b</a>', {},
     'broken anchor "#bottom" ("b"): index.html has no element with id "bottom"'),
    ("a link to a page that does not exist", '<a href="ch99.html">99</a>', {},
     'broken link "ch99.html" ("99"): no page ch99.html in the book'),
    ("a link out of the book", '<a href="../steps/step01/src/main.rs">src</a>', {},
     'broken link "../steps/step01/src/main.rs" ("src"): leads out of the book'),
    ("an image that does not exist", '<img src="diagrams/missing.svg">', {},
     "image did not load: diagrams/missing.svg"),
    ("an image that is not an image", '<img src="diagrams/bad.svg">',
     {"diagrams/bad.svg": "<svg this is not XML"}, "image did not load: diagrams/bad.svg"),
    ("a script that throws", '<script>throw new Error("boom in the page")</script>', {},
     "script error:"),
    ("a script that throws after load", '<script>setTimeout(() => null.boom, 0)</script>', {},
     "script error:"),
    ("a promise rejected and not handled",
     '<script>Promise.reject(new Error("rejected in the page"))</script>', {}, "script error:"),
    ("a book script that throws", "", {"book.js": "window.undefinedFunction();\n"},
     "script error:"),
    ("a console error", '<script>console.error("something is off")</script>', {},
     "console error:"),
    ("a script that does not exist", '<script src="theme/gone.js"></script>', {},
     "failed request:"),
    ("a stylesheet that does not exist", '<link rel="stylesheet" href="theme/gone.css">', {},
     "failed request:"),
]


def self_test(browser):
    failures = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="check-book-fixture.") as tmp:
        for n, (what, html, files, expected) in enumerate(BREAKAGES):
            book = Path(tmp) / f"book{n:02d}"
            for name, text in {**FIXTURE, **files}.items():
                (book / name).parent.mkdir(parents=True, exist_ok=True)
                (book / name).write_text(text.replace("<!--BREAK-->", html))
            problems, _ = check_book(browser, book)
            if expected is None:
                ok = not problems
                seen = "passes" if ok else "FAILS: " + "; ".join(problems)
            else:
                ok = any(expected in p for p in problems)
                if ok:
                    seen = "caught: " + next(p for p in problems if expected in p)
                else:
                    seen = f"MISSED (expected {expected!r}); got: " + ("; ".join(problems) or "nothing")
            print(f"{PROG}: self-test: {what}: {seen}")
            if not ok:
                failures.append(what)
    took = time.monotonic() - started
    if failures:
        die(f"self-test: the check is wrong about {len(failures)} of {len(BREAKAGES)} cases: "
            + ", ".join(failures))
    print(f"{PROG}: self-test: all {len(BREAKAGES)} cases as expected ({took:.1f} s)")


def main():
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("book", nargs="?", default=str(TOP / "book" / "build"),
                        help="the built book (default: book/build)")
    parser.add_argument("--self-test", action="store_true",
                        help="check copies of a tiny book, each broken in one way, and nothing else")
    parser.add_argument("--screenshots", default=str(TOP / "target" / "book-screenshots"),
                        help="where to save a PNG of each chapter (default: target/book-screenshots)")
    args = parser.parse_args()
    if not args.self_test and not (Path(args.book) / "index.html").is_file():
        die(f"no built book in {args.book}", "build it first: scripts/build-book.sh")

    # A SIGTERM (a CI timeout) unwinds like Ctrl-C, so the browser is closed and its files removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    browser = Browser()
    try:
        if args.self_test:
            self_test(browser)
            return
        problems, stats = check_book(browser, args.book, args.screenshots)
    finally:
        browser.close()
    took = time.monotonic() - started
    if problems:
        for problem in problems:
            print(f"{PROG}: error: {problem}", file=sys.stderr)
        count = f"{len(problems)} problem" + ("s" if len(problems) > 1 else "")
        die(f"{count} in the built book, seen in headless Chromium",
            "open the page named above in a browser to see it; the chapters are in book/src/, "
            "the book's own scripts and styles in book/theme/")
    shots = os.path.relpath(args.screenshots)
    print(f"{PROG}: {stats['pages']} pages, {stats['links']} links, {stats['images']} images: no problems "
          f"({took:.1f} s); a screenshot of each of the {stats['screenshots']} chapters is in {shots}/")


if __name__ == "__main__":
    main()
