"""`top_posts`: the most positive and the most negative posts, recomputed whole.

The original showed the top 15 POS tweets by score; the same number of the most negative
(NEG, lowest score first) sits beside them. Ties are broken by id, so a refresh over the
same rows gives the same table.
"""

from pyspark import pipelines as dp
from pyspark.sql import Window
from pyspark.sql import functions as F


@dp.materialized_view(comment="Top POS posts by score and top NEG posts by lowest score")
@dp.expect("rank within top", "`rank` >= 1")
def top_posts():
    sentiment = dp.read("sentiment")
    best_first = F.when(F.col("label") == "POS", -F.col("score")).otherwise(F.col("score"))
    ranking = Window.partitionBy("label").orderBy(best_first, F.col("id"))
    ranked = sentiment.where(F.col("label").isin("POS", "NEG")).withColumn(
        "rank", F.row_number().over(ranking)
    )
    return ranked.where(F.col("rank") <= int(spark.conf.get("sentiment.top_posts"))).select(
        "label", "rank", "id", "text", "score"
    )
