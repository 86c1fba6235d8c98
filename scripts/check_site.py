"""Open every page of the built docs site in headless Chromium and check that it rendered.

    mkdocs build --strict                                   # writes site/
    python scripts/check_site.py                            # serves site/ on localhost, checks each page
    python scripts/check_site.py --shots /tmp/pages         # and saves a PNG of each page there

For each HTML page of the site (404.html aside) it prints one line: the page, its title and
first heading, its pictures loaded, or what is wrong. A page is wrong when it has no title or
no <h1>, when one of its <img> did not load (naturalWidth 0: a missing or broken file), when
one of its requests got an HTTP error, or when it asked for anything not on localhost (the
site is read offline). The exit code is 1 if any page is wrong, 2 if Chromium cannot start.

It needs Chromium (Debian: `apt-get install chromium`; `--chromium PATH` for another) and
nothing else: Chromium is driven through the DevTools protocol over a pipe
(`--remote-debugging-pipe`: JSON messages ending in a NUL byte on file descriptors 3 and 4),
so no websocket client or browser automation library is needed. It does not run in CI, where
Chromium is not installed.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--mute-audio", "--hide-scrollbars",
]
WIDTH, HEIGHT = 1280, 900

# Run in the page once it has loaded: every picture made to load now (a lazy one below the
# fold would never load in a window nobody scrolls), waited for, then what the check needs.
INSPECT = """
(async () => {
  const images = [...document.images];
  for (const img of images) img.loading = "eager";
  const settled = img => img.complete ? Promise.resolve() : new Promise(done => {
    img.addEventListener("load", done, {once: true});
    img.addEventListener("error", done, {once: true});
  });
  await Promise.race([Promise.all(images.map(settled)), new Promise(done => setTimeout(done, %d))]);
  const h1 = document.querySelector("article h1, main h1, h1");
  return {
    title: document.title,
    h1: h1 ? h1.textContent.trim() : null,
    images: images.map(img => ({src: img.currentSrc || img.src, width: img.naturalWidth, complete: img.complete})),
  };
})()
"""


class BrowserError(RuntimeError):
    """Chromium could not be started, or stopped answering."""


class Chromium:
    """A headless Chromium and its DevTools protocol, over the pipe it reads on fd 3 and writes on fd 4."""

    def __init__(self, executable: str, profile: Path) -> None:
        to_browser, self._to_browser = os.pipe()
        self._from_browser, from_browser = os.pipe()
        self._log = tempfile.TemporaryFile()  # its stderr: read back if it fails
        # posix_spawn's dup2 puts the pipes on fds 3 and 4 of the browser alone (and clears their
        # close-on-exec there); every other fd of this process is close-on-exec (PEP 446).
        self.pid = os.posix_spawn(executable, [
            executable, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}",
            f"--window-size={WIDTH},{HEIGHT}", "about:blank",
        ], os.environ, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_DUP2, self._log.fileno(), 2),
            (os.POSIX_SPAWN_DUP2, to_browser, 3),
            (os.POSIX_SPAWN_DUP2, from_browser, 4),
        ])
        os.close(to_browser)
        os.close(from_browser)
        self.returncode: int | None = None
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except BrowserError:
            pass
        for fd in (self._to_browser, self._from_browser):
            with_suppressed(os.close, fd)
        deadline = time.monotonic() + 10
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        self._log.close()

    def poll(self) -> int | None:
        """Its exit code once it has exited, else None."""
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        """Call `method` and return its result; the events that come meanwhile are kept in `events`."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except OSError as exc:
            raise BrowserError(f"Chromium stopped reading ({exc}){self._stderr()}") from exc
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline, method)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_for(self, method: str, session: str, timeout: float) -> dict[str, Any]:
        """The first event `method` of `session`, among those kept or those to come."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event["method"] == method and event.get("sessionId") == session:
                    self.events.remove(event)
                    return event
            reply = self._read(deadline, method)
            if "method" in reply:
                self.events.append(reply)

    def _read(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        import select

        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"no answer from Chromium within the time allowed, waiting for {waiting_for}")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise BrowserError(f"Chromium exited{self._stderr()}")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _stderr(self) -> str:
        """The end of what it wrote on stderr, once it has exited."""
        if self.poll() is None:
            return ""
        self._log.seek(0)
        return f" (code {self.returncode}): " + self._log.read().decode(errors="replace").strip()[-600:]


def with_suppressed(function: Any, *args: Any) -> None:
    try:
        function(*args)
    except OSError:
        pass


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """The folder served on a free port of 127.0.0.1, in a thread; the server and its base URL."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def pages_of(site: Path) -> list[str]:
    """Every page of the site, as the path after the base URL (`index.html` pages as their folder)."""
    pages = []
    for path in sorted(site.rglob("*.html"), key=lambda p: (p.parent != site, p.relative_to(site).as_posix())):
        relative = path.relative_to(site).as_posix()
        if relative == "404.html":
            continue
        pages.append(relative[: -len("index.html")] if relative.endswith("index.html") else relative)
    return pages


def check_page(browser: Chromium, session: str, base: str, page: str, shots: Path | None,
               timeout: float) -> tuple[str, list[str]]:
    """Open one page; its line of report, and what is wrong with it (empty when nothing)."""
    browser.events.clear()
    url = base + page
    navigated = browser.send("Page.navigate", {"url": url}, session)
    if navigated.get("errorText"):
        return f"{page or '/'}: not opened", [navigated["errorText"]]
    browser.wait_for("Page.loadEventFired", session, timeout)
    found = browser.send("Runtime.evaluate", {"expression": INSPECT % int(timeout * 1000 / 2), "awaitPromise": True,
                                              "returnByValue": True}, session, timeout)
    if "exceptionDetails" in found:
        return f"{page or '/'}: the check's script failed", [json.dumps(found["exceptionDetails"])[:300]]
    seen = found["result"]["value"]
    problems = []
    if not seen["title"]:
        problems.append("no title")
    if not seen["h1"]:
        problems.append("no <h1>")
    for img in seen["images"]:
        if not img["width"]:
            problems.append(f"picture not loaded: {img['src']}")
    host = urlparse(base).netloc
    for event in browser.events:
        params = event.get("params", {})
        if event["method"] == "Network.requestWillBeSent":
            asked = urlparse(params["request"]["url"])
            if asked.scheme in ("http", "https", "ws", "wss") and asked.netloc != host:
                problems.append(f"asks the network: {params['request']['url']}")
        elif event["method"] == "Network.responseReceived" and params["response"]["status"] >= 400:
            problems.append(f"HTTP {params['response']['status']}: {params['response']['url']}")
        elif event["method"] == "Runtime.exceptionThrown":
            problems.append(f"script error: {params['exceptionDetails'].get('text', '')[:200]}")
    if shots is not None:
        metrics = browser.send("Page.getLayoutMetrics", {}, session)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        shot = browser.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": WIDTH, "height": min(size["height"], 20000), "scale": 1},
        }, session, timeout)
        name = (page.strip("/").replace("/", "-").removesuffix(".html") or "index") + ".png"
        (shots / name).write_bytes(base64.b64decode(shot["data"]))
    problems = [problem.replace(base, "/") for problem in problems]  # this run's port said once, not per line
    pictures = len(seen["images"])
    line = f"{page or '/'}: {seen['title']!r} · h1 {seen['h1']!r} · {pictures} picture{'s' * (pictures != 1)}"
    return line, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, default=ROOT / "site", help="the built site (default site/)")
    parser.add_argument("--shots", type=Path, default=None, help="save a PNG of each page into this folder")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium",
                        help="the Chromium to run (default: chromium on the PATH)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds a page may take to load (default 30)")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        print(f"{args.site} has no index.html: build the site first (mkdocs build --strict)", file=sys.stderr)
        return 1
    if not Path(args.chromium).is_file():
        print(f"no Chromium at {args.chromium}: install it (apt-get install chromium) or pass --chromium PATH",
              file=sys.stderr)
        return 2
    if args.shots is not None:
        args.shots.mkdir(parents=True, exist_ok=True)
    server, base = serve(args.site)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="check-site-") as profile:
        browser = Chromium(args.chromium, Path(profile))
        try:
            target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Network"):
                browser.send(f"{domain}.enable", {}, session)
            browser.send("Emulation.setDeviceMetricsOverride",
                         {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False}, session)
            for page in pages_of(args.site):
                line, problems = check_page(browser, session, base, page, args.shots, args.timeout)
                print(f"{'FAIL' if problems else 'ok  '} {line}")
                for problem in problems:
                    print(f"       {problem}")
                failed += bool(problems)
        except BrowserError as exc:
            print(f"Chromium: {exc}", file=sys.stderr)
            return 2
        finally:
            browser.close()
            server.shutdown()
    total = len(pages_of(args.site))
    print(f"{total - failed} of {total} pages rendered with their pictures" + (f"; {failed} wrong" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
