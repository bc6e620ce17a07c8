"""`autoresearch dashboard`: the campaign live in a browser, read-only, on 127.0.0.1 unless told otherwise.

A Starlette app served by uvicorn: `/` is one page that polls `/api/state` and redraws itself (no reload);
`/log/<campaign>/<index>` and `/diff/<campaign>/<index>` show a row's run log and change. Every response is
built from the campaign files and passes `redact()`; nothing is ever written.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from nrl_autoresearch.core import campaign as campaigns
from nrl_autoresearch.core.campaign import CAMPAIGNS
from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.ledger import Row
from nrl_autoresearch.core.redact import redact
from nrl_autoresearch.interface import api
from nrl_autoresearch.runner.curves import curve_of
from nrl_autoresearch.runner.engine import Engine

PAGE = Path(__file__).with_name("page.html")
IN_FLIGHT = ("launching", "launched")


def names(repo: Path) -> list[str]:
    return sorted(p.parent.name for p in (repo / CAMPAIGNS).glob("*/campaign.json"))


def state(engine: Engine, all_names: list[str]) -> dict:
    """Everything the page shows, JSON-ready; the rows as the ledger holds them (already redacted)."""
    c, rows = engine.campaign, engine.rows()
    status = api.status_data(engine.planner)
    index_of = {r.commit: r.index for r in rows}
    return {
        "campaigns": all_names,
        "campaign": c.name,
        "prefix": c.prefix,
        "now": time.time(),
        "objective": {
            "metric": c.objective.metric_name,
            "direction": c.objective.direction,
            "source": str(c.objective.source),
            "aggregate": c.objective.aggregate,
            "goal": c.options.get("goal"),
        },
        "stop": status["stop"],
        "remaining_seconds": status["remaining_seconds"],
        "best": status["best_keep"]["index"] if status["best_keep"] else None,
        "rows": [_row(c.name, r, index_of.get(r.parent_commit)) for r in rows],
        "in_flight": _in_flight(engine, {r.index for r in rows}, status["remaining_seconds"]),
    }


def _row(campaign: str, row: Row, parent_index: int | None) -> dict:
    return {
        **row.to_dict(),
        "name": row.branch.rsplit("/", 1)[1],
        "parent_index": parent_index,
        "log_url": f"/log/{campaign}/{row.index}",
        "diff_url": f"/diff/{campaign}/{row.index}",
    }


def _in_flight(engine: Engine, recorded: set[int], campaign_left: float | None) -> list[dict]:
    """Runs the journal shows launched and not yet recorded, with their curve so far and their time left."""
    found = []
    for a in sorted(engine.journal.attempts().values(), key=lambda a: a.index):
        if a.step not in IN_FLIGHT or a.index in recorded:
            continue
        job, now = a.data.get("job") or {}, time.time()
        elapsed = now - job["started_at"] if job.get("started_at") else 0.0
        lefts = [
            x
            for x in ((job.get("timeout_s") or 0) - elapsed if job.get("timeout_s") else None, campaign_left)
            if x is not None
        ]
        found.append(
            {
                "index": a.index,
                "name": a.data.get("name"),
                "elapsed_s": elapsed,
                "left_s": max(0.0, min(lefts)) if lefts else None,
                "curve": [list(p) for p in curve_of(engine.context, a.data)],
            }
        )
    return found


# -- the web app -------------------------------------------------------------------------------------------------
def app(repo: Path, default: str | None) -> Starlette:
    engines: dict[str, Engine] = {}

    def engine_for(name: str | None) -> Engine:
        name = name or default or campaigns.load(repo).name
        if name not in names(repo):
            raise UsageError(f"no campaign named {name!r}")
        if name not in engines:
            engines[name] = Engine(campaigns.load(repo, name), say=lambda _: None)
        return engines[name]

    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE.read_text())

    async def api_state(request: Request) -> Response:
        try:
            data = state(engine_for(request.query_params.get("campaign")), names(repo))
        except UsageError as err:
            return JSONResponse({"error": str(err)}, status_code=404)
        return Response(redact(json.dumps(data, allow_nan=False, default=str)), media_type="application/json")

    async def row_file(request: Request) -> Response:
        try:
            engine = engine_for(request.path_params["campaign"])
        except UsageError as err:
            return PlainTextResponse(str(err), status_code=404)
        row = next((r for r in engine.rows() if r.index == request.path_params["index"]), None)
        if row is None:
            return PlainTextResponse("no such row", status_code=404)
        return PlainTextResponse(
            redact(
                _log_text(engine, row)
                if request.url.path.startswith("/log/")
                else engine.workspace.git.run("diff", row.parent_commit, row.commit, check=False)
            )
        )

    return Starlette(
        routes=[
            Route("/", page),
            Route("/api/state", api_state),
            Route("/log/{campaign:str}/{index:int}", row_file, name="log"),
            Route("/diff/{campaign:str}/{index:int}", row_file, name="diff"),
        ]
    )


def _log_text(engine: Engine, row: Row) -> str:
    path = Path(row.log_path)
    path = path if path.is_absolute() else engine.campaign.repo / path
    return path.read_text(errors="replace") if path.is_file() else f"(no log at {row.log_path})"


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the address is printed (port 0: a free one)."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
    except OSError as err:
        raise UsageError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    sock.listen(64)
    return sock


def serve(repo: Path, default: str | None, sock: socket.socket) -> None:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app(repo, default), log_level="warning", access_log=False))
    server.run(sockets=[sock])
