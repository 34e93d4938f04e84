"""Every dashboard page rendered by headless Chromium against the running embedded stack.

Traffic goes through the gateway with the openai SDK (several teams, models, an unpriced
model, a guardrail trigger, a looping agent session), a budget is set and a key blocked;
then each page is screenshotted once the read API shows the spend. Streamlit renders in
the browser, so the check is on the picture: a real page is large and far from uniform.

`METERLINE_UPDATE_SCREENSHOTS=1` writes the pictures to docs/screenshots/ (committed,
shown by docs/dashboards.md); otherwise they go to a temporary directory.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from PIL import Image, ImageStat
from websockets.sync.client import connect

from dashboards.formatting import money
from meterline.runtime import Stack
from tests.e2e.stack_helpers import Admin, eventually, stack_settings

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
SIZE = (1400, 1600)  # tall enough for the tables under the charts
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# page -> (url path, text the rendered page must show; tables are drawn on a canvas)
PAGES = {
    "showback": ("showback", ["Spend", "Top movers", "Unpriced requests", "Rejected requests"]),
    "budgets": ("budgets", ["Budgets\n\n2", "History"]),
    "security": ("security", ["Blocked or throttled now\n\n1", "Block or unblock"]),
    "operations": ("operations", ["Latency by model and provider", "Guardrail triggers", "Dead"]),
    "admin": ("admin", ["Create a key", "Your name", "Budgets", "Policies"]),
    "audit": ("audit", ["Changes and decisions", "Enforcement decisions"]),
}
TEAMS = [("acme", "search"), ("acme", "support"), ("globex", "research"), ("initech", "platform")]
MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-nano", "claude-3-5-haiku-latest", "gpt-4o-mini"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium (.ci/run installs it: apt-get install chromium)")
    settings = stack_settings(tmp_path_factory.mktemp("dash"), dashboard={"refresh_s": 0})
    instance = Stack(settings, mock_provider=True, dashboard=True, progress=print)
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


def _traffic(stack: Stack) -> int:
    """Requests of several teams and models; returns how many should be costed."""
    admin = Admin(stack)
    base_url = f"http://{stack.settings.host}:{stack.settings.gateway_port}/v1"
    # Budgets first: they count spend from their creation on.
    admin.post(
        "/admin/budgets",
        {
            "subject": "team:acme/search",
            "period": "month",
            "limit_usd": "0.002",
            "soft_pct": 50,
            "action_on_hard": "alert",
        },
    )
    admin.post("/admin/budgets", {"subject": "org:globex", "period": "month", "limit_usd": "25"})
    sent = 0
    for i, (org, team) in enumerate(TEAMS):
        key = admin.create_key(org, team, user=f"{team}-lead@{org}.example")
        client = OpenAI(base_url=base_url, api_key=key["key"])
        for n in range(6 + 4 * i):
            text = f"Summarize ticket {n} for {team}, about {org}'s invoices and refunds."
            client.chat.completions.create(
                model=MODELS[(n + i) % len(MODELS)],
                messages=[{"role": "user", "content": text}],
                max_tokens=40 + 20 * i,
            )
            sent += 1
        if org == "acme" and team == "search":
            # a self-hosted model, and a prompt with an e-mail address (guardrail)
            for content in ("hello", "mail jane.doe@example.com the report"):
                client.chat.completions.create(
                    model="acme-local-7b", messages=[{"role": "user", "content": content}]
                )
                sent += 1
            # an agent stuck in a loop: the same step again and again in one session
            for _ in range(7):
                client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "call tool search(q='refund policy')"}],
                    extra_headers={"x-session-id": "agent-run-42"},
                )
                sent += 1
    stolen = admin.create_key("initech", "finance")
    admin.post(
        "/admin/enforcement",
        {"subject": f"key:{stolen['key_id']}", "reason": "key posted in a public repository"},
    )
    return sent


# Streamlit draws what its server streams over a websocket: --virtual-time-budget runs
# out at once (no fetch is pending) and --screenshot would catch an empty skeleton. So
# Chromium is driven over its DevTools protocol: load, wait until the script has finished
# and the page holds content, then capture.
READY = """(() => {
  const main = document.querySelector('[data-testid="stMainBlockContainer"]');
  const status = document.querySelector('[data-testid="stStatusWidget"]');
  const busy = status !== null && /Running/.test(status.innerText);
  const skeleton = document.querySelector('[data-testid="stSkeleton"]') !== null;
  return main !== null && !busy && !skeleton && main.innerText.length > 150
    ? main.innerText : "";
})()"""


class DevTools:
    """One page of a headless Chromium, driven over the DevTools websocket."""

    def __init__(self, profile: Path) -> None:
        profile.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={SIZE[0]},{SIZE[1]}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        port = eventually(
            lambda: port_file.is_file() and port_file.read_text().split("\n")[0],
            timeout_s=30,
            what="Chromium's DevTools port",
        )
        pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        url = next(p["webSocketDebuggerUrl"] for p in pages if p["type"] == "page")
        self.socket = connect(url, max_size=None, open_timeout=10)
        self.calls = 0
        # The window's size is not quite the page's: fix the viewport itself.
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=SIZE[0],
            height=SIZE[1],
            deviceScaleFactor=1,
            mobile=False,
        )

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.calls += 1
        self.socket.send(json.dumps({"id": self.calls, "method": method, "params": params}))
        while True:  # events arrive in between: skip them
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == self.calls:
                assert "error" not in message, message
                return dict(message["result"])

    def capture(self, url: str, target: Path, expected: list[str]) -> str:
        """Load `url`, wait until the page shows every one of `expected` (Streamlit shows
        its running indicator only after a moment, so an idle page may still be filling),
        save a PNG; returns the page's text."""
        self.call("Page.navigate", url=url)

        def rendered() -> str:
            text = str(self.evaluate(READY) or "")
            return text if all(words in text for words in expected) else ""

        try:
            eventually(rendered, timeout_s=60, what=f"{url} rendered")
        except AssertionError:  # say what was there instead
            shown = self.evaluate("document.body.innerText")
            raise AssertionError(f"{url}: not all of {expected} in:\n{shown}") from None
        time.sleep(2.0)  # charts draw (and fonts settle) after the data arrives
        text = eventually(rendered, timeout_s=30, what=f"{url} settled")
        shot = self.call("Page.captureScreenshot", format="png")
        target.write_bytes(base64.b64decode(shot["data"]))
        return text

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def showing(self, *words: str) -> str:
        """Wait until the app is idle and shows every one of `words`; returns its text."""

        def shown() -> str:
            text = str(self.evaluate(READY) or "")
            return text if all(w in text for w in words) else ""

        try:
            return eventually(shown, timeout_s=60, what=f"the page showing {words}")
        except AssertionError:  # say what was there instead
            text = self.evaluate("document.body.innerText")
            raise AssertionError(f"not all of {words} on the page:\n{text}") from None

    def type_into(self, label: str, text: str) -> None:
        """Type into the input labelled `label` and press Enter (Streamlit commits then)."""
        script = (
            f"(() => {{ const el = document.querySelector('input[aria-label={json.dumps(label)}]');"
            " if (!el) return false; el.focus(); el.select(); return true; })()"
        )
        eventually(lambda: self.evaluate(script), timeout_s=30, what=f"the input {label!r}")
        self.call("Input.insertText", text=text)
        for kind in ("keyDown", "keyUp"):
            self.call(
                "Input.dispatchKeyEvent",
                type=kind,
                key="Enter",
                code="Enter",
                windowsVirtualKeyCode=13,
            )
        time.sleep(0.5)  # the rerun starts
        self.showing()

    def click(self, label: str) -> None:
        """Click the enabled button whose text ends with `label`."""
        script = (
            "(() => { const b = [...document.querySelectorAll('button')].find(b => "
            f"b.innerText.trim().endsWith({json.dumps(label)}) && !b.disabled);"
            " if (!b) return false; b.click(); return true; })()"
        )
        # enabled once the rerun that follows the last input has drawn the page
        eventually(lambda: self.evaluate(script), timeout_s=30, what=f"the button {label!r}")
        time.sleep(0.5)
        self.showing()

    def close(self) -> None:
        self.socket.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def test_every_page_renders_with_data(stack: Stack, tmp_path: Path) -> None:
    sent = _traffic(stack)
    admin = Admin(stack)

    def costed() -> bool:
        totals = admin.read("/api/showback")["totals"]
        return totals["requests"] >= sent

    eventually(costed, timeout_s=60, what="every request costed in the read API")
    eventually(lambda: admin.read("/api/budgets")["count"] >= 2, what="budgets")
    eventually(lambda: admin.read("/api/enforcement")["count"] >= 1, what="the manual block")
    # The loop detector's verdict makes the Security page worth a look (not its test).
    with contextlib.suppress(AssertionError):
        eventually(lambda: admin.read("/api/anomalies")["count"] >= 1, timeout_s=20)

    out = DOCS if os.environ.get("METERLINE_UPDATE_SCREENSHOTS") == "1" else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    s = stack.settings
    browser = DevTools(tmp_path / "profile")
    try:
        for name, (path, expected) in PAGES.items():
            target = out / f"{name}.png"
            text = browser.capture(f"http://{s.host}:{s.dashboard_port}/{path}", target, expected)
            assert "unreachable" not in text and "Traceback" not in text, text
            # every page, Showback included, has its own address: no "Page not found"
            assert "Page not found" not in browser.evaluate("document.body.innerText")
            assert target.stat().st_size > 40_000, f"{name}: a nearly empty picture"
            with Image.open(target) as image:
                assert image.size == SIZE
                spread = ImageStat.Stat(image.convert("L")).stddev[0]
            assert spread > 8, f"{name}: the page looks blank (grey-level spread {spread:.1f})"
    finally:
        browser.close()


def test_a_key_created_on_the_admin_page_spends_on_showback(stack: Stack, tmp_path: Path) -> None:
    """The operator's loop without a terminal: name yourself, create a key on the Admin page,
    copy its secret, call the gateway with the openai SDK, see the spend on Showback; the
    audit trail says who created it."""
    s = stack.settings
    dashboard = f"http://{s.host}:{s.dashboard_port}"
    admin = Admin(stack)
    browser = DevTools(tmp_path / "profile")
    try:
        browser.call("Page.navigate", url=f"{dashboard}/admin")
        browser.showing("Create a key", "Enter your name")
        browser.type_into("Your name", "ana@acme.example")
        browser.type_into("Org", "browserco")
        browser.type_into("Team", "web")
        browser.click("Create key")
        shown = (
            "(() => { const c = document.querySelector('[data-testid=\"stCode\"] code');"
            " return c ? c.innerText.trim() : ''; })()"
        )
        secret = eventually(lambda: browser.evaluate(shown), timeout_s=30, what="the secret")
        [key] = [k for k in admin.get("/admin/keys")["data"] if k["org"] == "browserco"]
        assert key["team"] == "web"
        browser.showing(key["key_id"], "shown only this once")

        client = OpenAI(base_url=f"http://{s.host}:{s.gateway_port}/v1", api_key=secret)
        for n in range(3):
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"Draft release note {n}."}],
            )

        def spent() -> str | None:
            totals = admin.read("/api/showback", key=key["key_id"])["totals"]
            return totals["cost_usd"] if totals["requests"] >= 3 else None

        cost = Decimal(eventually(spent, timeout_s=60, what="the key's spend in the read API"))
        assert cost > 0
        browser.call("Page.navigate", url=f"{dashboard}/showback?key={key['key_id']}")
        text = browser.showing("Spend", "Top movers")
        # the Key filter holds the key (a selectbox shows its value in an input)
        selected = (
            "[...document.querySelectorAll('[data-testid=\"stSelectbox\"]')].map(s => "
            "s.innerText + ' ' + [...s.querySelectorAll('input')].map(i => i.value).join(' '))"
            ".join(' | ')"
        )
        assert key["key_id"] in browser.evaluate(selected), browser.evaluate(selected)
        assert f"Spend\n\n{money(cost)}" in text, text
        assert "Requests\n\n3" in text, text

        trail = admin.read("/api/audit", kind="key", subject=f"key:{key['key_id']}")["entries"]
        assert [(e["action"], e["who"]) for e in trail] == [("create", "admin:ana@acme.example")]

        # the root opens Showback at its own address (a bookmark of it then works)
        browser.call("Page.navigate", url=dashboard)
        browser.showing("Spend", "Top movers")
        assert browser.evaluate("location.pathname") == "/showback"
        assert "Page not found" not in browser.evaluate("document.body.innerText")
    finally:
        browser.close()
