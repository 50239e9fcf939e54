"""The manufacturing system's data generator: sensor and inspection CSV files for Auto Loader.

It follows the Databricks IoT time-series solution's generator (docs/originals.md, manufacturing):

- devices 1..N drawn uniformly per row; factory and model fixed per device by Spark's
  Murmur3 `hash(device_id)` (seed 42), `abs(hash % 5)` and `abs(hash % 14)`;
- runs of consecutive 1-minute timestamps, each run randint(10, 350) long (the last < 300
  rows form one run) starting at a random second of the window; `trip_id` is the dense rank
  of the calendar date per device;
- the signal model: a seasonal starting temperature per date, per-trip temperature, air
  pressure from a lapse rate, per-device density, per-trip rotation speed, delay, airflow;
- the ground-truth defect label from the original's five rules, drawn once per device and
  shifted 20 readings later;
- sensor CSV: temperature null with p = 0.10, air_pressure negated with p = 0.05, timestamp
  jitter of up to 3 s; inspection CSV: 0.4 % of the readings (1/16 defects), 4-6 h later,
  timestamp null with p = 0.05. Files have a header.

Runs stay inside their window (a run starts early enough to end by the window's end), so a
live batch whose window ends now has no reading from the future. Live mode (`--live`) lands
a batch every `--interval` seconds covering the time since the last one, one reading a minute
per device, its weather replaying a seeded seasonal year from a hot summer day (see
`Planner`), so `anomaly_detected` gets fresh rows and the `Defects detected` alert fires.

`generate_batch` is pure (same config, seed and window: same frames); `land_batch` writes one
batch's CSV files to the landing paths (local or `s3://`); `run` plans and lands the batches;
`main` is what `iotlake produce manufacturing` runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from iotlake.config import Settings
from services.runtime import say

FACTORIES = ("A06", "D18", "J15", "C04", "T10")
MODELS = (
    "SkyJet134",
    "SkyJet234",
    "SkyJet334",
    "EcoJet1000",
    "JetLift7000",
    "EcoJet2000",
    "FlyForceX550",
    "TurboFan3200",
    "SkyBolt1",
    "SkyBolt2",
    "MightyWing1100",
    "EcoJet3000",
    "AeroGlider4150",
    "SkyBolt250",
)
SENSOR_COLUMNS = (
    "device_id",
    "trip_id",
    "factory_id",
    "model_id",
    "timestamp",
    "airflow_rate",
    "rotation_speed",
    "air_pressure",
    "temperature",
    "delay",
    "density",
)
INSPECTION_COLUMNS = ("defect", "timestamp", "device_id")
SPARK_HASH_SEED = 42
FREQUENCY = 0.35
AMPLITUDE = 1.2
RUN_MIN, RUN_MAX, LAST_RUN = 10, 350, 300
DEFECT_SHIFT = 20
SAMPLE_FRACTION = 0.004
DEFECT_SHARE = 1 / 16
CSV_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"
# Live mode's first simulated day: a summer day this hot trips the physics rules at times.
LIVE_START_TEMP = 93.0


# --- Spark's hash() of an INT: Murmur3_x86_32.hashInt with seed 42 -------------------------

_MASK = 0xFFFFFFFF


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (32 - bits))) & _MASK


def spark_hash_int(value: int, seed: int = SPARK_HASH_SEED) -> int:
    """`hash(CAST(value AS INT))` as Spark computes it, a signed 32-bit integer.

    Factory and model are picked from this hash in the original, so using Spark's exact
    function keeps every device in the factory and model a Databricks run gives it.
    """
    k1 = (value & _MASK) * 0xCC9E2D51 & _MASK
    k1 = _rotl(k1, 15) * 0x1B873593 & _MASK
    h1 = _rotl(seed ^ k1, 13)
    h1 = (h1 * 5 + 0xE6546B64) & _MASK
    h1 ^= 4
    h1 ^= h1 >> 16
    h1 = h1 * 0x85EBCA6B & _MASK
    h1 ^= h1 >> 13
    h1 = h1 * 0xC2B2AE35 & _MASK
    h1 ^= h1 >> 16
    return h1 - (1 << 32) if h1 & 0x80000000 else h1


def _pick(device_id: int, names: tuple[str, ...]) -> str:
    """`names[abs(hash(device_id) % len(names))]` with Java's remainder (sign of dividend)."""
    return names[abs(spark_hash_int(device_id)) % len(names)]


def factory_of(device_id: int) -> str:
    return _pick(device_id, FACTORIES)


def model_of(device_id: int) -> str:
    return _pick(device_id, MODELS)


# --- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchConfig:
    """One batch of readings: how many, over how many devices, in which time window."""

    rows: int = 20_000
    devices: int = 60
    start: datetime = datetime(2023, 1, 1)
    end: datetime = datetime(2023, 12, 31, 23, 59, 59)
    mean_temp: float = 58.0
    seasonal: bool = True
    seed: int = 0
    # Live batches replay one day of a seasonal year each: its starting temperature.
    start_temp: float | None = None

    def __post_init__(self) -> None:
        if self.rows < 1:
            raise ValueError("rows must be at least 1")
        if self.devices < 1:
            raise ValueError("devices must be at least 1")
        if self.end <= self.start:
            raise ValueError("the window must end after it starts")


def original_initial(seed: int = 0) -> BatchConfig:
    """The original's initial load: ~400k rows over ~60 devices, all of 2023."""
    rng = np.random.default_rng(seed)
    return BatchConfig(
        rows=int(rng.integers(390_000, 410_001)),
        devices=int(rng.integers(58, 63)),
        seed=seed,
    )


def more_data(base: BatchConfig, index: int, rows: int, devices: int) -> BatchConfig:
    """The original's "land more data": a month after the initial year, mean temperature 30,
    no seasonal sort; batch `index` (1, 2, ...) covers the index-th month of 2024."""
    start = datetime(2024, 1, 1) + timedelta(days=31 * (index - 1))
    return replace(
        base,
        rows=rows,
        devices=devices,
        start=start,
        end=start + timedelta(days=31),
        mean_temp=30.0,
        seasonal=False,
        seed=base.seed + index,
    )


def live_window(base: BatchConfig, start: datetime, end: datetime, index: int) -> BatchConfig:
    """A live batch: one reading per device per minute (on average) from `start` to `end`.

    Consecutive live batches cover consecutive windows, so a device never gets two readings
    of the same minute from two batches, and the newest readings are current.
    """
    minutes = (end - start).total_seconds() / 60
    return replace(
        base,
        rows=max(1, round(base.devices * minutes)),
        start=start,
        end=end,
        seasonal=False,
        seed=base.seed + index,
    )


# --- the signal model ------------------------------------------------------------------------


def ar_series(rng: np.random.Generator, n: int, noise_sd: float, trend: float) -> np.ndarray:
    """x[i] = trend + noise + x[i-1] - x[i-2]: the original's autoregressive series."""
    noise = rng.normal(0.0, noise_sd, n) + trend
    out = np.zeros(n)
    for i in range(n):
        out[i] = noise[i] + (out[i - 1] if i >= 1 else 0.0) - (out[i - 2] if i >= 2 else 0.0)
    return out


def sinusoid(rng: np.random.Generator, n: int, trend: float, noise_sd: float) -> np.ndarray:
    """sin(2π·0.35·t)·1.2 + trend·t + noise, t over [0, 10]."""
    t = np.linspace(0.0, 10.0, n)
    return np.sin(2 * np.pi * FREQUENCY * t) * AMPLITUDE + trend * t + rng.normal(0, noise_sd, n)


def run_starts(
    rng: np.random.Generator, rows: int, start: datetime, end: datetime
) -> list[tuple[int, int]]:
    """(start second offset, length) of each run of 1-minute readings, covering `rows`."""
    window_minutes = int((end - start).total_seconds() // 60)
    runs: list[tuple[int, int]] = []
    left = rows
    while left > 0:
        length = left if left < LAST_RUN else int(rng.integers(RUN_MIN, RUN_MAX + 1))
        length = min(length, left, window_minutes + 1)
        latest = int((end - start).total_seconds()) - (length - 1) * 60
        runs.append((int(rng.integers(0, latest + 1)), length))
        left -= length
    return runs


def timestamps(rng: np.random.Generator, config: BatchConfig) -> np.ndarray:
    """Every reading's time: runs of consecutive minutes inside the window."""
    base = np.datetime64(config.start.replace(tzinfo=None), "s")
    parts = [
        base + np.timedelta64(offset, "s") + np.arange(length) * np.timedelta64(60, "s")
        for offset, length in run_starts(rng, config.rows, config.start, config.end)
    ]
    return np.concatenate(parts).astype("datetime64[us]")


def starting_temps(rng: np.random.Generator, dates: np.ndarray, config: BatchConfig) -> dict:
    """One starting temperature per calendar date: seasonal when the batch spans a year."""
    n = len(dates)
    if config.start_temp is not None:
        return dict.fromkeys(dates, config.start_temp)
    base = np.clip(rng.normal(config.mean_temp, 17, n), 0, 78)
    if config.seasonal:
        half = n // 2
        base = np.concatenate([np.sort(base[:half]), np.sort(base[half:])[::-1]])
    base = base + 9.5 * ar_series(rng, n, 0.3, 0.1)
    return dict(zip(dates, base, strict=True))


def _trip_signals(rng: np.random.Generator, trip: pd.DataFrame, start_temp: float) -> dict:
    """Temperature, rotation speed and delay of one device's trip (one device-day)."""
    n = len(trip)
    t = np.linspace(0.0, 10.0, n)
    amplitude = rng.normal(AMPLITUDE, 1.2, n)
    frequency = rng.normal(FREQUENCY, 0.5, n)
    coldest, hottest = int(rng.integers(5, 9)), int(rng.integers(14, 19))
    warming = coldest <= trip["timestamp"].iloc[0].hour < hottest
    trend = (0.8 if warming else -0.8) * t
    temperature = (
        start_temp + amplitude * np.sin(2 * np.pi * frequency * t) + rng.normal(0, 1, n) + trend
    )
    rotation = np.abs(ar_series(rng, n, 0.3, 0.0)) * 100
    delay = np.abs(sinusoid(rng, n, 0.2, 1.2) * np.sqrt(rotation))
    return {"temperature": temperature, "rotation_speed": rotation, "delay": delay}


def readings(config: BatchConfig) -> pd.DataFrame:
    """The clean readings of one batch, with the ground-truth `defect`, sorted by device, time."""
    rng = np.random.default_rng(config.seed)
    frame = pd.DataFrame(
        {
            "device_id": rng.integers(1, config.devices + 1, config.rows).astype("int32"),
            "timestamp": timestamps(rng, config),
        }
    )
    frame = frame.sort_values(["device_id", "timestamp"], kind="stable").reset_index(drop=True)
    dates = frame["timestamp"].dt.normalize()
    frame["trip_id"] = dates.groupby(frame["device_id"]).rank(method="dense").astype("int32")
    frame["factory_id"] = frame["device_id"].map(factory_of)
    frame["model_id"] = frame["device_id"].map(model_of)
    temps = starting_temps(rng, np.sort(dates.unique()), config)
    signals = {"temperature": [], "rotation_speed": [], "delay": []}
    for _, trip in frame.groupby(["device_id", "trip_id"], sort=True):
        for name, values in _trip_signals(rng, trip, temps[dates[trip.index[0]]]).items():
            signals[name].append(values)
    for name, parts in signals.items():
        frame[name] = np.concatenate(parts)
    lapse = 1.2 + rng.uniform(0.5, 1.5, len(frame))
    base_pressure = rng.integers(913, 1114, len(frame))
    frame["air_pressure"] = base_pressure - (frame["temperature"] - 15) * lapse
    frame["density"] = np.concatenate(
        [_density(rng, len(rows)) for _, rows in frame.groupby("device_id", sort=True)]
    )
    frame["airflow_rate"] = _airflow(frame)
    frame["defect"] = _defects(rng, frame)
    return frame


def _density(rng: np.random.Generator, n: int) -> np.ndarray:
    s = sinusoid(rng, n, 0.4, 0.6)
    return np.abs(s - s.mean() / 2)


def _airflow(frame: pd.DataFrame) -> pd.Series:
    """rotation_speed five readings earlier ÷ air_pressure, then back- and forward-filled."""
    lagged = frame.groupby("device_id")["rotation_speed"].shift(5) / frame["air_pressure"]
    filled = lagged.groupby(frame["device_id"]).transform(lambda s: s.bfill().ffill())
    return filled.fillna(0.0)


def _defects(rng: np.random.Generator, frame: pd.DataFrame) -> pd.Series:
    """The original's `add_defects`: five rules, an outcome drawn once per device, 20 later."""
    labels = []
    for _, rows in frame.groupby("device_id", sort=True):
        temperature = rows["temperature"]
        ewma = temperature.shift(1).ewm(com=5).mean()
        diff = temperature - ewma
        p89, p93 = temperature.quantile(0.89), temperature.quantile(0.93)
        outcomes = [round(rng.random() + k) for k in (0.8, 0.85, 0.85, 0.85, 0.95)]
        conditions = [
            (diff > 1.8) & (rows["factory_id"] == "A06") & (temperature > p89),
            (diff > 1.8) & (rows["model_id"] == "SkyJet234") & (temperature > p89),
            (diff > 1.9) & (rows["model_id"] == "SkyJet334") & (temperature > p93),
            (rows["delay"] > 39) & (rows["rotation_speed"] > 590),
            (rows["density"] > 4.2) & (rows["air_pressure"] < 780),
        ]
        label = pd.Series(np.select(conditions, outcomes, 0), index=rows.index)
        labels.append(label.shift(DEFECT_SHIFT, fill_value=0).astype("int64"))
    return pd.concat(labels)


# --- what lands ------------------------------------------------------------------------------


def sensor_rows(rng: np.random.Generator, frame: pd.DataFrame) -> pd.DataFrame:
    """The sensor CSV: 10 % null temperature, 5 % negated air pressure, up to 3 s of jitter."""
    sensors = frame.loc[:, list(SENSOR_COLUMNS)].copy()
    n = len(sensors)
    jitter = pd.to_timedelta(rng.random(n) * 3, unit="s")
    # Microseconds, as the CSV carries them and Spark stores them.
    sensors["timestamp"] = (sensors["timestamp"] + jitter).dt.floor("us")
    sensors.loc[rng.random(n) < 0.10, "temperature"] = np.nan
    negate = rng.random(n) < 0.05
    sensors.loc[negate, "air_pressure"] = -sensors.loc[negate, "air_pressure"]
    return sensors


def inspection_rows(rng: np.random.Generator, frame: pd.DataFrame) -> pd.DataFrame:
    """The inspection CSV: 0.4 % of readings, 1/16 defects, 4-6 h later, 5 % null times."""
    size = round(len(frame) * SAMPLE_FRACTION)
    wanted_defects = round(size * DEFECT_SHARE)
    defects = frame.index[frame["defect"] == 1]
    fine = frame.index[frame["defect"] == 0]
    picked_defects = rng.choice(defects, min(wanted_defects, len(defects)), replace=False)
    picked_fine = rng.choice(fine, min(size - len(picked_defects), len(fine)), replace=False)
    sample = frame.loc[np.sort(np.concatenate([picked_defects, picked_fine]))]
    later = pd.to_timedelta(2 * (2 + rng.random(len(sample))), unit="h")
    inspections = pd.DataFrame(
        {
            "defect": sample["defect"].astype("float64"),
            "timestamp": (sample["timestamp"] + later).dt.floor("us"),
            "device_id": sample["device_id"],
        }
    )
    inspections.loc[rng.random(len(inspections)) < 0.05, "timestamp"] = pd.NaT
    return inspections.reset_index(drop=True)


@dataclass(frozen=True)
class Batch:
    """One batch as it lands: sensor rows, inspection rows, and the clean readings behind them."""

    sensors: pd.DataFrame
    inspections: pd.DataFrame
    truth: pd.DataFrame


def generate_batch(config: BatchConfig) -> Batch:
    """Everything one batch lands; the same config always gives the same rows."""
    truth = readings(config)
    rng = np.random.default_rng([config.seed, 1])
    return Batch(sensor_rows(rng, truth), inspection_rows(rng, truth), truth)


def to_csv(frame: pd.DataFrame) -> bytes:
    """CSV with a header; timestamps ISO-8601 (UTC, no offset), nulls as empty fields."""
    return frame.to_csv(index=False, date_format=CSV_TIME_FORMAT).encode()


def write_file(uri: str, data: bytes, options: dict[str, str]) -> None:
    """Write one landing file so that a reader never sees it half written.

    Locally it is written under a dot-name (Auto Loader skips those) and renamed into place;
    on S3 an upload only appears once complete.
    """
    from spark_jobs.io.storage import arrow_filesystem, is_local, local_path

    if is_local(uri):
        path = Path(local_path(uri))
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_bytes(data)
        partial.replace(path)
        return
    filesystem, path = arrow_filesystem(uri, options)
    with filesystem.open_output_stream(path) as stream:
        stream.write(data)


def land_batch(settings: Settings, batch: Batch, name: str) -> tuple[str, str]:
    """Write a batch's sensor and inspection CSVs as `<name>.csv` in their landing paths."""
    from spark_jobs.io.storage import landing_uri, storage_options

    config = settings.manufacturing
    written = []
    for relative, frame in (
        (config.sensor_landing, batch.sensors),
        (config.inspection_landing, batch.inspections),
    ):
        uri = f"{landing_uri(settings, relative).rstrip('/')}/{name}.csv"
        write_file(uri, to_csv(frame), storage_options(settings, uri))
        written.append(uri)
    return written[0], written[1]


# --- the command line ------------------------------------------------------------------------


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
