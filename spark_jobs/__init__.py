"""Spark jobs: the pipelines runner, its sources and sinks, and the pipeline folders."""

from typing import Any

# A py4j handle on a JVM object (Spark internals, Hadoop, Delta): untyped on the Python side.
JavaObject = Any
