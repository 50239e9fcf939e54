"""SQL pipeline files become plain data: datasets, expectations, queries, file sources."""

from __future__ import annotations

import re

import pytest

from spark_jobs.lakeflow.sql import (
    Expectation,
    FileSource,
    SqlPipelineError,
    parse_file,
    parse_text,
    referenced_tables,
)

TWITTER = """\
CREATE OR REFRESH STREAMING TABLE bronze
COMMENT "raw data from the twitter stream"
AS SELECT * FROM cloud_files("dbfs:/data/twitter_dataeng2", "json");

CREATE OR REFRESH STREAMING TABLE silver
(CONSTRAINT valid_language EXPECT (lang == "en") ON VIOLATION DROP ROW,
CONSTRAINT valid_id EXPECT (id != "") ON VIOLATION DROP ROW)
COMMENT "data is cleansed - other languages than EN are dropped"
AS SELECT id, geo, lang, text FROM STREAM(LIVE.bronze);

CREATE OR REFRESH STREAMING TABLE languages
COMMENT "table of languages"
AS SELECT lang, count(*) AS count FROM STREAM(LIVE.bronze) GROUP BY lang ORDER BY count;
"""


def one(text: str):
    """The only dataset `text` declares."""
    (dataset,) = parse_text(text, "pipe.sql").datasets
    return dataset


def refusal(text: str) -> str:
    """The message parsing `text` fails with, checked to be one `file:line: ...; ...` line."""
    with pytest.raises(SqlPipelineError) as caught:
        parse_text(text, "pipe.sql")
    message = str(caught.value)
    assert re.fullmatch(r"pipe\.sql:\d+: [^\n;]+; [^\n]+", message), message
    return message


# -- the Twitter demo ------------------------------------------------------------------


def test_twitter_bronze_reads_auto_loader_files_as_a_stream():
    bronze = parse_text(TWITTER, "twitter.sql").datasets[0]

    assert (bronze.kind, bronze.name, bronze.line) == ("streaming_table", "bronze", 1)
    assert bronze.comment == "raw data from the twitter stream"
    assert bronze.query == "SELECT * FROM STREAM(__files_0)"
    assert bronze.batch_query == "SELECT * FROM __files_0"
    assert bronze.file_sources == (
        FileSource("__files_0", "dbfs:/data/twitter_dataeng2", "json", {}, True),
    )
    assert (bronze.file, bronze.private, bronze.location, bronze.schema) == (
        "twitter.sql",
        False,
        None,
        None,
    )


def test_twitter_silver_drops_rows_failing_its_expectations():
    silver = parse_text(TWITTER).datasets[1]

    assert silver.line == 5
    assert silver.expectations == (
        Expectation("valid_language", 'lang == "en"', "drop"),
        Expectation("valid_id", 'id != ""', "drop"),
    )
    assert silver.schema is None
    assert silver.comment == "data is cleansed - other languages than EN are dropped"
    assert silver.query == "SELECT id, geo, lang, text FROM STREAM(bronze)"
    assert silver.batch_query == "SELECT id, geo, lang, text FROM bronze"


def test_twitter_languages_aggregates_the_bronze_stream():
    pipeline = parse_text(TWITTER)
    languages = pipeline.datasets[2]

    assert [d.name for d in pipeline.datasets] == ["bronze", "silver", "languages"]
    assert pipeline.configuration == {}
    assert languages.line == 11
    assert languages.query == (
        "SELECT lang, count(*) AS count FROM STREAM(bronze) GROUP BY lang ORDER BY count"
    )
    assert languages.file_sources == ()


def test_stream_read_files_is_a_streaming_file_source():
    dataset = one(
        "CREATE OR REFRESH STREAMING TABLE bronze AS SELECT * FROM "
        'STREAM read_files("dbfs:/data/twitter_dais2022", format => "json")'
    )

    assert dataset.query == "SELECT * FROM STREAM(__files_0)"
    assert dataset.batch_query == "SELECT * FROM __files_0"
    assert dataset.file_sources == (
        FileSource("__files_0", "dbfs:/data/twitter_dais2022", "json", {}, True),
    )


# -- file sources ----------------------------------------------------------------------


def test_read_files_without_stream_is_a_batch_read():
    dataset = one(
        "CREATE OR REFRESH MATERIALIZED VIEW countries AS SELECT * FROM "
        "read_files('/Volumes/main/raw/countries.csv', format => 'csv', header => true)"
    )

    assert dataset.query == dataset.batch_query == "SELECT * FROM __files_0"
    assert dataset.file_sources == (
        FileSource(
            "__files_0", "/Volumes/main/raw/countries.csv", "csv", {"header": "true"}, False
        ),
    )


def test_read_files_auto_loader_options_are_named_as_cloud_files_options():
    dataset = one(
        "CREATE STREAMING TABLE t AS SELECT * FROM STREAM(read_files('/in', format => 'json', "
        "schemaHints => 'id BIGINT', INFERCOLUMNTYPES => 'true', maxFilesPerTrigger => 5, "
        "multiLine => 'true'))"
    )

    assert dataset.query == "SELECT * FROM STREAM(__files_0)"
    assert dataset.file_sources[0].options == {
        "cloudFiles.schemaHints": "id BIGINT",
        "cloudFiles.inferColumnTypes": "true",
        "cloudFiles.maxFilesPerTrigger": "5",
        "multiLine": "true",
    }


def test_cloud_files_options_map_is_kept_as_written():
    dataset = one(
        "CREATE STREAMING LIVE TABLE t AS SELECT * FROM cloud_files('/in', 'csv', "
        'map("cloudFiles.inferColumnTypes", "true", "header", "true"))'
    )

    assert dataset.file_sources == (
        FileSource(
            "__files_0",
            "/in",
            "csv",
            {"cloudFiles.inferColumnTypes": "true", "header": "true"},
            True,
        ),
    )


def test_file_sources_are_numbered_per_statement():
    pipeline = parse_text(
        "CREATE STREAMING TABLE a AS SELECT * FROM cloud_files('/a', 'json') "
        "UNION ALL SELECT * FROM cloud_files('/b', 'json');"
        "CREATE STREAMING TABLE b AS SELECT * FROM cloud_files('/c', 'json');"
    )

    a, b = pipeline.datasets
    assert a.query == "SELECT * FROM STREAM(__files_0) UNION ALL SELECT * FROM STREAM(__files_1)"
    assert [(s.view, s.path) for s in a.file_sources] == [("__files_0", "/a"), ("__files_1", "/b")]
    assert [(s.view, s.path) for s in b.file_sources] == [("__files_0", "/c")]


# -- queries ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "read",
    ["STREAM(x)", "STREAM (x)", "STREAM x", "STREAM(LIVE.x)", "stream(live.x)", "STREAM LIVE.x"],
)
def test_every_stream_form_becomes_stream_parentheses_and_plain_in_batch(read):
    dataset = one(f"CREATE STREAMING TABLE t AS SELECT * FROM {read} WHERE a > 1")

    assert dataset.query == "SELECT * FROM STREAM(x) WHERE a > 1"
    assert dataset.batch_query == "SELECT * FROM x WHERE a > 1"


def test_stream_keeps_qualified_and_backquoted_names():
    dataset = one("CREATE STREAMING TABLE t AS SELECT * FROM a JOIN STREAM(`cat`.sch.`my t`) b")

    assert dataset.query == "SELECT * FROM a JOIN STREAM(`cat`.sch.`my t`) b"
    assert dataset.batch_query == "SELECT * FROM a JOIN `cat`.sch.`my t` b"


def test_live_prefix_is_dropped_in_any_case():
    dataset = one(
        "CREATE LIVE TABLE t AS SELECT a.id FROM LIVE.a JOIN live.b ON a.id = b.id JOIN Live.c"
    )

    assert dataset.kind == "materialized_view"
    assert dataset.query == "SELECT a.id FROM a JOIN b ON a.id = b.id JOIN c"


def test_a_table_or_column_named_stream_or_live_is_left_alone():
    dataset = one(
        "CREATE MATERIALIZED VIEW t AS SELECT stream, s.live FROM stream AS s JOIN x.stream"
    )

    assert dataset.query == "SELECT stream, s.live FROM stream AS s JOIN x.stream"


def test_strings_backquoted_names_and_comments_are_not_rewritten():
    dataset = one(
        "CREATE STREAMING TABLE t AS SELECT 'LIVE.x; STREAM(y)' AS s, `LIVE.z` -- STREAM(q);\n"
        "/* cloud_files('/p', 'json') */ FROM STREAM(LIVE.src)"
    )

    assert dataset.query == "SELECT 'LIVE.x; STREAM(y)' AS s, `LIVE.z` \n  FROM STREAM(src)"
    assert dataset.file_sources == ()


# -- statements ------------------------------------------------------------------------


def test_semicolons_in_comments_strings_and_names_do_not_split_statements():
    pipeline = parse_text(
        "-- one; two\n"
        "/* three;\n four */\n"
        "CREATE STREAMING TABLE `we;ird` COMMENT 'a; b' AS SELECT \"c;d\" FROM STREAM(x);\n"
        ";\n"
        "CREATE TEMPORARY VIEW v AS SELECT 1"
    )

    first, second = pipeline.datasets
    assert (first.name, first.comment, first.line) == ("we;ird", "a; b", 4)
    assert first.query == 'SELECT "c;d" FROM STREAM(x)'
    assert (second.kind, second.name, second.line, second.query) == (
        "temporary_view",
        "v",
        6,
        "SELECT 1",
    )


def test_expect_condition_keeps_nested_parentheses_and_strings_with_parentheses():
    dataset = one(
        "CREATE STREAMING TABLE t (\n"
        "  CONSTRAINT `ok range` EXPECT ((a > 0 AND (b < 10)) OR c IN ('x)', \"(y\")),\n"
        "  CONSTRAINT fails EXPECT (length(id) = 36) ON VIOLATION FAIL UPDATE\n"
        ") AS SELECT * FROM STREAM(x)"
    )

    assert dataset.expectations == (
        Expectation("ok range", "(a > 0 AND (b < 10)) OR c IN ('x)', \"(y\")", "warn"),
        Expectation("fails", "length(id) = 36", "fail"),
    )


def test_column_definitions_become_a_schema_string_next_to_expectations():
    dataset = one(
        "CREATE OR REFRESH MATERIALIZED VIEW t (\n"
        "  id BIGINT COMMENT 'the tweet''s, id',\n"
        "  text STRING,\n"
        "  CONSTRAINT has_id EXPECT (id IS NOT NULL) ON VIOLATION DROP ROW\n"
        ") AS SELECT id, text FROM raw"
    )

    assert dataset.schema == "id BIGINT COMMENT 'the tweet''s, id', text STRING"
    assert dataset.expectations == (Expectation("has_id", "id IS NOT NULL", "drop"),)


def test_table_clauses_come_in_any_order_before_as():
    dataset = one(
        "CREATE OR REFRESH STREAMING TABLE cat.sch.events\n"
        "PARTITIONED BY (day, `device id`)\n"
        "TBLPROPERTIES ('pipelines.reset.allowed' = 'false', delta.appendOnly = true)\n"
        "USING DELTA\n"
        "LOCATION 's3://lake/events'\n"
        "CLUSTER BY (device)\n"
        "COMMENT 'it\\'s \"events\"'\n"
        "AS SELECT * FROM STREAM(raw)"
    )

    assert dataset.name == "cat.sch.events"
    assert dataset.partition_cols == ("day", "device id")
    assert dataset.cluster_by == ("device",)
    assert dataset.table_properties == {
        "pipelines.reset.allowed": "false",
        "delta.appendOnly": "true",
    }
    assert dataset.location == "s3://lake/events"
    assert dataset.comment == 'it\'s "events"'


@pytest.mark.parametrize(
    ("create", "kind"),
    [
        ("CREATE OR REFRESH STREAMING TABLE", "streaming_table"),
        ("create streaming table", "streaming_table"),
        ("CREATE OR REFRESH STREAMING LIVE TABLE", "streaming_table"),
        ("CREATE OR REFRESH MATERIALIZED VIEW", "materialized_view"),
        ("CREATE LIVE TABLE", "materialized_view"),
        ("CREATE OR REFRESH LIVE TABLE", "materialized_view"),
        ("CREATE TEMPORARY VIEW", "temporary_view"),
        ("CREATE TEMPORARY LIVE VIEW", "temporary_view"),
    ],
)
def test_current_and_older_keywords_name_the_same_kinds(create, kind):
    dataset = one(f"{create} `cat`.`sch`.`t` AS SELECT 1 AS one")

    assert (dataset.kind, dataset.name, dataset.private) == (kind, "cat.sch.t", False)


def test_private_tables_are_flagged():
    table = one("CREATE OR REFRESH PRIVATE STREAMING TABLE t AS SELECT * FROM STREAM(x)")
    view = one("CREATE PRIVATE MATERIALIZED VIEW v AS SELECT 1")

    assert (table.kind, table.private) == ("streaming_table", True)
    assert (view.kind, view.private) == ("materialized_view", True)


def test_set_statements_become_configuration():
    pipeline = parse_text(
        "SET pipelines.source = '/Volumes/raw; landing';\n"
        "set spark.sql.shuffle.partitions=4;\n"
        "SET mypipeline.startDate = 2024-01-01;\n"
        "CREATE TEMPORARY VIEW v AS SELECT 1;"
    )

    assert pipeline.configuration == {
        "pipelines.source": "/Volumes/raw; landing",
        "spark.sql.shuffle.partitions": "4",
        "mypipeline.startDate": "2024-01-01",
    }


def test_parse_file_names_the_file_in_datasets_and_errors(tmp_path):
    path = tmp_path / "twitter.sql"
    path.write_text(TWITTER + "\nAPPLY CHANGES INTO silver FROM STREAM(bronze) KEYS (id);\n")

    with pytest.raises(SqlPipelineError, match=rf"^{re.escape(str(path))}:15: APPLY CHANGES"):
        parse_file(path)
    path.write_text(TWITTER)
    assert [d.file for d in parse_file(path).datasets] == [str(path)] * 3


# -- refusals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "CREATE FLOW f AS INSERT INTO t BY NAME SELECT * FROM STREAM(x)",
            "pipe.sql:1: CREATE FLOW is not supported; write its query in the table it feeds",
        ),
        ("APPLY CHANGES INTO t FROM STREAM(x) KEYS (id)", "APPLY CHANGES INTO is not supported"),
        ("CREATE FLOW f AS AUTO CDC INTO t FROM STREAM(x) KEYS (id)", "CREATE FLOW"),
        ("AUTO CDC INTO t FROM STREAM(x) KEYS (id) SEQUENCE BY ts", "AUTO CDC is not supported"),
        ("CREATE TABLE t AS SELECT 1", "CREATE TABLE is not supported; write CREATE OR REFRESH"),
        ("CREATE OR REFRESH TABLE t AS SELECT 1", "CREATE TABLE is not supported"),
        ("INSERT INTO t SELECT 1", "INSERT is not supported"),
        ("CREATE VIEW v AS SELECT 1", "VIEW is not supported; write CREATE TEMPORARY VIEW"),
        ("CREATE OR REPLACE TEMPORARY VIEW v AS SELECT 1", "write CREATE OR REFRESH"),
        ("DROP TABLE t", "DROP is not supported; write CREATE OR REFRESH STREAMING TABLE"),
        ("CREATE OR REFRESH STREAMING TABLE t", "t has no query after AS"),
        ("CREATE STREAMING TABLE t SCHEDULE EVERY 1 HOUR AS SELECT 1", "'SCHEDULE'"),
        ("CREATE STREAMING TABLE t COMMENT 'a' COMMENT 'b' AS SELECT 1", "at most once"),
        ("CREATE STREAMING TABLE t USING PARQUET AS SELECT 1", "write USING DELTA"),
        ("CREATE STREAMING TABLE t COMMENT nope AS SELECT 1", "COMMENT nope"),
        ("CREATE STREAMING TABLE t (CONSTRAINT c CHECK (a > 0)) AS SELECT 1", "EXPECT"),
        (
            "CREATE STREAMING TABLE t (CONSTRAINT c EXPECT (a > 0) ON VIOLATION SKIP) AS SELECT 1",
            "CONSTRAINT c is not an expectation",
        ),
        ("CREATE STREAMING TABLE t AS SELECT * FROM cloud_files('/in')", "2 or 3 arguments"),
        ("CREATE STREAMING TABLE t AS SELECT * FROM STREAM read_files('/in')", "names no format"),
        (
            "CREATE MATERIALIZED VIEW v AS SELECT * FROM cloud_files('/in', 'json')",
            "materialized view v reads files as a stream",
        ),
        ("SET pipelines.x", "SET needs key = value"),
        ("CREATE STREAMING TABLE t AS SELECT 'unclosed", "unmatched '"),
        ("CREATE STREAMING TABLE t AS SELECT 1 /* unclosed", "unmatched /*"),
        ("CREATE STREAMING TABLE t AS SELECT 1 /* a /* nested */ */", "unmatched */"),
        ("CREATE", "CREATE is not supported"),
        ("CREATE STREAMING TABLE t (CONSTRAINT c EXPECT (a > 0) AS SELECT 1", "ends too early"),
    ],
)
def test_unsupported_statements_are_refused_with_line_and_what_to_write(text, expected):
    assert expected in refusal(text)


def test_a_refusal_points_at_the_line_its_statement_starts_on():
    message = refusal(TWITTER + "\n-- and then\n\nCREATE\nFLOW f\nAS INSERT INTO t SELECT 1;")

    assert message.startswith("pipe.sql:17: CREATE FLOW is not supported; ")


# -- referenced_tables, through Spark's own parser --------------------------------------


def test_referenced_tables_of_the_twitter_queries(spark):
    silver, languages = parse_text(TWITTER).datasets[1:]

    assert referenced_tables(spark, silver.query) == [(("bronze",), True)]
    assert referenced_tables(spark, languages.batch_query) == [(("bronze",), False)]


def test_referenced_tables_finds_joins_subqueries_and_qualified_names(spark):
    query = (
        "WITH recent AS (SELECT * FROM cat.sch.events) "
        "SELECT * FROM STREAM(`my db`.readings) r JOIN recent ON r.id = recent.id "
        "JOIN STREAM(__files_0) f ON f.id = r.id "
        "WHERE r.kind IN (SELECT kind FROM kinds) AND r.id IN (SELECT id FROM kinds)"
    )

    assert referenced_tables(spark, query) == [
        (("cat", "sch", "events"), False),
        (("kinds",), False),
        (("my db", "readings"), True),
        (("__files_0",), True),
    ]


def test_referenced_tables_turns_a_syntax_error_into_one_line(spark):
    with pytest.raises(SqlPipelineError) as caught:
        referenced_tables(spark, "SELECT * FRM x")

    assert str(caught.value).startswith("[PARSE_SYNTAX_ERROR] Syntax error at or near 'x'")
    assert "\n" not in str(caught.value)
