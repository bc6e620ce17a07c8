"""`llm` against a local OpenAI-compatible endpoint: a valid answer, refused answers fed back, the catalog fallback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.helpers import ledger_rows
from tests.proposers.support import cli, init, project

KEY = "test-secret-4242-abcdef"
VALID = json.dumps({"name": "lr-to-0.1", "description": "the right rate", "parent": "baseline", "set": {"lr": 0.1}})


@contextmanager
def endpoint(replies: list[str]) -> Iterator[tuple[str, list[dict]]]:
    """/v1/chat/completions on 127.0.0.1, answering `replies` in turn (the last one again and again)."""
    requests: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            reply = replies[min(len(requests), len(replies)) - 1]
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def campaign(tmp_path: Path, replies: list[str], experiments: int = 2) -> tuple[Path, list[dict], str]:
    """A campaign run with the llm proposer: the repository, the requests the endpoint got, the output."""
    repo = project(tmp_path / "r")
    init(repo, experiments)
    with endpoint(replies) as (url, requests):
        env = {
            "AUTORESEARCH_LLM_BASE_URL": url,
            "AUTORESEARCH_LLM_MODEL": "test-model",
            "OPENAI_API_KEY": KEY,
            "no_proxy": "127.0.0.1",
            "NO_PROXY": "127.0.0.1",
        }
        proc = cli(repo, "run", "--proposer", "llm", "--yes", env=env)
    return repo, requests, proc.stdout + proc.stderr


def test_a_valid_answer_is_run_and_the_key_is_written_nowhere(tmp_path: Path):
    repo, requests, out = campaign(tmp_path, [VALID])
    rows = ledger_rows(repo)
    assert rows[1]["branch"].endswith("/lr-to-0.1") and rows[1]["status"] == "keep"
    assert len(requests) == 1 and requests[0]["path"] == "/v1/chat/completions"
    assert requests[0]["auth"] == f"Bearer {KEY}" and requests[0]["body"]["model"] == "test-model"
    context = requests[0]["body"]["messages"][1]["content"]
    assert "| 1 | baseline | keep | 0.83 |" in context and "`lr` = 0.01" in context
    assert KEY not in out
    for path in repo.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_refused_answers_are_fed_back_until_one_is_valid(tmp_path: Path):
    unknown = json.dumps({"name": "typo", "description": "", "parent": "baseline", "set": {"lrr": 0.1}})
    repo, requests, _ = campaign(tmp_path, ["Raise the learning rate.", unknown, VALID])
    assert ledger_rows(repo)[1]["branch"].endswith("/lr-to-0.1")
    feedback = [r["body"]["messages"][-1]["content"] for r in requests[1:]]
    assert feedback[0].startswith("Refused: not a JSON object")
    assert "unknown key 'lrr'" in feedback[1] and "closest existing keys: lr" in feedback[1]


def test_garbage_falls_back_to_the_catalog_and_says_so(tmp_path: Path):
    repo, requests, out = campaign(tmp_path, ["{not json"], experiments=3)
    assert "no valid hypothesis in 3 answers" in out and "the catalog proposer takes over" in out
    assert len(requests) == 3  # the fallback holds for the rest of the loop
    assert [r["branch"].rsplit("/", 1)[1] for r in ledger_rows(repo)] == [
        "baseline",
        "lr-up-0.02",
        "lr-up-0.04-on-best",
    ]
