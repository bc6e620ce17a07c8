"""Webhook notifications (`init --notify URL`): a Slack-compatible JSON POST when something a researcher would
want on their phone happens: the baseline's result or crash, a new best keep, a stopped or stalled run, a met
stop condition, the end of the loop.

A webhook URL is often itself a credential (Slack's and Discord's carry their token in the path), and no file we
write may hold one: such a URL is given as `--notify env:NAME`, the environment variable that holds it, read
when a notification is sent; only a URL that carries no credential is stored as it is. Delivery is retried
briefly and never fatal: a campaign does not stop because a chat service is down.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.redact import MASK, redact

if TYPE_CHECKING:
    import urllib.request

    from nrl_autoresearch.core.ledger import Row
    from nrl_autoresearch.runner.planner import Planner

ENV = "env:"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# how a run that autoresearch ended (the person's stop, a time limit, a stall) is described by its launcher
_STOPPED = re.compile(r"timeout|stopped|stall|interrupted|cancel", re.IGNORECASE)
ATTEMPTS = 3
TIMEOUT_S = 5.0


def validate(specs: tuple[str, ...] | list[str]) -> list[str]:
    """Each is `env:NAME` (set now, to an http(s) URL) or an http(s) URL with no credential in it; a refusal never
    shows the credential."""
    for spec in specs:
        url = _resolve(spec) if spec.startswith(ENV) else spec
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"bad --notify {shown(url)!r}: give an http:// or https:// webhook URL")
        if not spec.startswith(ENV) and shown(url) != url:
            raise UsageError(
                f"the webhook {shown(url)!r} carries a credential, and no file may hold one: put the URL "
                "in an environment variable and pass --notify env:NAME"
            )
    return list(specs)


def _resolve(spec: str) -> str:
    name = spec[len(ENV) :]
    if not _NAME.fullmatch(name) or not os.environ.get(name):
        raise UsageError(f"bad --notify {spec!r}: set the environment variable {name or 'NAME'} to the webhook URL")
    return os.environ[name]


def shown(url: str) -> str:
    """The URL safe to store or print: user:password, every path segment after the first, query values and the
    fragment masked (scheme, host, port and the first segment stay, so the person recognises the service)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = (
        (f"{MASK}@" if parts.username or parts.password else "") + host + (f":{parts.port}" if _port(parts) else "")
    )
    segments = parts.path.split("/")
    path = "/".join(s if i <= 1 or not s else MASK for i, s in enumerate(segments))
    query = "&".join(f"{pair.split('=', 1)[0]}={MASK}" for pair in parts.query.split("&") if pair)
    return urlunsplit((parts.scheme, netloc, path, query, MASK if parts.fragment else ""))


def _port(parts) -> int | None:
    try:
        return parts.port
    except ValueError:
        return None


def _urls(planner: Planner) -> list[str]:
    """The webhook URLs now: `env:NAME` read from the environment (a name no longer set is said and skipped)."""
    urls = []
    for spec in planner.context.campaign.options.get("notify") or []:
        if not spec.startswith(ENV):
            urls.append(spec)
        elif os.environ.get(spec[len(ENV) :]):
            urls.append(os.environ[spec[len(ENV) :]])
        else:
            planner.context.say(f"notification skipped: {spec[len(ENV) :]} is not set in this environment")
    return urls


# -- events ------------------------------------------------------------------------------------------------------
def row_recorded(planner: Planner, row: Row, extra: dict) -> None:
    """After a ledger row: the baseline's result or crash, a new best keep, a run that was stopped or stalled."""
    if not _urls(planner):
        return
    event = _row_event(planner, row, extra)
    if event:
        kind, text = event
        send(planner, kind, text, _row_fields(planner, row))


def _row_event(planner: Planner, row: Row, extra: dict) -> tuple[str, str] | None:
    name = row.branch.rsplit("/", 1)[1]
    value = f"{row.metric_name} = {row.metric_value:.6g}" if row.metric_value is not None else ""
    if name == "baseline":
        return (
            ("baseline_crashed", f"baseline crashed: {row.description}")
            if row.status == "crash"
            else ("baseline", f"baseline measured: {value}")
        )
    if row.status == "crash" and (extra.get("interrupted") or _STOPPED.search(str(extra.get("end") or ""))):
        return "run_stopped", f"[{row.index}] {name} was stopped: {row.description}"
    top = planner.context.best_row()
    if row.status == "keep" and top is not None and top.index == row.index:
        return "new_best", f"new best keep [{row.index}] {name}: {value} ({row.description})"
    return None


def loop_ended(planner: Planner) -> None:
    """After the loop: whether a stop condition was met, and where the campaign stands."""
    if not _urls(planner):
        return
    status = planner.status()
    top = planner.context.best_row()
    best = f"best keep {top.branch.rsplit('/', 1)[1]}: {top.metric_name} = {top.metric_value:.6g}" if top else "no keep"
    kind = "stop_condition_met" if status.met else "campaign_ended"
    fields = {"attempted": str(len(planner.context.rows())), "stop": status.sentence}
    send(planner, kind, f"campaign {planner.context.campaign.name} ended: {status.sentence}; {best}", fields)


def _row_fields(planner: Planner, row: Row) -> dict[str, str]:
    return {
        "index": str(row.index),
        "branch": row.branch,
        "status": row.status,
        "commit": row.commit[:12],
        "value": "" if row.metric_value is None else f"{row.metric_value:.6g}",
        "elapsed_min": f"{row.elapsed_min:.1f}",
        "stop": planner.status().sentence,
    }


# -- delivery ----------------------------------------------------------------------------------------------------
def payload(planner: Planner, kind: str, text: str, fields: dict[str, str]) -> dict:
    """Slack's incoming-webhook shape (`text`, and `attachments` fields), with the same facts machine-readable."""
    text = redact(f"autoresearch {planner.context.campaign.name}: {text}")
    fields = {k: redact(v) for k, v in fields.items()}
    return {
        "text": text,
        "attachments": [{"fields": [{"title": k, "value": v, "short": len(v) < 40} for k, v in fields.items()]}],
        "autoresearch": {
            "event": kind,
            "campaign": planner.context.campaign.name,
            "objective": planner.context.campaign.objective.metric_name,
            **fields,
        },
    }


def send(planner: Planner, kind: str, text: str, fields: dict[str, str]) -> None:
    body = json.dumps(payload(planner, kind, text, fields)).encode()
    for url in _urls(planner):
        failure = _post(url, body)
        if failure:
            planner.context.say(
                f"notification to {shown(url)} failed after {ATTEMPTS} attempts ({failure}); the campaign goes on"
            )


def _request(url: str, body: bytes) -> urllib.request.Request:
    """A POST; credentials in the URL (user:password@) become a Basic Authorization header."""
    import urllib.request  # with the HTTP and TLS modules behind it, only when there is something to send

    parts = urlsplit(url)
    headers = {"Content-Type": "application/json"}
    if parts.username is not None:
        pair = f"{parts.username}:{parts.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        url = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return urllib.request.Request(url, data=body, method="POST", headers=headers)


def _post(url: str, body: bytes) -> str | None:
    """None once delivered; else the last failure, the URL left out (it may carry the token)."""
    import urllib.error
    import urllib.request

    failure = None
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(0.5 * attempt)
        request = _request(url, body)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                response.read()
            return None
        except urllib.error.HTTPError as err:
            failure = f"HTTP {err.code}"
        except (urllib.error.URLError, OSError) as err:
            failure = type(getattr(err, "reason", err)).__name__
    return failure
