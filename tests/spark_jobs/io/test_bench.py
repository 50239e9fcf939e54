"""The IO benchmark delivers every row on every path and reports its figures."""

from __future__ import annotations

import json

from spark_jobs.io.bench import bench_io


def test_bench_io_lands_every_row_and_writes_its_figures(stack, spark):
    lines: list[str] = []
    results = bench_io(spark, stack, kafka_rows=3_000, kinesis_rows=600, report=lines.append)

    for path in ("kafka", "kinesis"):
        assert results[path]["complete"], results[path]
        assert results[path]["spark_to_delta_rows_per_s"] > 0
        assert results[path]["ratio_spark_to_bare"] > 0
    stored = json.loads((stack.state_dir / "bench" / "io.json").read_text())
    assert stored["kafka"]["rows"] == 3_000 and stored["kinesis"]["rows"] == 600
    assert lines[0].split() == [
        "path",
        "rows",
        "spark->delta/s",
        "in",
        "batches/s",
        "bare->delta/s",
        "ratio",
    ]
