"""Manufacturing: the original "IOT Anomaly Detection" dashboard and its SQL alert.

Widgets as in the original (docs/originals.md): Device ID and Model ID filters, the Defects
Flagged and Non Defects counters, inspections by week, % defect rate by factory, and the
density and temperature scatters; above them, the state of the `Defects detected` alert.
A model is fixed per device, so the Model ID filter narrows the devices every widget reads.
"""

from __future__ import annotations

import streamlit as st

from dashboards import queries
from dashboards.charts import manufacturing as charts
from dashboards.views import common
from iotlake.alerts import defects_detected, evaluate

SYSTEM = queries.MANUFACTURING
ALL_MODELS = "All"


def selected_devices() -> list[int] | None:
    """The devices the two filters leave; None while neither filter narrows anything."""
    settings = common.settings()
    known = queries.device_models(settings)
    models = sorted(known["model_id"].astype(str).unique())
    devices = [int(device) for device in known["device_id"]]
    left, right = st.columns([3, 1])
    with left:
        chosen = st.multiselect("Device ID", devices, key="manufacturing-devices")
    with right:
        model = st.selectbox("Model ID", [ALL_MODELS, *models], key="manufacturing-model")
    if not chosen and model == ALL_MODELS:
        return None
    keep = set(chosen or devices)
    if model != ALL_MODELS:
        keep &= {int(d) for d in known.loc[known["model_id"] == model, "device_id"]}
    return sorted(keep)


def alert() -> None:
    """The `Defects detected` alert, evaluated now over `anomaly_detected`."""
    status = evaluate(common.settings(), defects_detected(common.settings()))
    rule = status.alert
    muted = " (muted: no notifications)" if rule.muted else ""
    if status.state == "TRIGGERED":
        count = int(status.value or 0)
        noun = "anomaly" if count == 1 else "anomalies"
        st.error(
            f"Alert: {rule.subject} — {count:,} {noun} in the last {rule.minutes} minutes. "
            f"{rule.body}.{muted}"
        )
    elif status.state == "OK":
        st.success(f"Alert OK: no anomalies in the last {rule.minutes} minutes{muted}")
    else:
        st.caption(f"Alert `{rule.subject}`: no `anomaly_detected` table yet")


def counters(devices: list[int] | None) -> None:
    """Defects Flagged and Non Defects: inspections per outcome, summed over devices."""
    counts = common.read(SYSTEM, "inspection_bronze", queries.defect_counts, devices)
    if counts is None:
        return
    left, right = st.columns(2)
    left.metric("Defects Flagged", f"{int(counts['defects'].sum()):,}")
    right.metric("Non Defects", f"{int(counts['non_defects'].sum()):,}")


def inspections(devices: list[int] | None) -> None:
    """Inspections with and without a defect, week by week."""
    daily = common.read(SYSTEM, "inspection_bronze", queries.inspections_by_day, devices)
    if daily is not None:
        common.chart(charts.inspections_by_week(daily), key="manufacturing-weekly")


def factory_rates(devices: list[int] | None) -> None:
    """The % of inspections with a defect per factory and device (gold)."""
    rates = common.read(SYSTEM, "inspection_gold", queries.factory_defect_rates, devices)
    if rates is not None:
        common.chart(charts.factory_defect_rate(rates), key="manufacturing-factories")


def features(devices: list[int] | None) -> None:
    """The density and temperature scatters of the inspected readings (silver)."""
    daily = common.read(SYSTEM, "inspection_silver", queries.sensor_features_by_day, devices)
    if daily is None:
        return
    common.chart(charts.feature_scatter(daily, "density", "Density"), key="manufacturing-density")
    common.chart(
        charts.feature_scatter(daily, "temperature", "Temperature"),
        key="manufacturing-temperature",
    )


def page() -> None:
    """Filters first (they keep their state across refreshes), then the live widgets."""
    st.title("IoT anomaly detection")
    st.caption(
        "Sensor and inspection CSVs → Auto Loader → `sensor_bronze`, `inspection_bronze` → "
        "`anomaly_detected`, `inspection_silver` (tempo EMA, hourly resample, as-of join) → "
        "`inspection_gold`."
    )
    devices = selected_devices()

    def body() -> None:
        alert()
        counters(devices)
        left, right = st.columns([3, 2])
        with left:
            inspections(devices)
        with right:
            factory_rates(devices)
        features(devices)

    common.live(body)


page()
