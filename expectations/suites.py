"""Great Expectations suites, generated from the rules declared next to each table.

The table file is where a reader looks for a rule (`@dlt.expect_or_drop(...)` or a SQL
`CONSTRAINT ... EXPECT`), so it is the
one place a rule is written. `iotlake expectations` writes the matching suite to
`expectations/<system>/<table>.json`; a test fails when a suite drifts from its table. The
row-level rules run per micro-batch in Spark; the suites validate whole tables on demand
(`iotlake check`) through Great Expectations' Spark data source.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from spark_jobs.lakeflow.api import Expectation, TableSpec

SUITES_DIR = Path(__file__).resolve().parent


def unexpected_rows_query(expectation: Expectation) -> str:
    """Rows that break the rule, NULL counting as broken (as the micro-batch check does)."""
    return f"SELECT * FROM {{batch}} WHERE NOT COALESCE(({expectation.condition}), FALSE)"


def suite_document(spec: TableSpec) -> dict:
    """The suite of one table as Great Expectations stores it (JSON)."""
    return {
        "name": f"{spec.system}.{spec.name}",
        "meta": {
            "generated_from": _relative(spec.file),
            "layer": spec.layer,
        },
        "expectations": [
            {
                "type": "unexpected_rows_expectation",
                "kwargs": {"unexpected_rows_query": unexpected_rows_query(e)},
                "description": e.name,
                "meta": {"action": e.action, "condition": e.condition},
            }
            for e in spec.expectations
        ],
    }


def _relative(file: str) -> str:
    """The declaring file (and line, for SQL) relative to the project."""
    root = str(SUITES_DIR.parent) + os.sep
    return file.removeprefix(root)


def suite_path(spec: TableSpec) -> Path:
    return SUITES_DIR / spec.system / f"{spec.name}.json"


def render(spec: TableSpec) -> str:
    return json.dumps(suite_document(spec), indent=2) + "\n"


def write_suites(specs: list[TableSpec]) -> list[Path]:
    """Write every table's suite; return the files whose content changed."""
    changed = []
    for spec in specs:
        path = suite_path(spec)
        text = render(spec)
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(path)
    return changed


@dataclass(frozen=True)
class RuleOutcome:
    table: str
    expectation: str
    action: str
    success: bool
    unexpected: int


def validate(frame, spec: TableSpec) -> list[RuleOutcome]:
    """Run the stored suite of `spec` over a whole table (a Spark DataFrame)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    stored = json.loads(suite_path(spec).read_text())
    if not stored["expectations"]:
        return []
    context = gx.get_context(mode="ephemeral")
    asset = context.data_sources.add_spark("lake").add_dataframe_asset(stored["name"])
    batch_definition = asset.add_batch_definition_whole_dataframe("whole table")
    suite = gx.ExpectationSuite(name=stored["name"])
    for rule in stored["expectations"]:
        suite.add_expectation(
            gx.expectations.UnexpectedRowsExpectation(
                unexpected_rows_query=rule["kwargs"]["unexpected_rows_query"],
                description=rule["description"],
                meta=rule["meta"],
            )
        )
    suite = context.suites.add(suite)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=stored["name"], data=batch_definition, suite=suite)
    )
    result = definition.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY")
    return [
        RuleOutcome(
            table=stored["name"],
            expectation=outcome.expectation_config.description,
            action=outcome.expectation_config.meta["action"],
            success=bool(outcome.success),
            unexpected=int(outcome.result.get("observed_value") or 0),
        )
        for outcome in result.results
    ]
