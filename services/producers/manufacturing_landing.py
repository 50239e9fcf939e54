"""Landing a manufacturing batch: its sensor and inspection CSV files, where Auto Loader reads.

Files have a header, go to local paths or `s3://`, and land whole: a reader never sees one
half written.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from iotlake.config import Settings
from services.producers.manufacturing_batch import Batch

CSV_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"


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
