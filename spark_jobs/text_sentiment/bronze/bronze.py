"""`bronze`: every post as it landed, all of its tweet fields (Twitter-DataFlow.sql)."""

from pyspark.sql import DataFrame

from spark_jobs import dp


@dp.table(comment="Raw posts ingested from the landing path with Auto Loader")
@dp.expect("text present", "text IS NOT NULL")
def bronze(posts: DataFrame) -> DataFrame:
    return posts
