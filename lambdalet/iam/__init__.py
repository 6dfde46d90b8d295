"""IAM's policy language and evaluation logic: compile documents once, authorize requests cheaply."""
