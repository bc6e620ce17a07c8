"""Webhook notifications, received by a real HTTP server the test runs on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from nrl_autoresearch.integrations.notify import shown
from tests.helpers import PY, cli, make_repo, score_repo

TOKEN = "T0KEN1234secretpath"


class Receiver(ThreadingHTTPServer):
    """Records every POST; `/flaky/...` answers 500 to its first request, as a chat service having a moment."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[dict] = []
        self.failed_once = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def events(self, path_start: str = "/hook") -> list[str]:
        return [r["body"]["autoresearch"]["event"] for r in self.received if r["path"].startswith(path_start)]


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        server: Receiver = self.server  # type: ignore[assignment]
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path.startswith("/flaky") and not server.failed_once:
            server.failed_once = True
            self.send_response(500)
        else:
            server.received.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_webhooks_hear_the_baseline_each_new_best_a_stopped_run_and_the_end(tmp_path: Path, receiver: Receiver):
    repo = score_repo(tmp_path / "r")
    env = {
        "HOOK": f"{receiver.url}/hook/{TOKEN}?key=abc123",
        "FLAKY_HOOK": f"http://user:pa55word@127.0.0.1:{receiver.server_address[1]}/flaky/x",
    }
    init = cli(
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
        "c",
        "--max-experiments",
        "5",
        "--per-experiment",
        "3s",
        "--notify",
        "env:HOOK",
        "--notify",
        "env:FLAKY_HOOK",
        env=env,
        check=True,
    )
    cli(repo, "baseline", env=env, check=True)
    cli(repo, "try", "better", "--set", "lr=0.05", env=env, check=True)
    cli(repo, "try", "slow", "--set", "sleep=30", env=env, check=True)
    queue = tmp_path / "q.json"
    queue.write_text(json.dumps([{"name": "best", "set": {"lr": 0.1}}, {"name": "worse", "set": {"lr": 0.5}}]))
    run = cli(repo, "run", "--proposer", f"queue:{queue}", "--yes", env=env, check=True)
    assert receiver.events() == ["baseline", "new_best", "run_stopped", "new_best", "stop_condition_met"]
    first = receiver.received[0]["body"]
    assert first["text"].startswith("autoresearch c: baseline measured: val_score = 0.91")
    assert {"title": "status", "value": "keep", "short": True} in first["attachments"][0]["fields"]
    assert receiver.events("/flaky") == receiver.events()  # the 500 was retried
    assert {r["auth"] for r in receiver.received if r["path"].startswith("/flaky")} == {"Basic dXNlcjpwYTU1d29yZA=="}
    written = [p.read_bytes().decode(errors="replace") for p in (repo / "reports").rglob("*") if p.is_file()]
    for text in [init.stdout, run.stdout, *written]:  # no file we write holds the credential
        assert TOKEN not in text and "abc123" not in text and "pa55word" not in text
    assert "notify: env:HOOK, env:FLAKY_HOOK" in init.stdout


def test_a_url_with_a_credential_is_refused_and_an_unset_variable_named(tmp_path: Path):
    repo = score_repo(tmp_path / "r")
    base = ["init", "--command", f"{PY} train.py", "--metric", "val_score", "--maximize"]
    proc = cli(repo, *base, "--notify", f"https://hooks.example.org/services/{TOKEN}")
    assert proc.returncode == 2 and "carries a credential" in proc.stderr and "env:NAME" in proc.stderr
    assert TOKEN not in proc.stderr and not (repo / "reports").exists()
    proc = cli(repo, *base, "--notify", "env:NO_SUCH_HOOK_VARIABLE")
    assert proc.returncode == 2 and "set the environment variable NO_SUCH_HOOK_VARIABLE" in proc.stderr


def test_an_unreachable_webhook_never_stops_the_campaign(tmp_path: Path):
    repo = score_repo(tmp_path / "r")
    env = {"HOOK": f"http://127.0.0.1:{closed_port()}/hook/{TOKEN}"}
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
        "--notify",
        "env:HOOK",
        env=env,
        check=True,
    )
    proc = cli(repo, "baseline", env=env, check=True)
    assert "failed after 3 attempts (ConnectionRefusedError); the campaign goes on" in proc.stdout
    assert TOKEN not in proc.stdout + proc.stderr


def test_a_crashed_baseline_is_told(tmp_path: Path, receiver: Receiver):
    repo = make_repo(tmp_path / "r", {"train.py": "raise SystemExit('no data')\n"})
    cli(
        repo,
        "init",
        "--command",
        f"{PY} train.py",
        "--metric",
        "val_score",
        "--maximize",
        "--campaign",
        "c",
        "--notify",
        f"{receiver.url}/hook",
        check=True,
    )
    assert cli(repo, "baseline").returncode == 4
    assert receiver.events() == ["baseline_crashed"]
    assert receiver.received[0]["body"]["text"].startswith(
        "autoresearch c: baseline crashed: unmodified recipe; crash: exit code 1"
    )


def test_a_bad_url_is_refused_and_nothing_created(tmp_path: Path):
    repo = score_repo(tmp_path / "r")
    proc = cli(
        repo,
        "init",
        "--command",
        f"{PY} train.py",
        "--metric",
        "val_score",
        "--notify",
        f"ftp://me:{TOKEN}@example.org/x",
    )
    assert proc.returncode == 2 and "give an http:// or https:// webhook URL" in proc.stderr
    assert TOKEN not in proc.stderr and not (repo / "reports").exists()


@pytest.mark.parametrize(
    "url, safe",
    [
        ("https://hooks.slack.com/services/T0/B0/XYZ", "https://hooks.slack.com/services/***/***/***"),
        ("https://u:p@h.example:8443/a?token=t&x=1#frag", "https://***@h.example:8443/a?token=***&x=***#***"),
        ("http://127.0.0.1:9/hook", "http://127.0.0.1:9/hook"),
    ],
)
def test_shown_urls_keep_the_service_and_hide_the_credentials(url: str, safe: str):
    assert shown(url) == safe
