"""Calls from the other accounts of `--accounts-file` on their own Lambda resources, which this server does not keep.

A server keeps the functions, layers, mappings and logs of one account (`--account-id`). Other
accounts of its accounts file have IAM users, roles and policies of their own and reach that
account's resources by ARN where its resource policies allow (cross-account access, authorised
as AWS does: both the caller's identity policies and the resource's policy must allow). What
they name in their own account does not exist here, and is answered as AWS answers an account
that has none: reads are `ResourceNotFoundException`, listings are empty. Creating resources of
their own is refused, saying so (docs/deviations.md), rather than kept in the wrong account.
The same holds for their schedules (here) and log groups (`cloudwatch_logs.py`).
"""

from __future__ import annotations

from aiohttp import web

from lambdalet.api.common import json_response
from lambdalet.api.permissions import Permission
from lambdalet.api.scheduler import ResourceNotFoundException as ScheduleNotFound
from lambdalet.api.scheduler import ValidationException as ScheduleRefused
from lambdalet.errors import InvalidParameterValueException, ResourceNotFoundException

#: Listings, each with the member its (empty) answer has.
EMPTY_LISTINGS = {"ListFunctions": "Functions", "ListLayers": "Layers", "ListEventSourceMappings": "EventSourceMappings",
                  "ListCodeSigningConfigs": "CodeSigningConfigs", "ListCapacityProviders": "CapacityProviders"}
CREATING = ("Create", "Publish")


def answer(operation: str, permission: Permission, server_account: str) -> web.Response:
    """The answer to `operation` on another account's own resources (raises the errors)."""
    if operation in EMPTY_LISTINGS:
        return json_response({EMPTY_LISTINGS[operation]: []})
    if operation.startswith(CREATING) or operation == "GetAccountSettings":
        raise InvalidParameterValueException(
            f"This server keeps the Lambda resources of account {server_account} only; account "
            f"{permission.resource_account} has IAM users, roles and policies here, and may use account "
            f"{server_account}'s resources by ARN where their policies allow (docs/security.md).")
    if ":function:" in permission.resource:
        raise ResourceNotFoundException(f"Function not found: {permission.resource}")
    raise ResourceNotFoundException("The resource you requested does not exist.")


def scheduler_answer(request: web.Request, account: str, server_account: str) -> web.Response:
    """EventBridge Scheduler's answer to another account about its own schedules and groups."""
    listing = "ScheduleGroups" if request.path.startswith("/schedule-groups") else "Schedules"
    if "name" not in request.match_info:
        return json_response({listing: []})
    if request.method == "POST":
        raise ScheduleRefused(f"This server keeps the schedules of account {server_account} only; account {account} "
                              "has IAM users, roles and policies here (docs/security.md).")
    what = "Schedule group" if listing == "ScheduleGroups" else "Schedule"
    raise ScheduleNotFound(f"{what} {request.match_info['name']} does not exist.")
