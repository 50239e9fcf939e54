"""The aws-iot sensor simulator: five devices, one reading each per second, into Kinesis.

Each record is what the original `iot_producer.py` sent:
`{"device_id": "<uuid4>", "timestamp": <epoch ms>, "metrics": {"temperature_c": U(18,30),
"pressure_hpa": U(980,1030), "humidity_percent": U(40,70)} (2 dp), "status":
HEALTHY|WARNING|CRITICAL (uniform, independent of the metrics), "region": "us-east-1"}`,
PartitionKey = device_id, to the Kinesis stream `iot-sensor-data-stream` (or the Kafka topic
of that name). After a failed call it waits `--retry-sleep` seconds (5, as the original) and
sends the same records again.

`generate_records` is the pure generator (same seed and start, same records); `run` paces it
in real time and sends; `main` is what `iotlake produce aws-iot` runs.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Unpack

from iotlake.config import Settings
from services.producers import pump
from services.producers.pump import Hooks, PumpResult, Source, StreamOptions, pump_stream, send_all
from services.producers.transport import Record, SendStats

STREAM = "iot-sensor-data-stream"
STATUSES = ("HEALTHY", "WARNING", "CRITICAL")
REGION = "us-east-1"
TEMPERATURE_C = (18.0, 30.0)
PRESSURE_HPA = (980.0, 1030.0)
HUMIDITY_PERCENT = (40.0, 70.0)


@dataclass(frozen=True)
class SensorConfig:
    """The devices and how often each reports; with a seed, every record is reproducible."""

    devices: int = 5
    rate: float = 1.0
    seed: int | None = None
    region: str = REGION

    def __post_init__(self) -> None:
        if self.devices < 1:
            raise ValueError("devices must be at least 1")
        if not 0 < self.rate <= 1000:
            raise ValueError("rate must be in (0, 1000] records per device per second")

    @property
    def period_ms(self) -> int:
        return max(1, round(1000 / self.rate))


class SensorFleet:
    """The devices and the tick schedule: every period, one record per device, in order."""

    def __init__(self, config: SensorConfig, start_ms: int) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self.device_ids = [
            str(uuid.UUID(int=self._rng.getrandbits(128), version=4)) for _ in range(config.devices)
        ]
        self._tick_ms = start_ms
        self._next_device = 0

    def next_due_ms(self) -> int:
        return self._tick_ms

    def records_due(self, now_ms: int, limit: int | None = None) -> list[dict]:
        """Every record due by `now_ms` (at most `limit`), in tick and device order.

        A tick that fell a whole period behind (the sender was slow or down) happens at
        `now_ms` instead: the original slept one second after each round, so it never
        caught up with a backlog either.
        """
        period = self.config.period_ms
        out: list[dict] = []
        while self._tick_ms <= now_ms and (limit is None or len(out) < limit):
            if self._next_device == 0 and now_ms - self._tick_ms >= period:
                self._tick_ms = now_ms
            out.append(self._reading(self.device_ids[self._next_device], self._tick_ms))
            self._next_device += 1
            if self._next_device == len(self.device_ids):
                self._next_device = 0
                self._tick_ms += period
        return out

    def _reading(self, device_id: str, timestamp_ms: int) -> dict:
        rng = self._rng
        return {
            "device_id": device_id,
            "timestamp": timestamp_ms,
            "metrics": {
                "temperature_c": round(rng.uniform(*TEMPERATURE_C), 2),
                "pressure_hpa": round(rng.uniform(*PRESSURE_HPA), 2),
                "humidity_percent": round(rng.uniform(*HUMIDITY_PERCENT), 2),
            },
            "status": rng.choice(STATUSES),
            "region": self.config.region,
        }


def generate_records(config: SensorConfig, start_ms: int, *, records: int) -> Iterator[dict]:
    """The first `records` readings from `start_ms` on, without sending."""
    fleet = SensorFleet(config, start_ms)
    return pump.unpaced(fleet.next_due_ms, fleet.records_due, start_ms, count=records)


def to_record(reading: dict) -> Record:
    """The Kinesis record: `json.dumps` of the reading, keyed by its device."""
    return Record(reading["device_id"], json.dumps(reading).encode())


class SensorSource:
    """The fleet as a `Source` for the shared send loop."""

    def __init__(self, fleet: SensorFleet) -> None:
        self.fleet = fleet

    def next_due_ms(self) -> int:
        return self.fleet.next_due_ms()

    def emit_due(self, now_ms: int, limit: int | None) -> tuple[list[Record], int]:
        readings = self.fleet.records_due(now_ms, limit)
        return [to_record(reading) for reading in readings], len(readings)

    def drain(self) -> list[Record]:
        return []


@dataclass(frozen=True)
class SensorOptions(StreamOptions):
    """Everything `iotlake produce aws-iot` takes."""

    sensors: SensorConfig = SensorConfig()
    records: int | None = None
    retry_sleep: float = 5.0


def resolved(options: SensorOptions, settings: Settings) -> SensorOptions:
    """Fill the target and stream the command line left open from the settings."""
    return pump.resolved(options, settings.aws_iot)


def run(settings: Settings, options: SensorOptions, **hooks: Unpack[Hooks]) -> PumpResult:
    """Send readings in real time (or on an injected clock) until told to stop."""
    options = resolved(options, settings)

    def start(start_ms: int, destination: str) -> tuple[Source, str]:
        rate = options.sensors.devices * 1000 / options.sensors.period_ms
        plan = f"{options.sensors.devices} devices -> {destination}, {rate:g} records/s planned"
        return SensorSource(SensorFleet(options.sensors, start_ms)), plan

    return pump_stream(
        settings,
        options,
        start,
        limit=options.records,
        unit="records",
        **hooks,
    )


def send_records(settings: Settings, readings: Iterable[dict]) -> SendStats:
    """Send already generated readings as fast as the target takes them (for pipeline tests)."""
    return send_all(settings, settings.aws_iot, (to_record(reading) for reading in readings))


def main(settings: Settings, options: SensorOptions, stop: threading.Event) -> int:
    """Run until the duration, record count or `stop`; 0 when everything generated was sent,
    1 when some stayed unsent."""
    return pump.finish(run(settings, options, stop=stop), "records")


if __name__ == "__main__":
    from services.runtime import command_line

    command_line("produce", "aws-iot")
