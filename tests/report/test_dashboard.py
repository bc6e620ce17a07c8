"""The live dashboard: a real `autoresearch dashboard` process on 127.0.0.1, read over HTTP and in headless
Chromium driven through its DevTools protocol while a campaign records a new row."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import aiohttp
import pytest

from tests.helpers import PY, cli, score_repo
from tests.lab import CHROMIUM_FLAGS

TOKEN = "T0KEN1234secretpath"

Found = TypeVar("Found")


def campaign(tmp_path: Path, name: str = "c") -> Path:
    repo = score_repo(tmp_path / "r")
    env = {"DASH_HOOK": f"http://127.0.0.1:9/hook/{TOKEN}"}  # a webhook whose URL is a credential
    cli(
        repo,
        "init",
        "--command",
        f"{PY} train.py",
        "--metric",
        "val_score",
        "--maximize",
        "--params-file",
        "params.json",
        "--campaign",
        name,
        "--notify",
        "env:DASH_HOOK",
        env=env,
        check=True,
    )
    cli(repo, "baseline", env=env, check=True)
    return repo


@contextmanager
def dashboard(repo: Path, *args: str) -> Iterator[str]:
    """`autoresearch dashboard --port 0`; its printed address; ended by its PID."""
    proc = subprocess.Popen(
        [PY, "-m", "nrl_autoresearch", "dashboard", "--port", "0", *args],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, line + proc.stderr.read()
        yield line.split("http://", 1)[1].split("/", 1)[0].join(["http://", "/"])
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def wait_for(check: Callable[[], Found], timeout: float = 60) -> Found:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"not seen within {timeout}s")


class Browser:
    """Headless Chromium showing one page, evaluated through the DevTools protocol (no reload, no injection)."""

    def __init__(self, chromium: str, url: str, profile: Path):
        self.proc = subprocess.Popen(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "--window-size=1300,900",
                url,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        port_file = profile / "DevToolsActivePort"
        port = wait_for(lambda: port_file.exists() and port_file.read_text().split("\n")[0], 30)
        pages = wait_for(
            lambda: [t for t in json.loads(get(f"http://127.0.0.1:{port}/json/list")[1]) if t["type"] == "page"], 30
        )
        self.ws = pages[0]["webSocketDebuggerUrl"]

    def eval(self, expression: str):
        async def ask():
            async with aiohttp.ClientSession() as session, session.ws_connect(self.ws) as ws:
                await ws.send_json(
                    {"id": 1, "method": "Runtime.evaluate", "params": {"expression": expression, "returnByValue": True}}
                )
                async for message in ws:
                    data = json.loads(message.data)
                    if data.get("id") == 1:
                        return data["result"]["result"].get("value")

        return asyncio.run(ask())

    def close(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def test_state_is_json_without_secrets_and_campaigns_are_selectable(tmp_path: Path):
    repo = campaign(tmp_path)
    cli(
        repo,
        "init",
        "--command",
        f"{PY} train.py",
        "--metric",
        "val_score",
        "--minimize",
        "--params-file",
        "params.json",
        "--campaign",
        "other",
        check=True,
    )
    with dashboard(repo, "--campaign", "c") as url:
        status, text = get(url + "api/state")
        state = json.loads(text)
        assert status == 200 and state["campaigns"] == ["c", "other"] and state["campaign"] == "c"
        assert [r["index"] for r in state["rows"]] == [1] and state["stop"]["sentence"].startswith("stop condition")
        other = json.loads(get(url + "api/state?campaign=other")[1])
        assert other["objective"]["direction"] == "minimize" and other["rows"] == []
        responses = [text, get(url)[1], get(url + "log/c/1")[1], get(url + "diff/c/1")[1]]
        assert "val_score: 0.9100" in responses[2]
        assert all(TOKEN not in r for r in responses)
        assert get(url + "api/state?campaign=nope")[0] == 404 and get(url + "log/c/99")[0] == 404
        request = urllib.request.Request(url + "api/state", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 405


def test_bad_port_or_host_is_refused(tmp_path: Path):
    repo = campaign(tmp_path)
    for args, said in [(["--port", "70000"], "--port"), (["--host", "256.1.1.1", "--port", "0"], "cannot listen")]:
        proc = cli(repo, "dashboard", *args, timeout=60)
        assert proc.returncode == 2 and said in proc.stderr, proc.stderr


@pytest.mark.chromium
def test_the_page_shows_a_run_in_flight_and_its_new_row_without_a_reload(tmp_path: Path, chromium: str):
    repo = campaign(tmp_path)
    rows = "document.querySelectorAll('#ledger tbody tr').length"
    with dashboard(repo) as url:
        browser = Browser(chromium, url, tmp_path / "profile")
        try:
            wait_for(lambda: browser.eval(rows) == 1)
            loaded = browser.eval("window.loadedAt")
            run = subprocess.Popen(
                [PY, "-m", "nrl_autoresearch", "try", "slow", "--set", "lr=0.05", "--set", "sleep=6"],
                cwd=repo,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            try:
                wait_for(lambda: "[2] slow running" in browser.eval("document.getElementById('flight').innerText"))
            finally:
                out, _ = run.communicate(timeout=120)
            assert run.returncode == 0, out
            wait_for(lambda: browser.eval(rows) == 2)
            assert browser.eval("window.loadedAt") == loaded
            assert "slow" in browser.eval("document.querySelector('#ledger tbody tr[data-index=\"2\"]').innerText")
            browser.eval("document.querySelector('#ledger th[data-key=\"metric_value\"]').click()")
            browser.eval("document.querySelector('#ledger th[data-key=\"metric_value\"]').click()")
            assert browser.eval("document.querySelector('#ledger tbody tr').dataset.index") == "2"
        finally:
            browser.close()
