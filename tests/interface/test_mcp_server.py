"""The MCP server driven as a coding agent drives it: the SDK's own stdio client, a real demo repository, real runs."""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult, TextContent

from nrl_autoresearch.interface import api, mcp_server
from tests.helpers import PY, git, score_repo

LR = "policy.optimizer.kwargs.lr"
TOOLS = {
    "init_campaign",
    "create_demo",
    "recipes",
    "preflight",
    "plan",
    "run_baseline",
    "new_experiment",
    "try_experiment",
    "run_loop",
    "status",
    "ledger",
    "report",
    "steer",
    "write_handoff",
    "resume_report",
    "finalize",
}


def session(tmp_path: Path, test: Callable[[ClientSession], Awaitable[None]]) -> None:
    """Spawn the server over stdio, initialise a client session and run `test` with it."""

    async def main() -> None:
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "nrl_autoresearch.interface.mcp_server"],
            env=dict(os.environ),
            cwd=tmp_path,
        )
        async with AsyncExitStack() as stack:
            errlog = stack.enter_context((tmp_path / "server.log").open("w"))
            read, write = await stack.enter_async_context(stdio_client(params, errlog=errlog))
            client = await stack.enter_async_context(ClientSession(read, write))
            await client.initialize()
            await client.list_tools()  # the client checks every structured result against the tool's output schema
            await test(client)

    anyio.run(main)


async def ok(client: ClientSession, tool: str, **arguments) -> dict:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool}: {text_of(result)}"
    assert json.loads(text_of(result)) == result.structured_content
    return result.structured_content


async def refused(client: ClientSession, tool: str, **arguments) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} should refuse {arguments}"
    message = text_of(result)
    assert "Traceback" not in message and message.startswith(f"Error executing tool {tool}: ")
    return message


def text_of(result: CallToolResult) -> str:
    texts = []
    for block in result.content:
        assert isinstance(block, TextContent), f"the server answers in text, not {block.type}"
        texts.append(block.text)
    return "\n".join(texts)


def test_tools_are_listed_with_descriptions_and_schemas(tmp_path: Path):
    async def test(client: ClientSession) -> None:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        for tool in tools.values():
            assert tool.description and tool.input_schema["type"] == "object", tool.name
            assert tool.output_schema is not None and tool.output_schema["type"] == "object", tool.name
            if tool.name != "create_demo":  # repo defaults to the server's working directory
                assert "repo" not in tool.input_schema.get("required", []), tool.name
                assert tool.input_schema["properties"]["repo"]["default"] == ".", tool.name
            if tool.name not in ("create_demo", "recipes", "init_campaign"):
                assert "campaign" in tool.input_schema["properties"], tool.name
        assert tools["status"].output_schema == mcp_server.load_schema("status")
        status_hints = tools["status"].annotations
        assert status_hints is not None and status_hints.read_only_hint and not tools["run_loop"].annotations
        changes = tools["try_experiment"].input_schema["properties"]["set"]["anyOf"][0]
        assert changes == {"type": "object", "additionalProperties": {"type": "string"}}

    session(tmp_path, test)


def test_init_campaign_offers_every_field_of_the_request():
    fields = {f.name for f in dataclasses.fields(api.CampaignRequest)} - {"name"} | {"campaign", "repo"}
    assert set(inspect.signature(mcp_server.init_campaign).parameters) == fields


def test_a_demo_campaign_through_the_tools(tmp_path: Path):
    demo = str(tmp_path / "demo")
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    async def test(client: ClientSession) -> None:
        created = await ok(client, "create_demo", dir=demo, experiments=1, baseline_repeats=1)
        assert created["campaign"]["repo"] == demo and created["monitors"][0] == "target_experiment_count = 2"
        planned = await ok(client, "plan", repo=demo)
        assert planned["first_hypotheses"] and not planned["baseline_recorded"] and "stop monitors" in planned["plan"]
        refusal = await refused(client, "run_loop", repo=demo)
        assert "confirm=true" in refusal and planned["plan"] in refusal
        assert git(Path(demo), "branch", "--list", "autoresearch/*") == ""  # nothing was created

        baseline = await client.call_tool("run_baseline", {"repo": demo}, progress_callback=on_progress)
        assert not baseline.is_error, text_of(baseline)
        assert baseline.structured_content["row"]["status"] == "keep"
        values = [value for value, _, _ in updates]
        assert values == sorted(set(values)) and {total for _, total, _ in updates} == {2}
        assert any(m is not None and "launched baseline" in m for _, _, m in updates) and values[-1] > 1
        assert [m for _, _, m in updates] == baseline.structured_content["progress"]

        assert "not.a.knob" in await refused(client, "try_experiment", repo=demo, name="x", set={"not.a.knob": "1"})
        assert "bad name" in await refused(client, "try_experiment", repo=demo, name="bad name!", set={LR: "1.0e-2"})
        tried = await ok(client, "try_experiment", repo=demo, name="lr-up", set={LR: "1.0e-2"}, description="faster")
        assert tried["row"]["branch"].endswith("/lr-up")
        assert tried["stop"]["sentence"] == "stop condition met: 2/2 attempted"

        status = await ok(client, "status", repo=demo)
        assert status["attempted"] == 2 and status["stop"]["met"]
        rows = (await ok(client, "ledger", repo=demo))["rows"]
        assert [r["index"] for r in rows] == [1, 2]
        assert all(r["status"] != "crash" and 0 < r["metric_value"] <= 1 for r in rows)
        assert "stop condition met: 2/2 attempted" in await refused(client, "run_loop", repo=demo, confirm=True)
        (Path(demo) / "queue.yaml").write_text("- {name: warmer, set: {policy.generation.temperature: '1.2'}}\n")
        looped = await ok(client, "run_loop", repo=demo, proposer="queue:queue.yaml", more=1, confirm=True)
        assert [r["branch"].rsplit("/", 1)[1] for r in looped["rows"]] == ["warmer"]
        assert looped["stop"]["sentence"] == "stop condition met: 3/3 attempted" and "summary of" in looped["summary"]

        written = await ok(client, "report", repo=demo)
        assert Path(written["html"]).is_file() and "lr-up" in written["summary"]
        assert (await ok(client, "steer", repo=demo, text="prefer stable runs"))["objective"] == "maximize val:accuracy"
        handoff = await ok(client, "write_handoff", repo=demo, note="two rows recorded")
        assert handoff["text"].startswith("# Handoff") and "prefer stable runs" in handoff["text"]
        resumed = await ok(client, "resume_report", repo=demo)
        assert resumed["mismatches"] == [] and resumed["handoff"] == handoff["path"]

    session(tmp_path, test)


def test_bad_input_is_one_clear_error(tmp_path: Path):
    repo = score_repo(tmp_path / "project")

    async def test(client: ClientSession) -> None:
        missing = str(tmp_path / "missing")
        assert "no such folder" in await refused(client, "status", repo=missing)
        assert "no campaign" in await refused(client, "status", repo=str(repo))
        assert "exactly one of" in await refused(client, "init_campaign", repo=str(repo))
        assert "unknown option bogus" in await refused(
            client,
            "init_campaign",
            repo=str(repo),
            command="python train.py",
            metric="val_score",
            maximize=True,
            launcher="local",
            launcher_options={"bogus": "1"},
        )
        created = await ok(
            client,
            "init_campaign",
            repo=str(repo),
            command=f"{PY} train.py",
            metric="val_score",
            maximize=True,
            params_file="params.json",
            campaign="project",
        )
        assert created["campaign"]["recipe"]["kind"] == "command"
        assert (await ok(client, "status", repo=str(repo)))["latest"] is None
        assert "no baseline yet" in await refused(
            client, "try_experiment", repo=str(repo), name="lr", set={"lr": "0.1"}
        )
        assert "greater than or equal to 1" in await refused(client, "run_loop", repo=str(repo), workers=0)
        assert "unknown --proposer" in await refused(client, "plan", repo=str(repo), proposer="oracle")
        assert "no campaign named 'other'" in await refused(client, "ledger", repo=str(repo), campaign="other")

    session(tmp_path, test)


def test_a_cancelled_run_is_ended_and_recorded(tmp_path: Path):
    repo = str(score_repo(tmp_path / "project", sleep=60))

    async def test(client: ClientSession) -> None:
        await ok(
            client,
            "init_campaign",
            repo=repo,
            command=f"{PY} train.py",
            metric="val_score",
            maximize=True,
            params_file="params.json",
        )
        with anyio.move_on_after(3):  # leaving the scope cancels the request, as an agent's interrupt does
            await client.call_tool("run_baseline", {"repo": repo})
        with anyio.fail_after(20):
            while not (status := await ok(client, "status", repo=repo))["attempted"]:
                await anyio.sleep(0.2)
        latest = status["latest"]
        assert latest["status"] == "crash" and "cancelled by the MCP client" in latest["description"]

    session(tmp_path, test)


def test_repo_defaults_to_the_servers_folder_and_bad_arguments_get_one_clear_message_each(tmp_path: Path):
    repo = score_repo(tmp_path)

    async def test(client: ClientSession) -> None:
        await ok(
            client,
            "init_campaign",
            command=f"{PY} train.py",
            metric="val_score",
            maximize=True,
            params_file="params.json",
            campaign="here",
        )
        assert (await ok(client, "status"))["campaign"] == "here"
        message = await refused(client, "run_loop", workers=0, steps="many")
        assert message.endswith(
            'bad steps "many": input should be a valid integer, unable to parse string as an integer; '
            "bad workers 0: input should be greater than or equal to 1"
        )
        assert "validation error" not in message and "pydantic" not in message
        assert (await refused(client, "try_experiment")).endswith("missing name: give it")

    session(repo, test)


def test_finalize_through_the_tools(tmp_path: Path):
    repo = str(score_repo(tmp_path / "r"))

    async def test(client: ClientSession) -> None:
        await ok(
            client,
            "init_campaign",
            repo=repo,
            command=f"{PY} train.py",
            metric="val_score",
            maximize=True,
            params_file="params.json",
        )
        await ok(client, "run_baseline", repo=repo)
        await ok(client, "try_experiment", repo=repo, name="lr2", set={"lr": "0.05"})
        done = await ok(client, "finalize", repo=repo, branch="winners")
        assert done["branch"] == "winners" and [c["experiment"] for c in done["commits"]] == ["lr2"]
        assert git(Path(repo), "log", "-1", "--format=%s", "winners").startswith("lr2: ")
        assert "already exists" in await refused(client, "finalize", repo=repo, branch="winners")

    session(tmp_path, test)
