"""`iotlake`: start the embedded stack, provision it, and look at what runs.

The root app, its global options, and where each group of commands (`iotlake.commands.*`)
joins it. Commands are listed in `--help` in the order they are registered here.
"""

from __future__ import annotations

from typing import Annotated

import typer

from iotlake.commands import bench, pipelines, produce, services, stack
from iotlake.commands.common import use_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.callback()
def main(
    profile: Annotated[str | None, typer.Option(help="embedded or compose")] = None,
    target: Annotated[str | None, typer.Option(help="dev or prod")] = None,
) -> None:
    """Databricks IoT streaming pipelines on a laptop: brokers, Spark, Delta, dashboards."""
    use_settings(profile, target)


for command in (
    stack.up,
    stack.down,
    stack.status,
    stack.logs,
    stack.provision,
    pipelines.run,
    pipelines.expectations,
    pipelines.check,
    stack.demo,
    pipelines.alerts,
    services.bridge,
    services.gateway,
    services.emulator,
):
    app.command()(command)

app.add_typer(pipelines.pipeline_app, name="pipeline")
app.add_typer(pipelines.job_app, name="job")
app.add_typer(produce.produce, name="produce")
app.add_typer(bench.bench, name="bench")
