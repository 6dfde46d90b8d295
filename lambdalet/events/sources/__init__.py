"""Pollers, one module per kind of event source: `sqs.py` (queues), `streams.py` (Kinesis and
DynamoDB streams); `base.py` is what they share."""
