"""`sentiment`: each English post with its label (POS / NEG / NEU) and score.

The original ran a Hugging Face pipeline over silver in a notebook; here the model is VADER
(see `sentiment_model.py` beside this pipeline's folders for the score and the thresholds),
applied as the posts stream in.
"""

import dlt
from pyspark.sql import functions as F
from sentiment_model import label, score_udf


@dlt.table(comment="English posts with a sentiment label and VADER compound score")
@dlt.expect("known label", "label IN ('POS', 'NEG', 'NEU')")
@dlt.expect("score in range", "score BETWEEN -1 AND 1")
def sentiment():
    positive = float(spark.conf.get("sentiment.positive_threshold"))
    negative = float(spark.conf.get("sentiment.negative_threshold"))
    scored = dlt.read_stream("silver").withColumn("score", score_udf(F.col("text")))
    return scored.select(
        "id",
        "geo",
        "lang",
        "text",
        label(F.col("score"), positive, negative).alias("label"),
        "score",
    )
