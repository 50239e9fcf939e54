"""Cold start: `iotlake demo` (what `make demo` runs) to the first non-empty chart.

The demo runs as a child process on its own free ports and state directory. The clock stops
when the query behind the seismograph page's first chart (the max-magnitude histogram,
`dashboards.queries.max_magn_by_device`) returns rows; then `iotlake down` with the same
settings stops the demo, and every process it had started is checked to be gone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from iotlake.bench.processes import (
    descendants,
    kill_survivors,
    private_settings,
    settings_env,
    start_child,
    survivors,
)
from iotlake.config import Settings

Report = Callable[[str], None]


def _first_chart_rows(settings: Settings) -> int:
    """Rows of the seismograph page's first chart, read as the dashboard reads them."""
    from dashboards import queries

    try:
        return len(queries.max_magn_by_device(settings))
    except Exception:  # a table caught mid-creation reads again on the next poll
        return 0


def _down(settings: Settings, timeout: float) -> str:
    """`iotlake down` for the demo's settings; its output, or why it did not finish."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "iotlake", "down"],
            env={**os.environ, **settings_env(settings)},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return f"iotlake down did not finish in {timeout:.0f}s"
    return (done.stdout + done.stderr).strip()


def measure_cold_start(
    base: Settings, state_dir: Path, timeout: float = 600.0, report: Report = print
) -> dict[str, Any]:
    """Seconds from launching `iotlake demo` to the first non-empty chart, and the clean-up.

    Every process recorded under the demo's run directory (with its children) is noted
    while the demo runs; after `iotlake down` any that is still alive is killed by PID and
    reported, so the figure never leaves a stray demo behind.
    """
    settings = private_settings(base, state_dir)
    began = time.monotonic()
    demo = start_child(settings, "bench-demo", ["-m", "iotlake", "demo"])
    result: dict[str, Any] = {"seconds": None, "error": None, "timeout_s": timeout}
    seen: dict[int, psutil.Process] = {}
    try:
        while time.monotonic() - began < timeout:
            seen |= {proc.pid: proc for proc in descendants(settings) if proc.pid not in seen}
            if _first_chart_rows(settings):
                result["seconds"] = round(time.monotonic() - began, 1)
                break
            code = demo.exit_code()
            if code not in (None, 0):
                result["error"] = f"iotlake demo exited with {code}: {demo.last_line()}"
                break
            time.sleep(1.0)
        else:
            result["error"] = f"no rows in the first chart after {timeout:.0f}s"
    finally:
        demo.stop()  # first, so it starts nothing more while the rest is stopped
        seen |= {proc.pid: proc for proc in descendants(settings) if proc.pid not in seen}
        result["down"] = _down(settings, timeout=180)
        processes = list(seen.values())
        result["processes_started"] = len(processes)
        result["left_running_killed"] = kill_survivors(processes)
        result["left_running_after"] = len(survivors(processes))
    result["demo_output_tail"] = demo.lines[-5:]
    shown = f"{result['seconds']:.1f}s" if result["seconds"] is not None else result["error"]
    report(f"cold start (iotlake demo -> first non-empty chart): {shown}")
    return result
