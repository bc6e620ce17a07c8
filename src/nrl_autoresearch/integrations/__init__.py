"""What a campaign tells the tools researchers already watch, after each new row and at the end of the loop:
webhooks (notify.py) and MLflow (tracking.py). Neither can stop the campaign."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nrl_autoresearch.integrations import notify, tracking

if TYPE_CHECKING:
    from nrl_autoresearch.core.ledger import Row
    from nrl_autoresearch.runner.planner import Planner


def row_recorded(planner: Planner, row: Row, extra: dict) -> None:
    notify.row_recorded(planner, row, extra)
    tracking.sync(planner)


def loop_ended(planner: Planner) -> None:
    tracking.sync(planner)
    notify.loop_ended(planner)
