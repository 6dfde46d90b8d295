"""Function URL configs: Create/Get/Update/Delete/ListFunctionUrlConfigs.

A URL belongs to a function (its $LATEST) or to one of its aliases, never to a version number.
Its id is drawn once, at creation, and never changes; deleting and creating again draws a new one.
Requests to URLs are served by `api/url_requests.py`, on a port of the URL's own
(`api/url_listeners.py`), drawn at creation too.
"""

from __future__ import annotations

import re
import secrets
import string

from aiohttp import web

from lambdalet.api.common import function_ref, json_body, json_response, list_response, qualifier, services
from lambdalet.errors import ResourceConflictException, ResourceNotFoundException
from lambdalet.model import LATEST, now_iso
from lambdalet.store.functions import UrlPortTaken
from lambdalet.validation import Body, constraint_error
from lambdalet.tenancy import refuse_with_tenancy

PATH = "/2021-10-31/functions/{function_name}/url"
QUALIFIER = re.compile(r"((?!^\d+$)^[0-9a-zA-Z-_]+$)")
AUTH_TYPES = ("NONE", "AWS_IAM")
INVOKE_MODES = ("BUFFERED", "RESPONSE_STREAM")
URL_ID_ALPHABET = string.ascii_lowercase + string.digits
URL_ID_LENGTH = 32  # as AWS's: 32 lower-case letters and digits


def routes() -> list[web.RouteDef]:
    return [web.post(PATH, create_config), web.get(PATH, get_config), web.put(PATH, update_config),
            web.delete(PATH, delete_config), web.get(PATH + "s", list_configs)]


def url_for(svc, config: dict) -> str:
    """The FunctionUrl: the URL's own port (`url_listeners.py`), else a host name under `localhost`
    (which browsers resolve to the loopback address themselves) on the server's own port."""
    if config.get("Port") is not None:
        return svc.url_listeners.url(config["Port"])
    return f"http://{config['UrlId']}.lambda-url.{svc.arns.region}.localhost:{svc.settings.port}/"


#: AWS's words for a function or alias that does not exist: Create and Update say one thing,
#: Get and Delete another.
NO_FUNCTION = "Function does not exist"
NO_RESOURCE = "The resource you requested does not exist."


def _target(request: web.Request, missing: str = NO_RESOURCE) -> tuple[str, str]:
    """The function and qualifier ("" for the function itself, else an alias) a request names."""
    svc = services(request)
    ref = function_ref(request)
    qual = qualifier(request, ref)
    if qual is not None and qual != LATEST and not QUALIFIER.match(qual):
        raise constraint_error(qual, "qualifier", f"satisfy regular expression pattern: {QUALIFIER.pattern}")
    function = svc.functions.find(ref.name)
    if function is None or (qual not in (None, LATEST) and qual not in function.aliases):
        raise ResourceNotFoundException(missing)
    return ref.name, "" if qual in (None, LATEST) else qual


def _existing(svc, name: str, qual: str) -> dict:
    config = svc.functions.get(name).urls.get(qual)
    if config is None:
        raise ResourceNotFoundException("The resource you requested does not exist.")
    return config


def _settings(body: Body, base: dict) -> dict:
    """The validated AuthType, Cors and InvokeMode of a request, over `base`."""
    config = dict(base)
    if body.has("AuthType") or not base:
        auth = body.string("AuthType", required=True)
        if auth not in AUTH_TYPES:
            raise constraint_error(auth, "authType", f"satisfy enum value set: [{', '.join(AUTH_TYPES)}]")
        config["AuthType"] = auth
    if body.has("InvokeMode"):
        mode = body.string("InvokeMode")
        if mode not in INVOKE_MODES:
            raise constraint_error(mode, "invokeMode", f"satisfy enum value set: [{', '.join(INVOKE_MODES)}]")
        config["InvokeMode"] = mode
        config["InvokeModeGiven"] = True  # Create and Update echo it from now on, as AWS does
    config.setdefault("InvokeMode", "BUFFERED")
    cors = body.struct("Cors")
    if cors is not None:
        config["Cors"] = _cors(cors)
    return config


def _cors(cors: Body) -> dict:
    result: dict = {}
    if cors.has("AllowCredentials"):
        result["AllowCredentials"] = cors.boolean("AllowCredentials")
    for member, max_items, max_len in (("AllowHeaders", 100, 1024), ("ExposeHeaders", 100, 1024),
                                       ("AllowMethods", 6, 6), ("AllowOrigins", 100, 253)):
        values = cors.string_list(member)
        if values is None:
            continue
        if len(values) > max_items:
            raise constraint_error(values, cors.path(member), f"have length less than or equal to {max_items}")
        for value in values:
            if len(value) > max_len or (member == "AllowOrigins" and not value):
                raise constraint_error(value, cors.path(member),
                                       f"have length between {1 if member == 'AllowOrigins' else 0} and {max_len}")
        result[member] = values
    if cors.has("MaxAge"):
        result["MaxAge"] = cors.integer("MaxAge", low=0, high=86400)
    return result


def _describe(svc, name: str, qual: str, config: dict, *, modified: bool = True, invoke_mode: bool = True) -> dict:
    """A FunctionUrlConfig. Create and Update (`invoke_mode=False`) echo InvokeMode only once a request
    has given it for this URL, as AWS does; Get and List always show it."""
    result = {"FunctionUrl": url_for(svc, config), "FunctionArn": svc.arns.function(name, qual or None),
              "AuthType": config["AuthType"], "CreationTime": config["CreationTime"]}
    if invoke_mode or config.get("InvokeModeGiven"):
        result["InvokeMode"] = config["InvokeMode"]
    if config.get("Cors"):
        result["Cors"] = config["Cors"]
    if modified:
        result["LastModifiedTime"] = config["LastModifiedTime"]
    return result


async def create_config(request: web.Request) -> web.Response:
    svc = services(request)
    name, qual = _target(request, NO_FUNCTION)
    refuse_with_tenancy(svc.functions.get(name).latest, "Function URLs")
    config = _settings(await json_body(request), {})
    if qual in svc.functions.get(name).urls:
        raise ResourceConflictException(
            f"Failed to create function url config for [functionArn = {svc.arns.function(name, qual or None)}]. "
            "Error message:  FunctionUrlConfig exists for this Lambda function")
    config["UrlId"] = "".join(secrets.choice(URL_ID_ALPHABET) for _ in range(URL_ID_LENGTH))
    config["CreationTime"] = config["LastModifiedTime"] = now_iso()

    async def store(port: int | None) -> None:
        await svc.functions.set_url(name, qual, {**config, "Port": port} if port is not None else config)

    port = await svc.url_listeners.open(config["UrlId"], store, UrlPortTaken)
    if port is None:
        await store(None)
    else:
        config["Port"] = port
    return json_response(_describe(svc, name, qual, config, modified=False, invoke_mode=False),
                         status=201)


async def get_config(request: web.Request) -> web.Response:
    svc = services(request)
    name, qual = _target(request)
    return json_response(_describe(svc, name, qual, _existing(svc, name, qual)))


async def update_config(request: web.Request) -> web.Response:
    svc = services(request)
    name, qual = _target(request, NO_FUNCTION)
    config = _settings(await json_body(request), _existing(svc, name, qual))
    config["LastModifiedTime"] = now_iso()
    await svc.functions.set_url(name, qual, config)
    return json_response(_describe(svc, name, qual, config, invoke_mode=False))


async def delete_config(request: web.Request) -> web.Response:
    svc = services(request)
    name, qual = _target(request)
    _existing(svc, name, qual)
    await svc.functions.set_url(name, qual, None)
    return web.Response(status=204)


async def list_configs(request: web.Request) -> web.Response:
    svc = services(request)
    name = function_ref(request).name
    urls = svc.functions.get(name).urls
    return list_response(request, sorted(urls), "FunctionUrlConfigs",
                         lambda qual: _describe(svc, name, qual, urls[qual]))
