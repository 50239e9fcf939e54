"""`inspection_gold`: inspections and mean sensor features per device, factory, model, defect."""

from pyspark import pipelines as dp
from pyspark.sql import functions as F

FEATURES = ("temperature", "density", "delay", "rotation_speed", "air_pressure")


@dp.materialized_view(comment="Aggregates defects by categorical variables")
def inspection_gold():
    return (
        dp.read("inspection_silver")
        .groupBy("device_id", "factory_id", "model_id", "defect")
        .agg(
            F.count("*").alias("count"),
            *[F.avg(f"sensor_{name}").alias(f"average_{name}") for name in FEATURES],
        )
    )
