"""The campaign's options, declared once in `options.py`, reach every face alike: the command line's init, plan
and preflight, the init_campaign tool and `api.CampaignRequest`, with the owning modules' defaults."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

from nrl_autoresearch.core import judge, launcher
from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.interface import api, cli, mcp_server, options
from tests.helpers import PY, score_repo
from tests.helpers import cli as run_cli


@pytest.mark.parametrize("command", [cli.init, cli.plan, cli.preflight])
def test_every_option_is_a_command_line_option_with_the_requests_default(command):
    request = api.CampaignRequest()
    params = {p.name: p for p in command.params}
    for o in options.CAMPAIGN:
        assert o.cli_flag in params[o.name].opts, o.name
        if not o.many:
            assert params[o.name].default == getattr(request, o.name), o.name


def test_the_tool_and_the_request_take_the_same_options():
    fields = [f.name for f in dataclasses.fields(api.CampaignRequest)]
    arguments = list(inspect.signature(mcp_server.init_campaign).parameters)
    assert fields == [o.name for o in options.CAMPAIGN]
    assert arguments == ["repo", *(o.tool_arg for o in options.CAMPAIGN)]


def test_defaults_are_the_owning_modules():
    request = api.CampaignRequest()
    assert (request.z, request.seed_base, request.grace) == (judge.Z_DEFAULT, judge.SEED_BASE, f"{launcher.GRACE_S:g}s")


@pytest.mark.parametrize(
    "fields, says",
    [
        ({"z": 0.0}, "bad --z 0.0: give a number above 0"),
        ({"repeats": 0}, "bad --repeats 0: give a number 1 or more"),
        ({"launcher": "moon"}, "bad --launcher 'moon': use one of auto, local"),
    ],
)
def test_the_request_refuses_out_of_bounds_values(fields: dict, says: str):
    with pytest.raises(UsageError, match=says):
        api.CampaignRequest(command="python train.py", **fields)


def test_the_command_line_refuses_as_the_request_does(tmp_path: Path):
    repo = score_repo(tmp_path / "p")
    proc = run_cli(repo, "init", "--command", f"{PY} train.py", "--metric", "val_score", "--maximize", "--repeats", "0")
    assert proc.returncode == 2 and proc.stderr == "autoresearch: error: bad --repeats 0: give a number 1 or more\n"
    assert not (repo / "reports").exists()
