"""`iotlake bench`: throughput, lag, latency, memory and cold start, measured in one run.

`run_bench(settings, BenchConfig(...))` is the whole benchmark; `iotlake bench` runs it with
the defaults and prints the table. `iotlake bench io` (in `spark_jobs.io.bench`) measures
the broker -> Delta paths alone.
"""

from iotlake.bench.harness import BenchConfig, run_bench
from iotlake.bench.load_level import Timing
from iotlake.bench.processes import BenchError

__all__ = ["BenchConfig", "BenchError", "Timing", "run_bench"]
