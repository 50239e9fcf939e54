"""What every `iotlake` command shares: the loaded settings, the one-line failure, the check
that the services a command needs answer, and the options and run loop of service commands."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer

from iotlake.config import ConfigError, Settings, load_settings

_state: dict[str, Settings] = {}
T = TypeVar("T")


def use_settings(profile: str | None, target: str | None) -> None:
    """Load the settings the commands read; a bad configuration exits 2 with one line."""
    try:
        _state["settings"] = load_settings(profile=profile, target=target)
    except ConfigError as error:
        raise fail(str(error), 2) from None


def settings() -> Settings:
    return _state["settings"]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one line to stderr and return the exit to raise."""
    typer.echo(f"iotlake: {message}", err=True)
    return typer.Exit(code)


def require(services: list[str]) -> None:
    """Stop with one line when a service the command needs does not answer (see preflight)."""
    from iotlake.preflight import unreachable

    problem = unreachable(settings(), services)
    if problem:
        raise fail(problem)


# Options several service commands share, with the same meaning everywhere.
Duration = Annotated[
    float | None, typer.Option(help="seconds to run (default: until SIGTERM/SIGINT)")
]
ProgressEvery = Annotated[float, typer.Option(help="seconds between progress lines")]
StopTimeout = Annotated[float, typer.Option(help="seconds to flush when stopping")]
LingerMs = Annotated[float, typer.Option(help="batching delay in ms")]
RetrySleep = Annotated[float, typer.Option(help="seconds to wait after a failed call")]
# Options the benchmarks share.
OutDir = Annotated[Path, typer.Option(help="where the JSON and PNG go")]
KeepState = Annotated[
    bool, typer.Option("--keep-state", help="keep the private stack's logs and tables")
]


def checked(build: Callable[[], T]) -> T:
    """The options object a command builds, or exit 2 with the one line saying what is wrong."""
    try:
        return build()
    except ValueError as error:
        raise fail(str(error), 2) from None


def run_as_service(work: Callable[[Settings, threading.Event], int]) -> NoReturn:
    """What every service command does: run `work` with the loaded settings and a stop event
    that SIGTERM/SIGINT set (a clean stop), and exit with the code it returns."""
    from services.runtime import run_service

    raise typer.Exit(run_service(lambda stop: work(settings(), stop)))
