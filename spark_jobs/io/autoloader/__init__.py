"""Auto Loader for iotlake: new CSV or JSON-lines files in a landing path as a Spark stream.

Databricks' `cloudFiles` source is proprietary, so iotlake has its own, under the same format
and option names: pipelines written for Databricks read the same way here, from a local
directory or `s3://bucket/prefix`:

    events = autoloader_stream(
        spark, settings, "s3://iotlake-landing/manufacturing/sensor_bronze", "csv",
        schema_location=str(checkpoints / "sensor_bronze"),
        schema_hints="defect float, timestamp timestamp, device_id integer",
    )

One module per job, each documenting its part of the behaviour:

- `options`: the options and their defaults, read once into `AutoloaderOptions`;
- `discovery`: listing the landing path, and the offsets that record which files were read;
- `formats`: CSV and JSON-lines text as records;
- `inference`: column types guessed from sampled values;
- `schema`: the schema log under the schema location, and schema evolution;
- `values`: values converted to their column's type, or rescued;
- `rows`: one file as rows of the output schema, with `_rescued_data` and `_file_path`;
- `source`: the Spark data source and stream reader, and how a batch splits into tasks.
"""

from spark_jobs.io.autoloader.options import FORMAT, AutoloaderOptionError, AutoloaderOptions
from spark_jobs.io.autoloader.schema import SchemaEvolutionError
from spark_jobs.io.autoloader.source import (
    AutoloaderDataSource,
    AutoloaderStreamReader,
    autoloader_options,
    autoloader_stream,
    register,
)

__all__ = [
    "FORMAT",
    "AutoloaderDataSource",
    "AutoloaderOptionError",
    "AutoloaderOptions",
    "AutoloaderStreamReader",
    "SchemaEvolutionError",
    "autoloader_options",
    "autoloader_stream",
    "register",
]
