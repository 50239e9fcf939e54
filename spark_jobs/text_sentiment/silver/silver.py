"""`silver`: the original's columns `id, geo, lang, text`, English posts only."""

from pyspark.sql import DataFrame

from spark_jobs import dp


@dp.table(comment="data is cleansed - other languages than EN are dropped")
@dp.expect_or_drop("valid_language", "lang = 'en'")
# `id` is inferred as BIGINT, so the original's `id != ""` becomes "present and not empty".
@dp.expect_or_drop("valid_id", "id IS NOT NULL AND CAST(id AS STRING) != ''")
def silver(bronze: DataFrame) -> DataFrame:
    return bronze.select("id", "geo", "lang", "text")
