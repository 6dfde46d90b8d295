"""Per-environment cgroups: memory at MemorySize, CPU in proportion to memory, a process cap.

Works on cgroup v2 (one unified hierarchy with `memory.max`, `cpu.max`, `pids.max`) and on v1
(separate `memory`, `cpu` and `pids` hierarchies). Lambdalet's groups nest under the server's own
cgroup in each hierarchy (`<own>/lambdalet-<pid>/...`), so a delegated or containerised server
stays inside what it was given. Moving a process between groups can wait for an RCU grace period
(10-15 ms on cgroup v1), so a zygote moves each spare into groups of its own when it makes it, and
only writes the function's limits (`limits`) when the spare becomes an environment; the server
then `adopt`s those groups. Out-of-memory kills are told apart from other kills by the group's
`oom_kill` counter; REPORT's Max Memory Used comes from the group's peak usage.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)
ROOT = Path("/sys/fs/cgroup")
MB = 1024 * 1024
#: The CPU quota's accounting period: 1 s, the longest the kernel allows. With the default 100 ms
#: a 128 MB environment (7.2 ms of CPU per period) that is invoked back to back used up its quota
#: within the period and stalled for the rest of it: 3-5 % of warm invokes took 50-70 ms (p99 34 ms
#: against a p50 of 1 ms, bench/invoke.py --memory 128). Over a second the share is the same, so a
#: CPU-bound function still gets its 7 % of a core; what changes is that short bursts run at full
#: speed while the second's budget lasts, and a stall, when the budget is spent, is rarer and longer.
CPU_PERIOD_US = 1_000_000
PIDS_MAX = 1024  # Lambda's processes/threads quota
#: Under CPU contention, every environment together weighs a quarter of one ordinary process of
#: the host (cpu.shares 256 of 1,024, cpu.weight 25 of 100): the server's one event loop serves all
#: of them, and function code must not make it wait. Each environment's own cap (CPU in proportion
#: to memory, `cpu_quota_us`) is unchanged, and without contention nothing changes at all.
#: 8 warm clients, three alternating 5 s runs: 2,090 / 2,093 / 1,894 invokes/s against 1,720 /
#: 1,945 / 1,638 at the default weight.
ENVIRONMENTS_CPU_SHARE = 0.25


def cpu_quota_us(memory_mb: int, mb_per_vcpu: int) -> int:
    return max(1000, CPU_PERIOD_US * memory_mb // mb_per_vcpu)


def _own_path(controller: str | None) -> str:
    """This process's cgroup path in a v1 controller's hierarchy (None: the v2 unified one)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _id, controllers, path = line.split(":", 2)
        if (controller is None and controllers == "") or (controller in controllers.split(",")):
            return path.lstrip("/")
    raise OSError(f"not in a {controller or 'v2'} cgroup")


@dataclass(frozen=True)
class EnvironmentCgroup:
    """The groups of one environment: where its process joins and where its usage is read."""

    dirs: tuple[Path, ...]
    memory_dir: Path
    cpu_dir: Path
    cpu_quota_us: int
    version: int
    _peak_fd: int | None = field(default=None, repr=False, compare=False)

    def throttle_cpu(self) -> None:
        """Apply the CPU share. Init runs without it, as Lambda's init runs with burst CPU."""
        try:
            if self.version == 1:
                (self.cpu_dir / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
                (self.cpu_dir / "cpu.cfs_quota_us").write_text(str(self.cpu_quota_us))
            else:
                (self.cpu_dir / "cpu.max").write_text(f"{self.cpu_quota_us} {CPU_PERIOD_US}")
        except OSError:
            log.debug("could not set the CPU quota of %s", self.cpu_dir)

    def resize(self, memory_mb: int, environments: int) -> None:
        """A SnapStart template's group: memory and CPU for `environments` environments."""
        try:
            if self.version == 1:
                (self.memory_dir / "memory.limit_in_bytes").write_text(str(memory_mb * MB * environments))
                (self.cpu_dir / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
                (self.cpu_dir / "cpu.cfs_quota_us").write_text(str(self.cpu_quota_us * environments))
            else:
                (self.memory_dir / "memory.max").write_text(str(memory_mb * MB * environments))
                (self.cpu_dir / "cpu.max").write_text(f"{self.cpu_quota_us * environments} {CPU_PERIOD_US}")
        except OSError:
            log.warning("could not resize the SnapStart template group %s", self.memory_dir)

    def peak_memory_mb(self) -> int:
        """Read after every invocation, so through one descriptor kept open: a single pread."""
        try:
            if self._peak_fd is None:
                name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
                object.__setattr__(self, "_peak_fd", os.open(self.memory_dir / name, os.O_RDONLY | os.O_CLOEXEC))
            return -(-int(os.pread(self._peak_fd, 32, 0)) // MB)
        except (OSError, ValueError, TypeError):
            return 0

    def procs(self) -> list[int]:
        """The processes in the group (host pids)."""
        try:
            return [int(pid) for pid in (self.memory_dir / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def kill_remaining(self) -> None:
        """SIGKILL every process still in the group, with its CPU quota lifted first: a killed
        process only dies once it runs, and a fork bomb's hundreds of processes throttled to 7 % of
        a CPU (128 MB) took minutes to, on a loaded host. `cgroup.kill` where the kernel has it."""
        try:
            if self.version == 1:
                (self.cpu_dir / "cpu.cfs_quota_us").write_text("-1")
            else:
                (self.cpu_dir / "cpu.max").write_text("max")
        except OSError:
            pass
        kill_file = self.memory_dir / "cgroup.kill"
        if self.version == 2 and kill_file.exists():
            try:
                kill_file.write_text("1")
                return
            except OSError:
                pass
        for pid in self.procs():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def close(self) -> None:
        if self._peak_fd is not None:
            os.close(self._peak_fd)
            object.__setattr__(self, "_peak_fd", None)

    def oom_killed(self) -> bool:
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            for line in (self.memory_dir / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value) > 0
        except (OSError, ValueError):
            pass
        return False

    def remove(self) -> bool:
        """Remove the groups once their processes are gone; False if the kernel still holds one."""
        done = True
        for directory in self.dirs:
            try:
                directory.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                done = False
        return done


class Cgroups:
    """Creates environment cgroups under `<own cgroup>/lambdalet-<server pid>`."""

    def __init__(self, mb_per_vcpu: int) -> None:
        self.mb_per_vcpu = mb_per_vcpu
        self.version = 2 if "memory" in _read(ROOT / "cgroup.controllers").split() else 1
        name = f"lambdalet-{os.getpid()}"
        if self.version == 2:
            parent = ROOT / _own_path(None) / name
            parent.mkdir(exist_ok=True)
            enabled = _read(parent.parent / "cgroup.subtree_control").split()
            for controller in ("memory", "cpu", "pids"):
                if controller not in enabled:
                    (parent.parent / "cgroup.subtree_control").write_text(f"+{controller}")
            (parent / "cgroup.subtree_control").write_text("+memory +cpu +pids")
            self.parents = {"unified": parent}
        else:
            self.parents = {}
            for controller in ("memory", "cpu", "pids"):
                parent = ROOT / controller / _own_path(controller) / name
                parent.mkdir(exist_ok=True)
                self.parents[controller] = parent
        self._weigh_environments()
        self._leftovers: list[EnvironmentCgroup] = []
        # rmdir of a cgroup usually takes ~0.25 ms but sometimes 10 ms (the kernel offlines its
        # state), and a write 0.1-0.3 ms: never on the event loop. One thread, so `_leftovers`
        # needs no lock, and an environment's writes and its removal happen in order.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lambdalet-cgroups")
        self._closed = False
        for parent in self.parents.values():
            _remove_stale_siblings(parent)

    def _weigh_environments(self) -> None:
        """Under CPU contention, all environments together weigh ENVIRONMENTS_CPU_SHARE of one
        ordinary process of the host."""
        try:
            if self.version == 1:
                (self.parents["cpu"] / "cpu.shares").write_text(str(int(1024 * ENVIRONMENTS_CPU_SHARE)))
            else:
                (self.parents["unified"] / "cpu.weight").write_text(str(int(100 * ENVIRONMENTS_CPU_SHARE)))
        except OSError:
            log.warning("could not lower the environments' CPU weight; function code competes with the server")

    def zygote_parents(self) -> dict[str, str]:
        """Where a zygote makes its spares' groups: one parent per hierarchy."""
        return {key: str(parent) for key, parent in self.parents.items()}

    def limits(self, memory_mb: int) -> dict[str, list[list[object]]]:
        """The files a zygote writes into a spare's groups when it becomes an environment.

        CPU stays unlimited until init is done (`EnvironmentCgroup.throttle_cpu`).
        """
        if self.version == 2:
            return {"unified": [["memory.max", memory_mb * MB], ["memory.swap.max", 0], ["pids.max", PIDS_MAX]]}
        return {"memory": [["memory.limit_in_bytes", memory_mb * MB]], "pids": [["pids.max", PIDS_MAX]]}

    def adopt(self, name: str, memory_mb: int) -> EnvironmentCgroup:
        """The groups a zygote made for one environment (named `name` under each parent)."""
        dirs = tuple(parent / name for parent in self.parents.values())
        memory_dir = self.parents["unified" if self.version == 2 else "memory"] / name
        cpu_dir = self.parents["unified" if self.version == 2 else "cpu"] / name
        return EnvironmentCgroup(dirs, memory_dir, cpu_dir, cpu_quota_us(memory_mb, self.mb_per_vcpu), self.version)

    def in_background(self, work: Callable[[], None]) -> None:
        """Run a write to an environment's groups on the cgroup thread (none once closed)."""
        if not self._closed:
            self._worker.submit(work)

    def release(self, group: EnvironmentCgroup) -> None:
        """An environment is gone: remove its groups (and retry earlier ones the kernel still held).
        An environment that ends after close() needs nothing: close() removed every group."""
        group.close()
        if not self._closed:
            self._worker.submit(self._remove, group)

    def _remove(self, group: EnvironmentCgroup) -> None:
        if not group.remove():  # processes left behind (the environment's children, dying): finish them
            group.kill_remaining()
            self._leftovers.append(group)
        self._leftovers = [g for g in self._leftovers if not g.remove()]

    def close(self) -> None:
        """Kill what is left in every group and remove them; the last processes may take a moment to die."""
        self._closed = True
        self._worker.shutdown(wait=True)
        for parent in self.parents.values():
            for child in parent.iterdir() if parent.exists() else ():
                if child.is_dir():
                    _kill_group(child, self.version)
        deadline = time.monotonic() + 2.0
        while not all(_remove_tree(parent) for parent in self.parents.values()):
            if time.monotonic() > deadline:
                log.warning("some cgroups under %s could not be removed yet", list(self.parents.values()))
                return
            time.sleep(0.05)


def _kill_group(directory: Path, version: int) -> None:
    """At server exit: SIGKILL the processes of a group (any hierarchy), CPU quota lifted first."""
    quota = directory / ("cpu.cfs_quota_us" if version == 1 else "cpu.max")
    try:
        if quota.exists():
            quota.write_text("-1" if version == 1 else "max")
    except OSError:
        pass
    try:
        pids = [int(pid) for pid in (directory / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _remove_tree(parent: Path) -> bool:
    """rmdir a Lambdalet parent group and its children; True when it is gone."""
    if not parent.exists():
        return True
    for child in parent.iterdir():
        if child.is_dir():
            try:
                child.rmdir()
            except OSError:
                pass
    try:
        parent.rmdir()
        return True
    except OSError:
        return False


def _remove_stale_siblings(parent: Path) -> None:
    """Groups left by Lambdalet servers that died without cleaning up (their pid is gone)."""
    for sibling in parent.parent.glob("lambdalet-*"):
        try:
            os.kill(int(sibling.name.removeprefix("lambdalet-")), 0)
        except ProcessLookupError:
            _remove_tree(sibling)
        except (ValueError, PermissionError):
            pass


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def available() -> str | None:
    """None when per-environment cgroups can be made here, else why not."""
    if os.geteuid() != 0:
        return "not running as root"
    if not (ROOT / "cgroup.controllers").exists() and not (ROOT / "memory").is_dir():
        return "no cgroup v2 memory controller and no v1 memory hierarchy"
    return None
