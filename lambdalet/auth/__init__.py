"""Who may do what: SigV4 authentication and IAM policy evaluation (issue 18)."""
