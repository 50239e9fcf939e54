"""Distributed seismograph (DAIS 2023 "motion" demo): phones -> Kinesis -> medallion."""
