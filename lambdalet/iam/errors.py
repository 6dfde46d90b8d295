"""The one error a policy document can raise, shared by the modules that compile its parts."""

from __future__ import annotations


class MalformedPolicy(ValueError):
    """A document IAM would refuse; `message` is IAM's own MalformedPolicyDocument wording."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


SYNTAX = "Syntax errors in policy."
LEGACY = "The policy failed legacy parsing"
