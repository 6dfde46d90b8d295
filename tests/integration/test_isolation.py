"""Hostile functions: each handler tries one sandbox escape and reports what happened.

Every test asserts that the escape failed under the `linux` backend (namespaces, private root,
cgroups, no_new_privs, uid 993) and, where it makes sense, that the server and an ordinary
function still work afterwards. The handlers return what they observed; the assertions live here.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import ROLE, Server, invoke_json, make_zip

from .helpers import COUNTER_HANDLER, ECHO_HANDLER, wait_until

pytestmark = pytest.mark.isolation

SANDBOX_UID = 993
HOSTILE_RUNTIME = "python3.12"
MB = 1024 * 1024


# --------------------------------------------------------------------------------------------- helpers

def hostile(create_function, code: str, **kwargs) -> str:
    """Create a hostile function (python3.12, 30 s timeout unless told otherwise); return its name."""
    params = {"Runtime": HOSTILE_RUNTIME, "Timeout": 30, **kwargs}
    return create_function(code, **params)["FunctionName"]


def invoke_ok(client, name: str, payload=None):
    """Invoke, assert no FunctionError, return the decoded result."""
    resp, body = invoke_json(client, name, payload)
    assert "FunctionError" not in resp, f"{name} failed: {json.dumps(body)[:2000]}"
    return body


def assert_ordinary_function_works(client, create_function) -> None:
    """A brand-new, harmless function is created and answers correctly: the server is healthy."""
    name = create_function(ECHO_HANDLER)["FunctionName"]
    token = uuid.uuid4().hex
    assert invoke_ok(client, name, {"still": "alive", "token": token}) == {"still": "alive", "token": token}


def host_code_file_containing(server, needle: str) -> Path:
    """The extracted handler file under `<data-dir>/code/<sha256>/` that holds `needle` (on the host)."""
    for path in (Path(server.data_dir) / "code").glob("*/app.py"):
        if needle in path.read_text(errors="replace"):
            return path
    raise AssertionError(f"no code directory under {server.data_dir}/code holds {needle!r}")


def host_processes_of_uid(uid: int, server) -> list[int]:
    """Host pids of the processes with real uid `uid` that descend from `server` (from /proc/*/status).

    Only this server's descendants count: other Lambdalet servers on the host use the same uid.
    """
    parents, owned = {}, []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue  # exited meanwhile
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        parents[int(entry)] = int(fields["PPid"])
        if int(fields["Uid"].split()[0]) == uid:
            owned.append(int(entry))

    def descends(pid: int) -> bool:
        for _ in range(64):
            pid = parents.get(pid, 0)
            if pid == server.proc.pid:
                return True
            if pid <= 1:
                return False
        return False

    return [pid for pid in owned if descends(pid)]


# --------------------------------------------------------------------------------------------- 1. code

SECRET_CODE = """\
SECRET = "{secret}"


def handler(event, context):
    return len(SECRET)
"""

CODE_SNOOP = r"""
import errno
import os
import stat
import time

SKIP_TOP = {"proc", "sys", "dev"}
CONTENT_LIMIT = 256 * 1024


def handler(event, context):
    secret = event["secret"]
    needle = secret.encode()
    out = {"host_paths": {}, "found": [], "var_task_parent": None, "files_named": 0, "files_read": 0,
           "complete": True}

    # 1. The host path of A's code, and the data directory itself.
    for path in (event["data_dir"], event["data_dir"] + "/code", event["code_dir"], event["code_file"]):
        try:
            with open(path, "rb") as handle:
                data = handle.read()
            out["host_paths"][path] = "read:" + ("SECRET" if needle in data else "no-secret")
        except IsADirectoryError:
            out["host_paths"][path] = "directory:" + ",".join(sorted(os.listdir(path)))
        except OSError as exc:
            out["host_paths"][path] = "error:" + errno_name(exc)
    for root, dirs, files in os.walk(event["data_dir"]):
        out["found"].append("walked data_dir: " + root)

    # 2. Up and out of /var/task.
    out["var_task_parent"] = sorted(os.listdir("/var/task/.."))
    for path in ("/var/task/../..", "/var/task/../../.."):
        out["above_var_task_" + str(path.count(".."))] = sorted(os.listdir(path))

    # 3. A bounded search of the whole visible tree: every name, and the content of every small
    #    regular file outside /usr (the host's read-only /usr is 5 GB of distribution files).
    deadline = time.monotonic() + event.get("budget", 20)
    for root, dirs, files in os.walk("/"):
        if root == "/":
            dirs[:] = [d for d in dirs if d not in SKIP_TOP]
        if time.monotonic() > deadline:
            out["complete"] = False
            break
        for name in dirs + files:
            if secret in name or name == event["code_sha_dir"] or name == "lambdalet.db":
                out["found"].append("name: " + os.path.join(root, name))
        for name in files:
            out["files_named"] += 1
            path = os.path.join(root, name)
            if path.startswith("/usr/"):
                continue
            try:
                st = os.lstat(path)
                if not stat.S_ISREG(st.st_mode) or st.st_size > CONTENT_LIMIT:
                    continue
                with open(path, "rb") as handle:
                    if needle in handle.read():
                        out["found"].append("content: " + path)
                out["files_read"] += 1
            except OSError:
                pass
    return out


def errno_name(exc):
    return errno.errorcode.get(exc.errno, str(exc.errno)) if exc.errno else type(exc).__name__
"""


def test_a_function_cannot_read_another_functions_code(server, lambda_client, create_function):
    secret = f"code-secret-{uuid.uuid4().hex}"
    victim = create_function(SECRET_CODE.format(secret=secret), Runtime=HOSTILE_RUNTIME)["FunctionName"]
    assert invoke_ok(lambda_client, victim) == len(secret)
    code_file = host_code_file_containing(server, secret)  # it really is on the host, at this path

    snoop = hostile(create_function, CODE_SNOOP, MemorySize=1769)
    result = invoke_ok(lambda_client, snoop, {
        "secret": secret, "data_dir": str(server.data_dir), "code_dir": str(code_file.parent),
        "code_file": str(code_file), "code_sha_dir": code_file.parent.name, "budget": 20,
    })

    assert all(outcome == "error:ENOENT" for outcome in result["host_paths"].values()), result["host_paths"]
    assert result["found"] == [], result["found"]
    # /var/task/.. is the sandbox's own /var: the task, the runtime and the SDK, nothing of the host's.
    assert set(result["var_task_parent"]) <= {"task", "runtime", "lang"}, result["var_task_parent"]
    assert result["above_var_task_2"] == result["above_var_task_3"], "/var/task/../.. is not the sandbox root"
    assert not {"work", "sys", "home", "mnt"} & set(result["above_var_task_2"]), result["above_var_task_2"]
    assert result["complete"], f"search ran out of budget after {result['files_named']} names"
    assert result["files_read"] > 100 and result["files_named"] > 10_000, result  # the search did search
    assert invoke_ok(lambda_client, victim) == len(secret)
    assert_ordinary_function_works(lambda_client, create_function)


# ---------------------------------------------------------------------------------------- 2. env vars

ENV_HOLDER = """\
import os


def handler(event, context):
    return {"secret": os.environ.get("SECRET"), "pid": os.getpid()}
"""

ENV_SNOOP = """\
import os


def handler(event, context):
    secret = event["secret"].encode()
    pids, leaks, unreadable = [], [], {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pids.append(int(entry))
        for what in ("environ", "cmdline"):
            try:
                with open(f"/proc/{entry}/{what}", "rb") as handle:
                    if secret in handle.read():
                        leaks.append(f"/proc/{entry}/{what}")
            except OSError as exc:
                unreadable[f"/proc/{entry}/{what}"] = exc.errno
    host_pids = {str(pid): os.path.exists(f"/proc/{pid}") for pid in event["host_pids"]}
    return {"pids": sorted(pids), "leaks": leaks, "unreadable": unreadable, "host_pids_visible": host_pids,
            "own_env_has_secret": any(secret in v.encode() for v in os.environ.values()),
            "own_env_has_SECRET": "SECRET" in os.environ}
"""


def test_a_function_cannot_read_another_functions_environment(server, lambda_client, create_function):
    secret = f"env-secret-{uuid.uuid4().hex}"
    holder = create_function(ENV_HOLDER, Runtime=HOSTILE_RUNTIME,
                             Environment={"Variables": {"SECRET": secret}})["FunctionName"]
    assert invoke_ok(lambda_client, holder)["secret"] == secret  # warm now, with the secret in its environ
    host_pids = host_processes_of_uid(SANDBOX_UID, server)
    assert host_pids, "the warm holder should be a uid-993 process on the host"

    snoop = hostile(create_function, ENV_SNOOP)
    result = invoke_ok(lambda_client, snoop, {"secret": secret, "host_pids": host_pids})

    assert result["pids"] == [1], result
    assert result["leaks"] == [], result
    assert not any(result["host_pids_visible"].values()), result["host_pids_visible"]
    assert not result["own_env_has_secret"] and not result["own_env_has_SECRET"]
    assert invoke_ok(lambda_client, holder)["secret"] == secret
    assert_ordinary_function_works(lambda_client, create_function)


# ------------------------------------------------------------------------------------ 3. data dir, db

DATA_DIR_SNOOP = """\
import errno
import os
import sqlite3


def handler(event, context):
    out = {}
    for path in event["paths"]:
        try:
            os.stat(path)
            out[path] = "exists"
        except OSError as exc:
            out[path] = errno.errorcode.get(exc.errno, str(exc.errno))
    try:
        sqlite3.connect(f"file:{event['db']}?mode=ro", uri=True).execute("select name from sqlite_master").fetchall()
        out["sqlite"] = "opened"
    except Exception as exc:
        out["sqlite"] = type(exc).__name__
    with open("/proc/self/mountinfo") as handle:
        out["mount_points"] = sorted(line.split()[4] for line in handle)
    return out
"""


def test_a_function_cannot_see_the_servers_data_directory_or_database(server, lambda_client, create_function):
    data_dir = Path(server.data_dir)
    assert (data_dir / "lambdalet.db").is_file()
    paths = [str(data_dir), str(data_dir / "lambdalet.db"), str(data_dir / "code"), str(data_dir / "blobs"),
             str(data_dir / "logs"), str(data_dir.parent), "/work", "/work/main", str(Path.cwd()),
             str(server.log_path)]
    snoop = hostile(create_function, DATA_DIR_SNOOP)
    result = invoke_ok(lambda_client, snoop, {"paths": paths, "db": str(data_dir / "lambdalet.db")})

    assert {path: result[path] for path in paths} == {path: "ENOENT" for path in paths}
    assert result["sqlite"] == "OperationalError"
    assert not any(point.startswith(("/work", str(data_dir))) for point in result["mount_points"]), result
    assert_ordinary_function_works(lambda_client, create_function)


# --------------------------------------------------------------------------------- 4. read-only root

WRITER = """\
import errno
import os


def attempt(action):
    try:
        action()
        return "succeeded"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))


def write(path, mode="w"):
    def action():
        with open(path, mode) as handle:
            handle.write("pwned\\n")
    return action


def handler(event, context):
    with open("/var/task/app.py") as handle:
        before = handle.read()
    results = {
        "create /var/task/evil.py": attempt(write("/var/task/evil.py")),
        "append /var/task/app.py": attempt(write("/var/task/app.py", "a")),
        "truncate /var/task/app.py": attempt(lambda: os.truncate("/var/task/app.py", 0)),
        "unlink /var/task/app.py": attempt(lambda: os.unlink("/var/task/app.py")),
        "rename /var/task/app.py": attempt(lambda: os.rename("/var/task/app.py", "/var/task/x.py")),
        "mkdir /var/task/d": attempt(lambda: os.mkdir("/var/task/d")),
        "create /var/runtime/evil.py": attempt(write("/var/runtime/evil.py")),
        "create /var/lang/python-sdk/evil.py": attempt(write("/var/lang/python-sdk/evil.py")),
        "create /etc/evil": attempt(write("/etc/evil")),
        "append /etc/passwd": attempt(write("/etc/passwd", "a")),
        "append /etc/hosts": attempt(write("/etc/hosts", "a")),
        "create /usr/evil": attempt(write("/usr/evil")),
        "create /usr/bin/evil": attempt(write("/usr/bin/evil")),
        "create /evil": attempt(write("/evil")),
        "mkdir /evil-dir": attempt(lambda: os.mkdir("/evil-dir")),
        "symlink /evil-link": attempt(lambda: os.symlink("/tmp", "/evil-link")),
    }
    with open("/var/task/app.py") as handle:
        after = handle.read()
    return {"results": results, "code_unchanged": before == after,
            "var_task": sorted(os.listdir("/var/task")), "root": sorted(os.listdir("/"))}
"""


def test_a_function_cannot_write_to_its_code_or_the_system_directories(server, lambda_client, create_function):
    name = hostile(create_function, WRITER)
    code_file = host_code_file_containing(server, "pwned")
    host_before = code_file.read_bytes()

    result = invoke_ok(lambda_client, name)

    bad = {what: outcome for what, outcome in result["results"].items() if outcome not in ("EROFS", "EACCES")}
    assert bad == {}, f"writes that did not fail with EROFS/EACCES: {bad}"
    assert result["code_unchanged"] and result["var_task"] == ["app.py"]
    assert not {"evil", "evil-dir", "evil-link"} & set(result["root"])
    assert code_file.read_bytes() == host_before and sorted(os.listdir(code_file.parent)) == ["app.py"]
    assert not any(Path(p).exists() for p in ("/etc/evil", "/usr/evil", "/usr/bin/evil"))
    assert invoke_ok(lambda_client, name)["code_unchanged"]  # the same environment still runs its code
    assert_ordinary_function_works(lambda_client, create_function)


# ----------------------------------------------------------------------------------------- 5. signals

SIGNALLER = """\
import os
import signal


def handler(event, context):
    out = {"pid": os.getpid(), "ppid": os.getppid(), "uid": os.getuid(), "euid": os.geteuid(),
           "gid": os.getgid(), "egid": os.getegid(), "groups": os.getgroups(),
           "proc": sorted(int(e) for e in os.listdir("/proc") if e.isdigit()), "kill": {}}
    for label, pid, sig in (("server", event["server_pid"], 0), ("server-term", event["server_pid"], signal.SIGTERM),
                            ("pytest", event["pytest_pid"], 0), ("victim", event["victim_pid"], 0),
                            ("victim-kill", event["victim_pid"], signal.SIGKILL), ("everyone", -1, signal.SIGKILL)):
        try:
            os.kill(pid, sig)
            out["kill"][label] = "delivered"
        except OSError as exc:
            out["kill"][label] = type(exc).__name__
    return out
"""


def test_a_function_cannot_see_or_signal_processes_outside_its_sandbox(server, lambda_client, create_function):
    victim = create_function(COUNTER_HANDLER, Runtime=HOSTILE_RUNTIME)["FunctionName"]
    first = invoke_ok(lambda_client, victim)
    victims = host_processes_of_uid(SANDBOX_UID, server)
    assert victims, "the warm victim should be a uid-993 process on the host"

    name = hostile(create_function, SIGNALLER)
    targets = {"server_pid": server.proc.pid, "pytest_pid": os.getpid(), "victim_pid": max(victims)}
    result = invoke_ok(lambda_client, name, targets)

    assert result["pid"] == 1 and result["proc"] == [1], result
    assert (result["uid"], result["euid"], result["gid"], result["egid"]) == (SANDBOX_UID,) * 4
    assert result["groups"] == []
    assert result["kill"] == {"server": "ProcessLookupError", "server-term": "ProcessLookupError",
                              "pytest": "ProcessLookupError", "victim": "ProcessLookupError",
                              "victim-kill": "ProcessLookupError",
                              "everyone": result["kill"]["everyone"]}, result["kill"]
    assert result["kill"]["everyone"] in ("ProcessLookupError", "delivered")  # kill(-1) had nobody to hit
    assert server.proc.poll() is None
    again = invoke_ok(lambda_client, victim)
    assert (again["env_id"], again["count"]) == (first["env_id"], 2), "the warm victim was disturbed"
    assert invoke_ok(lambda_client, name, targets)["pid"] == 1  # the hostile one survived its own kill(-1) too
    assert_ordinary_function_works(lambda_client, create_function)


# ------------------------------------------------------------------------------------- 6. /tmp, disk

TMP_FILLER = """\
import os


def handler(event, context):
    marker = "/tmp/" + event["marker"]
    with open(marker, "w") as handle:
        handle.write("hostile")
    chunk = os.urandom(16 * 1024 * 1024)
    written, error = 0, None
    try:
        with open("/tmp/fill", "wb") as handle:
            while written < event["mb"] * 1024 * 1024:
                handle.write(chunk)
                handle.flush()
                written += len(chunk)
    except OSError as exc:
        error = exc.errno
    st = os.statvfs("/tmp")
    return {"written": written, "errno": error, "size": os.path.getsize("/tmp/fill"),
            "tmp_total": st.f_blocks * st.f_frsize, "marker_exists": os.path.exists(marker)}
"""

TMP_LOOKER = """\
import os


def handler(event, context):
    return {"tmp": sorted(os.listdir("/tmp")), "marker": os.path.exists("/tmp/" + event["marker"])}
"""


def test_filling_tmp_hits_ephemeral_storage_not_the_host_disk(server, lambda_client, create_function):
    marker = f"marker-{uuid.uuid4().hex}"
    free_before = shutil.disk_usage(server.data_dir).free
    filler = hostile(create_function, TMP_FILLER, MemorySize=2048, EphemeralStorage={"Size": 512})

    result = invoke_ok(lambda_client, filler, {"mb": 600, "marker": marker})

    free_after = shutil.disk_usage(server.data_dir).free
    assert result["errno"] == errno.ENOSPC, result
    assert result["size"] <= 512 * MB and result["written"] <= 512 * MB, result
    assert result["tmp_total"] <= 512 * MB and result["marker_exists"], result
    assert free_before - free_after < 64 * MB, f"host disk lost {(free_before - free_after) // MB} MB"
    assert not Path("/tmp", marker).exists() and not list(Path(server.data_dir).rglob(marker))

    looker = create_function(TMP_LOOKER, Runtime=HOSTILE_RUNTIME)["FunctionName"]
    seen = invoke_ok(lambda_client, looker, {"marker": marker})
    assert not seen["marker"] and "fill" not in seen["tmp"], seen
    assert_ordinary_function_works(lambda_client, create_function)


# ------------------------------------------------------------------------------------------ 7. memory

MEMORY_HOG = """\
def handler(event, context):
    if not event.get("hog"):
        return "fine"
    block = bytearray(event["mb"] * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    return len(block)
"""


def test_exhausting_memory_only_kills_the_functions_own_environment(server, lambda_client, create_function):
    name = hostile(create_function, MEMORY_HOG, MemorySize=128)

    resp, body = invoke_json(lambda_client, name, {"hog": True, "mb": 1024}, LogType="Tail")

    assert resp["FunctionError"] == "Unhandled", body
    assert body["errorType"] == "Runtime.OutOfMemory", body
    request_id = resp["ResponseMetadata"]["RequestId"]
    assert body["errorMessage"] == f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"
    log = base64.b64decode(resp["LogResult"]).decode("utf-8", errors="replace")
    report = [line for line in log.splitlines() if line.startswith("REPORT")]
    assert report and report[-1].endswith("Status: error\tError Type: Runtime.OutOfMemory"), log

    assert server.proc.poll() is None
    assert invoke_ok(lambda_client, name, {"hog": False}) == "fine"
    assert_ordinary_function_works(lambda_client, create_function)


# --------------------------------------------------------------------------------------- 8. fork bomb

FORK_BOMB = """\
import os
import time


def handler(event, context):
    if not event.get("bomb"):
        return {"pids": sorted(int(e) for e in os.listdir("/proc") if e.isdigit())}
    forks, stopped = 0, None
    started = time.monotonic()
    while forks < 5000:
        try:
            pid = os.fork()
        except OSError as exc:
            stopped = exc.errno
            break
        if pid == 0:
            try:
                time.sleep(30)
            finally:
                os._exit(0)
        forks += 1
    return {"forks": forks, "errno": stopped, "seconds": time.monotonic() - started}
"""

PID_LOOKER = """\
import os


def handler(event, context):
    return sorted(int(e) for e in os.listdir("/proc") if e.isdigit())
"""


def test_a_fork_bomb_is_capped_and_dies_with_its_environment(server, lambda_client, create_function):
    before = len(host_processes_of_uid(SANDBOX_UID, server))
    bomb = hostile(create_function, FORK_BOMB, MemorySize=1769, Timeout=30,
                   Environment={"Variables": {"GENERATION": "1"}})

    resp, result = invoke_json(lambda_client, bomb, {"bomb": True})

    assert "FunctionError" not in resp, result
    assert 0 < result["forks"] < 1100 and result["errno"] == errno.EAGAIN, result
    during = len(host_processes_of_uid(SANDBOX_UID, server))
    # the children are there, and counted (not `before +`: earlier tests' environments may end meanwhile)
    assert during >= result["forks"], (before, during, result)

    assert_ordinary_function_works(lambda_client, create_function)
    fresh = create_function(PID_LOOKER, Runtime=HOSTILE_RUNTIME)["FunctionName"]
    assert invoke_ok(lambda_client, fresh) == [1]
    assert server.proc.poll() is None

    lambda_client.update_function_configuration(FunctionName=bomb, Environment={"Variables": {"GENERATION": "2"}})
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=bomb, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
    # Left: at most the warm ordinary functions of this test (two) and of earlier tests (counted in `before`).
    wait_until(lambda: len(host_processes_of_uid(SANDBOX_UID, server)) <= before + 3, timeout=15, interval=0.2,
               what="the fork bomb's children to die with its retired environment")
    assert invoke_ok(lambda_client, bomb, {"bomb": False}) == {"pids": [1]}  # a clean new environment


SPINNING_BOMB = """\
import os


def handler(event, context):
    while True:  # fork until the process cap, every child spinning on the CPU; the timeout ends it
        try:
            if os.fork() == 0:
                while True:
                    pass
        except OSError:
            pass
"""


def test_a_spinning_fork_bomb_at_128_mb_dies_when_it_times_out(server, lambda_client, create_function):
    """At 128 MB an environment gets ~7 % of a CPU: its killed processes, throttled, used to take
    minutes to die. A killed environment's quota is lifted, so they die at once."""
    before = len(host_processes_of_uid(SANDBOX_UID, server))
    bomb = hostile(create_function, SPINNING_BOMB, MemorySize=128, Timeout=3)
    # a busy host: one spinning process per CPU, outside the sandbox, at the host's normal weight
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        resp, result = invoke_json(lambda_client, bomb, {})

        assert resp.get("FunctionError") == "Unhandled" and "timed out" in result["errorMessage"], result
        started = time.monotonic()
        wait_until(lambda: len(host_processes_of_uid(SANDBOX_UID, server)) <= before, timeout=60, interval=0.2,
                   what="the spinning fork bomb's processes to die with its timed-out environment")
        print(f"the bomb's processes were gone {time.monotonic() - started:.1f} s after the timeout")
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


# ---------------------------------------------------------------------------------------- 9. privileges

ESCALATOR = """\
import ctypes
import ctypes.util
import errno
import os

PR_GET_NO_NEW_PRIVS = 39


def handler(event, context):
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    out = {"no_new_privs": libc.prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)}
    for label, call in (("setuid", lambda: os.setuid(0)), ("seteuid", lambda: os.seteuid(0)),
                        ("setgid", lambda: os.setgid(0)), ("setgroups", lambda: os.setgroups([0])),
                        ("chroot", lambda: os.chroot("/tmp"))):
        try:
            call()
            out[label] = "succeeded"
        except OSError as exc:
            out[label] = type(exc).__name__
    mounts = {}
    for source, target, fstype, flags in ((b"tmpfs", b"/tmp", b"tmpfs", 0), (b"tmpfs", b"/var/task", b"tmpfs", 0),
                                          (b"proc", b"/tmp", b"proc", 0), (None, b"/", None, 32 | 4096)):
        result = libc.mount(source, target, fstype, flags, None)
        mounts[target.decode() + ":" + (fstype or b"remount").decode()] = (
            "succeeded" if result == 0 else errno.errorcode.get(ctypes.get_errno(), "?"))
    out["mount"] = mounts
    with open("/proc/self/status") as handle:
        status = dict(line.split(":", 1) for line in handle if ":" in line)
    out["caps"] = {key: status[key].strip() for key in ("CapInh", "CapPrm", "CapEff", "CapAmb")}
    out["uid"] = os.getuid()
    out["unshare_user"] = "succeeded" if libc.unshare(0x10000000) == 0 else errno.errorcode[ctypes.get_errno()]
    child = os.fork()  # a user namespace in a child (clone), as `unshare -r` would try next
    if child == 0:
        os._exit(0 if libc.unshare(0x10000000) == 0 else 1)
    out["child_unshare_user"] = "succeeded" if os.waitpid(child, 0)[1] == 0 else "refused"
    return out
"""


def test_a_function_cannot_gain_privileges(lambda_client, create_function):
    name = hostile(create_function, ESCALATOR)

    result = invoke_ok(lambda_client, name)

    assert result["no_new_privs"] == 1
    assert result["setuid"] == "PermissionError" and result["seteuid"] == "PermissionError", result
    assert result["setgid"] == "PermissionError" and result["setgroups"] == "PermissionError", result
    assert result["chroot"] == "PermissionError", result
    assert set(result["mount"].values()) == {"EPERM"}, result["mount"]
    assert set(result["caps"].values()) == {"0000000000000000"}, result["caps"]
    assert result["uid"] == SANDBOX_UID
    assert result["unshare_user"] == "EPERM" and result["child_unshare_user"] == "refused", result
    assert_ordinary_function_works(lambda_client, create_function)


NETWORK_PROBE = """
import os, socket, urllib.error, urllib.request

def handler(event, context):
    result = {"runtime_api": os.environ["AWS_LAMBDA_RUNTIME_API"],
              "interfaces": sorted(name for _index, name in socket.if_nameindex())}
    try:
        urllib.request.urlopen(event["server"] + "/2015-03-31/functions", timeout=2)
        result["server"] = "reached"
    except urllib.error.HTTPError:  # an answer all the same (function code may only invoke: 403)
        result["server"] = "reached"
    except OSError as exc:
        result["server"] = type(exc).__name__
    return result
"""


def test_an_isolated_network_has_only_loopback_and_cannot_reach_the_server(tmp_path):
    """With --sandbox-network isolated the server's own API (and everything else) is out of reach."""
    isolated = Server(tmp_path / "data", args=["--sandbox-network", "isolated"])
    isolated.start()
    try:
        client = isolated.client()
        client.create_function(FunctionName="probe", Runtime="python3.12", Role=ROLE, Handler="app.handler",
                               Code={"ZipFile": make_zip({"app.py": NETWORK_PROBE})}, Timeout=10)
        for _ in range(2):  # cold, then warm: the Runtime API keeps working inside the namespace
            resp, result = invoke_json(client, "probe", {"server": isolated.url})
            assert "FunctionError" not in resp, result
            assert result == {"runtime_api": "127.0.0.1:9001", "interfaces": ["lo"], "server": "URLError"}
    finally:
        isolated.stop()


DESCRIPTOR_PROBE = """
import os, stat

def handler(event, context):
    found = {}
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            mode = os.fstat(fd).st_mode
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the listing's own descriptor, closed by now
        found[fd] = {"directory": stat.S_ISDIR(mode), "target": target,
                     "escape": None}
        if stat.S_ISDIR(mode):  # a directory from outside the root would lead out of it
            try:
                found[fd]["escape"] = sorted(os.listdir(os.open("..", os.O_RDONLY, dir_fd=fd)))[:20]
            except OSError as exc:
                found[fd]["escape"] = type(exc).__name__
    return found
"""


def test_a_function_holds_no_descriptor_into_the_host(lambda_client, create_function):
    """Environments are prepared with host directories open (their cgroups, mount trees); none of
    those may survive into the function's process, where a directory descriptor from outside the
    root would be a way out of it."""
    name = hostile(create_function, DESCRIPTOR_PROBE)

    found = invoke_ok(lambda_client, name)

    directories = {fd: info for fd, info in found.items() if info["directory"]}
    assert directories == {}, directories
    for fd, info in found.items():
        assert "cgroup" not in info["target"], (fd, info)
        assert not info["target"].startswith("/sys"), (fd, info)


RUNTIME_API_REPORTER = """\
import os


def handler(event, context):
    return {"runtime_api": os.environ["AWS_LAMBDA_RUNTIME_API"], "event": event}
"""

RUNTIME_API_THIEF = """\
import socket


def ask(address, request):
    host, _, port = address.rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    try:
        sock.sendall(request)
        data = sock.recv(65536)
        return {"answer": data.decode(errors="replace")[:500]} if data else {"closed": True}
    except ConnectionResetError:
        return {"closed": True}
    except socket.timeout:
        return {"timeout": True}
    finally:
        sock.close()


def handler(event, context):
    return {
        "next": ask(event["runtime_api"], b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"),
        "response": ask(event["runtime_api"], b"POST /2018-06-01/runtime/invocation/x/response HTTP/1.1\\r\\n"
                                              b"Host: x\\r\\nContent-Length: 2\\r\\n\\r\\n{}"),
    }
"""


def test_a_function_cannot_use_another_environments_runtime_api(server, lambda_client, create_function):
    """Under the host network every Runtime API listens on the host's loopback. Another function's
    /next would take that environment's next event (its payload) and let the thief answer it; the
    listener closes any connection its own environment's processes did not make."""
    victim = create_function(RUNTIME_API_REPORTER, Runtime=HOSTILE_RUNTIME)["FunctionName"]
    runtime_api = invoke_ok(lambda_client, victim)["runtime_api"]  # warm, and waiting on /next
    thief = hostile(create_function, RUNTIME_API_THIEF)

    stolen = invoke_ok(lambda_client, thief, {"runtime_api": runtime_api})

    assert stolen == {"next": {"closed": True}, "response": {"closed": True}}, stolen
    secret = f"secret-{uuid.uuid4().hex}"
    assert invoke_ok(lambda_client, victim, {"secret": secret})["event"] == {"secret": secret}


CONNECTION_FLOOD = """\
import os
import socket
import time
from urllib.parse import urlparse


def still_open(socks):
    count = 0
    for sock in socks:
        try:
            count += sock.recv(1) != b""
        except BlockingIOError:
            count += 1
        except ConnectionResetError:
            pass
    return count


def handler(event, context):
    if event.get("endpoint"):  # the server's API
        url = urlparse(event["endpoint"])
        address = (url.hostname, url.port)
    else:  # this environment's own Runtime API
        host, _, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rpartition(":")
        address = (host, int(port))
    socks = [socket.create_connection(address, timeout=5) for _ in range(event["connections"])]
    for sock in socks:
        sock.setblocking(False)
    deadline = time.monotonic() + 5  # until the server has closed all it will close
    while still_open(socks) > event["at_most"] and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # and nothing more is closed after that
    result = {"open": still_open(socks)}
    for sock in socks:
        sock.close()
    return result
"""


def test_a_flood_of_runtime_api_connections_is_cut_off(server, lambda_client, create_function):
    """Each connection costs the server a file descriptor, which every environment needs: one
    environment's listener keeps at most 16 open and closes the rest at once."""
    name = hostile(create_function, CONNECTION_FLOOD)

    assert invoke_ok(lambda_client, name, {"connections": 200, "at_most": 16}) == {"open": 16}
    assert invoke_ok(lambda_client, name, {"connections": 0, "at_most": 0}) == {"open": 0}
    refusals = [line for line in server.log_text().splitlines()
                if f"({name}:$LATEST)" in line and "refused a Runtime API connection" in line]
    assert 1 <= len(refusals) <= 3, refusals  # at 1, 10 and 100, not 184 times


def test_function_code_cannot_hold_the_servers_connections(server, lambda_client, create_function):
    """Each API connection costs the server a file descriptor: connections from function code are
    capped (512, all functions together), the rest closed at once; the server serves on."""
    name = hostile(create_function, CONNECTION_FLOOD)

    result = invoke_ok(lambda_client, name, {"endpoint": server.url, "connections": 700, "at_most": 512})

    assert 500 <= result["open"] <= 512, result  # a warm function of another test may hold a few
    assert_ordinary_function_works(lambda_client, create_function)
    assert invoke_ok(lambda_client, name, {"endpoint": server.url, "connections": 10, "at_most": 512}) == {
        "open": 10}  # the first invocation's connections were closed, and counted out


API_CALLER = """\
import boto3
from botocore.config import Config


def handler(event, context):
    client = boto3.client("lambda", endpoint_url=event["endpoint"], region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x",
                          config=Config(retries={"max_attempts": 1}))
    logs = boto3.client("logs", endpoint_url=event["endpoint"], region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x")
    calls = {
        "invoke": lambda: client.invoke(FunctionName=event["victim"], Payload=b'{"n": 1}')["Payload"].read().decode(),
        "get_function_configuration": lambda: client.get_function_configuration(FunctionName=event["victim"])[
            "Environment"]["Variables"]["SECRET"],
        "get_function": lambda: client.get_function(FunctionName=event["victim"])["Code"]["Location"],
        "list_functions": lambda: len(client.list_functions()["Functions"]),
        "delete_function": lambda: client.delete_function(FunctionName=event["victim"]),
        "filter_log_events": lambda: len(logs.filter_log_events(logGroupName="/aws/lambda/" + event["victim"])[
            "events"]),
    }
    out = {}
    for name, call in calls.items():
        try:
            out[name] = {"ok": call()}
        except client.exceptions.ClientError as exc:
            out[name] = {"error": exc.response["Error"]["Code"], "status": exc.response["ResponseMetadata"][
                "HTTPStatusCode"]}
    return out
"""


def test_a_function_may_invoke_through_the_api_but_not_read_or_change_other_functions(server, lambda_client,
                                                                                       create_function):
    """Under the host network a function reaches the server's API, which does not authenticate: it may
    invoke (as a role with lambda:InvokeFunction), but not read another function's configuration,
    code or logs, nor change it (--sandbox-api-access invoke, the default)."""
    secret = f"env-secret-{uuid.uuid4().hex}"
    victim = create_function(ECHO_HANDLER, Environment={"Variables": {"SECRET": secret}})["FunctionName"]
    caller = hostile(create_function, API_CALLER)

    result = invoke_ok(lambda_client, caller, {"endpoint": server.url, "victim": victim})

    assert result.pop("invoke") == {"ok": '{"n": 1}'}, result
    # CloudWatch Logs answers its AccessDeniedException with a 400, as its common errors say
    assert result == {name: {"error": "AccessDeniedException", "status": 400 if name == "filter_log_events" else 403}
                      for name in result}, result
    assert set(result) == {"get_function_configuration", "get_function", "list_functions", "delete_function",
                           "filter_log_events"}
    assert lambda_client.get_function_configuration(FunctionName=victim)["Environment"]["Variables"] == {
        "SECRET": secret}  # the host's own clients are not functions


def test_sandbox_api_access_full_lets_functions_call_everything(tmp_path):
    full = Server(tmp_path / "data", args=["--sandbox-api-access", "full"])
    full.start()
    try:
        client = full.client()
        for name, code, env in (("victim", ECHO_HANDLER, {"SECRET": "s"}), ("caller", API_CALLER, {})):
            client.create_function(FunctionName=name, Runtime=HOSTILE_RUNTIME, Role=ROLE, Handler="app.handler",
                                   Code={"ZipFile": make_zip({"app.py": code})}, Timeout=30,
                                   Environment={"Variables": env})
        result = invoke_ok(client, "caller", {"endpoint": full.url, "victim": "victim"})
        assert result["get_function_configuration"] == {"ok": "s"}, result
        assert result["list_functions"] == {"ok": 2} and "ok" in result["delete_function"], result
    finally:
        full.stop()


LOG_FLOOD = """\
import sys


def handler(event, context):
    line = "x" * 1023 + "\\n"
    for _ in range(event["mb"] * 1024):
        sys.stdout.write(line)
    return {"printed_mb": event["mb"]}
"""


NO_NEWLINE = """\
import os


def handler(event, context):
    for _ in range(event["mb"] * 16):  # 64 KB at a time, and never a newline
        os.write(1, b"z" * 65536)
    return {"wrote_mb": event["mb"]}
"""


def test_output_without_newlines_is_logged_in_pieces_not_buffered_without_end(server, lambda_client,
                                                                                create_function):
    """The server buffers a line until its newline: without a bound, a function writing no newline
    would grow that buffer (and copy it at every read) until the server ran out of memory."""
    name = hostile(create_function, NO_NEWLINE)

    assert invoke_ok(lambda_client, name, {"mb": 4}) == {"wrote_mb": 4}

    pages = server.client("logs").get_paginator("filter_log_events").paginate(
        logGroupName=f"/aws/lambda/{name}", filterPattern="zzzz")  # about 1 MB of events a page
    events = [event for page in pages for event in page["events"]]
    pieces = [len(event["message"].rstrip("\n")) for event in events]
    assert sum(pieces) == 4 * MB and max(pieces) == 256 * 1024, pieces


OUTPUT_FLOOD = """\
import os
import time


def handler(event, context):
    chunk = (b"x" * 1023 + b"\\n") * 64
    written, end = 0, time.monotonic() + event["seconds"]
    while time.monotonic() < end:
        written += os.write(1, chunk)  # blocks while the server is not reading
    return {"mb_per_s": written / event["seconds"] / 1024 / 1024}
"""


def test_a_log_flood_is_read_at_a_bounded_rate(server, lambda_client, create_function):
    """The server reads every environment's output on its one event loop: past 8 MB/s it stops
    reading one for a moment, and the function's writes wait (unbounded, it managed ~120 MB/s)."""
    name = hostile(create_function, OUTPUT_FLOOD)

    result = invoke_ok(lambda_client, name, {"seconds": 1.5})

    assert 1 <= result["mb_per_s"] <= 8 * 1.3, result  # the limit, a window's slack and the pipe's 64 KB
    assert_ordinary_function_works(lambda_client, create_function)


def test_printing_without_end_is_capped_by_the_log_group_limit_not_the_disk(tmp_path):
    capped = Server(tmp_path / "data", args=["--max-log-group-mb", "1"])
    capped.start()
    try:
        client = capped.client()
        client.create_function(FunctionName="flood", Runtime=HOSTILE_RUNTIME, Role=ROLE, Handler="app.handler",
                               Code={"ZipFile": make_zip({"app.py": LOG_FLOOD})}, Timeout=60)
        for _ in range(2):  # the second time, the first's stream is still written to: new lines are dropped
            assert invoke_ok(client, "flood", {"mb": 4}) == {"printed_mb": 4}
        events = capped.client("logs").filter_log_events(logGroupName="/aws/lambda/flood",
                                                         filterPattern='"lines of this stream are dropped"')
        assert len(events["events"]) == 1, events["events"]
        group = next((Path(capped.data_dir) / "logs").iterdir())
        on_disk = sum(path.stat().st_size for path in group.glob("*.log"))
        assert on_disk <= MB + 4096, on_disk
        assert invoke_ok(client, "flood", {"mb": 0}) == {"printed_mb": 0}  # the function still works
    finally:
        capped.stop()


NETWORK_TAG = "lambdalet:sandbox-network"
NETWORK_TAG = "lambdalet:sandbox-network"


def test_one_function_can_be_isolated_while_the_others_share_the_host_network(server, lambda_client,
                                                                               create_function):
    """The lambdalet:sandbox-network tag overrides --sandbox-network for one function; changing
    it retires the function's environments, so the next invoke already runs on the new network."""
    isolated = hostile(create_function, NETWORK_PROBE, Tags={NETWORK_TAG: "isolated"})
    shared = hostile(create_function, NETWORK_PROBE)
    event = {"server": server.url}

    for _ in range(2):  # cold, then warm
        assert invoke_ok(lambda_client, isolated, event) == {
            "runtime_api": "127.0.0.1:9001", "interfaces": ["lo"], "server": "URLError"}
    result = invoke_ok(lambda_client, shared, event)
    assert result["server"] == "reached" and result["runtime_api"] != "127.0.0.1:9001"

    arn = lambda_client.get_function(FunctionName=isolated)["Configuration"]["FunctionArn"]
    lambda_client.tag_resource(Resource=arn, Tags={NETWORK_TAG: "host"})
    assert invoke_ok(lambda_client, isolated, event)["server"] == "reached"
    lambda_client.untag_resource(Resource=arn, TagKeys=[NETWORK_TAG])  # back to the server's default
    assert invoke_ok(lambda_client, isolated, event)["server"] == "reached"
    lambda_client.tag_resource(Resource=arn, Tags={NETWORK_TAG: "isolated"})
    assert invoke_ok(lambda_client, isolated, event)["server"] == "URLError"


def test_a_network_tag_that_cannot_be_honoured_is_refused(lambda_client, create_function):
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException, match="host, isolated"):
        create_function(ECHO_HANDLER, Tags={NETWORK_TAG: "vpc"})
    name = create_function(ECHO_HANDLER, Runtime="python3.12", SnapStart={"ApplyOn": "PublishedVersions"})[
        "FunctionName"]
    arn = lambda_client.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException, match="SnapStart needs the host"):
        lambda_client.tag_resource(Resource=arn, Tags={NETWORK_TAG: "isolated"})
    assert NETWORK_TAG not in lambda_client.list_tags(Resource=arn)["Tags"]

    other = create_function(ECHO_HANDLER, Runtime="python3.12", Tags={NETWORK_TAG: "isolated"})["FunctionName"]
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException, match="SnapStart needs the host"):
        lambda_client.update_function_configuration(FunctionName=other, SnapStart={"ApplyOn": "PublishedVersions"})


def test_the_process_backend_refuses_an_isolated_network(tmp_path):
    """It cannot give a function a network of its own, so it must not accept the setting."""
    plain = Server(tmp_path / "data", args=["--sandbox", "process"])
    plain.start()
    try:
        client = plain.client()
        with pytest.raises(client.exceptions.InvalidParameterValueException, match="linux sandbox backend"):
            client.create_function(FunctionName="probe", Runtime="python3.12", Role=ROLE, Handler="app.handler",
                                   Code={"ZipFile": make_zip({"app.py": NETWORK_PROBE})},
                                   Tags={NETWORK_TAG: "isolated"})
    finally:
        plain.stop()


KERNEL_SURFACE = """
import ctypes, errno, json, os

NUMBERS = json.loads({numbers!r})

def handler(event, context):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    out = {{}}
    key_type, description, payload = ctypes.c_char_p(b"user"), ctypes.c_char_p(b"shared-secret"), b"s3cret"
    KEY_SPEC_USER_KEYRING = -4
    calls = {{
        "add_key": (key_type, description, payload, len(payload), KEY_SPEC_USER_KEYRING),
        "request_key": (key_type, description, None, 0),
        "keyctl": (0, KEY_SPEC_USER_KEYRING, 0),  # KEYCTL_GET_KEYRING_ID
        "io_uring_setup": (8, ctypes.create_string_buffer(120)),
        "bpf": (0, None, 0),
        "userfaultfd": (0,),
        "perf_event_open": (ctypes.create_string_buffer(128), 0, -1, -1, 0),
        "setns": (0, 0),
    }}
    for name, args in calls.items():
        result = libc.syscall(NUMBERS[name], *args)
        out[name] = "succeeded" if result >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")
    out["getpid"] = "succeeded" if libc.syscall(NUMBERS["getpid"]) > 0 else "failed"
    return out
"""


def test_the_kernel_keyring_io_uring_and_other_surface_are_refused(lambda_client, create_function):
    """All functions run as one uid, so the uid's keyring would be shared between them: refused with
    EPERM, as Docker's default seccomp profile refuses it, and so is the rest of its list."""
    import platform

    from lambdalet.sandbox.confine import DENIED

    numbers = {name: DENIED[platform.machine()][name] for name in
               ("add_key", "request_key", "keyctl", "io_uring_setup", "bpf", "userfaultfd", "perf_event_open", "setns")}
    numbers["getpid"] = {"x86_64": 39, "aarch64": 172}[platform.machine()]
    name = hostile(create_function, KERNEL_SURFACE.format(numbers=json.dumps(numbers)))

    result = invoke_ok(lambda_client, name)

    assert result.pop("getpid") == "succeeded"
    assert set(result.values()) == {"EPERM"}, result
    assert_ordinary_function_works(lambda_client, create_function)
