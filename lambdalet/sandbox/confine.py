"""Inside a freshly cloned environment: build its private root, join its cgroups, drop privileges.

Stdlib and ctypes only, and Python 3.9+: it runs in the zygote (`zygote.py`) under whatever
interpreter the function's runtime uses, never inside the Lambdalet server. The child arrives here
already in new PID, mount, IPC and UTS namespaces (one `clone(2)`); everything it does below
changes only those namespaces.

The root it builds is a small tmpfs holding: read-only binds of the host paths a runtime needs
(`/usr`, `/lib*`, `/etc`, the interpreter's prefix), the function's code at `/var/task`, the
runtime at `/var/runtime`, the AWS SDK at `/var/lang/python-sdk`, layers at `/opt`, a private
`/tmp` tmpfs capped at the ephemeral-storage size, a minimal `/dev` and its own `/proc`.
The old root is detached after `pivot_root`, so nothing else of the host is reachable.

It happens in two steps so that most of it is off the cold-start path: `prepare_root` builds the
part every environment of a zygote shares, in a spare child made ahead of time; `assign` adds one
function's part (its code, its /tmp, its cgroups), pivots, and drops privileges.
"""

import ctypes
import ctypes.util
import os
import resource
import signal

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.syscall.restype = ctypes.c_long

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine, 155)
DEVICES = ("null", "zero", "full", "random", "urandom")


def _check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source, target, fstype, flags, data=None):
    _check(libc.mount(source and source.encode(), target.encode(), fstype and fstype.encode(), flags,
                      data and data.encode()), f"mount {source} on {target}")


def bind(source, target, read_only=True):
    """Bind `source` at `target` (a path in the new root), read-only unless told otherwise."""
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            open(target, "wb").close()
    mount(source, target, None, MS_BIND | MS_REC)
    if read_only:
        mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def prepare_root(generic):
    """The part of the root every environment of a zygote shares; done ahead of any request.

    Runs in a spare: a child already in its own namespaces, waiting to be assigned a function.
    """
    root = generic["root"]
    os.setsid()
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=755")
    for link, target in generic["symlinks"]:
        os.makedirs(os.path.dirname(root + link), exist_ok=True)
        os.symlink(target, root + link)
    for source, target, writable in generic["binds"]:
        bind(source, root + target, read_only=not writable)
    for directory in generic.get("dirs", ()):
        os.makedirs(root + directory, exist_ok=True)
    dev = root + "/dev"
    os.makedirs(dev, exist_ok=True)
    mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=755")
    for name in DEVICES:
        bind("/dev/" + name, dev + "/" + name, read_only=False)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, dev + "/" + name)
    os.makedirs(root + "/proc", exist_ok=True)
    mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.makedirs(root + "/tmp", exist_ok=True)


def finish_root(root, spec):
    """The function's own part: its code, its /tmp; then pivot into the root and seal it read-only."""
    bind(spec["code_dir"], root + spec["task_root"], read_only=True)
    mount("tmpfs", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={spec['tmp_mb']}m,mode=1777")
    old = root + "/.old-root"
    os.makedirs(old, exist_ok=True)
    _check(libc.syscall(SYS_PIVOT_ROOT, root.encode(), old.encode()), "pivot_root")
    os.chdir("/")
    _check(libc.umount2(b"/.old-root", MNT_DETACH), "umount old root")
    os.rmdir("/.old-root")
    mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def join_cgroups(procs_files):
    for path in procs_files:
        with open(path, "w") as handle:
            handle.write("0")


def assign(root, spec, output_fd):
    """Turn a prepared spare into one function's environment, in the order the kernel requires."""
    join_cgroups(spec["cgroup_procs"])  # before pivot_root hides /sys/fs/cgroup
    finish_root(root, spec)
    hostname = spec.get("hostname", "localhost").encode()
    _check(libc.sethostname(hostname, len(hostname)), "sethostname")
    for which, value in spec["rlimits"]:
        resource.setrlimit(which, (value, value))
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    os.closerange(3, 65536)
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    uid, gid = spec["uid"], spec["gid"]
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    os.environ.clear()
    os.environ.update(spec["env"])
    os.chdir(spec["cwd"])
