"""Which IAM action, on which resource, each API operation needs (AWS's service authorization reference).

A Lambda operation's action is usually its own name (`lambda:GetFunction`); Invoke and
InvokeWithResponseStream are `lambda:InvokeFunction`, GetLayerVersionByArn is
`lambda:GetLayerVersion`. Its resource is the function's ARN — qualified when the request names a
version or alias (in the FunctionName or `?Qualifier=`) for the operations that take one, so a
policy on `function:f` does not grant `function:f:1`, as on AWS — or a layer, layer version, event
source mapping or code signing config ARN, or `*` for the listings and creations AWS does not
scope. The Lambda condition keys a request sets (`lambda:FunctionUrlAuthType`, `lambda:Principal`,
`lambda:FunctionArn`, `lambda:Layer`, `lambda:CodeSigningConfigArn`, `lambda:VpcIds`, …) come from
its body, which is parsed only for the few operations that carry one: never on Invoke.

Keys are lower-cased: condition keys are case-insensitive.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Mapping

from lambdalet.errors import LambdaError
from lambdalet.model import Arns, parse_function_name, parse_layer_name

#: Operations whose resource is the function ARN, qualified when the request names a qualifier.
QUALIFIED = frozenset({
    "AddPermission", "RemovePermission", "GetPolicy", "CreateFunctionUrlConfig", "DeleteFunctionUrlConfig",
    "GetFunctionUrlConfig", "UpdateFunctionUrlConfig", "DeleteFunction", "DeleteFunctionEventInvokeConfig",
    "GetFunctionEventInvokeConfig", "PutFunctionEventInvokeConfig", "UpdateFunctionEventInvokeConfig",
    "DeleteProvisionedConcurrencyConfig", "GetProvisionedConcurrencyConfig", "PutProvisionedConcurrencyConfig",
    "GetFunction", "GetFunctionConfiguration", "GetRuntimeManagementConfig", "PutRuntimeManagementConfig",
    "Invoke", "InvokeWithResponseStream", "GetFunctionScalingConfig", "PutFunctionScalingConfig",
    "ListDurableExecutionsByFunction",
})
#: Operations on the whole function: their resource is the unqualified function ARN.
UNQUALIFIED = frozenset({
    "CreateAlias", "DeleteAlias", "GetAlias", "UpdateAlias", "ListAliases", "DeleteFunctionCodeSigningConfig",
    "GetFunctionCodeSigningConfig", "PutFunctionCodeSigningConfig", "DeleteFunctionConcurrency",
    "GetFunctionConcurrency", "PutFunctionConcurrency", "GetFunctionRecursionConfig", "PutFunctionRecursionConfig",
    "InvokeAsync", "ListFunctionEventInvokeConfigs", "ListFunctionUrlConfigs", "ListProvisionedConcurrencyConfigs",
    "ListVersionsByFunction", "PublishVersion", "UpdateFunctionCode", "UpdateFunctionConfiguration",
})
LAYER_VERSION = frozenset({"AddLayerVersionPermission", "RemoveLayerVersionPermission", "GetLayerVersion",
                           "GetLayerVersionPolicy", "DeleteLayerVersion"})
CODE_SIGNING_CONFIG = frozenset({"GetCodeSigningConfig", "UpdateCodeSigningConfig", "DeleteCodeSigningConfig",
                                 "ListFunctionsByCodeSigningConfig"})
EVENT_SOURCE_MAPPING = frozenset({"GetEventSourceMapping", "UpdateEventSourceMapping", "DeleteEventSourceMapping"})
#: Operations whose resource is an ARN member of the path.
ARN_MEMBER = {"TagResource": "Resource", "UntagResource": "Resource", "ListTags": "Resource",
              "PutResourcePolicy": "ResourceArn", "GetResourcePolicy": "ResourceArn",
              "DeleteResourcePolicy": "ResourceArn", "GetDurableExecution": "DurableExecutionArn",
              "GetDurableExecutionHistory": "DurableExecutionArn", "GetDurableExecutionState": "DurableExecutionArn",
              "CheckpointDurableExecution": "DurableExecutionArn", "PauseDurableExecution": "DurableExecutionArn",
              "ResumeDurableExecution": "DurableExecutionArn", "StopDurableExecution": "DurableExecutionArn",
              "DeleteDurableExecution": "DurableExecutionArn"}
CAPACITY_PROVIDER = frozenset({"DeleteCapacityProvider", "GetCapacityProvider", "UpdateCapacityProvider",
                               "ListFunctionVersionsByCapacityProvider"})
ACTION_OF = {"Invoke": "InvokeFunction", "InvokeWithResponseStream": "InvokeFunction",
             "GetLayerVersionByArn": "GetLayerVersion"}
#: Operations whose JSON body sets the resource or a condition key: the only ones parsed here.
BODY_NEEDED = frozenset({"CreateFunction", "AddPermission", "CreateFunctionUrlConfig", "UpdateFunctionUrlConfig",
                         "CreateEventSourceMapping", "UpdateFunctionConfiguration", "PutFunctionCodeSigningConfig"})


@dataclass(frozen=True)
class Permission:
    """What one request needs: an action on a resource of an account, and the request's condition keys."""

    action: str
    resource: str
    resource_account: str
    context: Mapping[str, str | list[str]] = field(default_factory=dict)
    #: For a function's resource: its name and qualifier ("" unqualified), whose resource policy applies.
    function: tuple[str, str] | None = None
    #: For a layer version's: its name and version, whose layer version permissions apply.
    layer: tuple[str, int] | None = None


def lambda_permission(operation: str, params: Mapping[str, str], query: Mapping[str, str], body: bytes | None,
                      arns: Arns, mapping_function_arn: str | None = None) -> Permission:
    """The permission a Lambda API request needs. `params` are its path parameters by model member
    name (percent-decoded), `body` its JSON body for the operations in BODY_NEEDED, and
    `mapping_function_arn` the function of the event source mapping an operation names (for
    lambda:FunctionArn)."""
    action = "lambda:" + ACTION_OF.get(operation, operation)
    document = _json(body) if operation in BODY_NEEDED else {}
    context = _context(operation, document, arns)
    account = arns.account
    if operation in QUALIFIED or operation in UNQUALIFIED or operation == "CreateFunction":
        raw = str(document.get("FunctionName", "")) if operation == "CreateFunction" else params.get("FunctionName", "")
        try:
            ref = parse_function_name(raw)
        except LambdaError:
            return Permission(action, "*", account, context)  # the handler answers the name
        account = ref.account or account
        qual = ref.qualifier if ref.qualifier is not None else query.get("Qualifier")
        qual = qual if operation in QUALIFIED else None
        function_arns = Arns(account, ref.region or arns.region)
        return Permission(action, function_arns.function(ref.name, qual), account, context, (ref.name, qual or ""))
    if operation in LAYER_VERSION or operation == "PublishLayerVersion":
        try:
            layer = parse_layer_name(params.get("LayerName", ""))
        except LambdaError:
            return Permission(action, "*", account, context)
        layer_arns = Arns(layer.account or account, layer.region or arns.region)
        version = params.get("VersionNumber") if operation != "PublishLayerVersion" else None
        return Permission(action, layer_arns.layer(layer.name) + (f":{version}" if version else ""),
                          layer.account or account, context,
                          layer=(layer.name, int(version)) if version and version.isdigit() else None)
    if operation == "GetLayerVersionByArn":
        found = _arn_permission(action, query.get("Arn", ""), account, context)
        parts = found.resource.split(":")  # arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION
        if len(parts) == 8 and parts[5] == "layer" and parts[7].isdigit():
            return Permission(found.action, found.resource, found.resource_account, context,
                              layer=(parts[6], int(parts[7])))
        return found
    if operation in CODE_SIGNING_CONFIG:
        return _arn_permission(action, params.get("CodeSigningConfigArn", ""), account, context)
    if operation in EVENT_SOURCE_MAPPING:
        uuid = params.get("UUID", "")
        if mapping_function_arn is not None:
            context = {**context, "lambda:functionarn": mapping_function_arn}
        return Permission(action, f"arn:aws:lambda:{arns.region}:{account}:event-source-mapping:{uuid}", account,
                          context)
    if operation in ARN_MEMBER:
        return _arn_permission(action, params.get(ARN_MEMBER[operation], ""), account, context)
    if operation in CAPACITY_PROVIDER:
        return Permission(action, f"arn:aws:lambda:{arns.region}:{account}:capacity-provider:"
                                  f"{params.get('CapacityProviderName', '')}", account, context)
    return Permission(action, "*", account, context)  # listings, account settings, creations AWS does not scope


def _arn_permission(action: str, arn: str, account: str, context: Mapping[str, str | list[str]]) -> Permission:
    parts = arn.split(":")
    owner = parts[4] if len(parts) > 5 and parts[0] == "arn" and parts[4] else account
    return Permission(action, arn or "*", owner, context)


def _json(body: bytes | None) -> dict:
    try:
        document = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        return {}
    return document if isinstance(document, dict) else {}


def _function_arn(name: str, arns: Arns) -> str:
    """A FunctionName member as the ARN condition keys compare (a name stays as given if it is not one)."""
    try:
        ref = parse_function_name(name)
    except LambdaError:
        return name
    return Arns(ref.account or arns.account, ref.region or arns.region).function(ref.name, ref.qualifier)


def _context(operation: str, body: dict, arns: Arns) -> dict[str, str | list[str]]:
    """The Lambda condition keys a request's body sets (AWS's list for each action)."""
    context: dict[str, str | list[str]] = {}
    if operation == "AddPermission":
        if isinstance(body.get("Principal"), str):
            context["lambda:principal"] = body["Principal"]
        if isinstance(body.get("FunctionUrlAuthType"), str):
            context["lambda:functionurlauthtype"] = body["FunctionUrlAuthType"]
    elif operation in ("CreateFunctionUrlConfig", "UpdateFunctionUrlConfig"):
        if isinstance(body.get("AuthType"), str):
            context["lambda:functionurlauthtype"] = body["AuthType"]
    elif operation == "CreateEventSourceMapping":
        if isinstance(body.get("FunctionName"), str):
            context["lambda:functionarn"] = _function_arn(body["FunctionName"], arns)
    if operation in ("CreateFunction", "UpdateFunctionConfiguration"):
        layers = body.get("Layers")
        if isinstance(layers, list):
            context["lambda:layer"] = [str(layer) for layer in layers]
        vpc = body.get("VpcConfig")
        if isinstance(vpc, dict):
            for member, key in (("SubnetIds", "lambda:subnetids"), ("SecurityGroupIds", "lambda:securitygroupids")):
                if isinstance(vpc.get(member), list):
                    context[key] = [str(value) for value in vpc[member]]
    if operation in ("CreateFunction", "PutFunctionCodeSigningConfig"):
        if isinstance(body.get("CodeSigningConfigArn"), str):
            context["lambda:codesigningconfigarn"] = body["CodeSigningConfigArn"]
    return context


#: IAM actions on the caller's own user when they name none (AWS: "the user making the request").
SELF_USER_ACTIONS = frozenset({"GetUser", "CreateAccessKey", "ListAccessKeys", "UpdateAccessKey", "DeleteAccessKey"})


def iam_permission(action: str, form: Mapping[str, str], account: str, caller_user_arn: str | None) -> Permission:
    """`iam:<Action>` on the user, role or policy the request names (by name: a user's or role's
    path is part of its ARN only when the request gives it, as CreateUser's `Path`), `*` for
    listings. Attaching and detaching set `iam:PolicyARN`."""
    base = f"arn:aws:iam::{account}:"
    path = form.get("Path", "/") if action in ("CreateUser", "CreateRole", "CreatePolicy") else "/"
    path = path if path.startswith("/") and path.endswith("/") else "/"
    context: dict[str, str | list[str]] = {}
    if "PolicyArn" in form and action.startswith(("Attach", "Detach")):
        context["iam:policyarn"] = form["PolicyArn"]
    if "UserName" in form:
        resource = f"{base}user{path}{form['UserName']}"
    elif action in SELF_USER_ACTIONS and caller_user_arn is not None:
        resource = caller_user_arn
    elif "RoleName" in form:
        resource = f"{base}role{path}{form['RoleName']}"
    elif "PolicyArn" in form:
        resource = form["PolicyArn"]
    elif action == "CreatePolicy" and "PolicyName" in form:
        resource = f"{base}policy{path}{form['PolicyName']}"
    else:
        resource = "*"
    return Permission(f"iam:{action}", resource, account, context)
