"""Lambdalet's Python runtime: a stdlib-only client of Lambda's Runtime API.

Started as `python -S -s bootstrap.py [SDK_PATH]` inside an execution environment. It imports the
handler named by _HANDLER from LAMBDA_TASK_ROOT, then loops: GET /invocation/next, call the handler,
POST /response or /error. Error payloads, log lines and handler resolution follow AWS's Python runtime
(awslambdaric) so functions behave the same here and on AWS Lambda. Runs on Python 3.9+; imports
nothing from `lambdalet` (it runs inside the sandbox).
"""

import importlib
import json
import logging
import os
import socket
import sys
import time

RUNTIME_PATH = "/2018-06-01/runtime"
ENSURE_ASCII = sys.version_info < (3, 12)  # AWS's 3.12+ runtimes emit UTF-8 JSON unescaped


class FaultException(Exception):
    """A runtime fault with a Lambda error type, e.g. Runtime.ImportModuleError."""

    def __init__(self, error_type, message, trace=None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.trace = trace or []


def connect(host, port):
    """A TCP connection to the Runtime API. A numeric address is connected to directly:
    create_connection's getaddrinfo loads the resolver's modules first (milliseconds, at every
    cold start, in a process that has never resolved anything)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
        return sock
    return socket.create_connection((host, port))


class RuntimeApiClient:
    """A minimal keep-alive HTTP/1.1 client for the Runtime API.

    http.client would cost ~60 ms of imports at every cold start (the email package parses its
    headers) and ~0.3 ms per request; the Runtime API needs only this small subset of HTTP.
    """

    def __init__(self, address):
        host, _, port = address.rpartition(":")
        self.host, self.port = host, int(port)
        self.sock = None
        self.reader = None

    def _connect(self):
        self.close()
        self.sock = connect(self.host, self.port)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")

    def close(self):
        if self.sock is not None:
            self.reader.close()
            self.sock.close()
            self.sock = self.reader = None

    def request(self, method, path, body=b"", headers=None):
        """Send one request; retried once on a fresh connection if the kept-alive one was closed."""
        if isinstance(body, str):
            body = body.encode("utf-8")
        lines = [f"{method} {RUNTIME_PATH}{path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                 f"Content-Length: {len(body)}"]
        lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
        message = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        for attempt in (1, 2):
            try:
                if self.sock is None:
                    self._connect()
                self.sock.sendall(message)
                return self._read_response()
            except (ConnectionError, EOFError, OSError):
                self.close()
                if attempt == 2:
                    raise

    def _read_response(self):
        status_line = self.reader.readline()
        if not status_line:
            raise EOFError("Runtime API closed the connection")
        status = int(status_line.split(None, 2)[1])
        headers = {}
        while True:
            line = self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = self.reader.read(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            body = self.reader.read()
            self.close()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body

    def _read_chunked(self):
        parts = []
        while True:
            size = int(self.reader.readline().split(b";")[0], 16)
            if size == 0:
                while self.reader.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(self.reader.read(size))
            self.reader.readline()

    def next(self):
        status, headers, body = self.request("GET", "/invocation/next")
        if status != 200:
            raise RuntimeError(f"Failed to get next invocation: HTTP {status}")
        return headers, body

    def post_response(self, request_id, body, content_type):
        self.request("POST", f"/invocation/{request_id}/response", body, {"Content-Type": content_type})

    def post_error(self, request_id, error, error_type=None):
        headers = {"Content-Type": "application/json"}
        if error_type:
            headers["Lambda-Runtime-Function-Error-Type"] = error_type
        path = "/init/error" if request_id is None else f"/invocation/{request_id}/error"
        self.request("POST", path, to_json(error), headers)


class FrameRuntimeClient:
    """The Runtime API as Lambdalet's frames (lambdalet/invoke/frames.py): no HTTP on the warm path."""

    MAGIC = b"LLF1"

    NEXT = (1 + 4 + 2).to_bytes(4, "big") + b"N" + (2).to_bytes(4, "big") + b"{}"

    def __init__(self, address, sock=None):
        """Connect to the Runtime API at `address` and announce frames, or use `sock`: a channel
        the platform connected before this process started (it knows to expect frames)."""
        self.sock = sock
        if sock is None:
            host, _, port = address.rpartition(":")
            self.sock = connect(host, int(port))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")
        if sock is None:
            self.sock.sendall(self.MAGIC)
        # An invocation's answer waits here for the next /next, which always follows it at once:
        # one write and one wake-up of the platform for both, instead of two.
        self.answer = b""

    @staticmethod
    def frame(kind, meta, body=b""):
        if isinstance(body, str):
            body = body.encode("utf-8")
        meta_bytes = json.dumps(meta).encode()
        head = (1 + 4 + len(meta_bytes) + len(body)).to_bytes(4, "big") + kind + len(meta_bytes).to_bytes(4, "big")
        return head + meta_bytes + body

    def next(self):
        self.sock.sendall(self.answer + self.NEXT)
        self.answer = b""
        while True:
            head = self.reader.read(9)
            if len(head) < 9:
                raise EOFError("Runtime API closed the connection")
            length, kind, meta_length = int.from_bytes(head[:4], "big"), head[4:5], int.from_bytes(head[5:9], "big")
            rest = self.reader.read(length - 5)
            meta = json.loads(rest[:meta_length])
            if kind == b"V":
                return meta, rest[meta_length:]
            if meta.get("status", 0) >= 500:  # the environment is going away
                raise RuntimeError(f"Failed to get next invocation: {meta.get('errorMessage')}")
            # Other refusals answer an earlier frame (e.g. a response after a timeout): nothing to do.

    def post_response(self, request_id, body, content_type):
        self.answer = self.frame(b"R", {"id": request_id, "content_type": content_type}, body)

    def post_error(self, request_id, error, error_type=None):
        if request_id is None:
            self.sock.sendall(self.frame(b"I", {"error_type": error_type}, to_json(error)))
            # A frame has no reply: wait for the platform to act on it (it stops this process), so
            # that exiting first can never make it see a bare exit instead of the init error.
            self.sock.settimeout(INIT_ERROR_GRACE_S)
            try:
                self.reader.read(1)
            except OSError:
                pass
        else:
            self.answer = self.frame(b"E", {"id": request_id}, to_json(error))


PLATFORM = {"frames": False, "channel_fd": None}
INIT_ERROR_GRACE_S = 10.0


def take_platform_flags():
    """Read (and hide from the function) what the platform says about itself."""
    flag = os.environ.pop("_LAMBDALET_RUNTIME_FRAMES", None)
    if flag is not None:
        PLATFORM["frames"] = flag == "1"
    channel = os.environ.pop("_LAMBDALET_RUNTIME_FD", None)
    if channel is not None:
        PLATFORM["channel_fd"] = int(channel)


def runtime_client():
    """The Runtime API client this environment should use (frames when the platform offers them)."""
    take_platform_flags()
    address = os.environ["AWS_LAMBDA_RUNTIME_API"]
    if PLATFORM["channel_fd"] is not None:  # connected by the platform already: no connect, no accept
        fd, PLATFORM["channel_fd"] = PLATFORM["channel_fd"], None
        os.set_inheritable(fd, False)  # the function's own child processes must not get it
        return FrameRuntimeClient(address, sock=socket.socket(fileno=fd))
    return FrameRuntimeClient(address) if PLATFORM["frames"] else RuntimeApiClient(address)


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, data):
        self.cognito_identity_id = data.get("cognitoIdentityId")
        self.cognito_identity_pool_id = data.get("cognitoIdentityPoolId")


class Client:
    __slots__ = ("installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name")

    def __init__(self, data):
        self.installation_id = data.get("installation_id")
        self.app_title = data.get("app_title")
        self.app_version_name = data.get("app_version_name")
        self.app_version_code = data.get("app_version_code")
        self.app_package_name = data.get("app_package_name")


class ClientContext:
    __slots__ = ("custom", "env", "client")

    def __init__(self, data):
        self.custom = data.get("custom")
        self.env = data.get("env")
        self.client = Client(data["client"]) if data.get("client") else None


class LambdaContext:
    """The context object handlers receive, with the attributes of AWS's Python runtime."""

    def __init__(self, request_id, deadline_ms, invoked_function_arn, client_context, identity, tenant_id):
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_function_arn
        self.client_context = ClientContext(client_context) if client_context else None
        self.identity = CognitoIdentity(identity or {})
        self.tenant_id = tenant_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},log_group_name={self.log_group_name},"
            f"log_stream_name={self.log_stream_name},function_name={self.function_name},"
            f"memory_limit_in_mb={self.memory_limit_in_mb},function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn},client_context={self.client_context},"
            f"identity={self.identity}])"
        )


def to_json(obj):
    return json.dumps(obj, ensure_ascii=ENSURE_ASCII)


def get_handler(handler):
    """Resolve `module.function` the way AWS's Python runtime does, with the same fault types."""
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise FaultException("Runtime.MalformedHandlerName", f"Bad handler '{handler}': {e}")
    try:
        if modname.split(".")[0] in sys.builtin_module_names:
            raise FaultException(
                "Runtime.BuiltInModuleConflict", f"Cannot use built-in module {modname} as a handler module"
            )
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise FaultException("Runtime.ImportModuleError", f"Unable to import module '{modname}': {e}")
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)]
        raise FaultException("Runtime.UserCodeSyntaxError", f"Syntax error in module '{modname}': {e}", trace)
    try:
        return getattr(module, fname)
    except AttributeError:
        raise FaultException("Runtime.HandlerNotFound", f"Handler '{fname}' missing on module '{modname}'")


def make_error(message, error_type, stack_trace, request_id):
    return {
        "errorMessage": message or "",
        "errorType": error_type or "",
        "requestId": request_id or "",
        "stackTrace": stack_trace or [],
    }


def user_traceback(tb):
    """Stack frames below the bootstrap, formatted as traceback.format_list does."""
    import traceback  # deferred: only errors pay for it

    frames = traceback.extract_tb(tb)
    while frames and frames[0].filename == __file__:
        frames = frames[1:]
    return traceback.format_list(frames)


JSON_FORMAT = False  # LoggingConfig.LogFormat JSON (AWS_LAMBDA_LOG_FORMAT), set by init()
#: AWS_LAMBDA_LOG_LEVEL → the logging module's level (as awslambdaric maps it).
PYTHON_LEVELS = {"TRACE": "DEBUG", "DEBUG": "DEBUG", "INFO": "INFO", "WARN": "WARNING", "ERROR": "ERROR",
                 "FATAL": "CRITICAL"}
#: LogRecord attributes that are not `extra=` fields (awslambdaric's list).
RESERVED_FIELDS = frozenset((
    "name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module", "exc_info", "exc_text",
    "stack_info", "lineno", "funcName", "created", "msecs", "relativeCreated", "thread", "threadName",
    "processName", "process", "aws_request_id", "tenant_id", "_frame_type", "taskName"))


def iso_time(created):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + ".%03dZ" % (int(created * 1000) % 1000)


#: Starts a multi-line record, whose lines are then joined by \r and whose own \r are RECORD_MARK
#: too: the platform keeps it as one event and shows its lines as lines (lambdalet/logs.py,
#: record_text). A printed \r stays a \r.
RECORD_MARK = "\x1e"


def as_record(text):
    """`text` (with newlines) as one multi-line record, for write_log."""
    return RECORD_MARK + text.replace("\r", RECORD_MARK).replace("\n", "\r")


def log_error(error):
    """One log record for an error: one event, its lines lines (RECORD_MARK)."""
    if JSON_FORMAT:
        write_log(to_json({"timestamp": iso_time(time.time()), "level": "ERROR", **error}) + "\n")
        return
    description = "[ERROR]"
    if error["errorType"]:
        description += f" {error['errorType']}:"
    description += f" {error['errorMessage']}"
    lines = [description]
    if error["stackTrace"]:
        lines.append("Traceback (most recent call last):")
        lines.extend(frame.rstrip("\n") for frame in error["stackTrace"])
    write_log(as_record("\n".join(lines)) + "\n")


def write_log(text):
    sys.stdout.write(text)
    sys.stdout.flush()


class LambdaLogHandler(logging.Handler):
    """Lambda's Text log format for the logging module: [LEVEL]\\ttime\\trequest-id\\tmessage."""

    def __init__(self):
        super().__init__()
        self.request_id = ""
        self.tenant_id = None  # a PER_TENANT function's invocation: JSON records carry it as tenantId
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record):
        if JSON_FORMAT:
            write_log(self.json_record(record) + "\n")
            return
        created = time.gmtime(record.created)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", created) + ".%03dZ" % record.msecs
        line = f"[{record.levelname}]\t{stamp}\t{self.request_id}\t{self.format(record)}"
        write_log((as_record(line) if "\n" in line else line) + "\n")


    def json_record(self, record):
        """Lambda's JSON shape of a logging record (awslambdaric's JsonFormatter)."""
        level = min(50, max(0, record.levelno)) // 10 * 10
        result = {
            "timestamp": iso_time(record.created),
            "level": logging.getLevelName(level),
            "message": record.getMessage(),
            "logger": record.name,
            "requestId": self.request_id or None,
            "tenantId": self.tenant_id,
        }
        if record.exc_info and record.exc_info[0] is not None:
            import traceback

            result["stackTrace"] = traceback.format_tb(record.exc_info[2])
            result["errorType"] = record.exc_info[0].__name__
            result["errorMessage"] = str(record.exc_info[1])
            result["location"] = f"{record.pathname}:{record.funcName}:{record.lineno}"
        for key, value in record.__dict__.items():
            if key not in RESERVED_FIELDS and key not in result:
                result[key] = value
        return json.dumps({k: v for k, v in result.items() if v is not None}, ensure_ascii=False, default=str)


def setup_paths(task_root, sdk_path):
    """sys.path as on Lambda: task root, layer paths, then the runtime-provided SDK last."""
    bootstrap_dir = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != bootstrap_dir]
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    opt = os.environ.pop("_LAMBDALET_OPT_DIR", "/opt")  # elsewhere only under the process backend
    front = [task_root, f"{opt}/python/lib/{version}/site-packages", f"{opt}/python"]
    sys.path[:0] = [p for p in front if p not in sys.path]
    if sdk_path:
        sys.path.append(sdk_path)
    if os.environ.pop("_LAMBDALET_HOT_RELOAD", None):
        # Code read live from a directory: never trust a __pycache__ there (a .pyc of the previous
        # edit looks current when the size matches and the mtime is the same second), never write one.
        sys.dont_write_bytecode = True
        sys.pycache_prefix = os.path.join(os.environ.get("TMPDIR", "/tmp"), ".lambdalet-no-pycache")
    runtime_lib = os.path.join(os.environ.get("LAMBDA_RUNTIME_DIR", ""), "python", "lib")
    if os.path.isdir(runtime_lib):  # runtime-provided modules, e.g. snapshot_restore_py
        sys.path.append(runtime_lib)


def handle(client, handler, log_handler, headers, body):
    request_id = headers.get("lambda-runtime-aws-request-id")
    log_handler.request_id = request_id
    log_handler.tenant_id = headers.get("lambda-runtime-aws-tenant-id")
    trace_id = headers.get("lambda-runtime-trace-id")
    if trace_id:
        os.environ["_X_AMZN_TRACE_ID"] = trace_id
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
    error = None
    try:
        client_context = headers.get("lambda-runtime-client-context")
        identity = headers.get("lambda-runtime-cognito-identity")
        context = LambdaContext(
            request_id,
            int(headers.get("lambda-runtime-deadline-ms") or 0),
            headers.get("lambda-runtime-invoked-function-arn"),
            _parse_json_header(client_context, "Client Context"),
            _parse_json_header(identity, "Cognito Identity"),
            headers.get("lambda-runtime-aws-tenant-id"),
        )
        content_type = headers.get("content-type", "application/json")
        if content_type == "application/json":
            try:
                event = json.loads(body)
            except ValueError as e:
                raise FaultException("Runtime.UnmarshalError", f"Unable to unmarshal input: {e}")
        else:
            event = body
        result = handler(event, context)
        if isinstance(result, bytes):
            payload, result_type = result, "application/unknown"
        else:
            try:
                payload, result_type = to_json(result), "application/json"
            except (TypeError, ValueError) as e:
                raise FaultException("Runtime.MarshalError", f"Unable to marshal response: {e}")
    except FaultException as e:
        error = make_error(e.message, e.error_type, e.trace, request_id)
    except Exception as e:  # the handler's own error: reported, never fatal to the runtime
        error = make_error(str(e), type(e).__name__, user_traceback(e.__traceback__), request_id)
    if error is not None:
        log_error(error)
        client.post_error(request_id, error)
    else:
        sys.stdout.flush()
        sys.stderr.flush()
        client.post_response(request_id, payload, result_type)


def _parse_json_header(value, name):
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError as e:
        raise FaultException("Runtime.LambdaContextUnmarshalError", f"Unable to parse {name} JSON: {e}")


def init():
    """Everything before the first event: paths, logging, the handler. Returns (handler, log handler).

    Raises FaultException (or whatever the function's module-level code raised) when init fails.
    """
    take_platform_flags()
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    task_root = os.environ.get("LAMBDA_TASK_ROOT", os.getcwd())
    # The SDK's path: the argument of an in-process bootstrap, or (wrapped: the bootstrap is the
    # last argument, as AWS_LAMBDA_EXEC_WRAPPER scripts expect) the platform's variable.
    sdk_path = os.environ.pop("_LAMBDALET_PYTHON_SDK", None)
    setup_paths(task_root, sys.argv[1] if len(sys.argv) > 1 else sdk_path)
    global JSON_FORMAT
    JSON_FORMAT = os.environ.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON"
    log_handler = LambdaLogHandler()
    root = logging.getLogger()
    root.addHandler(log_handler)
    level = PYTHON_LEVELS.get(os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper())
    if level:
        root.setLevel(level)
    return get_handler(os.environ["_HANDLER"]), log_handler


def init_error(exc):
    """The error payload and error type for a failed init, logged as AWS's runtime logs it."""
    if isinstance(exc, FaultException):
        error, error_type = make_error(exc.message, exc.error_type, exc.trace, None), exc.error_type
    else:  # module-level code of the function raised
        error, error_type = make_error(str(exc), type(exc).__name__, user_traceback(exc.__traceback__), None), "Runtime.Unknown"
    log_error(error)
    return error, error_type


def serve(handler, log_handler):
    """The invoke loop: next event, handler, answer; forever."""
    client = runtime_client()
    while True:
        headers, body = client.next()
        handle(client, handler, log_handler, headers, body)


def main():
    try:
        handler, log_handler = init()
    except Exception as exc:
        error, error_type = init_error(exc)
        runtime_client().post_error(None, error, error_type)
        sys.exit(1)
    serve(handler, log_handler)


REHEARSAL_MODULE = "lambdalet_rehearsal"


def rehearse(handler_dir):
    """Run the cold-start path once, on a stand-in handler, in a zygote's spare before it has a function.

    A spare shares the zygote's memory copy-on-write: the first write to each page (a reference
    count is enough) copies it, a fault of several microseconds on a VM. The first import, logging
    setup and invocation touch a few hundred such pages, milliseconds in all; rehearsed here, those
    copies are made before the spare is handed a function, not during its init. Leaves no trace:
    the module, path entries, log handler and environment variables are all put back.
    """
    saved_path, saved_trace = sys.path[:], os.environ.get("_X_AMZN_TRACE_ID")
    root = logging.getLogger()
    log_handler = LambdaLogHandler()
    ours, theirs = socket.socketpair()
    try:
        sys.path.insert(0, handler_dir)
        handler = get_handler(REHEARSAL_MODULE + ".handler")
        root.addHandler(log_handler)
        event = FrameRuntimeClient.frame(b"V", {
            "lambda-runtime-aws-request-id": "rehearsal", "lambda-runtime-deadline-ms": "0",
            "lambda-runtime-invoked-function-arn": "arn:aws:lambda:us-east-1:000000000000:function:rehearsal",
            "lambda-runtime-trace-id": "Root=1-00000000-000000000000000000000000", "content-type": "application/json",
        }, b'{"rehearsal": true}')
        theirs.sendall(event)
        client = FrameRuntimeClient(None, sock=ours)
        headers, body = client.next()
        handle(client, handler, log_handler, headers, body)
        client.reader.close()
    finally:
        root.removeHandler(log_handler)
        sys.modules.pop(REHEARSAL_MODULE, None)
        sys.path[:] = saved_path
        sys.path_importer_cache.pop(handler_dir, None)
        if saved_trace is None:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        else:
            os.environ["_X_AMZN_TRACE_ID"] = saved_trace
        ours.close()
        theirs.close()


def template_main(control_fd):
    """SnapStart: initialise once, then fork a ready environment per request (see snapshot.py)."""
    import snapshot

    snapshot.serve_template(control_fd, init, init_error, serve)


if __name__ == "__main__":
    try:
        main()
    except (ConnectionError, EOFError, OSError, RuntimeError) as exc:
        # The platform went away or refused us: nothing to report to, so exit quietly.
        sys.stderr.write(f"lambdalet runtime: {exc}\n")
        sys.exit(1)
