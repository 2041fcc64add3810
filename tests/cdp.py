"""A headless Chromium page driven over the DevTools protocol, for the browser tests.

    with Page.open(url) as page:
        page.wait_for("document.querySelector('.jp-LabShell') !== null")
        value = page.evaluate("(async () => 1 + 1)()")        # promises are awaited
        page.screenshot(path)

Only what the tests need: navigate, evaluate JavaScript (awaiting promises), wait for a condition,
take a screenshot. The websocket client is websocket-client, which jupyter_server depends on.
"""
import base64
import json
import pathlib
import socket
import subprocess
import tempfile
import time
import urllib.request

import websocket

from ntk_utils import report


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout, what):
    """Call ``condition()`` until it returns a true value (returned); raise after ``timeout`` s."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            value = condition()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError(f"{what}: not within {timeout} s")


class Page:
    def __init__(self, process, profile, ws):
        self.process, self.profile, self.ws, self.next_id = process, profile, ws, 0

    @classmethod
    def open(cls, url, size=(1400, 900)):
        profile = tempfile.TemporaryDirectory()
        port = free_port()
        process = subprocess.Popen([report.browser(), "--headless", "--no-sandbox", "--disable-gpu",
                                    "--disable-dev-shm-usage", f"--user-data-dir={profile.name}",
                                    f"--remote-debugging-port={port}", f"--window-size={size[0]},{size[1]}",
                                    "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def page_target():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                return next((t for t in json.load(r) if t["type"] == "page"), None)
        target = wait_until(page_target, 60, "Chromium's DevTools endpoint")
        page = cls(process, profile, websocket.create_connection(target["webSocketDebuggerUrl"], timeout=120))
        page.call("Page.navigate", url=url)
        return page

    def call(self, method, **params):
        """One DevTools command; returns its result (raises on a protocol error)."""
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression):
        """The value of a JavaScript expression (a promise is awaited); raises on an exception."""
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(f"JavaScript: {details.get('exception', {}).get('description') or details['text']}")
        return result["result"].get("value")

    def wait_for(self, expression, timeout=120):
        """Wait until a JavaScript expression is true; returns its value."""
        return wait_until(lambda: self.evaluate(expression), timeout, expression)

    def screenshot(self, path):
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.ws.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.profile.cleanup()
