#!/usr/bin/python3
"""test_console.py BIN_DIR SCREENSHOT_DIR: the console's page in a real browser.

Debian's chromium and chromium-driver (the same version) through
python3-selenium, headless, with explicit driver and browser paths so that
nothing is downloaded. One `edgeplane up --demo` (five services, the console,
five demo routers and a stray) on stable ports below the ephemeral range, so
that the console, killed, comes back where the page reconnects. The tests run
in order on one page, as an operator would use it; each saves a screenshot.
"""
import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import ep_up  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

BIN_DIR = SHOTS = None
DEMO_ROUTERS = ["demo-%d" % i for i in range(5)]
GRACE_S = 2                     # the stray grace, shortened for the test
# A deleted router is sent a Goodbye and closed when it leaves or when the
# drain grace (default 10 s) ends; the demo fleet's agent waits it out.
DRAIN = "500ms"


def rows(driver):
    """{router: state} of the fleet table."""
    return driver.execute_script(
        "var o = {}; document.querySelectorAll('#fleet tbody tr').forEach(function (r) {"
        " o[r.dataset.router] = r.querySelector('.state').textContent; }); return o;")


def events(driver):
    """The events in the feed, newest first, as [id, event] pairs."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#feed .ev')).map(function (r) {"
        " return [r.dataset.id, r.evt]; });")


def text(driver, css):
    return driver.execute_script("var e = document.querySelector(arguments[0]); return e ? e.textContent : '';", css)


class Console(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.up = ep_up.Up(BIN_DIR, demo=True, tag="browser", services=ep_up.SERVICES + ["console"],
                          env={"EDGEPLANE_STRAY_GRACE": "%ds" % GRACE_S, "EDGEPLANE_DRAIN_GRACE": DRAIN})
        try:
            cls.url = "http://127.0.0.1:%d/" % cls.up.ports["EDGEPLANE_CONSOLE_LISTEN"]
            # The fleet has joined (the watchdog's heartbeat gauges) before the page opens.
            wd = cls.up.endpoint("watchdog", "http")
            ep_up.wait_until("the five demo routers on the watchdog", lambda: all(
                'edgeplane_router_rtt_seconds{router="%s"}' % r in ep_up.http_get(wd, "/metrics")[1]
                for r in DEMO_ROUTERS), 30)
            cls.driver = cls.browser()
        except BaseException:
            cls.up.stop()
            raise

    @staticmethod
    def browser():
        """Debian's chromium, headless, through its own chromedriver (nothing downloaded)."""
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1050",
                    "--disable-extensions", "--no-first-run", "--disable-background-networking"):
            opts.add_argument(arg)
        return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.driver.quit()
        finally:
            cls.up.stop()

    def shot(self, name):
        os.makedirs(SHOTS, exist_ok=True)
        self.driver.save_screenshot(os.path.join(SHOTS, name + ".png"))

    def test_1_fleet_lists_the_demo_routers_online_within_5s(self):
        self.driver.get(self.url)
        ep_up.wait_until("the five demo routers online on the page",
                         lambda: all(rows(self.driver).get(r) == "online" for r in DEMO_ROUTERS), 5)
        # Their RTT trend fills in with heartbeats (2 s apart in the demo).
        ep_up.wait_until("an RTT trend line", lambda: self.driver.execute_script(
            "return document.querySelectorAll('#fleet svg.spark polyline').length >= 5"), 15)
        self.shot("fleet")

    def test_2_deleting_a_router_turns_it_offline_with_its_event_within_2s(self):
        before = {i for i, _ in events(self.driver)}
        rc, out = self.up.cli("router", "delete", "demo-3")
        self.assertEqual(rc, 0, out)
        start = time.monotonic()
        ep_up.wait_until("demo-3 offline on the page", lambda: rows(self.driver).get("demo-3") == "offline", 2)
        ep_up.wait_until("demo-3's disconnect in the feed", lambda: any(
            i not in before and e.get("namespace") == "connect" and e.get("src_id") == "demo-3"
            and e.get("connected") is False for i, e in events(self.driver)), 2 - (time.monotonic() - start))
        print("demo-3 offline with its event on the page %.2f s after the delete" % (time.monotonic() - start),
              file=sys.stderr)
        self.assertEqual(rows(self.driver).get("demo-2"), "online")
        self.shot("router-deleted")

    def test_3_a_connection_that_never_joins_shows_in_the_alerts_with_its_address(self):
        stray = socket.create_connection(self.up.channel())
        try:
            address = "%s:%d" % stray.getsockname()
            # After the grace, the watchdog's stray event; the page within a second of it.
            ep_up.wait_until("the stray %s in the alerts panel" % address,
                             lambda: address in text(self.driver, "#alerts"), GRACE_S + 5)
            self.assertIn("stray connections from 127.0.0.1", text(self.driver, "#alerts"))
            self.driver.execute_script("document.getElementById('alerts-section').scrollIntoView()")
            self.shot("alerts")
        finally:
            stray.close()

    def test_4_filtering_the_feed_by_a_router_shows_only_its_events(self):
        form = self.driver.find_element("id", "feed-form")
        field = form.find_element("name", "fields")
        field.clear()
        field.send_keys("router_id=demo-1")
        form.submit()
        # Sessions come and go on every demo router (--churn): demo-1's show.
        ep_up.wait_until("three of demo-1's events in the filtered feed",
                         lambda: len(events(self.driver)) >= 3, 20)
        shown = events(self.driver)
        others = [e for _, e in shown if e.get("router_id") != "demo-1"]
        self.assertEqual(others, [], "the feed filtered by router_id=demo-1 shows other events")
        self.shot("feed-filtered")
        self.driver.find_element("id", "feed-clear").click()
        ep_up.wait_until("events of other routers once the filter is cleared", lambda: any(
            e.get("router_id") not in (None, "demo-1") for _, e in events(self.driver)), 20)

    def test_5_a_restarted_console_shows_stream_lost_then_missed_events_then_live_events(self):
        d = self.driver
        old = self.up.ready("console")["pid"]
        old_epoch = events(d)[0][0].split("-")[0]
        os.kill(old, signal.SIGKILL)
        ep_up.wait_until("'stream lost' on the page", lambda: text(d, "#stream") == "stream lost", 3)
        self.assertNotIn("missed events", text(d, "#notice"))
        self.shot("stream-lost")
        # edgeplane up restarts it (after its backoff) on the same port.
        ep_up.wait_until("the restarted console's ready file",
                         lambda: (self.up.ready("console") or {}).get("pid") not in (None, old), 20)
        ep_up.wait_until("the 'missed events' notice", lambda: "missed events" in text(d, "#notice"), 10)
        count = d.execute_script("return document.getElementById('notice').dataset.missed")
        self.assertIsNotNone(count)
        self.assertRegex(text(d, "#notice"), r"missed events: %s\b" % count)
        ep_up.wait_until("live events from the new console", lambda: any(
            i.split("-")[0] != old_epoch for i, _ in events(d)), 10)
        self.assertIn(text(d, "#stream"), ("stream back", "live"))
        # The new console's fleet fills in again (from the watchdog's beacons).
        ep_up.wait_until("the remaining demo routers online again", lambda: all(
            rows(d).get(r) == "online" for r in DEMO_ROUTERS if r != "demo-3"), 10)
        self.assertEqual(rows(d).get("demo-3"), "offline")
        self.shot("stream-back")


class SignIn(unittest.TestCase):
    """A console bound beyond loopback: the page asks for the token, once."""

    @classmethod
    def setUpClass(cls):
        cls.up = ep_up.Up(BIN_DIR, tag="browser-signin", services=ep_up.SERVICES + ["console"],
                          env={"EDGEPLANE_CONSOLE_LISTEN": "0.0.0.0:0"})
        try:
            cls.port = int(cls.up.endpoint("console", "http").rsplit(":", 1)[1])
            with open(os.path.join(cls.up.dir, "keys", "console.token")) as f:
                cls.token = f.read().strip()
            cls.driver = Console.browser()
        except BaseException:
            cls.up.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.driver.quit()
        finally:
            cls.up.stop()

    def test_the_sign_in_form_exchanges_the_token_for_the_cookie(self):
        d = self.driver
        d.get("http://127.0.0.1:%d/" % self.port)
        ep_up.wait_until("the sign-in form", lambda: d.find_element("id", "login").is_displayed(), 5)
        self.assertFalse(d.find_element("id", "fleet").is_displayed(), "data shown before signing in")
        form = d.find_element("id", "login-form")
        token = form.find_element("name", "token")
        token.send_keys("not-the-token")
        form.submit()
        ep_up.wait_until("the refusal of a wrong token", lambda: "refused" in text(d, "#login-error"), 5)
        self.assertTrue(d.find_element("id", "login").is_displayed())
        token.clear()
        token.send_keys(self.token)
        form.submit()
        ep_up.wait_until("the fleet after signing in", lambda: d.find_element("id", "fleet").is_displayed()
                         and not d.find_element("id", "login").is_displayed(), 5)
        # The stream too (EventSource sends the cookie, it cannot send a header).
        ep_up.wait_until("the live stream after signing in", lambda: text(d, "#stream") == "live", 5)
        cookies = d.get_cookies()
        self.assertTrue(cookies and all(c.get("httpOnly") for c in cookies), cookies)
        self.assertNotIn(self.token, d.current_url)
        self.assertEqual(d.execute_script("return document.cookie"), "", "the cookie is readable by script")
        Console.shot(self, "signed-in")


if __name__ == "__main__":
    BIN_DIR, SHOTS = sys.argv[1], sys.argv[2]
    if not os.access(os.path.join(BIN_DIR, "edgeplane-console"), os.X_OK):
        print("skipped: %s/edgeplane-console is not built" % BIN_DIR)
        sys.exit(77)            # ctest's SKIP_RETURN_CODE
    unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[3:])
