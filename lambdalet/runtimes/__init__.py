"""Language runtimes: which runtime names exist and how each starts an execution environment."""
