"""The zygote: a pre-started, pre-imported process that clones new execution environments.

Run by the server as `python -S -s zygote.py CONTROL_FD [BOOTSTRAP_PY]` with the interpreter of
one runtime. It imports the Python runtime bootstrap (and what it needs) once, freezes its heap
(`gc.freeze()`, so children share it copy-on-write), then serves spawn requests from the server
over a SOCK_SEQPACKET socket: one JSON message per request, with the environment's output pipe
passed as a file descriptor. Each environment is one raw `clone(2)` into new PID, mount, IPC and
UTS namespaces, wrapped in CPython's fork hooks (without them two children would share
`random`'s state). A few such children — spares — are made ahead of time and build the part of
their root every environment shares; a request hands one of them its function (its code, /tmp,
cgroups, environment), so a cold start pays only for that last step. The child then either runs
the bootstrap in-process — no interpreter start, no imports: that is the other big saving — or
`execve`s a custom runtime's `bootstrap`. Exit statuses are reported back as they happen.

Stdlib and ctypes only: it runs under any Python 3.9+ and imports nothing from `lambdalet`.
"""

import array
import ctypes
import gc
import itertools
import json
import os
import select
import signal
import socket
import sys
import time
import traceback

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
SYS_CLONE = {"x86_64": 56, "aarch64": 220}.get(os.uname().machine, 56)
MAX_FDS = 4
SPARES = 3  # environments kept cloned and half-built, per zygote (see serve)
SPARE_IDS = itertools.count(1)
REFILL_AFTER_IDLE_S = 0.005

_pyapi = ctypes.pythonapi
_libc = ctypes.PyDLL(None, use_errno=True)  # PyDLL: the GIL stays held across clone, as in os.fork
_libc.syscall.restype = ctypes.c_long


def clone(flags):
    """fork() into new namespaces: returns 0 in the child, the child's host pid in the parent."""
    _pyapi.PyOS_BeforeFork()
    pid = _libc.syscall(SYS_CLONE, flags | signal.SIGCHLD, 0, 0, 0, 0)
    if pid == 0:
        _pyapi.PyOS_AfterFork_Child()
        return 0
    _pyapi.PyOS_AfterFork_Parent()
    if pid < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"clone: {os.strerror(err)}")
    return pid


def run(spec, output_fd, tree_fds, extra_fds, bootstrap, cgroup_fds, written_limits):
    """Runs in an assigned environment; never returns."""
    code = 127
    try:
        import confine

        template = spec["mode"] == "template"
        # Written by the environment itself, so never before its groups exist: a limit that
        # cannot be written stops it here, before any of the function's code has run.
        confine.write_cgroup_limits(cgroup_fds, spec["cgroup_limits"], written_limits)
        # fd 3: a SnapStart template's control socket, or the runtime channel of an in-process bootstrap
        confine.assign(spec, output_fd, tree_fds, keep_fd=extra_fds[0] if extra_fds else None)
        if template:  # SnapStart: initialise once, then fork environments on request
            sys.argv = [bootstrap.__file__] + spec["argv"][1:]
            sys.path[:] = [p for p in sys.path if os.path.abspath(p) != HERE]
            bootstrap.template_main(3)
        elif spec["mode"] == "python":
            sys.argv = [bootstrap.__file__] + spec["argv"][1:]
            sys.path[:] = [p for p in sys.path if os.path.abspath(p) != HERE]
            bootstrap.main()
            code = 0
        elif spec.get("image") and "/" not in spec["argv"][0]:  # an image's ENTRYPOINT, found on its PATH
            os.execvpe(spec["argv"][0], spec["argv"], spec["env"])
        else:
            os.execve(spec["argv"][0], spec["argv"], spec["env"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # report why the environment could not start, on its own output
        try:
            os.write(2, f"lambdalet sandbox: {exc!r}\n".encode())
            os.write(2, traceback.format_exc().encode())
        except OSError:
            pass
    os._exit(code)


class Spare:
    """A child already in its own namespaces and cgroups with the shared part of its root built,
    awaiting a function."""

    def __init__(self, pid, sock, cgroup):
        self.pid, self.sock, self.cgroup = pid, sock, cgroup


def make_spare(control, generic, root_ns, bootstrap, likely_limits, ahead=True):
    """Clone a spare. It writes `likely_limits` (the last environment's) into its groups ahead of
    time: an environment with the same limits then has nothing left to write when it starts.
    Only a spare made `ahead` of its request rehearses: one made for a request already waiting
    would only make it wait longer."""
    cgroup = f"env-{os.getpid()}-{next(SPARE_IDS)}"  # named here: inside, the spare's pid is 1
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    flags = CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS  # the mount namespace comes from root_ns
    if generic.get("runtime_api_port"):
        flags |= CLONE_NEWNET
    pid = clone(flags)
    if pid == 0:
        forget_zygote_signals()
        control.close()
        ours.close()
        spare_main(theirs, generic, root_ns, cgroup, bootstrap, likely_limits, rehearse_first=ahead)
    theirs.close()
    return Spare(pid, ours, cgroup)


def forget_zygote_signals():
    """A child must not keep the zygote's SIGCHLD handling: its wakeup fd number would later name
    some other file of the child (say, the Runtime API socket) and get a byte written into it."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def make_root_namespace(generic):
    """Build the shared root once, in a short-lived child; keep its mount namespace open by fd."""
    import confine

    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = clone(CLONE_NEWNS)
    if pid == 0:
        forget_zygote_signals()
        os.close(ready_r)
        os.close(done_w)
        try:
            confine.build_shared_root(generic)
            os.write(ready_w, b"ok")
        except BaseException as exc:
            os.write(ready_w, f"lambdalet sandbox: cannot build the root: {exc!r}".encode())
        os.read(done_r, 1)  # stay until the zygote holds the namespace
        os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        answer = os.read(ready_r, 4096)
        if answer != b"ok":
            raise OSError(answer.decode(errors="replace"))
        return os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)


def spare_main(sock, generic, root_ns, cgroup, bootstrap, likely_limits, rehearse_first):
    """The spare's life: prepare, wait for an assignment, become that environment."""
    try:
        import confine

        cgroup_fds = confine.join_own_cgroups(generic["cgroup_parents"], cgroup)
        written = None
        if likely_limits is not None:
            try:
                confine.write_cgroup_limits(cgroup_fds, likely_limits)
                written = likely_limits
            except OSError:
                pass  # written in full when the spare is assigned
        confine.enter_shared_root(root_ns)
        os.close(root_ns)
        if generic.get("runtime_api_port"):
            listener = confine.loopback_listener(generic["runtime_api_port"])
            sock.sendmsg([b"listener"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [listener.fileno()]))])
            listener.close()
        if rehearse_first and bootstrap is not None and generic.get("rehearsal_dir"):
            rehearse(bootstrap, generic["rehearsal_dir"])
        confine.install_seccomp_filter()  # while waiting, not on the cold start; before any function code
        data, fds = receive(sock)
    except BaseException as exc:
        try:
            os.write(2, f"lambdalet sandbox: spare failed: {exc!r}\n".encode())
        except OSError:
            pass
        os._exit(127)
    if not data:
        os._exit(0)  # the zygote is gone
    sock.close()
    spec = json.loads(data)
    trees = 2 if spec.get("layers_dir") else 1  # the code, and the layers when it has some
    run(spec, fds[0], fds[1:1 + trees], fds[1 + trees:], bootstrap, cgroup_fds, written)


def rehearse(bootstrap, handler_dir):
    """Warm the spare's copy-on-write pages on a stand-in handler (see bootstrap.rehearse); a spare
    that cannot rehearse still serves, only with a slower first init."""
    try:
        bootstrap.rehearse(handler_dir)
    except Exception as exc:
        os.write(2, f"lambdalet sandbox: spare rehearsal failed: {exc!r}\n".encode())


def receive(sock):
    fds = array.array("i")
    data, ancdata, _flags, _addr = sock.recvmsg(1 << 20, socket.CMSG_SPACE(MAX_FDS * fds.itemsize))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    return data, list(fds)


def send(sock, message):
    sock.send(json.dumps(message).encode())


def reap(sock, spares, retired, template):
    while True:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        spare = spares.pop(pid, None) or retired.pop(pid, None)
        if spare is not None:  # a spare that never became an environment: nobody to tell
            spare.sock.close()
            if template is not None:
                import confine

                confine.remove_cgroups(template["cgroup_parents"], spare.cgroup)
            continue
        send(sock, {"exit": pid, "status": status, "maxrss_kb": usage.ru_maxrss})


def serve(sock, bootstrap):
    import confine

    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    poller = select.poll()
    for fd in (sock.fileno(), wake_r):
        poller.register(fd, select.POLLIN)
    gc.freeze()
    send(sock, {"ready": os.getpid()})
    spares = {}  # pid -> Spare, for the current template
    retired = {}  # pid -> Spare of an older template, exiting unassigned
    template = None
    root_ns = None  # the shared root's mount namespace, for the current template
    likely_limits = None  # the cgroup limits of the last environment: new spares write them ahead
    last_request = 0.0
    while True:
        # Refill spares once no request has come for a moment (building one costs CPU that the
        # environment just handed out needs for its own init on a small machine), counted from the
        # last request: exits of retired environments wake this loop too and must not delay it.
        # A spare is ready 10-25 ms after it is cloned (joining its cgroups waits for RCU, then it
        # rehearses): with two, 14 of 100 back-to-back cold starts found theirs not ready yet,
        # with three 2 of 100.
        idle_wait = None
        if template is not None and root_ns is not None and len(spares) < SPARES:
            idle_wait = max(0.0, last_request + REFILL_AFTER_IDLE_S - time.monotonic())
        # poll, not select: select cannot watch a descriptor numbered 1,024 or more
        readable = {fd for fd, _events in poller.poll(None if idle_wait is None else idle_wait * 1000)}
        if not readable:
            spare = make_spare(sock, template, root_ns, bootstrap, likely_limits)
            spares[spare.pid] = spare
            continue
        if wake_r in readable:
            try:
                os.read(wake_r, 4096)
            except BlockingIOError:
                pass
            reap(sock, spares, retired, template)
        if sock.fileno() not in readable:
            continue
        data, fds = receive(sock)
        if not data:
            return  # the server went away
        last_request = time.monotonic()
        request = json.loads(data)
        try:
            generic = request.get("generic", template)  # absent: the same as last time
            if generic != template or root_ns is None:
                for spare in spares.values():  # made for another template: retire them
                    spare.sock.close()
                    retired[spare.pid] = spare
                spares.clear()
                template = generic
                if root_ns is not None:
                    os.close(root_ns)
                    root_ns = None
                root_ns = make_root_namespace(template)
            spec = request["spec"]
            likely_limits = spec["cgroup_limits"]
            spare = spares.pop(next(iter(spares))) if spares else make_spare(sock, template, root_ns, bootstrap,
                                                                              likely_limits, ahead=False)
            listener_fds = []
            if template.get("runtime_api_port"):  # the spare opened it in its own network
                _note, listener_fds = receive(spare.sock)
            trees = [confine.clone_tree_read_only(spec["code_dir"])]
            try:
                if spec.get("layers_dir"):
                    trees.append(confine.clone_tree_read_only(spec["layers_dir"]))
                passed = array.array("i", [fds[0], *trees, *fds[1:]])
                spare.sock.sendmsg([json.dumps(spec).encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, passed)])
            finally:
                for fd in trees:
                    os.close(fd)
            spare.sock.close()
            reply = json.dumps({"id": request["id"], "pid": spare.pid, "cgroup": spare.cgroup}).encode()
            sock.sendmsg([reply], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", listener_fds))]
                         if listener_fds else [])
            for fd in listener_fds:
                os.close(fd)
        except Exception as exc:
            send(sock, {"id": request["id"], "error": repr(exc)})
        finally:
            for fd in fds:
                os.close(fd)
        reap(sock, spares, retired, template)


HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    # The server hands the control socket over at its own descriptor's number, which may be far
    # above 1,023 on a busy server: take the lowest free number instead, for this process and
    # for every descriptor number its children inherit.
    inherited = int(sys.argv[1])
    control = socket.socket(fileno=os.dup(inherited))
    os.close(inherited)
    bootstrap = None
    if len(sys.argv) > 2:
        sys.path.insert(0, os.path.dirname(sys.argv[2]))
        import bootstrap  # noqa: F401  (pre-imported: the point of a zygote)
        import snapshot  # noqa: F401  (SnapStart templates)
        import traceback as _tb  # noqa: F401  (the bootstrap defers it; children get it for free)

        sys.path.pop(0)
    import confine  # noqa: F401

    serve(control, bootstrap)


if __name__ == "__main__":
    main()
