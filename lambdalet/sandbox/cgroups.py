"""Per-environment cgroups: memory at MemorySize, CPU in proportion to memory, a process cap.

Works on cgroup v2 (one unified hierarchy with `memory.max`, `cpu.max`, `pids.max`) and on v1
(separate `memory`, `cpu` and `pids` hierarchies). Lambdalet's groups nest under the server's own
cgroup in each hierarchy (`<own>/lambdalet-<pid>/<environment>`), so a delegated or containerised
server stays inside what it was given. Out-of-memory kills are told apart from other kills by the
group's `oom_kill` counter; REPORT's Max Memory Used comes from the group's peak usage.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
ROOT = Path("/sys/fs/cgroup")
MB = 1024 * 1024
CPU_PERIOD_US = 100_000
PIDS_MAX = 1024  # Lambda's processes/threads quota


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
    procs_files: tuple[str, ...]
    memory_dir: Path
    cpu_dir: Path
    cpu_quota_us: int
    version: int

    def throttle_cpu(self) -> None:
        """Apply the CPU share. Init runs without it, as Lambda's init runs with burst CPU."""
        try:
            if self.version == 1:
                (self.cpu_dir / "cpu.cfs_quota_us").write_text(str(self.cpu_quota_us))
            else:
                (self.cpu_dir / "cpu.max").write_text(f"{self.cpu_quota_us} {CPU_PERIOD_US}")
        except OSError:
            log.debug("could not set the CPU quota of %s", self.cpu_dir)

    def peak_memory_mb(self) -> int:
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        try:
            return -(-int((self.memory_dir / name).read_text()) // MB)
        except (OSError, ValueError):
            return 0

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
        self._leftovers: list[EnvironmentCgroup] = []

    def create(self, env_id: str, memory_mb: int) -> EnvironmentCgroup:
        limits = {
            "memory": {"memory.limit_in_bytes": memory_mb * MB} if self.version == 1 else {
                "memory.max": memory_mb * MB, "memory.swap.max": 0},
            "cpu": {"cpu.cfs_period_us": CPU_PERIOD_US, "cpu.cfs_quota_us": -1}
            if self.version == 1 else {"cpu.max": f"max {CPU_PERIOD_US}"},
            "pids": {"pids.max": PIDS_MAX},
        }
        dirs: list[Path] = []
        if self.version == 2:
            directory = self.parents["unified"] / env_id
            directory.mkdir()
            dirs.append(directory)
            for settings in limits.values():
                _write_all(directory, settings)
            memory_dir = cpu_dir = directory
        else:
            for controller, parent in self.parents.items():
                directory = parent / env_id
                directory.mkdir()
                dirs.append(directory)
                _write_all(directory, limits[controller])
            memory_dir, cpu_dir = self.parents["memory"] / env_id, self.parents["cpu"] / env_id
        return EnvironmentCgroup(tuple(dirs), tuple(str(d / "cgroup.procs") for d in dirs), memory_dir, cpu_dir,
                                 cpu_quota_us(memory_mb, self.mb_per_vcpu), self.version)

    def release(self, group: EnvironmentCgroup) -> None:
        if not group.remove():
            self._leftovers.append(group)
        self._leftovers = [g for g in self._leftovers if not g.remove()]

    def close(self) -> None:
        for parent in self.parents.values():
            for child in parent.iterdir() if parent.exists() else ():
                if child.is_dir():
                    try:
                        child.rmdir()
                    except OSError:
                        pass
            try:
                parent.rmdir()
            except OSError:
                log.debug("cgroup %s not removed", parent)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _write_all(directory: Path, settings: dict[str, object]) -> None:
    for name, value in settings.items():
        path = directory / name
        if path.exists():
            path.write_text(str(value))


def available() -> str | None:
    """None when per-environment cgroups can be made here, else why not."""
    if os.geteuid() != 0:
        return "not running as root"
    if not (ROOT / "cgroup.controllers").exists() and not (ROOT / "memory").is_dir():
        return "no cgroup v2 memory controller and no v1 memory hierarchy"
    return None
