"""The stack commands: start, stop and look at the embedded services, provision them, and the
whole demo on top. `iotlake.cli` registers these functions on the root app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iotlake.commands.common import fail, settings
from iotlake.config import Settings


def up(
    cluster: Annotated[
        bool, typer.Option(help="also start a Spark standalone master + worker")
    ] = False,
    aws: Annotated[str | None, typer.Option(help="AWS emulator: moto or localstack")] = None,
) -> None:
    """Start the embedded services on 127.0.0.1 and wait until each is healthy."""
    from services.embedded.stack import StackError
    from services.embedded.stack import up as stack_up

    current = settings()
    if aws:
        if aws not in ("moto", "localstack"):
            raise fail(f"--aws {aws!r} is not an emulator; use moto or localstack", 2)
        current = current.model_copy(
            update={"aws": current.aws.model_copy(update={"emulator": aws})}
        )
    try:
        stack_up(current, cluster=cluster, report=typer.echo)
    except StackError as error:
        raise fail(f"{error} (nothing left running)") from None


def down() -> None:
    """Stop exactly the services `iotlake up` started."""
    from services.embedded.stack import down as stack_down

    if not stack_down(settings(), report=typer.echo):
        typer.echo("nothing was running")


def status(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
) -> None:
    """Each service with endpoint, pid, health and resident memory."""
    from services.embedded.stack import status as stack_status
    from services.embedded.stack import status_json

    if as_json:
        typer.echo(status_json(settings()))
        return
    for row in stack_status(settings()):
        state = "healthy" if row.healthy else ("unhealthy" if row.pid else "stopped")
        pid = row.pid or "-"
        typer.echo(
            f"{row.name:<13} {state:<9} pid {pid!s:<8} {row.rss_mb:>7.1f} MB  {row.endpoint}"
        )


def logs(
    service: str,
    lines: Annotated[int, typer.Option("--lines", "-n")] = 50,
) -> None:
    """Print the last lines of one service's log."""
    log_file = settings().log_dir / f"{service}.log"
    if not log_file.exists():
        known = sorted(path.stem for path in settings().log_dir.glob("*.log"))
        raise fail(f"no log for {service!r}; known: {', '.join(known) or 'none (run iotlake up)'}")
    for line in log_file.read_text(errors="replace").splitlines()[-lines:]:
        typer.echo(line)


def provision(
    systems: Annotated[
        list[str] | None, typer.Argument(help="systems to provision (default: all)")
    ] = None,
) -> None:
    """Create the topics, streams, buckets and table roots the systems need (idempotent)."""
    from services.provisioning.apply import provision as apply
    from services.provisioning.resources import for_systems

    try:
        resources = for_systems(systems)
    except ValueError as error:
        raise fail(str(error), 2) from None
    changes = apply(settings(), resources)
    for change in changes:
        typer.echo(change)
    typer.echo(f"{len(changes)} change(s)")


def demo(
    phones: Annotated[int, typer.Option(help="simulated phones (130 at DAIS)")] = 130,
) -> None:
    """Stack up, provision, producers at the originals' load, pipelines, gateway, dashboard."""
    from services.embedded.jobs import demo_specs
    from services.embedded.stack import StackError
    from services.embedded.stack import status as stack_status
    from services.embedded.stack import up as stack_up
    from services.provisioning.apply import provision as apply
    from services.provisioning.resources import SYSTEMS

    current = settings()
    try:
        fresh_emulator = not any(row.name == "aws" and row.pid for row in stack_status(current))
        stack_up(current, report=typer.echo)
        if fresh_emulator:
            _set_aside_stale_lake(current)
        for change in apply(current, SYSTEMS):
            typer.echo(change)
        stack_up(current, report=typer.echo, jobs=demo_specs(current, phones=phones))
    except StackError as error:
        raise fail(f"{error} (see `iotlake status`; `iotlake down` stops the rest)") from None
    dashboard, gateway = current.dashboard, current.gateway
    typer.echo(f"dashboard: http://{dashboard.host}:{dashboard.port}")
    typer.echo(f"phone page: http://{gateway.host}:{gateway.port}  (iotlake down stops it all)")


def _set_aside_stale_lake(current: Settings) -> None:
    """A stack started after `iotlake down` has empty streams and topics, so checkpoints of an
    earlier demo point at records that no longer exist: keep those tables, out of the way."""
    import time

    lake = Path(current.lake_root)
    if current.aws.emulator == "aws" or current.lake_root.startswith("s3://") or not lake.exists():
        return
    if not any(lake.iterdir()):
        return
    kept = lake.with_name(f"{lake.name}.before-{time.strftime('%Y%m%d-%H%M%S')}")
    lake.rename(kept)
    typer.echo(f"the emulator started empty: earlier tables moved to {kept}")
