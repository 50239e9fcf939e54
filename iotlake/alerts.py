"""SQL alerts over the lake's Delta tables, as Databricks SQL alerts evaluate them.

An alert is a query returning one number, a condition on it (`> threshold`), a subject and a
body, and a muted flag. Evaluating it runs the query with delta-rs (DataFusion), no Spark:
`TRIGGERED` when the condition holds, `OK` when it does not, `UNKNOWN` while the table does
not exist yet. A muted alert is still evaluated and shown; muting only means nobody is
notified, as in Databricks, where the manufacturing original creates its alert muted.

The manufacturing alert (docs/originals.md, manufacturing)::

    SELECT count(*) AS defects_count FROM anomaly_detected
    WHERE timestamp > current_timestamp() - INTERVAL 10 MINUTES      -- fires when > 0
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import pandas as pd
import pyarrow as pa
from deltalake import QueryBuilder

from iotlake.config import Settings
from spark_jobs.io.storage import open_table

State = Literal["TRIGGERED", "OK", "UNKNOWN"]


@dataclass(frozen=True)
class Alert:
    """One alert: `sql` has a `{since}` placeholder for the start of its time window."""

    name: str
    system: str
    table: str
    sql: str
    column: str
    threshold: float
    minutes: int
    subject: str
    body: str
    muted: bool


@dataclass(frozen=True)
class AlertStatus:
    """The outcome of one evaluation."""

    alert: Alert
    state: State
    value: float | None
    checked_at: datetime

    @property
    def triggered(self) -> bool:
        return self.state == "TRIGGERED"

    def line(self) -> str:
        """One line for a terminal: state, subject, the table, the value against the rule."""
        alert = self.alert
        value = "no table yet" if self.value is None else f"{alert.column} = {self.value:g}"
        muted = ", muted" if alert.muted else ""
        return (
            f"{self.state:<9} {alert.subject}: {alert.system}.{alert.table} {value} "
            f"(fires when > {alert.threshold:g}, last {alert.minutes} minutes{muted})"
        )

    def as_dict(self) -> dict[str, object]:
        alert = self.alert
        return {
            "name": alert.name,
            "state": self.state,
            "triggered": self.triggered,
            "value": self.value,
            "column": alert.column,
            "condition": f"{alert.column} > {alert.threshold:g}",
            "table": f"{alert.system}.{alert.table}",
            "minutes": alert.minutes,
            "subject": alert.subject,
            "body": alert.body,
            "muted": alert.muted,
            "checked_at": self.checked_at.isoformat(),
        }


def defects_detected(settings: Settings) -> Alert:
    """The manufacturing original's alert over `anomaly_detected`."""
    config = settings.manufacturing
    return Alert(
        name="manufacturing-defects",
        system="manufacturing",
        table="anomaly_detected",
        sql=(
            "SELECT CAST(count(*) AS BIGINT) AS defects_count FROM anomaly_detected "
            'WHERE "timestamp" > {since}'
        ),
        column="defects_count",
        threshold=0,
        minutes=config.alert_minutes,
        subject="Defects detected",
        body="The number of potential defects detected",
        muted=config.alert_muted,
    )


def alerts(settings: Settings) -> list[Alert]:
    """Every alert iotlake defines; a system adds its alerts here."""
    return [defects_detected(settings)]


def _literal(instant: datetime) -> str:
    """A UTC instant as a DataFusion timestamp literal."""
    value = instant.astimezone(UTC) if instant.tzinfo else instant.replace(tzinfo=UTC)
    return f"CAST('{value.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}' AS TIMESTAMP)"


def evaluate(settings: Settings, alert: Alert, now: datetime | None = None) -> AlertStatus:
    """Run the alert's query for the window ending `now` (the wall clock by default)."""
    now = now or datetime.now(UTC)
    table = open_table(settings, alert.system, alert.table)
    if table is None:
        return AlertStatus(alert, "UNKNOWN", None, now)
    sql = alert.sql.format(since=_literal(now - timedelta(minutes=alert.minutes)))
    result = pa.table(QueryBuilder().register(alert.table, table).execute(sql)).to_pandas()
    value = float(result[alert.column].iloc[0]) if len(result) else 0.0
    value = 0.0 if pd.isna(value) else value
    return AlertStatus(alert, "TRIGGERED" if value > alert.threshold else "OK", value, now)


def check_all(settings: Settings, now: datetime | None = None) -> list[AlertStatus]:
    """Every alert evaluated once, at the same instant."""
    now = now or datetime.now(UTC)
    return [evaluate(settings, alert, now) for alert in alerts(settings)]


def to_json(statuses: list[AlertStatus]) -> str:
    return json.dumps([status.as_dict() for status in statuses], indent=2)
