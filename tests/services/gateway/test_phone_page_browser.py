"""The phone page in a real (headless) Chromium: motion in, magnitudes out on Kinesis.

Chromium on 127.0.0.1 is a secure context, so the page's `devicemotion` listener receives
the synthetic DeviceMotionEvents dispatched here exactly as it would a phone's sensor events.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime

import pytest

from spark_jobs.runner import run_once
from tests.support.browser import chromium
from tests.support.gateway import KinesisTail, running_gateway
from tests.support.lake import read_table

PHASE_MS = 700
# Three phases of known acceleration (without gravity), and the magnitude each must give.
# The first has null axes and gravity only in accelerationIncludingGravity: it must read 0.
PHASES = [
    ({"x": None, "y": None, "z": None}, 0, "green"),
    ({"x": 3, "y": 4, "z": 0}, 5, "yellow"),
    ({"x": 6, "y": 8, "z": 12}, 16, "red"),  # sqrt(244) = 15.6
]
FRAMES = {"[*    ]", "[ *   ]", "[  *  ]", "[   * ]", "[    *]"}

# Dispatches a motion event every 40 ms (a slow phone sensor) through the phases. The first
# tick after each phase samples the card and spinner, which still show that phase's last event.
MOTION_SCRIPT = """
const [phases, phaseMs, done] = arguments;
const samples = [];
const started = performance.now();
function sample() {
  return ["card", "magnitude", "spinner"].map((id) => {
    const element = document.getElementById(id);
    return id === "card" ? element.className : element.textContent;
  });
}
function tick() {
  const phase = Math.min(Math.floor((performance.now() - started) / phaseMs), phases.length);
  if (samples.length < phase) samples.push(sample());
  if (phase === phases.length) { done(samples); return; }
  window.dispatchEvent(new DeviceMotionEvent("devicemotion", {
    acceleration: phases[phase],
    accelerationIncludingGravity: {x: 0, y: 9.81, z: 0},
    rotationRate: {alpha: 0, beta: 0, gamma: 0},
    interval: 40,
  }));
  setTimeout(tick, 40);
}
tick();
"""


@pytest.mark.slow
def test_phone_page_sends_motion_magnitudes_through_kinesis_to_bronze(
    stack, spark, artifacts, tmp_path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with running_gateway(stack) as server:
        tail = KinesisTail(stack)
        driver = chromium(tmp_path / "chrome-profile", window="412,860")  # a phone-sized viewport
        try:
            driver.set_script_timeout(20)
            driver.get(server.url + "/")
            title = driver.title
            device = driver.find_element(By.ID, "device").text
            button = driver.find_element(By.ID, "toggle")
            started = time.monotonic()
            button.click()
            WebDriverWait(driver, 10).until(lambda d: button.text == "STOP")
            phases = [acceleration for acceleration, _, _ in PHASES]
            samples = driver.execute_async_script(MOTION_SCRIPT, phases, PHASE_MS)
            driver.save_screenshot(str(artifacts / "phone_page.png"))
            button.click()
            sending_s = time.monotonic() - started
            records = tail.collect(f"partition-{device}", 5, settle=2.0)
            status = driver.find_element(By.ID, "status").text
        finally:
            driver.quit()

    # Delivery is at least once: a batch the page posts again after a slow answer is stored
    # twice, byte for byte. The page's cadence and its count are checked on distinct events.
    stored = [record["Data"] for record in records]
    events = [json.loads(data) for data in dict.fromkeys(stored)]
    magnitudes = [e["magnitude"] for e in events]
    times = [datetime.fromisoformat(e["time"].replace("Z", "+00:00")) for e in events]
    gaps_ms = [
        (later - earlier).total_seconds() * 1000
        for earlier, later in zip(times, times[1:], strict=False)
    ]

    assert title == "Streaming Data V1.6"
    assert re.fullmatch(r"client-[0-9a-f]{12}", device)
    # At most 5 a second while it sends: from START to STOP, which is the motion's 2.1 s plus
    # however long a busy machine takes to click, dispatch and take the screenshot.
    assert 5 <= len(events) <= 5 * sending_s + 1, (magnitudes, sending_s)
    assert {e["device"] for e in events} == {device}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["time"]) for e in events)
    assert set(magnitudes) == {magnitude for _, magnitude, _ in PHASES}
    assert magnitudes == sorted(magnitudes)  # the phases come in rising order
    assert min(gaps_ms) >= 200, gaps_ms
    assert [(cls, text) for cls, text, _ in samples] == [
        (f"card {colour}", str(magnitude)) for _, magnitude, colour in PHASES
    ]
    assert {frame for _, _, frame in samples} <= FRAMES
    assert status.startswith(f"{len(events)} events sent")

    # The same events, run through the seismograph pipeline, are in bronze and in `sensor`.
    lake = stack.model_copy(update={"lake": stack.lake.model_copy(update={"root": str(tmp_path)})})
    run_once(spark, lake, "seismograph", report=lambda line: None)
    raw = read_table(lake, "seismograph", "raw_stream")
    sensor = read_table(lake, "seismograph", "sensor")
    from_phone = raw[raw["partitionKey"] == f"partition-{device}"]
    assert sorted(from_phone["data"]) == sorted(record["Data"].decode() for record in records)
    stored_magnitudes = [json.loads(data)["magnitude"] for data in stored]
    assert sorted(sensor[sensor["device"] == device]["magn"]) == sorted(stored_magnitudes)
