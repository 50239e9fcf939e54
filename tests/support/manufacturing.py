"""The manufacturing tables computed again with pandas alone, from the landed CSV files.

Each function implements the definition in docs/originals.md directly (not through Spark or
tempo), so a pipeline table equal to its result is right by an independent route:
EMA with null lags counted as 0, hourly means ignoring nulls, and an as-of join by device in
which a sensor hour equal to the inspection's time counts and each sensor column takes its
last non-null value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from services.producers.manufacturing_batch import MEASUREMENTS

SENSOR_TYPES = {
    "device_id": "Int32",
    "trip_id": "Int32",
    "factory_id": "string",
    "model_id": "string",
    "airflow_rate": "float64",
    "rotation_speed": "float64",
    "air_pressure": "float32",
    "temperature": "float32",
    "delay": "float32",
    "density": "float32",
}
INSPECTION_TYPES = {"defect": "float32", "device_id": "Int32"}
SENSOR_KEYS = ["device_id", "trip_id", "factory_id", "model_id"]
FEATURES = [*MEASUREMENTS, "EMA_rotation_speed"]
EMA_WINDOW, EMA_FACTOR = 5, 0.2


def read_landed(directory: Path, types: dict[str, str]) -> pd.DataFrame:
    """Every CSV file under `directory`, typed as the schema hints type them; times in UTC."""
    frames = [
        pd.read_csv(path, dtype=types, parse_dates=["timestamp"])
        for path in sorted(directory.glob("*.csv"))
    ]
    frame = pd.concat(frames, ignore_index=True)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"]).dt.tz_localize("UTC")
    return frame


def sensor_bronze(sensors: pd.DataFrame) -> pd.DataFrame:
    return sensors.copy()


def inspection_bronze(inspections: pd.DataFrame) -> pd.DataFrame:
    """expect_all_or_drop: a time and a device id."""
    kept = inspections["timestamp"].notna() & inspections["device_id"].notna()
    return inspections[kept].reset_index(drop=True)


def anomaly_detected(sensors: pd.DataFrame) -> pd.DataFrame:
    """The physics rules; a comparison with a null value is not true, as in SQL."""
    rule = (
        ((sensors["delay"] > 155) & (sensors["rotation_speed"] > 800))
        | (sensors["temperature"] > 101)
        | ((sensors["density"] > 4.6) & (sensors["air_pressure"] < 840))
    )
    return sensors[rule.fillna(False).astype(bool)].reset_index(drop=True)


def ema(values: pd.Series) -> pd.Series:
    """Σ_{i<5} 0.2·0.8^i · value i rows earlier, a missing or null value counting as 0."""
    total = pd.Series(0.0, index=values.index)
    for lag in range(EMA_WINDOW):
        weight = EMA_FACTOR * (1 - EMA_FACTOR) ** lag
        total = total + (weight * values.astype("float64").shift(lag)).fillna(0.0)
    return total


def hourly_features(sensors: pd.DataFrame) -> pd.DataFrame:
    """Positive pressures, EMA per device-trip in time order, then hourly means per trip."""
    frame = sensors.drop(columns=["_rescued_data"], errors="ignore").copy()
    frame["air_pressure"] = frame["air_pressure"].abs()
    frame = frame.sort_values([*SENSOR_KEYS, "timestamp"], kind="stable")
    frame["EMA_rotation_speed"] = frame.groupby(SENSOR_KEYS, dropna=False)[
        "rotation_speed"
    ].transform(ema)
    frame["timestamp"] = frame["timestamp"].dt.floor("h")
    for column in FEATURES:
        frame[column] = frame[column].astype("float64")
    grouped = frame.groupby([*SENSOR_KEYS, "timestamp"], dropna=False)[FEATURES]
    return grouped.mean().reset_index()


def as_of(inspections: pd.DataFrame, hourly: pd.DataFrame) -> pd.DataFrame:
    """Per inspection: each sensor column's last non-null value at or before its time."""
    right_columns = ["timestamp", "trip_id", "factory_id", "model_id", *FEATURES]
    by_device = {
        device: rows.sort_values("timestamp") for device, rows in hourly.groupby("device_id")
    }
    out = []
    for inspection in inspections.itertuples(index=False):
        row = {"device_id": inspection.device_id, "defect": inspection.defect}
        row["timestamp"] = inspection.timestamp
        candidates = by_device.get(inspection.device_id)
        if candidates is not None:
            candidates = candidates[candidates["timestamp"] <= inspection.timestamp]
        for column in right_columns:
            values = None if candidates is None else candidates[column].dropna()
            row[f"sensor_{column}"] = (
                values.iloc[-1] if values is not None and len(values) else None
            )
        out.append(row)
    joined = pd.DataFrame(out)
    return joined.rename(
        columns={
            "sensor_trip_id": "trip_id",
            "sensor_factory_id": "factory_id",
            "sensor_model_id": "model_id",
        }
    )


def inspection_silver(inspections: pd.DataFrame, sensors: pd.DataFrame) -> pd.DataFrame:
    return as_of(inspection_bronze(inspections), hourly_features(sensors))


def inspection_gold(silver: pd.DataFrame) -> pd.DataFrame:
    """count(*) and the mean of five sensor features per device, factory, model and defect."""
    features = ["temperature", "density", "delay", "rotation_speed", "air_pressure"]
    frame = silver.copy()
    for name in features:
        frame[f"sensor_{name}"] = pd.to_numeric(frame[f"sensor_{name}"], errors="coerce")
    grouped = frame.groupby(["device_id", "factory_id", "model_id", "defect"], dropna=False)
    result = grouped.agg(
        count=("device_id", "size"),
        **{f"average_{name}": (f"sensor_{name}", "mean") for name in features},
    )
    return result.reset_index()


def assert_frames_match(actual: pd.DataFrame, expected: pd.DataFrame, keys: list[str]) -> None:
    """Same columns and rows, floats within 1e-9 relative; rows matched after sorting by keys."""
    assert sorted(actual.columns) == sorted(expected.columns), (
        sorted(actual.columns),
        sorted(expected.columns),
    )
    assert len(actual) == len(expected), (len(actual), len(expected))
    left = actual.sort_values(keys, kind="stable").reset_index(drop=True)
    right = expected[list(actual.columns)].sort_values(keys, kind="stable").reset_index(drop=True)
    for column in actual.columns:
        a, b = left[column], right[column]
        if pd.api.types.is_numeric_dtype(a) and not pd.api.types.is_bool_dtype(a):
            a_values = pd.to_numeric(a, errors="coerce").astype("float64").to_numpy()
            b_values = pd.to_numeric(b, errors="coerce").astype("float64").to_numpy()
            assert np.allclose(a_values, b_values, rtol=1e-9, atol=1e-12, equal_nan=True), column
        elif pd.api.types.is_datetime64_any_dtype(a):
            a_times = pd.to_datetime(a, utc=True).astype("datetime64[us, UTC]")
            b_times = pd.to_datetime(b, utc=True).astype("datetime64[us, UTC]")
            assert ((a_times == b_times) | (a_times.isna() & b_times.isna())).all(), column
        else:
            assert (
                a.astype("object").where(a.notna(), None).tolist()
                == b.astype("object").where(b.notna(), None).tolist()
            ), column
