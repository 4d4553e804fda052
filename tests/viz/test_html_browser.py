"""The HTML view in a real browser: headless Chromium, driven through the DevTools protocol.

The client is small: Chromium started with ``--remote-debugging-pipe`` reads protocol commands (JSON,
each ending in a NUL byte) on its fd 3 and writes replies and events on its fd 4, so no port and no
websocket library are needed. Clicks are real mouse events at a node's position on screen. Skips, saying
why, when ``chromium`` or Graphviz's ``dot`` is missing (tools/test installs both when it can).
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import time

import numpy as np
import pytest

import graphc as gc

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="headless browser test: `chromium` is not installed "
                       "(apt-get install chromium, or run ./tools/test as root, which installs it)"),
    pytest.mark.skipif(shutil.which("dot") is None, reason="the HTML view needs Graphviz's `dot` "
                       "(apt-get install graphviz)"),
]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-debugging-pipe", "--window-size=1280,900"]
TIMEOUT = 30.0


class Browser:
    """Chromium and one page, over the DevTools pipe: ``send`` a command, collect ``events``."""

    def __init__(self, profile: str) -> None:
        to_browser, self._ours_out = map(_high, os.pipe())
        self._ours_in, from_browser = map(_high, os.pipe())

        def use_pipes_as_3_and_4():  # runs in the child, before exec; the copies are inheritable
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        # close_fds=False keeps 3 and 4 open; every other descriptor Python opened closes on exec anyway
        self.process = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                        preexec_fn=use_pipes_as_3_and_4, close_fds=False,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        self._next_id = 0
        self._buffer = b""
        self.events: list[dict] = []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=True)

    def send(self, method: str, session: bool = False, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._ours_out, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str) -> dict:
        while True:
            for event in self.events:
                if event.get("method") == method:
                    self.events.remove(event)
                    return event
            self.events.append(self._receive())

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, x: float, y: float) -> None:
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", session=True, type=kind, x=x, y=y, button="left",
                      clickCount=0 if kind == "mouseMoved" else 1)

    def click_element(self, selector: str) -> None:
        box = self.evaluate(f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        self.click(*box)

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries seen so far."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                found.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                found.append(str(params["exceptionDetails"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(params["entry"]["text"])
        return found

    def _receive(self) -> dict:
        deadline = time.monotonic() + TIMEOUT
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._ours_in], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(self._ours_in, 1 << 16) if ready else b""
            if not chunk:
                raise RuntimeError("chromium sent nothing (exited or timed out)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        os.close(self._ours_out)
        os.close(self._ours_in)


def _high(fd: int) -> int:
    """``fd`` moved to a number above 9 (close-on-exec), so that putting the pipes at 3 and 4 in the child
    cannot overwrite one of them."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


@pytest.fixture
def browser(tmp_path):
    profile = tmp_path / "profile"
    profile.mkdir()
    chromium = Browser(str(profile))
    yield chromium
    chromium.close()


@pytest.fixture
def two_stage_page(tmp_path):
    """A dense layer, its loss and gradients, drawn as the grad and kernels stages of one page."""
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (None, 4), name="x")
        with gc.name_scope("dense"):
            W = gc.Variable(np.ones((4, 3), np.float32), name="W")
            b = gc.Variable(np.zeros(3, np.float32), name="b")
            h = gc.tanh(x @ W + b, name="h")
        loss = gc.reduce_mean(gc.square(h), name="loss")
        targets = [loss, *gc.gradients(loss, [W, b])]
    path = gc.viz.render(targets, tmp_path / "graph.html", stage=("grad", "kernels"))
    stages = [gc.viz.stage(targets, "grad"), gc.viz.stage(targets, "kernels")]
    return path, stages


def open_page(browser: Browser, path) -> None:
    browser.send("Page.navigate", session=True, url=path.resolve().as_uri())
    browser.wait_for("Page.loadEventFired")


def test_the_page_loads_counts_nodes_and_shows_details(browser, two_stage_page):
    path, (grad, kernels) = two_stage_page
    open_page(browser, path)
    assert browser.evaluate("document.getElementById('count').dataset.count") == str(len(grad.nodes))
    assert browser.evaluate("document.querySelectorAll('#s0_view g.node').length") == len(grad.nodes)
    assert browser.evaluate("document.getElementById('count').textContent") == f"{len(grad.nodes)} nodes"

    h = next(n for n in grad.nodes if n.name == "dense/h")
    browser.click_element(f"#s0_n{h.index}")
    shown = browser.evaluate("document.getElementById('details').innerText")
    assert "dense/h" in shown and "tanh" in shown and "[?,3]" in shown and "float32" in shown
    assert "test_html_browser.py:" in shown and 'gc.tanh(x @ W + b, name="h")' in shown
    assert browser.evaluate(f"document.getElementById('s0_n{h.index}').classList.contains('selected')")
    assert browser.errors() == []


def test_the_toggle_switches_stages_and_kernels_show(browser, two_stage_page):
    path, (grad, kernels) = two_stage_page
    open_page(browser, path)
    assert len(kernels.nodes) != len(grad.nodes)
    browser.click_element("#stages button[data-stage='1']")
    assert browser.evaluate("document.getElementById('count').dataset.count") == str(len(kernels.nodes))
    assert browser.evaluate("[document.getElementById('s0_view').hidden, document.getElementById('s1_view').hidden]"
                            ) == [True, False]
    matmul = next(n for n in kernels.nodes if n.op.name == "matmul")
    browser.click_element(f"#s1_n{matmul.index}")
    assert "k0 matmul" in browser.evaluate("document.getElementById('details').innerText")
    browser.click_element("#stages button[data-stage='0']")
    assert browser.evaluate("document.getElementById('count').dataset.count") == str(len(grad.nodes))
    assert browser.errors() == []


def test_a_scope_folds_and_the_view_pans_and_zooms(browser, two_stage_page):
    path, (grad, _) = two_stage_page
    open_page(browser, path)
    members = [f"s0_n{n.index}" for n in grad.nodes if n.name.startswith("dense/")]
    hidden = f"{json.dumps(members)}.map(id => document.getElementById(id).classList.contains('hidden'))"
    browser.click_element("g[id='s0_scope:dense'] > text")
    assert browser.evaluate(hidden) == [True] * len(members)
    assert "(5 nodes)" in browser.evaluate("document.getElementById('s0_scope:dense').textContent")
    browser.click_element("g[id='s0_scope:dense'] > text")
    assert browser.evaluate(hidden) == [False] * len(members)

    view_box = "(() => { const b = document.querySelector('#s0_view svg').viewBox.baseVal; " \
               "return [b.x, b.y, b.width]; })()"
    before = browser.evaluate(view_box)
    browser.send("Input.dispatchMouseEvent", session=True, type="mouseWheel", x=400, y=400, deltaX=0, deltaY=-300)
    browser.evaluate("new Promise(requestAnimationFrame)")
    zoomed = browser.evaluate(view_box)
    assert zoomed[2] < before[2]  # zoomed in: a smaller part of the graph fills the view
    for kind, x in (("mousePressed", 400), ("mouseMoved", 450), ("mouseMoved", 500), ("mouseReleased", 500)):
        browser.send("Input.dispatchMouseEvent", session=True, type=kind, x=x, y=400, button="left", clickCount=1)
    panned = browser.evaluate(view_box)
    assert panned[0] < zoomed[0] and panned[2] == zoomed[2]  # dragged right: the view moved left
    assert browser.errors() == []
