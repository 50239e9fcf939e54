"""AWS IoT PoC: simulated devices -> Kinesis -> Structured Streaming -> Delta on S3."""
