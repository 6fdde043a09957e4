"""The daemon's page in headless Chromium (selenium + Debian's chromium-driver),
against a daemon in-process and a libtorrent seeder, all on 127.0.0.1.

At a phone viewport (390x844, dark) and a desktop one (1280x900, light), the
browser logs in through the login form, adds a magnet link whose only peer is
the seeder (``x.pe``: no tracker, no DHT), watches the row's progress climb to
100% from the live event stream, sets a file to skip, reads the media file's
play link with its cookie, pauses and resumes, removes the torrent with its
data, and logs out; the browser's console holds no error.  Screenshots go to
the test's temporary directory (under ``_trial_temp``).

Chromium never leaves the machine: no proxy, no background, component,
sync or first-run traffic, and a host resolver that maps every name but
127.0.0.1 to nothing.  Selenium is given the driver's path, so Selenium
Manager (which downloads drivers) never runs.

The browser is synchronous: its whole session runs in a thread
(``deferToThread``) while the reactor serves the daemon; every wait there
has a deadline, and the driver quits in a ``finally``.  The daemon's state
is read back on the reactor thread once the browser is done.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from collections.abc import Callable, Generator
from typing import Any

from twisted.internet import reactor, task, threads
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.resource import Resource

from tests.integration import ltutil
from txbittorrent.core.metainfo import parse
from txbittorrent.daemon.service import DaemonConfig, DaemonService
from txbittorrent.storage.create import create_torrent

try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - depends on the machine
    webdriver = None

CHROMIUM = next((p for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
                 if os.path.exists(p)), None)
CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)

PIECE = 32 * 1024
FILES = {"clip.mp4": 1024 * 1024, "notes.txt": 200 * 1024, "extra.bin": 300 * 1024}
"""The torrent's files (under one directory): a media file and two others."""
RATE = 400 * 1024
"""The seeder's upload limit to local peers (bytes/s): a few seconds of progress to watch."""
WAIT = 60.0
"""Seconds any one wait in the browser may take."""
PHONE = (390, 844)
DESKTOP = (1280, 900)

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--no-proxy-server",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-client-side-phishing-detection",
    "--disable-domain-reliability",
    "--disable-breakpad",
    "--metrics-recording-only",
    "--no-pings",
    "--safebrowsing-disable-auto-update",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,"
    "CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


class _NoStream(Resource):
    """An event stream that is always refused (a proxy that cannot stream)."""

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        request.setResponseCode(503)
        return b"no streaming here"


class _PollingDaemon(DaemonService):
    """The page's daemon whose /api/events is refused: the page must poll."""

    def build_root(self, session: Any, store: Any) -> Resource:
        root = super().build_root(session, store)
        root.children[b"api"].streams[b"events"] = _NoStream()  # type: ignore[attr-defined]
        return root


class _Browser:
    """One headless Chromium at one viewport; used from one thread only."""

    def __init__(self, viewport: tuple[int, int], dark: bool, shots: str) -> None:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        width, height = viewport
        options.add_argument(f"--window-size={width},{height}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        self.driver.set_page_load_timeout(WAIT)
        self.driver.set_script_timeout(WAIT)
        mobile = width < 600
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 2 if mobile else 1,
            "mobile": mobile,
        })
        if mobile:
            self.driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True})
        self.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {
            "features": [{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}],
        })
        self.shots = shots
        self.console: list[dict[str, Any]] = []

    def quit(self) -> None:
        self.driver.quit()

    def wait(self, predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1,
                                 ignored_exceptions=(StaleElementReferenceException,)).until(
                lambda _: predicate(), what)
        except TimeoutException:
            self.shot("timeout")
            page = self.js("return document.querySelector('main').innerText")
            raise AssertionError(f"timed out waiting for {what}; page: {page!r}; "
                                 f"console: {self.logs()}")

    def find(self, css: str) -> Any:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def finds(self, css: str) -> list[Any]:
        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def visible(self, css: str) -> bool:
        found = self.finds(css)
        return bool(found) and found[0].is_displayed()

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def shot(self, name: str) -> None:
        os.makedirs(self.shots, exist_ok=True)
        self.driver.save_screenshot(os.path.join(self.shots, f"{name}.png"))

    def logs(self) -> list[dict[str, Any]]:
        self.console.extend(self.driver.get_log("browser"))
        return self.console


class PageBrowserTests(TestCase):
    """The page, driven in Chromium against the daemon and a libtorrent seeder."""

    timeout = 240

    def setUp(self) -> None:
        if webdriver is None:
            raise SkipTest("selenium is not installed (pip install selenium)")
        if CHROMIUM is None or CHROMEDRIVER is None:
            raise SkipTest("chromium and chromedriver are not installed "
                           "(Debian: apt-get install chromium chromium-driver)")
        ltutil.skip_without_libtorrent()
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)

    # -- fixtures ----------------------------------------------------------------------

    @inlineCallbacks
    def serve(self, daemon: type[DaemonService] = DaemonService) -> Generator[Any, Any, None]:
        """A libtorrent seeder of FILES and a started daemon with the page."""
        seed = os.path.join(self.base, "seed", "show")
        os.makedirs(seed)
        for name, size in FILES.items():
            with open(os.path.join(seed, name), "wb") as f:
                f.write(os.urandom(size))
        raw = create_torrent(seed, piece_length=PIECE)
        self.info_hash = parse(raw).info_hash_hex
        session = ltutil.make_session(self, enable_outgoing_utp=False, enable_incoming_utp=False)
        ltutil.limit_local_peers(session, upload=RATE)
        handle = ltutil.add_torrent(session, raw, os.path.join(self.base, "seed"))
        ltutil.wait_until_seeding(handle, WAIT)
        host, port = ltutil.endpoint(session)
        self.seeder = (host, port)
        self.magnet = f"magnet:?xt=urn:btih:{self.info_hash}&dn=show&x.pe={host}:{port}"
        self.seed_dir = seed
        self.torrent_file = os.path.join(self.base, "show.torrent")
        with open(self.torrent_file, "wb") as f:
            f.write(raw)
        out = io.StringIO()
        config = DaemonConfig(
            state_dir=os.path.join(self.base, "state"),
            download_dir=os.path.join(self.base, "downloads"),
            listen=("tcp:0:interface=127.0.0.1",), dht=False,
        )
        service = daemon(config, reactor=reactor, out=out)
        service.startService()
        self.addCleanup(lambda: service.stopService() if service.running else None)
        yield service.started
        found = re.search(r"password (\S+)", out.getvalue())
        assert found is not None, out.getvalue()
        self.password = found.group(1)
        self.service, self.config = service, config
        assert service.url is not None
        self.url = service.url

    # -- the scenario ------------------------------------------------------------------

    def browse(self, viewport: tuple[int, int], dark: bool, shots: str) -> dict[str, Any]:
        """The whole visit, in a thread: returns what the reactor thread checks."""
        seen: dict[str, Any] = {}
        browser = _Browser(viewport, dark, shots)
        try:
            self.visit(browser, viewport, seen)
            seen["console"] = browser.logs()
        finally:
            browser.quit()
        return seen

    def visit(self, b: _Browser, viewport: tuple[int, int], seen: dict[str, Any]) -> None:
        phone = viewport[0] < 600
        ih = self.info_hash
        row = f'li.torrent[data-info-hash="{ih}"]'

        # Log in.
        self.log_in(b, shot="1-login")
        b.wait(lambda: b.find("#live").get_attribute("data-mode") == "live",
               "the live event stream")
        seen["background"] = b.js("return getComputedStyle(document.body).backgroundColor")
        seen["columns"] = b.js(
            "const a = document.querySelector('.side').getBoundingClientRect();"
            "const b = document.querySelector('.list-panel').getBoundingClientRect();"
            "return [a.left, a.top, b.left, b.top]")

        # Global rate limits, well above the seeder's rate.
        b.find("#limit-down").send_keys("5000")
        b.find("#limit-up").send_keys("3000")
        b.find("#limits-form button[type=submit]").click()
        b.wait(lambda: b.find("#limits-status").text == "Saved.", "the limits to be saved")
        seen["limits"] = b.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch('/api/limits').then(r => r.json()).then(done)"
            ".catch(e => done(String(e)));")

        # Add the magnet; watch its progress from the stream.
        b.find("#add-source").send_keys(self.magnet)
        b.find("#add-form button[type=submit]").click()
        b.wait(lambda: b.finds(row), "the torrent's row")
        percents: list[str] = []

        def complete() -> bool:
            text = b.find(row + " .percent").text
            if not percents or percents[-1] != text:
                percents.append(text)
            return text == "100%"

        b.wait(complete, "the progress to reach 100%")
        b.wait(lambda: b.find(row + " .state").text == "seeding", "the seeding state")
        seen["percents"] = percents
        seen["mode_after_download"] = b.find("#live").get_attribute("data-mode")
        seen["targets"] = self.small_targets(b) if phone else []
        b.shot("2-complete")

        # Files: skip notes.txt; the media file's play link streams with the cookie.
        b.find(row + " .files-button").click()
        b.wait(lambda: len(b.finds("#files li.file")) == len(FILES), "the file list")
        files = {li.find_element(By.CSS_SELECTOR, ".path").text: li.get_attribute("data-index")
                 for li in b.finds("#files li.file")}
        seen["file_paths"] = sorted(files)
        index = next(i for path, i in files.items() if path.endswith("notes.txt"))
        b.find(f'#files li.file[data-index="{index}"] label.check').click()
        b.wait(lambda: b.js("const el = document.querySelector(arguments[0]);"
                            "return el !== null && !el.checked && !el.disabled;",
                            f'#files li.file[data-index="{index}"] input.want'),
               "notes.txt set to skip")
        seen["skipped_index"] = int(index or -1)
        seen["priorities"] = b.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(arguments[0]).then(r => r.json())"
            ".then(body => done(body.files.map(f => [f.index, f.priority])))"
            ".catch(e => done(String(e)));", f"/api/torrents/{ih}/files")
        clip_index = next(i for path, i in files.items() if path.endswith("clip.mp4"))
        clip = b.find(f'#files li.file[data-index="{clip_index}"]')
        link = clip.find_element(By.CSS_SELECTOR, "a.play")
        seen["play_href"] = link.get_attribute("href")
        seen["play_target"] = link.get_attribute("target")
        seen["play_bytes"] = b.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(arguments[0], {headers: {Range: 'bytes=0-15'}, credentials: 'same-origin'})"
            ".then(async r => done([r.status, Array.from(new Uint8Array(await r.arrayBuffer()))]))"
            ".catch(e => done(['error', String(e)]));", seen["play_href"])
        clip.find_element(By.CSS_SELECTOR, "button.copy").click()
        b.wait(lambda: "ink" in b.find("#files-status").text, "the copy-link answer")
        seen["copy_status"] = b.find("#files-status").text
        b.shot("3-files")
        b.find("#files-close").click()
        b.wait(lambda: not b.visible("#files-dialog"), "the files dialog to close")

        # Pause and resume.
        b.find(row + " .toggle").click()
        b.wait(lambda: b.find(row).get_attribute("data-state") == "paused", "the paused state")
        seen["paused_button"] = b.find(row + " .toggle").text
        b.shot("4-paused")
        b.find(row + " .toggle").click()
        b.wait(lambda: b.find(row).get_attribute("data-state") == "seeding",
               "the seeding state again")
        seen["resumed_button"] = b.find(row + " .toggle").text

        # Remove with its data, after a confirmation.
        b.find(row + " .remove").click()
        b.wait(lambda: b.visible("#remove-dialog"), "the confirmation")
        b.find("#remove-dialog label.check").click()
        b.shot("5-confirm")
        b.find("#remove-confirm").click()
        b.wait(lambda: not b.finds(row), "the row to go")
        b.wait(lambda: b.visible("#empty"), "the empty list")
        b.shot("6-removed")

        # Log out.
        b.find("#logout").click()
        b.wait(lambda: b.visible("#login-view"), "the login form after logout")

    def log_in(self, b: _Browser, shot: str | None = None) -> None:
        """Open the page, which shows the login form, and log in as admin."""
        b.driver.get(self.url + "/")
        b.wait(lambda: b.visible("#login-view"), "the login form")
        if shot is not None:
            b.shot(shot)
        user = b.find("#login-user")
        user.clear()
        user.send_keys("admin")
        b.find("#login-password").send_keys(self.password)
        b.find("#login-form button[type=submit]").click()
        b.wait(lambda: b.visible("#app-view"), "the torrent list after login")

    def poll_visit(self, shots: str) -> dict[str, Any]:
        """In a thread: log in, upload the .torrent, watch it complete by polling."""
        seen: dict[str, Any] = {}
        b = _Browser(DESKTOP, False, shots)
        try:
            self.log_in(b)
            b.wait(lambda: b.find("#live").get_attribute("data-mode") == "polling",
                   "the page to fall back to polling")
            b.find("#add-file").send_keys(self.torrent_file)
            b.find("#add-form button[type=submit]").click()
            row = f'li.torrent[data-info-hash="{self.info_hash}"]'
            b.wait(lambda: b.finds(row), "the torrent's row")
            b.wait(lambda: b.find(row + " .percent").text == "100%", "100% by polling")
            b.wait(lambda: b.find(row + " .state").text == "seeding", "the seeding state")
            seen["mode"] = b.find("#live").get_attribute("data-mode")
            b.shot("polling-complete")
            seen["console"] = b.logs()
        finally:
            b.quit()
        return seen

    def small_targets(self, b: _Browser) -> list[str]:
        """The visible controls smaller than 44 px (a checkbox counts by its label)."""
        return list(b.js("""
            const out = [];
            const controls = document.querySelectorAll(
              'button, a.button, input:not([type=checkbox]), label.check');
            for (const el of controls) {
              const r = el.getBoundingClientRect();
              if (r.width === 0 && r.height === 0) continue;
              if (r.height < 44 || (el.tagName === 'BUTTON' && r.width < 44))
                out.push(`${el.tagName}#${el.id}.${el.className} ${r.width}x${r.height}`);
            }
            return out;"""))

    # -- checks on the reactor thread --------------------------------------------------

    @inlineCallbacks
    def run_scenario(self, viewport: tuple[int, int], dark: bool
                     ) -> Generator[Any, Any, dict[str, Any]]:
        yield self.serve()
        shots = os.path.join(self.base, "screenshots")
        seen = yield threads.deferToThread(self.browse, viewport, dark, shots)
        errors = [e for e in seen["console"] if e.get("level") == "SEVERE"]
        self.assertEqual(errors, [], "console errors")
        self.assertEqual(seen["percents"][-1], "100%")
        self.assertTrue(any(p not in ("0.0%", "100%") for p in seen["percents"]),
                        f"no progress between 0 and 100% was shown: {seen['percents']}")
        self.assertEqual(seen["mode_after_download"], "live")
        self.assertEqual(seen["file_paths"], sorted(f"show/{n}" for n in FILES))
        self.assertEqual((seen["paused_button"], seen["resumed_button"]), ("Resume", "Pause"))
        index = seen["skipped_index"]
        self.assertEqual(seen["play_target"], "_blank")
        self.assertTrue(seen["play_href"].startswith(f"{self.url}/stream/{self.info_hash}/"),
                        seen["play_href"])
        self.assertEqual(seen["limits"], {"download_limit": 5000 * 1024,
                                          "upload_limit": 3000 * 1024})
        status, first = seen["play_bytes"]
        with open(os.path.join(self.seed_dir, "clip.mp4"), "rb") as f:
            self.assertEqual((status, bytes(first)), (206, f.read(16)))
        self.assertIn("/stream/", seen["copy_status"] + seen["play_href"])
        # The skip reached the daemon: that file's priority is 0, the others' not.
        priorities = dict(seen["priorities"])
        self.assertEqual(priorities.pop(index), 0)
        self.assertTrue(all(p > 0 for p in priorities.values()), seen["priorities"])
        # Removed, with its data.
        assert self.service.session is not None
        self.assertIsNone(self.service.session.get(bytes.fromhex(self.info_hash)))
        self.assertFalse(os.path.exists(os.path.join(self.config.download_dir, "show", "clip.mp4")))
        for name in sorted(os.listdir(shots)):
            print(f"screenshot: {os.path.join(shots, name)}")
        return seen

    @inlineCallbacks
    def test_phone(self) -> Generator[Any, Any, None]:
        """At 390x844 in dark mode: the whole visit without a console error,
        one column, every control at least 44 px."""
        seen = yield self.run_scenario(PHONE, dark=True)
        self.assertEqual(seen["targets"], [])
        side_left, side_top, list_left, list_top = seen["columns"]
        self.assertEqual(side_left, list_left)
        self.assertLess(list_top, side_top)
        self.assertEqual(seen["background"], "rgb(18, 20, 23)")

    @inlineCallbacks
    def test_desktop(self) -> Generator[Any, Any, None]:
        """At 1280x900 in light mode: the whole visit without a console error,
        the forms beside the list."""
        seen = yield self.run_scenario(DESKTOP, dark=False)
        side_left, side_top, list_left, list_top = seen["columns"]
        self.assertLess(side_left, list_left)
        self.assertEqual(side_top, list_top)
        self.assertEqual(seen["background"], "rgb(246, 247, 249)")

    @inlineCallbacks
    def test_polling_fallback(self) -> Generator[Any, Any, None]:
        """With the event stream refused, the page says it polls, and a
        .torrent uploaded from the form (multipart) still shows 100% and
        completes with the seeder's bytes; the only console errors are the
        refused stream's."""
        yield self.serve(_PollingDaemon)
        assert self.service.session is not None
        session = self.service.session

        def introduce() -> None:
            """A .torrent names no peer here: introduce the seeder once it is added."""
            torrent = session.get(bytes.fromhex(self.info_hash))
            if torrent is not None:
                torrent.add_peers([self.seeder])
                looking.stop()

        looking = task.LoopingCall(introduce)
        looking.clock = reactor
        looking.start(0.1)
        self.addCleanup(lambda: looking.stop() if looking.running else None)
        seen = yield threads.deferToThread(self.poll_visit,
                                           os.path.join(self.base, "screenshots"))
        self.assertEqual(seen["mode"], "polling")
        errors = [e["message"] for e in seen["console"] if e.get("level") == "SEVERE"]
        self.assertTrue(errors, "the refused stream was not even tried")
        self.assertEqual([m for m in errors if "/api/events" not in m], [], errors)
        with open(os.path.join(self.seed_dir, "clip.mp4"), "rb") as f:
            seeded = f.read()
        with open(os.path.join(self.config.download_dir, "show", "clip.mp4"), "rb") as f:
            self.assertEqual(f.read(), seeded)
