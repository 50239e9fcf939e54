"""What the pipelines page should show for the seeded seismograph event log
(tests/support/seed.py `seed_pipeline_log`), and what each pipeline declares."""

from __future__ import annotations

from iotlake.config import Settings
from spark_jobs.runner import load_system

EXPECTED_STATUS = {
    "raw_stream": "keeps up",
    "sensor": "keeps up",
    "max_magn_by_device": "keeps up",
    "magn_live": "falling behind",
    "global_stat": "idle",
    "magn_heatmap": "not started",
}


def declared_expectations(settings: Settings, system: str) -> dict[str, list[tuple[str, str]]]:
    """Each table's expectations as its pipeline declares them."""
    return {
        spec.name: [(e.name, e.action) for e in spec.expectations]
        for spec in load_system(system, settings)
    }
