"""`iotlake`: start the embedded stack, provision it, and look at what runs."""

from __future__ import annotations

from typing import Annotated

import typer

from iotlake.config import ConfigError, Settings, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
_state: dict[str, Settings] = {}


def settings() -> Settings:
    return _state["settings"]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one line to stderr and return the exit to raise."""
    typer.echo(f"iotlake: {message}", err=True)
    return typer.Exit(code)


@app.callback()
def main(
    profile: Annotated[str | None, typer.Option(help="embedded or compose")] = None,
    target: Annotated[str | None, typer.Option(help="dev or prod")] = None,
) -> None:
    """Databricks IoT streaming pipelines on a laptop: brokers, Spark, Delta, dashboards."""
    try:
        _state["settings"] = load_settings(profile=profile, target=target)
    except ConfigError as error:
        raise fail(str(error), 2) from None


@app.command()
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


@app.command()
def down() -> None:
    """Stop exactly the services `iotlake up` started."""
    from services.embedded.stack import down as stack_down

    if not stack_down(settings(), report=typer.echo):
        typer.echo("nothing was running")


@app.command()
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


@app.command()
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


@app.command()
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
