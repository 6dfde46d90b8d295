"""SnapStart for the Python runtime: one initialised template process forks every environment.

Lambda snapshots an initialised environment and restores it for each new one; here the template
is a process that ran init (imports, module-level code) and the `before snapshot` hooks once, and
`fork()` is the restore: each child gets its own Runtime API address, log stream and output, runs
the `after restore` hooks (the at-fork hooks have already re-seeded `random`), and enters the
invoke loop. The template talks to the server over a SOCK_SEQPACKET socket: JSON messages, the
child's output passed as a file descriptor.

    server → template   {"id": n, "env": {...}} + [output fd]      fork an environment
    template → server   {"ready": true} | {"init_error": {...}, "error_type": "..."}
                        {"id": n, "pid": <pid in the template's namespace>}
                        {"exit": <pid>, "status": <wait status>}

Stdlib only; runs inside the sandbox, imports nothing from `lambdalet`.
"""

import array
import json
import os
import select
import signal
import socket
import sys


def _run_hooks(kind):
    try:
        import snapshot_restore_py
    except ImportError:
        return
    hooks = snapshot_restore_py.get_before_snapshot() if kind == "before" else snapshot_restore_py.get_after_restore()
    for func, args, kwargs in hooks:
        func(*args, **kwargs)


def _send(sock, message):
    sock.send(json.dumps(message).encode())


def serve_template(control_fd, init, init_error, serve):
    control = socket.socket(fileno=control_fd)
    try:
        handler, log_handler = init()
        _run_hooks("before")
    except Exception as exc:
        error, error_type = init_error(exc)
        sys.stdout.flush()
        _send(control, {"init_error": error, "error_type": error_type})
        os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    _send(control, {"ready": True})
    poller = select.poll()  # not select(): it cannot watch descriptors numbered 1,024 or more
    for fd in (control.fileno(), wake_r):
        poller.register(fd, select.POLLIN)
    while True:
        readable = {fd for fd, _events in poller.poll()}
        if wake_r in readable:
            try:
                os.read(wake_r, 4096)
            except BlockingIOError:
                pass
        _report_exits(control)
        if control.fileno() not in readable:
            continue
        fds = array.array("i")
        data, ancdata, _flags, _addr = control.recvmsg(1 << 20, socket.CMSG_SPACE(fds.itemsize))
        if not data:
            os._exit(0)  # the server is gone
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
        request = json.loads(data)
        pid = os.fork()
        if pid == 0:
            _restored(control, wake_r, wake_w, fds[0], request["env"], handler, log_handler, serve)
        os.close(fds[0])
        _send(control, {"id": request["id"], "pid": pid})


def _restored(control, wake_r, wake_w, output_fd, env, handler, log_handler, serve):
    """A fresh environment forked from the template; never returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in (control.fileno(), wake_r, wake_w):
            os.close(fd)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        os.close(output_fd)
        os.environ.clear()
        os.environ.update(env)
        _run_hooks("after")
        serve(handler, log_handler)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:
        try:
            os.write(2, f"lambdalet snapstart: {exc!r}\n".encode())
        except OSError:
            pass
    os._exit(code)


def _report_exits(control):
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send(control, {"exit": pid, "status": status})
