"""How a service process runs: until its work ends or SIGTERM/SIGINT asks for a clean stop.

Every long-running service (producers, the bridge, the gateway) works in a loop that checks
a stop event, so a signal never cuts a batch in half: the loop ends, flushes what it holds
and prints its last line, and the exit code says whether anything stayed unsent. The start
line each service prints comes from its own run function, which alone knows the resolved
plan (how many phones, which stream, the bound URL).

`iotlake up` and the benchmark start services as `python -m services.<package>.<module>`;
`command_line` makes that the same typer command as `iotlake ...`, so both spellings take
the same options and do the same preflight.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def say(line: str) -> None:
    """Print a progress line at once, even when stdout is a pipe."""
    print(line, flush=True)


class StopSignal(threading.Event):
    """Set when the process is asked to stop; `received` names the signal, if one did."""

    received: str | None = None


@contextmanager
def stop_on_signals() -> Iterator[StopSignal]:
    """A stop event set by SIGTERM or SIGINT (instead of dying mid-batch); handlers restored
    on exit. Off the main thread, where Python allows no handlers, nothing sets it."""
    stop = StopSignal()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum: int, _frame: object) -> None:
        # Only note it: a handler that printed or logged could interrupt a print in progress.
        stop.received = signal.Signals(signum).name
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_service(work: Callable[[StopSignal], int]) -> int:
    """Run one service's `work` with logging set up and a stop event wired to SIGTERM/SIGINT;
    its return value is the process' exit code."""
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    logging.getLogger("iotlake").setLevel(logging.INFO)  # ours in full, libraries' problems
    with stop_on_signals() as stop:
        return work(stop)


def command_line(*command: str) -> NoReturn:
    """Run `iotlake COMMAND ARGS` with this process' arguments (for `python -m` launches)."""
    from iotlake.cli import app

    app([*command, *sys.argv[1:]], prog_name="iotlake")
    sys.exit(0)  # typer exits by itself; this only tells type checkers so
