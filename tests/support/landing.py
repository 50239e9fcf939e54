"""A landing directory for one test, and AvailableNow runs of the cloudFiles source over it.

Queries run with the shared local Spark session and hand each micro-batch to
`foreachBatch`, which keeps its rows for the assertions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.errors import StreamingQueryException

from spark_jobs.io.autoloader import autoloader_stream

BASE_TIME = 1_700_000_000


@dataclass
class Batch:
    """What one micro-batch delivered."""

    rows: list[dict[str, Any]]
    partitions: int
    columns: list[str]


@dataclass
class Landing:
    """A landing directory, a schema location and a checkpoint for one test, under `root`."""

    root: Path
    settings: Any
    landed: int = 0
    batches: list[Batch] = field(default_factory=list)
    path: Path = field(init=False)
    schema_location: Path = field(init=False)
    checkpoint: Path = field(init=False)

    def __post_init__(self) -> None:
        self.path = self.root / "landing"
        self.schema_location = self.root / "schemas"
        self.checkpoint = self.root / "checkpoint"

    def land(self, name: str, text: str | bytes) -> Path:
        """Write a file, giving each one a later modification time than the one before."""
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / name
        target.write_bytes(text if isinstance(text, bytes) else text.encode())
        self.landed += 1
        os.utime(target, (BASE_TIME + self.landed, BASE_TIME + self.landed))
        return target

    def run(self, spark, fmt: str = "csv", hints: str | None = None, **options) -> list[Batch]:
        """One AvailableNow run from the shared checkpoint; the batches it delivered."""
        stream = autoloader_stream(
            spark,
            self.settings,
            str(self.path),
            fmt,
            str(self.schema_location),
            schema_hints=hints,
            **options,
        )
        delivered: list[Batch] = []

        def keep(frame, batch_id: int) -> None:
            rows = [row.asDict() for row in frame.collect()]
            delivered.append(Batch(rows, frame.rdd.getNumPartitions(), frame.columns))

        query = (
            stream.writeStream.foreachBatch(keep)
            .option("checkpointLocation", str(self.checkpoint))
            .trigger(availableNow=True)
            .start()
        )
        try:
            query.awaitTermination(300)
        except StreamingQueryException as error:
            raise RuntimeError(str(error)) from error
        self.batches += delivered
        return delivered


def rows_of(batches: list[Batch]) -> list[dict[str, Any]]:
    return [row for batch in batches for row in batch.rows]
