"""The stack one transport's load levels run on: a fresh stream and the pipeline driver.

Each transport gets a stream of its own, so its levels count only their own records, and
one `iotlake run seismograph --continuous` driver that takes every level in turn.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import boto3

# NewTopic is public here (confluent-kafka's docs import it so) but its stubs lack the re-export.
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from iotlake.bench.processes import BenchError, Child, start_child, wait_for_line
from iotlake.config import Settings
from services.producers.transport import Target

SYSTEM = "seismograph"
PARTITIONS = 4  # as `iotlake provision` creates dais2023
_RUNNING = re.compile(r"running \d+ queries: ")

Report = Callable[[str], None]


def create_stream(settings: Settings, transport: str, name: str) -> None:
    """A fresh Kafka topic or Kinesis stream with as many partitions as `dais2023` has."""
    if transport == "kafka":
        admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
        admin.create_topics([NewTopic(name, PARTITIONS, 1)])[name].result(timeout=60)
        return
    kinesis = boto3.client("kinesis", **settings.aws.boto3_kwargs())
    kinesis.create_stream(StreamName=name, ShardCount=PARTITIONS)
    kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )


@dataclass
class Pipeline:
    """The `iotlake run seismograph --continuous` driver of one transport.

    On a loaded machine a query can die (a Python worker that does not connect back in
    time); the driver is then started again, resuming from its checkpoints, and the restart
    is reported with the level instead of ending the benchmark.
    """

    settings: Settings
    transport: Target
    max_restarts: int = 3
    child: Child | None = None
    restarts: list[str] = field(default_factory=list)

    def start(self) -> None:
        suffix = f"-restart{len(self.restarts)}" if self.restarts else ""
        self.child = start_child(
            self.settings,
            f"pipeline-{self.transport}{suffix}",
            ["-m", "iotlake", "run", SYSTEM, "--continuous"],
        )

    def wait_ready(self, timeout: float, report: Report) -> None:
        """Wait until every query runs; a driver that dies while starting is started again."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                wait_for_line(
                    self._started(),
                    # Spark's progress bar may share the line (it ends in \r, not \n).
                    lambda line: _RUNNING.search(line) is not None,
                    max(1.0, deadline - time.monotonic()),
                    "running queries",
                )
                return
            except BenchError:
                if self._started().running() or time.monotonic() >= deadline:
                    raise
                self.keep_running(report)

    def keep_running(self, report: Report) -> None:
        """Start the driver again if it stopped; give up after `max_restarts`."""
        child = self._started()
        if child.running():
            return
        reason = child.last_line()
        if len(self.restarts) >= self.max_restarts:
            raise BenchError(
                f"the {self.transport} pipeline stopped {len(self.restarts) + 1} times; "
                f"last: {reason}"
            )
        self.restarts.append(reason)
        report(f"{self.transport}: pipeline stopped ({reason}); starting it again")
        child.stop()
        self.start()

    def _started(self) -> Child:
        if self.child is None:
            raise BenchError(f"the {self.transport} pipeline has not been started")
        return self.child

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
