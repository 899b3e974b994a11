"""Opens the playground in headless Chromium and runs its self-test.

Usage: python playground_browser.py CHROMIUM URL. Drives Chromium over the
DevTools protocol (needs `websocket-client`): loads URL#selftest, which fills
each tab's form and presses its button, waits for the page's report and prints
it as JSON. Run by tests/server.rs (the_playground_works_in_a_real_browser).
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket

chromium, url = sys.argv[1], sys.argv[2]
profile = tempfile.mkdtemp(prefix="codelm-chromium-")
browser = subprocess.Popen(
    [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
     "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
)
try:
    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.time() + 60
    while not os.path.exists(port_file) or not open(port_file).read().strip():
        if time.time() > deadline or browser.poll() is not None:
            sys.exit("chromium did not open its DevTools port")
        time.sleep(0.1)
    port = open(port_file).read().split()[0]
    pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
    page = next(p for p in pages if p["type"] == "page")
    ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
    next_id = 0

    def call(method, **params):
        global next_id
        next_id += 1
        ws.send(json.dumps({"id": next_id, "method": method, "params": params}))
        while True:
            message = json.loads(ws.recv())
            if message.get("id") == next_id:
                if "error" in message:
                    sys.exit(f"{method}: {message['error']}")
                return message["result"]

    call("Page.navigate", url=url + "#selftest")
    deadline = time.time() + 120
    while time.time() < deadline:
        result = call("Runtime.evaluate", expression=(
            "(document.getElementById('selftest') || {}).textContent || ''"))
        report = result["result"].get("value", "")
        if report:
            print(report)
            sys.exit(0)
        time.sleep(0.2)
    sys.exit("the playground's self-test did not finish within 120 s")
finally:
    browser.kill()
    browser.wait()
