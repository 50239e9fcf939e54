"""The cloudFiles source's options, read as Auto Loader names them: no Spark session needed."""

from __future__ import annotations

import json
import pickle

import pytest
from pyspark.sql import types as T

from spark_jobs.io.autoloader import AutoloaderOptionError, AutoloaderOptions
from spark_jobs.io.autoloader.options import canonical_name
from spark_jobs.io.storage import STORAGE_OPTIONS_KEY

REQUIRED = {"cloudFiles.format": "csv", "path": "/tmp/x", "cloudFiles.schemaLocation": "/tmp/s"}


def test_required_options_alone_give_the_documented_defaults():
    options = AutoloaderOptions.parse(REQUIRED)

    assert (options.fmt, options.path, options.schema_location) == ("csv", "/tmp/x", "/tmp/s")
    assert options.hints == ()
    assert options.infer_types is True  # iotlake's default, unlike Databricks' false
    assert options.evolution == "addNewColumns"
    assert (options.max_files, options.sample_files, options.late_file_seconds) == (None, 50, 0)
    assert options.header is True
    assert (options.rescued_column, options.path_column) == ("_rescued_data", "_file_path")
    assert options.storage == ()


def test_names_and_choices_are_case_insensitive_and_blank_means_default():
    options = AutoloaderOptions.parse(
        {
            "CLOUDFILES.FORMAT": "JSON",
            "Path": "/tmp/x",
            "cloudfiles.schemalocation": "/tmp/s",
            "cloudFiles.schemaEvolutionMode": "RESCUE",
            "cloudFiles.maxFilesPerTrigger": " ",
            "header": "FALSE",
        }
    )

    assert (options.fmt, options.evolution, options.header) == ("json", "rescue", False)
    assert options.max_files is None


def test_paths_are_made_absolute_and_object_store_paths_lose_their_trailing_slash(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    relative = {"path": "landing", "cloudFiles.schemaLocation": "s"}
    local = AutoloaderOptions.parse(REQUIRED | relative)
    remote = AutoloaderOptions.parse(REQUIRED | {"path": " s3://bucket/prefix/ "})

    assert local.path == str(tmp_path.resolve() / "landing")
    assert local.schema_location == str(tmp_path.resolve() / "s")
    assert remote.path == "s3://bucket/prefix"


def test_schema_hints_become_spark_types_in_their_order():
    hints = "defect float, `air pressure` decimal(5, 2), day DATE, n bigint"
    options = AutoloaderOptions.parse(REQUIRED | {"cloudFiles.schemaHints": hints})

    assert options.hint_types() == {
        "defect": T.FloatType(),
        "air pressure": T.DecimalType(5, 2),
        "day": T.DateType(),
        "n": T.LongType(),
    }


def test_options_are_plain_hashable_values_that_survive_pickling():
    storage = json.dumps({"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:1"})
    options = AutoloaderOptions.parse(REQUIRED | {STORAGE_OPTIONS_KEY: storage})

    assert dict(options.storage) == {
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
    }
    assert pickle.loads(pickle.dumps(options)) == options
    assert hash(pickle.loads(pickle.dumps(options))) == hash(options)


def test_short_names_reach_the_full_option_name():
    assert canonical_name("maxFilesPerTrigger") == "cloudFiles.maxFilesPerTrigger"
    assert canonical_name("CLOUDFILES.SCHEMAHINTS") == "cloudFiles.schemaHints"
    assert canonical_name("header") == "header"
    assert canonical_name("noSuchOption") == "noSuchOption"


@pytest.mark.parametrize(
    ("options", "named", "shown"),
    [
        ({"cloudFiles.format": "parquet"}, "cloudFiles.format", "csv or json, not 'parquet'"),
        ({"cloudFiles.format": ""}, "cloudFiles.format", "is required"),
        ({"path": ""}, "path", "is required"),
        ({"cloudFiles.schemaLocation": ""}, "cloudFiles.schemaLocation", "is required"),
        (
            {"cloudFiles.schemaLocation": "s3://b/x"},
            "cloudFiles.schemaLocation",
            "must be a local directory, not 's3://b/x'",
        ),
        ({"cloudFiles.schemaHints": "defect floaty"}, "cloudFiles.schemaHints", "not 'floaty'"),
        ({"cloudFiles.schemaHints": "defect"}, "cloudFiles.schemaHints", "not 'defect'"),
        ({"cloudFiles.schemaHints": "a int, a int"}, "cloudFiles.schemaHints", "once"),
        (
            {"cloudFiles.schemaHints": "_file_path string"},
            "cloudFiles.schemaHints",
            "metadata columns",
        ),
        (
            {"cloudFiles.schemaEvolutionMode": "failOnNewColumns"},
            "cloudFiles.schemaEvolutionMode",
            "must be addNewColumns | rescue | none, not 'failOnNewColumns'",
        ),
        (
            {"cloudFiles.maxFilesPerTrigger": "0"},
            "cloudFiles.maxFilesPerTrigger",
            "must be a positive integer, not '0'",
        ),
        (
            {"cloudFiles.lateFileSeconds": "-1"},
            "cloudFiles.lateFileSeconds",
            "must be an integer >= 0, not '-1'",
        ),
        ({"cloudFiles.inferColumnTypes": "yes"}, "cloudFiles.inferColumnTypes", "true or false"),
        ({"header": "1"}, "header", "must be true or false, not '1'"),
        (
            {"cloudFiles.maxBytesPerTrigger": "1g"},
            "cloudFiles.maxBytesPerTrigger",
            "did you mean 'cloudFiles.maxFilesPerTrigger'?",
        ),
        ({"rescuedDataColumn": "_file_path"}, "filePathColumn", "not '_file_path'"),
        ({"rescuedDataColumn": " "}, "rescuedDataColumn", "must be a column name, not ' '"),
    ],
)
def test_bad_option_fails_with_one_line_naming_it(options, named, shown):
    with pytest.raises(AutoloaderOptionError) as raised:
        AutoloaderOptions.parse(REQUIRED | options)
    message = str(raised.value)
    assert message.startswith(f"cloudFiles source: option '{named}' ")
    assert shown in message
    assert "\n" not in message
