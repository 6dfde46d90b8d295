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

It happens in three steps so that little of it is on the cold-start path: `build_shared_root`
builds the root every environment of a zygote shares, once, in a mount namespace the zygote keeps;
each spare (a child made ahead of time) takes a private copy of it with `enter_shared_root`; and
`assign` attaches one function's code (a mount tree the zygote cloned for it), mounts its /tmp
and drops privileges.
"""

import ctypes
import ctypes.util
import os
import resource
import signal

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.chroot.argtypes = [ctypes.c_char_p]
libc.syscall.restype = ctypes.c_long
libc.syscall.argtypes = None

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 32, 4096, 8192, 16384, 1 << 18
CLONE_NEWNS = 0x00020000
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine, 155)
SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR = 428, 429, 442  # same on every architecture
AT_FDCWD, AT_EMPTY_PATH, AT_RECURSIVE = -100, 0x1000, 0x8000
OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC = 1, os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 4
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 1, 2, 4
DEVICES = ("null", "zero", "full", "random", "urandom")

# -- the seccomp filter: no new user namespaces, no kernel surface a function has no use for ---
SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_SPEC_ALLOW = 1, 4
CLONE_NEWUSER = 0x10000000
#: (audit architecture, clone, unshare, clone3, seccomp) by machine.
SYSCALLS = {"x86_64": (0xC000003E, 56, 272, 435, 317), "aarch64": (0xC00000B7, 220, 97, 435, 277)}
#: Calls refused with EPERM, by machine: those Docker's default profile denies that the environment
#: itself does not make after the filter is in place (it still mounts its /tmp, moves its code in,
#: sets its host name and chroots an image — all of which need privileges the function drops).
#: The kernel keyrings (add_key, request_key, keyctl: one per uid, and every function is uid 993),
#: io_uring, bpf, perf_event_open, userfaultfd, kernel modules and kexec, setting the clock, swap, reboot,
#: accounting, quotas, file handles, kcmp, process_vm_readv/writev, namespaces (setns) and the
#: other mount calls, and the obsolete uselib, ustat, sysfs, _sysctl, lookup_dcookie.
DENIED = {
    "x86_64": {
        "add_key": 248, "request_key": 249, "keyctl": 250, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "kexec_load": 246,
        "kexec_file_load": 320, "init_module": 175, "finit_module": 313, "delete_module": 176, "acct": 163,
        "swapon": 167, "swapoff": 168, "reboot": 169, "settimeofday": 164, "clock_settime": 227,
        "iopl": 172, "ioperm": 173, "quotactl": 179,
        "name_to_handle_at": 303, "open_by_handle_at": 304, "kcmp": 312, "process_vm_readv": 310,
        "process_vm_writev": 311, "setns": 308, "pivot_root": 155, "umount2": 166, "open_tree": 428,
        "mount_setattr": 442, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "uselib": 134,
        "ustat": 136, "sysfs": 139, "_sysctl": 156, "lookup_dcookie": 212, "setdomainname": 171,
    },
    "aarch64": {
        "add_key": 217, "request_key": 218, "keyctl": 219, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "bpf": 280, "perf_event_open": 241, "userfaultfd": 282, "kexec_load": 104,
        "kexec_file_load": 294, "init_module": 105, "finit_module": 273, "delete_module": 106, "acct": 89,
        "swapon": 224, "swapoff": 225, "reboot": 142, "settimeofday": 170, "clock_settime": 112,
        "quotactl": 60, "name_to_handle_at": 264,
        "open_by_handle_at": 265, "kcmp": 272, "process_vm_readv": 270, "process_vm_writev": 271,
        "setns": 268, "pivot_root": 41, "umount2": 39, "open_tree": 428, "mount_setattr": 442, "fsopen": 430,
        "fsconfig": 431, "fsmount": 432, "fspick": 433, "lookup_dcookie": 18, "setdomainname": 162,
    },
}
X32_SYSCALL_BIT = 0x40000000
BPF_LD_ABS, BPF_JEQ, BPF_JGE, BPF_JSET, BPF_RET = 0x20, 0x15, 0x35, 0x45, 0x06
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
ARCH_OFFSET, NR_OFFSET, ARG0_OFFSET = 4, 0, 16  # in struct seccomp_data (arg 0's low word: little-endian)
EPERM, ENOSYS = 1, 38


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def seccomp_program(machine):
    """The filter as (code, jt, jf, k) instructions, or None for a machine whose numbers this
    module does not know (namespaces and the uid still hold there).

    Layout: check the ABI; refuse x32 and clone3 (ENOSYS: glibc then falls back to clone, whose
    flags a classic filter can read); send clone and unshare to the CLONE_NEWUSER check; refuse
    each DENIED number; allow the rest. Jumps are relative to the next instruction."""
    numbers = SYSCALLS.get(machine)
    if numbers is None:
        return None
    arch, clone, unshare, clone3, _seccomp = numbers
    denied = sorted(set(DENIED[machine].values()))
    # instruction indexes of the shared tails
    first_deny = 8
    allow = first_deny + len(denied)
    check_flags = allow + 1
    ret_eperm = check_flags + 3
    ret_enosys = ret_eperm + 1

    def to(target, at):
        return target - at - 1

    program = [
        (BPF_LD_ABS, 0, 0, ARCH_OFFSET),
        (BPF_JEQ, 1, 0, arch),
        (BPF_RET, 0, 0, SECCOMP_RET_ERRNO | ENOSYS),  # another ABI (i386, ...)
        (BPF_LD_ABS, 0, 0, NR_OFFSET),
        (BPF_JGE, to(ret_enosys, 4), 0, X32_SYSCALL_BIT),
        (BPF_JEQ, to(ret_enosys, 5), 0, clone3),
        (BPF_JEQ, to(check_flags, 6), 0, unshare),
        (BPF_JEQ, to(check_flags, 7), 0, clone),
    ]
    for index, number in enumerate(denied, start=first_deny):
        program.append((BPF_JEQ, to(ret_eperm, index), 0, number))
    program += [
        (BPF_RET, 0, 0, SECCOMP_RET_ALLOW),
        (BPF_LD_ABS, 0, 0, ARG0_OFFSET),
        (BPF_JSET, to(ret_eperm, check_flags + 1), 0, CLONE_NEWUSER),
        (BPF_RET, 0, 0, SECCOMP_RET_ALLOW),
        (BPF_RET, 0, 0, SECCOMP_RET_ERRNO | EPERM),
        (BPF_RET, 0, 0, SECCOMP_RET_ERRNO | ENOSYS),
    ]
    assert len(program) == ret_enosys + 1
    return program


def _sandbox_filter():
    """The filter's program, built once when the zygote imports this module: a spare only installs
    it (building ctypes arrays in a fresh process costs ~0.3 ms of its cold start)."""
    machine = os.uname().machine
    program = seccomp_program(machine)
    if program is None:
        return None
    filters = (_SockFilter * len(program))(*[_SockFilter(*instruction) for instruction in program])
    return SYSCALLS[machine][4], filters, _SockFprog(len(program), filters)  # `filters` kept alive with the program


SANDBOX_FILTER = _sandbox_filter()


def install_seccomp_filter():
    """Install the sandbox's seccomp filter (`seccomp_program`); every process the function starts
    inherits it, and any call through another ABI (i386, x32), where the same calls have other
    numbers, fails with ENOSYS.

    In a user namespace of its own, function code would hold every capability over the namespaces
    it creates there, the kernel surface most local privilege escalations have needed; the other
    refused calls are kernel surface no function needs (io_uring, bpf), or state all functions
    would share (the uid's keyring: a key one function adds, another could read). A spare installs
    it while it waits (as root, so before no_new_privs).
    """
    if SANDBOX_FILTER is None:
        return
    seccomp, _filters, fprog = SANDBOX_FILTER
    # SPEC_ALLOW: on hosts whose speculative-store-bypass mitigation follows seccomp, a filter would
    # otherwise switch it on for the function, slowing it down for a filter that needs no such help.
    if libc.syscall(seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_SPEC_ALLOW, ctypes.byref(fprog)) != 0:
        _check(libc.syscall(seccomp, SECCOMP_SET_MODE_FILTER, 0, ctypes.byref(fprog)), "seccomp")


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


def build_shared_root(generic):
    """Build the root every environment of a zygote shares, in a mount namespace of its own.

    Done once per zygote (and shared-part template), in a short-lived child whose namespace the
    zygote keeps open. The costly mount-tree work — pivot_root and detaching the host's tree, which
    waits for RCU grace periods — happens here once instead of once per environment.
    """
    root = generic["root"]
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=755")
    for link, target in generic["symlinks"]:
        os.makedirs(os.path.dirname(root + link), exist_ok=True)
        os.symlink(target, root + link)
    for source, target, writable in generic["binds"]:
        bind(source, root + target, read_only=not writable)
    for directory in list(generic.get("dirs", ())) + ["/proc", "/tmp"]:
        os.makedirs(root + directory, exist_ok=True)
    dev = root + "/dev"
    os.makedirs(dev, exist_ok=True)
    mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=755")
    for name in DEVICES:
        bind("/dev/" + name, dev + "/" + name, read_only=False)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, dev + "/" + name)
    old = root + "/.old-root"
    os.makedirs(old, exist_ok=True)
    _check(libc.syscall(SYS_PIVOT_ROOT, root.encode(), old.encode()), "pivot_root")
    os.chdir("/")
    _check(libc.umount2(b"/.old-root", MNT_DETACH), "umount old root")
    os.rmdir("/.old-root")
    mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def enter_shared_root(root_ns_fd):
    """A spare: take a private copy of the shared root (cheap: no host mounts in it) and its /proc.

    Runs in a child already in its own PID namespace, so the /proc it mounts shows only itself.
    """
    os.setsid()
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    _check(libc.setns(root_ns_fd, CLONE_NEWNS), "setns into the shared root")
    _check(libc.unshare(CLONE_NEWNS), "unshare the mount namespace")
    os.chdir("/")
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def clone_tree_read_only(path):
    """A detached, read-only copy of the mount at `path`, as a file descriptor (Linux ≥ 5.12).

    Made by the zygote in the host's mount namespace and attached by the environment with
    `attach_tree`, so an environment whose root is already sealed can still receive its code.
    """
    fd = libc.syscall(SYS_OPEN_TREE, AT_FDCWD, path.encode(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"open_tree {path}: {os.strerror(err)}")
    attr = MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0, 0)
    result = libc.syscall(SYS_MOUNT_SETATTR, fd, b"", AT_EMPTY_PATH | AT_RECURSIVE, ctypes.byref(attr),
                          ctypes.sizeof(attr))
    if result != 0:
        err = ctypes.get_errno()
        os.close(fd)
        raise OSError(err, f"mount_setattr {path}: {os.strerror(err)}")
    return fd


def attach_tree(tree_fd, target):
    _check(libc.syscall(SYS_MOVE_MOUNT, tree_fd, b"", AT_FDCWD, target.encode(), MOVE_MOUNT_F_EMPTY_PATH),
           f"move_mount onto {target}")


def enter_image_root(tree_fd, mount_point, tmp_mb):
    """A container image function: its unpacked image (`tree_fd`, read-only) becomes `/`.

    The image is attached at `mount_point` of the shared root, given this environment's /dev and
    /proc and a /tmp of its own (the unpacker made those directories in every image), moved over
    `/` and made the root: the shared root's binds of the host's /usr and /lib lie under it,
    unreachable. Moving a mount and chroot cost no RCU grace period, unlike detaching a root; the
    chroot holds because function code runs without privileges (no CAP_SYS_CHROOT, no new user
    namespace) and holds no descriptor of a directory outside.
    """
    attach_tree(tree_fd, mount_point)
    bind("/dev", mount_point + "/dev", read_only=False)
    bind("/proc", mount_point + "/proc", read_only=False)
    mount("tmpfs", mount_point + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_mb}m,mode=1777")
    os.chdir(mount_point)
    mount(".", "/", None, MS_MOVE)
    _check(libc.chroot(b"."), "chroot into the image")
    os.chdir("/")


def loopback_listener(port):
    """In a fresh network namespace: bring loopback up and listen on 127.0.0.1:`port`.

    The socket goes to the server, which serves this environment's Runtime API on it: a socket
    stays in the namespace it was made in, so the runtime reaches it at 127.0.0.1, as on Lambda.
    """
    import fcntl
    import socket
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as control:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(control, siocgifflags, request)[:18])[1]
        fcntl.ioctl(control, siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    return listener


def join_own_cgroups(parents, name):
    """Make groups `name` under each parent, move this process in, and return the groups'
    directories, open ({hierarchy: fd}), so that `write_cgroup_limits` still reaches them once
    this process has left the host's filesystem. They must be closed before user code runs.

    A spare does this itself, first thing, so that the move (which can wait 10-15 ms for an RCU
    grace period on cgroup v1) never blocks the zygote or a cold start.
    """
    dir_fds = {}
    for key, parent in parents.items():
        directory = os.path.join(parent, name)
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "cgroup.procs"), "w") as handle:
            handle.write("0")  # 0: the writing process itself
        dir_fds[key] = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    return dir_fds


def write_cgroup_limits(dir_fds, limits, written=None):
    """Write `limits` ({hierarchy: [[file, value], ...]}) into this process's own groups, except
    the values `written` (limits written earlier) shows they already hold. A file this kernel
    does not have (memory.swap.max without swap accounting) is skipped; any other failure raises."""
    for key, settings in limits.items():
        for filename, value in settings:
            if written is not None and [filename, value] in written.get(key, ()):
                continue
            try:
                fd = os.open(filename, os.O_WRONLY | os.O_CLOEXEC, dir_fd=dir_fds[key])
            except FileNotFoundError:
                continue
            try:
                os.write(fd, str(value).encode())
            finally:
                os.close(fd)


def remove_cgroups(parents, name):
    for parent in parents.values():
        try:
            os.rmdir(os.path.join(parent, name))
        except OSError:
            pass


def assign(spec, output_fd, tree_fds, keep_fd=None):
    """Turn a prepared spare into one function's environment (already in its cgroups).

    `tree_fds` are the read-only mount trees the zygote cloned: the code (for /var/task) and, when
    the function has layers, their merged tree (for /opt). `keep_fd` (a SnapStart template's
    control socket, or a bootstrap's runtime channel) survives as file descriptor 3.
    """
    if spec.get("image"):
        enter_image_root(tree_fds[0], spec["task_root"], spec["tmp_mb"])
    else:
        attach_tree(tree_fds[0], spec["task_root"])
        if len(tree_fds) > 1:
            attach_tree(tree_fds[1], spec["opt_dir"])
        mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={spec['tmp_mb']}m,mode=1777")
    hostname = spec.get("hostname", "localhost").encode()
    _check(libc.sethostname(hostname, len(hostname)), "sethostname")
    for which, value in spec["rlimits"]:
        resource.setrlimit(which, (value, value))
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    if keep_fd is not None:
        os.dup2(keep_fd, 3)
    os.closerange(3 if keep_fd is None else 4, 65536)
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    uid, gid = spec["uid"], spec["gid"]
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    os.environ.clear()
    os.environ.update(spec["env"])
    os.chdir(spec["cwd"])
