"""What a campaign tells the tools researchers already watch, after each new row and at the end of the loop:
webhooks (notify.py) and MLflow (tracking.py). Neither can stop the campaign."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nrl_autoresearch.integrations import notify, tracking

if TYPE_CHECKING:
    from nrl_autoresearch.core.ledger import Row
    from nrl_autoresearch.runner.engine import Engine


def row_recorded(engine: Engine, row: Row, extra: dict) -> None:
    notify.row_recorded(engine, row, extra)
    tracking.sync(engine)


def loop_ended(engine: Engine) -> None:
    tracking.sync(engine)
    notify.loop_ended(engine)
