"""The Arduino original's notebook: PIR detections from Kafka topic `pir_test` into a Delta
table, one row per message (its value ignored), as a streaming job.

Run it with `iotlake job run spark_jobs/arduino/jobs/pir_stream.py`; on Databricks, paste it
into a notebook. The broker address comes from `spark.conf` (`kafka_bootstrap_servers`),
which iotlake sets to its local broker; the original wrote the address in the code.
"""

from pyspark.sql.functions import col, date_format, lit

pir = (
    spark.readStream.format("kafka")
    .option("kafka.bootstrap.servers", spark.conf.get("kafka_bootstrap_servers"))
    .option("subscribe", spark.conf.get("pir_topic", "pir_test"))
    .option("startingOffsets", spark.conf.get("starting_offsets", "latest"))
    .load()
)

detections = pir.select(
    date_format(col("timestamp"), "dd/MM/yyyy HH:mm:ss").alias("timestamp"),
    lit("new detection").alias("movement"),
)

query = (
    detections.writeStream.format("delta")
    .outputMode("append")
    .option("checkpointLocation", spark.conf.get("checkpoint", "delta/kafka_test/pir_checkpoint/"))
    .toTable("data_pipelines.kafka_table.pir_stream_test")
)
query.awaitTermination()
