"""The manufacturing system's data generator: sensor and inspection CSV files for Auto Loader.

It lands the original's initial load (a year of readings) and, on request, its "land more
data" months (`manufacturing_batch` draws each batch, `manufacturing_landing` writes it).
Live mode (`--live`) lands a batch every `--interval` seconds covering the time since the
last one, one reading a minute per device, its weather replaying a seeded seasonal year from
a hot summer day (see `Planner`), so `anomaly_detected` gets fresh rows and the `Defects
detected` alert fires.

`run` plans and lands the batches; `main` is what `iotlake produce manufacturing` runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np

from iotlake.config import Settings
from services.producers.manufacturing_batch import (
    BatchConfig,
    generate_batch,
    live_window,
    more_data,
    starting_temps,
)
from services.producers.manufacturing_landing import land_batch
from services.runtime import say

# Live mode's first simulated day: a summer day this hot trips the physics rules at times.
LIVE_START_TEMP = 93.0


@dataclass(frozen=True)
class GeneratorOptions:
    """Everything `iotlake produce manufacturing` takes."""

    initial: BatchConfig = BatchConfig()
    more_batches: int = 0
    more_rows: int = 2_000
    more_devices: int = 10
    more_only: bool = False
    live: bool = False
    live_devices: int = 20
    backfill_minutes: int = 60
    day_minutes: float = 60.0
    interval: float = 30.0
    batches: int | None = None

    def __post_init__(self) -> None:
        if min(self.more_rows, self.more_devices, self.live_devices, self.backfill_minutes) < 1:
            raise ValueError(
                "--more-rows, --more-devices, --live-devices and --backfill-minutes must be >= 1"
            )
        if self.interval <= 0 or self.day_minutes <= 0:
            raise ValueError("--interval and --day-minutes must be positive")
        if self.batches is not None and self.batches < 1:
            raise ValueError("--batches must be at least 1")


class Planner:
    """The config of each batch: the initial load, then more months; or live windows.

    Live windows are consecutive, the first reaching `backfill_minutes` back. Their weather
    replays the seeded seasonal year, one day per `day_minutes` of wall clock, starting on
    the summer day whose starting temperature is nearest `LIVE_START_TEMP`: hot enough that
    the physics rules flag a reading now and then, so the demo's alert fires.
    """

    def __init__(self, options: GeneratorOptions, now: Callable[[], datetime]) -> None:
        self.options = options
        self.now = now
        self.previous_end: datetime | None = None
        self.first_end: datetime | None = None
        self.year = _seasonal_year(options.initial) if options.live else np.zeros(1)
        self.first_day = int(np.argmin(np.abs(self.year - LIVE_START_TEMP)))

    def config(self, index: int) -> BatchConfig:
        options = self.options
        if not options.live:
            if index == 0:
                return options.initial
            return more_data(options.initial, index, options.more_rows, options.more_devices)
        end = self.now()
        self.first_end = self.first_end or end
        start = self.previous_end or end - timedelta(minutes=options.backfill_minutes)
        self.previous_end = end
        elapsed_days = (end - self.first_end).total_seconds() // (60 * options.day_minutes)
        temp = float(self.year[(self.first_day + int(elapsed_days)) % len(self.year)])
        base = replace(options.initial, devices=options.live_devices, start_temp=temp)
        return live_window(base, start, max(end, start + timedelta(seconds=1)), index)


def _seasonal_year(config: BatchConfig) -> np.ndarray:
    """The starting temperature of each day of a seasonal year drawn with the config's seed."""
    year = replace(config, mean_temp=58.0, seasonal=True, start_temp=None)
    days = np.arange(np.datetime64("2023-01-01"), np.datetime64("2024-01-01"))
    return np.array(list(starting_temps(np.random.default_rng(config.seed), days, year).values()))


def run(
    settings: Settings,
    options: GeneratorOptions,
    *,
    stop: threading.Event | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC).replace(tzinfo=None),
    report: Callable[[str], None] = print,
) -> int:
    """Land the planned batches (live: one every `interval` s until stopped); return the count."""
    stop = stop or threading.Event()
    planner = Planner(options, now)
    total = options.batches if options.live else 1 + options.more_batches
    index = 1 if options.more_only and not options.live else 0
    landed = 0
    while (total is None or index < total) and not stop.is_set():
        began = time.monotonic()
        config = planner.config(index)
        batch = generate_batch(config)
        name = f"batch-{int(time.time() * 1000)}-{index:05d}"
        sensor_uri, _ = land_batch(settings, batch, name)
        report(
            f"batch {index}: {len(batch.sensors)} sensor rows, {len(batch.inspections)} "
            f"inspections, {config.start:%Y-%m-%d %H:%M:%S} .. {config.end:%Y-%m-%d %H:%M:%S} "
            f"-> {sensor_uri.rsplit('/', 2)[0]} in {time.monotonic() - began:.1f}s"
        )
        index += 1
        landed += 1
        if options.live and (total is None or index < total):
            stop.wait(options.interval)
    return landed


def main(settings: Settings, options: GeneratorOptions, stop: threading.Event) -> int:
    """Land every planned batch (live: until `stop`), then say how many; OSError when a
    landing file cannot be written."""
    landed = run(settings, options, stop=stop, report=say)
    say(f"{landed} batch(es) landed")
    return 0


if __name__ == "__main__":
    from services.runtime import command_line

    command_line("produce", "manufacturing")
