"""`sentiment`: each English post with its label (POS / NEG / NEU) and score.

The original ran a Hugging Face pipeline over silver in a notebook; here the model is VADER
(see `spark_jobs/text_sentiment/vader.py` for the score and the thresholds), applied as the
posts stream in.
"""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from iotlake.config import Settings
from spark_jobs import dp
from spark_jobs.text_sentiment.vader import label, score_udf


@dp.table(comment="English posts with a sentiment label and VADER compound score")
@dp.expect("known label", "label IN ('POS', 'NEG', 'NEU')")
@dp.expect("score in range", "score BETWEEN -1 AND 1")
def sentiment(silver: DataFrame, settings: Settings) -> DataFrame:
    scored = silver.withColumn("score", score_udf(F.col("text")))
    return scored.select(
        "id",
        "geo",
        "lang",
        "text",
        label(F.col("score"), settings.text_sentiment).alias("label"),
        "score",
    )
