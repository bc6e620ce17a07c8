"""A real MLflow tracking server on 127.0.0.1 with a SQLite backend, started and stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .services import LabError

START_TIMEOUT_S = 120


@dataclass
class MlflowServer:
    url: str
    proc: subprocess.Popen

    def stop(self) -> None:
        """SIGTERM to the server's process group (uvicorn's workers too), SIGKILL if it lingers."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_mlflow(lab: Path, port: int | None = None) -> MlflowServer:
    """`mlflow server` on 127.0.0.1:PORT, answering /health; its log in `lab`."""
    lab.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    log = (lab / "server.log").open("w")
    proc = subprocess.Popen(
        [
            str(mlflow),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{lab / 'mlflow.db'}",
            "--default-artifact-root",
            str(lab / "artifacts"),
        ],
        cwd=lab,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = MlflowServer(f"http://127.0.0.1:{port}", proc)
    deadline = time.time() + START_TIMEOUT_S
    while time.time() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(server.url + "/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    server.stop()
    raise LabError(
        f"mlflow server did not answer on {server.url} within {START_TIMEOUT_S}s:\n"
        + (lab / "server.log").read_text()[-3000:]
    )


@contextmanager
def forwarding(port: int, target_url: str) -> Iterator[None]:
    """While inside, connections to 127.0.0.1:PORT are passed on to the server at `target_url`: a tracker that was
    down at that address comes up, without starting another one."""
    target = urllib.parse.urlsplit(target_url)
    address = (target.hostname or "127.0.0.1", target.port or 80)
    listener = socket.create_server(("127.0.0.1", port))
    listener.settimeout(0.2)
    stop = threading.Event()
    sockets: list[socket.socket] = []

    def pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(1 << 16):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(address)
            sockets.extend((client, upstream))
            for pair in ((client, upstream), (upstream, client)):
                threading.Thread(target=pump, args=pair, daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield
    finally:
        stop.set()
        acceptor.join(5)
        listener.close()
        for end in sockets:
            end.close()
