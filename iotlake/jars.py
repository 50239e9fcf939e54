"""The JVM jars iotlake adds to Spark and runs as the Kafka broker, resolved by `make jars`.

`jars/spark.pom.xml` and `jars/kafka.pom.xml` hold the exact Maven coordinates; `make jars`
copies them (and the few transitive jars pyspark does not ship) into `.jars/<group>/` once,
so Spark sessions, the broker, tests and the demo never reach the network. It also compiles
`jars/catalog/src` (the catalog plugin that names tables catalog.schema.table as Databricks
does) into `.jars/catalog/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

Group = Literal["spark", "kafka", "catalog"]

# A jar of each group that must be there: the group is unusable without it.
_REQUIRED = {
    "spark": ("delta-spark_2.13-", "spark-sql-kafka-0-10_2.13-", "hadoop-aws-"),
    "kafka": ("kafka_2.13-", "kafka-server-"),
    "catalog": ("iotlake-catalog",),
}
# How `make jars` makes each group, for the error that asks for it.
_MADE_BY = {
    "spark": "resolves jars/spark.pom.xml from Maven Central once",
    "kafka": "resolves jars/kafka.pom.xml from Maven Central once",
    "catalog": "compiles jars/catalog/src with javac",
}


class MissingJarsError(Exception):
    """A jar group is not resolved; the message is one line naming the make target."""


def jars(jars_dir: Path, group: Group) -> list[Path]:
    """The jars of `group`, sorted; one clear line if `make jars` has not run."""
    folder = jars_dir / group
    found = sorted(folder.glob("*.jar")) if folder.is_dir() else []
    names = [path.name for path in found]
    for prefix in _REQUIRED[group]:
        if not any(name.startswith(prefix) for name in names):
            raise MissingJarsError(
                f"{prefix.rstrip('-_')} jar not found in {folder}; run `make jars` "
                f"({_MADE_BY[group]})"
            )
    return found
