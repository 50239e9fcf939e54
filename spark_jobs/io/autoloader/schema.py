"""The schema log: the stored versions of a stream's data columns, and how they evolve.

Inference reads the oldest files present at the first start and stores version 0 under
`<schemaLocation>/_schemas/0`; later starts use the newest stored version, whatever lands
since, so a restart never changes a column's type. Each version is
`{"version": n, "format": ..., "schema": <StructType JSON>}`. The schema location is written
by the driver, so it must be on the driver's disk (executors never need it). A schema given
with `.schema(...)` is not supported: the stored one is the schema.

Schema evolution is detected on the driver, when a batch is planned: the batch's CSV headers
(one line each) and JSON keys (the whole files) are compared with the schema. In
`addNewColumns` mode a new column records the next version and stops the query with
`SchemaEvolutionError` before the batch runs; the restarted query reads that batch with the
evolved schema, earlier rows having the new columns null. Detection reads JSON files once more
on the driver, a cost worth paying for small landing files; CSV costs one line per file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from pyspark.sql.types import StringType, StructField, StructType

from spark_jobs.io.autoloader.discovery import Landed, full_path, list_landed
from spark_jobs.io.autoloader.formats import file_columns
from spark_jobs.io.autoloader.inference import infer_columns
from spark_jobs.io.autoloader.options import AutoloaderOptions

SCHEMAS_DIR = "_schemas"


class SchemaEvolutionError(RuntimeError):
    """New columns were found and recorded; restarting the query reads them. One line."""


def schemas_dir(options: AutoloaderOptions) -> Path:
    return Path(options.schema_location) / SCHEMAS_DIR


def latest_schema(options: AutoloaderOptions) -> tuple[int, StructType] | None:
    """The newest stored version of the data columns, or None before the first start."""
    directory = schemas_dir(options)
    versions = sorted(int(p.name) for p in directory.glob("*") if p.name.isdigit())
    if not versions:
        return None
    stored = json.loads((directory / str(versions[-1])).read_text())
    if stored.get("format") != options.fmt:
        raise AutoloaderOptions.invalid(
            "cloudFiles.format",
            options.fmt,
            f"{stored.get('format')}, the format of the schema stored in {directory}",
        )
    return versions[-1], StructType.fromJson(stored["schema"])


def store_schema(options: AutoloaderOptions, version: int, columns: StructType) -> bool:
    """Write schema `version` unless one exists; True when this call wrote it.

    Written to a temporary file and linked into place, so readers never see half a file and
    two queries racing for one version cannot both win.
    """
    directory = schemas_dir(options)
    directory.mkdir(parents=True, exist_ok=True)
    body = {"version": version, "format": options.fmt, "schema": columns.jsonValue()}
    temporary = directory / f".{version}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(body, indent=1))
    try:
        os.link(temporary, directory / str(version))
        return True
    except FileExistsError:
        return False
    finally:
        temporary.unlink(missing_ok=True)


def data_columns(options: AutoloaderOptions) -> StructType:
    """The stored data columns, inferring and storing version 0 at the first start."""
    stored = latest_schema(options)
    if stored is not None:
        return stored[1]
    landed = list_landed(options)
    columns = infer_columns(options, [file.name for file in landed])
    if not columns.fields and not options.hints:
        raise AutoloaderOptions.error(
            "path",
            f"has no files to infer a schema from ({options.path}); land a file first or "
            "name the columns in cloudFiles.schemaHints",
        )
    store_schema(options, 0, columns)
    return latest_schema(options)[1]  # type: ignore[index]  # the stored one wins a race


def output_schema(options: AutoloaderOptions, columns: StructType) -> StructType:
    """Data columns with hints applied (unseen hinted columns appended), then metadata columns."""
    hints = options.hint_types()
    fields = [StructField(field.name, hints.get(field.name, field.dataType)) for field in columns]
    present = {field.name for field in columns}
    fields += [StructField(name, kind) for name, kind in hints.items() if name not in present]
    for name in (options.rescued_column, options.path_column):
        if name in present:
            raise AutoloaderOptions.invalid(
                "rescuedDataColumn" if name == options.rescued_column else "filePathColumn",
                name,
                "a name that no data column of the files has",
            )
        fields.append(StructField(name, StringType()))
    return StructType(fields)


def record_new_columns(
    options: AutoloaderOptions, known: set[str], files: Sequence[Landed]
) -> None:
    """Store the next schema version and stop when `files` carry columns not in `known`.

    Only the new columns are inferred, from the files that carry them; the stored ones keep
    their types and order, the new ones follow.
    """
    found: dict[str, str] = {}
    for landed in files:
        for column in file_columns(options, landed.name):
            if column not in known and column not in found:
                found[column] = landed.name
    if not found:
        return
    stored = latest_schema(options)
    version, columns = stored if stored else (-1, StructType())
    inferred = infer_columns(options, list(dict.fromkeys(found.values())), set(found))
    present = {field.name for field in columns}
    evolved = StructType(
        columns.fields + [field for field in inferred.fields if field.name not in present]
    )
    store_schema(options, version + 1, evolved)
    names = ", ".join(found)
    first = full_path(options, next(iter(found.values())))
    raise SchemaEvolutionError(
        f"cloudFiles: new column(s) {names} found in {first}; schema version {version + 1} "
        f"recorded in {schemas_dir(options)}; restart the query to read them"
    )
