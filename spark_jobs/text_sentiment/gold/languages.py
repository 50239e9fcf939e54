"""`languages`: posts per language in bronze, before silver drops the non-English ones."""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs import dp

# Twitter's code for a language it could not determine; a null key could not be merged.
UNDETERMINED = "und"


@dp.table(
    comment="Language statistics of all ingested posts (before the EN filter)",
    output_mode="update",
    keys=("lang",),
)
@dp.expect("count is positive", "`count` > 0")
def languages(bronze: DataFrame) -> DataFrame:
    return bronze.groupBy(F.coalesce("lang", F.lit(UNDETERMINED)).alias("lang")).agg(
        F.count(F.lit(1)).alias("count")
    )
