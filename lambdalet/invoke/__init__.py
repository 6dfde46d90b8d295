"""The invoke path: invoker → warm pool → execution environment ↔ Runtime API."""
