"""Simulated phones for the seismograph: what the DAIS 2023 `magn.html` page sent, at scale.

Each phone sends `{"magnitude": int, "time": "...Z", "device": "client-<12 hex>"}` at most
once every 200 ms, as the page did: `magnitude` is the rounded length of the acceleration
without gravity (m/s², uncalibrated), `time` the phone's clock in ISO-8601 UTC with
milliseconds. Phones lying still send 0s at 5 Hz; a configurable fraction is shaken in bursts,
the strongest reaching about 230 at its peak, as the DAIS record did. With the defaults (130
phones, 25% shaken) the event statistics come out close to the DAIS dashboard (mean 4,
standard deviation 12, max 231): mean about 4, standard deviation 12-15, max 200-230.

Kinesis stream `dais2023`, PartitionKey `partition-<device>`; or Kafka topic `dais2023`, key
`partition-<device>`. One record per event, as the original; `--pack N` puts N events of one
phone into a JSON array in one record (an iotlake extension for loads beyond the original).

`generate_events` is the pure generator (the same seed and start give the same events);
`run` paces it in real time and sends; `main` is what `iotlake produce seismograph` runs.
"""

from __future__ import annotations

import heapq
import json
import math
import random
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Unpack

from iotlake.config import Settings
from services.producers import pump
from services.producers.pump import Hooks, PumpResult, Source, StreamOptions, pump_stream, send_all
from services.producers.transport import Record, SendStats

STREAM = "dais2023"
MIN_SPACING_MS = 200  # the page sent an event only when more than 200 ms had passed
IDLE_NOISE = 0.05  # m/s² per axis: a phone lying on a table
DAIS_PEAK = 230.0  # the DAIS dashboard's max magnitude was 231
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FleetConfig:
    """Who the phones are and how they move; with a seed, everything is reproducible."""

    phones: int = 130
    rate_per_phone: float = 5.0
    shaken_fraction: float = 0.25
    peak: float = DAIS_PEAK
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.phones < 1:
            raise ValueError("phones must be at least 1")
        if not 0 < self.rate_per_phone <= 1000 / MIN_SPACING_MS:
            raise ValueError(
                "rate-per-phone must be in (0, 5]: a phone sends at most one event per 200 ms; "
                "add phones or --pack events for more load"
            )
        if not 0.0 <= self.shaken_fraction <= 1.0:
            raise ValueError("shaken-fraction must be between 0 and 1")
        if self.peak < 0:
            raise ValueError("peak must not be negative")

    @property
    def period_ms(self) -> int:
        return math.ceil(1000 / self.rate_per_phone)


def encode_event(event: dict) -> bytes:
    """The record text as the page's `JSON.stringify` wrote it: compact, fields in order."""
    return json.dumps(event, separators=(",", ":")).encode()


def partition_key(device: str) -> str:
    return f"partition-{device}"


class Phone:
    """One phone: its id, its own random stream, and (when shaken) its bursts of shaking.

    A shaken phone alternates rests (1-5 s) and bursts (2-6 s). In a burst the acceleration
    swells and fades (a half sine), each reading is taken at a random point of the hand's
    back-and-forth, in a random direction, scaled by the burst's strength and the phone's
    own peak.
    """

    __slots__ = ("device", "peak", "_rng", "_burst_start", "_burst_end", "_strength")

    def __init__(self, device: str, rng: random.Random, peak: float) -> None:
        self.device = device
        self.peak = peak
        self._rng = rng
        self._burst_start = self._burst_end = None
        self._strength = 0.0

    def magnitude(self, t_ms: int) -> int:
        """Math.round(|a|) of a simulated acceleration without gravity at `t_ms`."""
        rng = self._rng
        amplitude = self._amplitude(t_ms) if self.peak > 0 else 0.0
        ux, uy, uz = rng.gauss(0, 1), rng.gauss(0, 1), rng.gauss(0, 1)
        norm = math.sqrt(ux * ux + uy * uy + uz * uz) or 1.0
        scale = amplitude / norm
        ax = ux * scale + rng.gauss(0, IDLE_NOISE)
        ay = uy * scale + rng.gauss(0, IDLE_NOISE)
        az = uz * scale + rng.gauss(0, IDLE_NOISE)
        # Math.round: halves round up (Python's round() would round them to even).
        return math.floor(math.sqrt(ax * ax + ay * ay + az * az) + 0.5)

    def _amplitude(self, t_ms: int) -> float:
        rng = self._rng
        if self._burst_end is None:  # start somewhere in a rest/burst cycle
            self._burst_end = t_ms - rng.randrange(0, 6000)
        while t_ms >= self._burst_end:
            self._burst_start = self._burst_end + rng.randrange(1000, 5000)
            self._burst_end = self._burst_start + rng.randrange(2000, 6000)
            self._strength = rng.uniform(0.6, 1.0)
        if t_ms < self._burst_start:
            return 0.0
        progress = (t_ms - self._burst_start) / (self._burst_end - self._burst_start)
        swing = abs(math.sin(rng.uniform(0, math.pi)))
        return self.peak * self._strength * math.sin(math.pi * progress) * swing


class PhoneFleet:
    """All phones and when each sends next; events come out in time order."""

    def __init__(self, config: FleetConfig, start_ms: int) -> None:
        self.config = config
        master = random.Random(config.seed)
        self.phones = _make_phones(config, master)
        period = config.period_ms
        self._period = period
        self._due = [(start_ms + master.randrange(period), i) for i in range(config.phones)]
        heapq.heapify(self._due)
        self._second = -1
        self._prefix = ""

    @property
    def devices(self) -> list[str]:
        return [phone.device for phone in self.phones]

    def next_due_ms(self) -> int:
        return self._due[0][0]

    def events_due(self, now_ms: int, limit: int | None = None) -> list[tuple[Phone, dict]]:
        """Every event due by `now_ms`, oldest first, with the phone that sends it.

        A phone whose turn passed a whole period ago (the sender fell behind) sends at
        `now_ms` instead, as the page sends on its next motion callback: never a backlog,
        never two events closer than the period.
        """
        due, period = self._due, self._period
        out: list[tuple[Phone, dict]] = []
        while due and due[0][0] <= now_ms and (limit is None or len(out) < limit):
            scheduled, index = due[0]
            at = scheduled if now_ms - scheduled < period else now_ms
            phone = self.phones[index]
            out.append((phone, self._event(phone, at)))
            heapq.heapreplace(due, (at + period, index))
        return out

    def _event(self, phone: Phone, at_ms: int) -> dict:
        second = at_ms // 1000
        if second != self._second:  # one strftime per second, not per event
            self._second = second
            self._prefix = (_EPOCH + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%S.")
        return {
            "magnitude": phone.magnitude(at_ms),
            "time": f"{self._prefix}{at_ms % 1000:03d}Z",
            "device": phone.device,
        }


def _make_phones(config: FleetConfig, master: random.Random) -> list[Phone]:
    """Distinct device ids; a `shaken_fraction` of phones shaken, one of them at `peak`."""
    devices: list[str] = []
    seen: set[str] = set()
    while len(devices) < config.phones:
        device = f"client-{master.getrandbits(48):012x}"
        if device not in seen:
            seen.add(device)
            devices.append(device)
    shaken = master.sample(range(config.phones), round(config.shaken_fraction * config.phones))
    peaks = [0.0] * config.phones
    for rank, index in enumerate(shaken):
        # Most people shake moderately; one shakes as hard as the DAIS record.
        peaks[index] = config.peak if rank == 0 else config.peak * master.uniform(0.1, 0.6)
    return [
        Phone(device, random.Random(master.getrandbits(64)), peak)
        for device, peak in zip(devices, peaks, strict=True)
    ]


def generate_events(
    config: FleetConfig,
    start_ms: int,
    *,
    events: int | None = None,
    duration: float | None = None,
) -> Iterator[dict]:
    """The events the fleet sends from `start_ms`, in time order, without sending anything:
    `events` of them or `duration` seconds' worth (see `pump.unpaced`)."""
    fleet = PhoneFleet(config, start_ms)
    due = pump.unpaced(
        fleet.next_due_ms, fleet.events_due, start_ms, count=events, duration=duration
    )
    return (event for _, event in due)


class Packer:
    """Turns events into records: one per event, or arrays of `pack` events of one phone."""

    def __init__(self, pack: int = 1) -> None:
        if pack < 1:
            raise ValueError("pack must be at least 1")
        self.pack = pack
        self._held: dict[str, list[dict]] = {}

    def add(self, device: str, event: dict) -> Record | None:
        if self.pack == 1:
            return Record(partition_key(device), encode_event(event))
        held = self._held.setdefault(device, [])
        held.append(event)
        if len(held) < self.pack:
            return None
        del self._held[device]
        return self._array(device, held)

    def drain(self) -> list[Record]:
        """Partly filled packs, so nothing stays behind when the producer stops."""
        records = [self._array(device, held) for device, held in self._held.items()]
        self._held.clear()
        return records

    @staticmethod
    def _array(device: str, events: list[dict]) -> Record:
        data = json.dumps(events, separators=(",", ":")).encode()
        return Record(partition_key(device), data, len(events))


def records_for(events: Iterable[dict], pack: int = 1) -> list[Record]:
    """The records a producer sends for these events (packing by device)."""
    packer = Packer(pack)
    records = [r for e in events if (r := packer.add(e["device"], e)) is not None]
    return records + packer.drain()


class PhoneSource:
    """The fleet as a `Source` for the shared send loop."""

    def __init__(self, fleet: PhoneFleet, pack: int) -> None:
        self.fleet = fleet
        self.packer = Packer(pack)

    def next_due_ms(self) -> int:
        return self.fleet.next_due_ms()

    def emit_due(self, now_ms: int, limit: int | None) -> tuple[list[Record], int]:
        due = self.fleet.events_due(now_ms, limit)
        records = [r for p, e in due if (r := self.packer.add(p.device, e)) is not None]
        return records, len(due)

    def drain(self) -> list[Record]:
        return self.packer.drain()


@dataclass(frozen=True)
class PhoneOptions(StreamOptions):
    """Everything `iotlake produce seismograph` takes."""

    fleet: FleetConfig = FleetConfig()
    pack: int = 1
    events: int | None = None

    def __post_init__(self) -> None:
        if self.pack < 1:
            raise ValueError("pack must be at least 1")


def resolved(options: PhoneOptions, settings: Settings) -> PhoneOptions:
    """Fill the target and stream the command line left open from the settings."""
    return pump.resolved(options, settings.seismograph)


def run(settings: Settings, options: PhoneOptions, **hooks: Unpack[Hooks]) -> PumpResult:
    """Send the fleet's events in real time (or on an injected clock) until told to stop."""
    options = resolved(options, settings)

    def start(start_ms: int, destination: str) -> tuple[Source, str]:
        fleet = PhoneFleet(options.fleet, start_ms)
        plan = (
            f"{options.fleet.phones} phones ({len(_shaken(fleet))} shaken) -> "
            f"{destination}, {options.fleet.phones * options.fleet.rate_per_phone:g} "
            f"events/s planned, pack {options.pack}"
        )
        return PhoneSource(fleet, options.pack), plan

    return pump_stream(
        settings,
        options,
        start,
        limit=options.events,
        **hooks,
    )


def _shaken(fleet: PhoneFleet) -> list[Phone]:
    return [phone for phone in fleet.phones if phone.peak > 0]


def send_events(
    settings: Settings, events: Iterable[dict], *, pack: int = 1, timeout: float = 60.0
) -> SendStats:
    """Send already generated events as fast as the target takes them (for pipeline tests)."""
    return send_all(settings, settings.seismograph, records_for(events, pack), timeout=timeout)


def main(settings: Settings, options: PhoneOptions, stop: threading.Event) -> int:
    """Run until the duration, event count or `stop`; 0 when everything generated was sent,
    1 when some stayed unsent."""
    return pump.finish(run(settings, options, stop=stop))


if __name__ == "__main__":
    from services.runtime import command_line

    command_line("produce", "seismograph")
