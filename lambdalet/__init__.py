"""Lambdalet: a self-hosted serverless platform that speaks AWS Lambda's wire contracts."""

__version__ = "0.1.0"
