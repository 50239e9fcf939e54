"""Spark's classes, archived once so that every later driver JVM maps them instead of loading
them one by one.

A Spark driver with Delta Lake loads ~28,000 classes in a one-shot run of the manufacturing
system. Mapped from an archive instead, `iotlake run seismograph --once` went from 33-39 s to
30-33 s here, its session start from 11.5 to ~8 s. The JDK's own application class-data
sharing does the work: a JVM started with `-XX:ArchiveClassesAtExit` writes the classes it
loaded to a file when it exits, and a JVM started with `-XX:SharedArchiveFile` maps that file.
`make jars` builds the archive (`python -m spark_jobs.class_archive`) by running the two
file-fed systems once on a scratch lake, so no service needs to be up; the archive belongs to
the JDK and the jars it was made with, and `make` makes it again when either changes. Without
the file a driver starts as before.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from iotlake.config import Settings, load_settings

ARCHIVE = "spark-classes.jsa"
# The training systems read files only: a scratch lake is all they need.
TRAINING = {
    "manufacturing": ["--rows", "2000", "--devices", "10"],
    "text-sentiment": ["--count", "40", "--rate", "1000"],
}
# The JDK reports every class it cannot archive (generated, signed, not yet linked) as a
# warning; only an error says the archive is unusable.
QUIET = "-Xlog:cds=error,cds+dynamic=error"


def archive_path(settings: Settings) -> Path:
    """Beside the jars it was made with."""
    return settings.jars_dir / ARCHIVE


def java_options(settings: Settings) -> list[str]:
    """The driver JVM's options that map the archive, none while there is no archive."""
    archive = archive_path(settings)
    return [f"-XX:SharedArchiveFile={archive}", QUIET] if archive.is_file() else []


def build(archive: Path) -> None:
    """Run the training systems once in a driver that archives its classes at exit, wait for
    the JVM to write the file, then move it into place (a reader never maps half a file)."""
    from pyspark import SparkContext

    from iotlake.bench.processes import settings_env
    from spark_jobs.runner import run_once
    from spark_jobs.session import spark_session

    archive.unlink(missing_ok=True)  # the training driver must not map the one it replaces
    with tempfile.TemporaryDirectory(prefix="iotlake-classes-") as scratch:
        settings = _scratch_settings(Path(scratch))
        for system, options in TRAINING.items():
            command = [sys.executable, "-m", "iotlake", "produce", system, *options]
            subprocess.run(command, env=settings_env(settings), check=True, capture_output=True)
        part = Path(scratch) / ARCHIVE
        spark = spark_session(
            settings, "iotlake-class-archive", [f"-XX:ArchiveClassesAtExit={part}", QUIET]
        )
        spark.sparkContext.setLogLevel("ERROR")
        for system in TRAINING:
            run_once(spark, settings, system, report=lambda _line: None)
        spark.stop()
        _exit_jvm(SparkContext._gateway)
        if not part.is_file():
            raise RuntimeError(f"the driver JVM wrote no class archive to {part}")
        archive.parent.mkdir(parents=True, exist_ok=True)
        part.replace(archive)


def _scratch_settings(scratch: Path) -> Settings:
    return load_settings(
        profile="embedded",
        target="dev",
        state_dir=str(scratch / "state"),
        lake={"root": str(scratch / "lake")},
    )


def _exit_jvm(gateway: object) -> None:
    """End the driver JVM as Python's exit would (its gateway exits when stdin closes), and
    wait: the JVM writes the archive while it exits."""
    process: subprocess.Popen[bytes] = gateway.proc  # type: ignore[attr-defined]
    gateway.shutdown()  # type: ignore[attr-defined]
    if process.stdin is not None:
        process.stdin.close()
    process.wait(timeout=300)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else archive_path(load_settings())
    build(target.resolve())
    print(f"class archive -> {target}")
