"""One batch of the manufacturing system's data: the readings and the CSV rows they land as.

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
  timestamp null with p = 0.05.

Runs stay inside their window (a run starts early enough to end by the window's end), so a
live batch whose window ends now has no reading from the future. `generate_batch` is pure:
the same config, seed and window give the same frames.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

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
# What a sensor measures, in the CSV's column order.
MEASUREMENTS = (
    "airflow_rate",
    "rotation_speed",
    "air_pressure",
    "temperature",
    "delay",
    "density",
)
SENSOR_COLUMNS = ("device_id", "trip_id", "factory_id", "model_id", "timestamp", *MEASUREMENTS)
INSPECTION_COLUMNS = ("defect", "timestamp", "device_id")
SPARK_HASH_SEED = 42
FREQUENCY = 0.35
AMPLITUDE = 1.2
RUN_MIN, RUN_MAX, LAST_RUN = 10, 350, 300
DEFECT_SHIFT = 20
SAMPLE_FRACTION = 0.004
DEFECT_SHARE = 1 / 16


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
