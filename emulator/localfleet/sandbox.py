# ruff: noqa: S108  # "/tmp" here names paths inside the guest, not temporary files of this process
"""A Linux guest for the local fleet: remediation scripts really run, as root, in isolation.

Each :class:`Sandbox` stands for one VM. A script runs inside

* a **network namespace** of its own (``ip netns``) with loopback only: a TCP listener on 22 plays sshd,
  and iptables rules inside the namespace play the guest firewall;
* a **mount namespace** (bubblewrap) that sees the host's system directories read-only and a private,
  writable ``/var`` and ``/tmp`` seeded with realistic content (rotated logs, a journal, an apt cache,
  core dumps, old temp files) next to "user data" a remediation must never delete;
* **size-limited data disks** (tmpfs with ``size=``) mounted where the guest expects them and filled to
  a set level, so a full disk is really full and freed space is really free.

The guest has no init system, so a small ``systemctl`` stand-in (state files under ``/run/guest``)
lets scripts query, start and enable units; starting the ssh unit starts the listener for real.

State persists across runs until :meth:`Sandbox.close`, which kills what the guest started, deletes
the namespace, unmounts the disks and removes the working directory, also after a failure.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from autoremediation.errors import InvalidInput, RemediationError

GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Host top-level entries a guest never sees from the host: they are private or virtual in the guest.
_PRIVATE_TOP = frozenset({"dev", "proc", "sys", "tmp", "var", "run", "lost+found", "mnt", "media"})
_DAY = 86400
_BLOCK = 4096


class SandboxError(RemediationError):
    """The sandbox could not be built, or a host command it needs failed."""


@dataclass(frozen=True)
class DiskSpec:
    """A size-limited filesystem mounted at ``mount`` inside the guest, filled to ``used_percent``."""

    mount: str
    size_mb: int
    used_percent: float


@dataclass(frozen=True)
class GuestSpec:
    disks: tuple[DiskSpec, ...] = ()
    ssh_listening: bool = True  # sshd runs and listens on 22
    firewall_drop_ports: tuple[int, ...] = ()  # iptables rules dropping these inbound TCP ports
    sshd_stopped: bool = False  # the ssh unit exists but is stopped: nothing listens until it starts
    # Extra units for the systemctl stand-in: (name, state) with state one of
    # "active", "inactive", "failed" (starts fine) or "broken" (fails every start). A name without a
    # unit type is a service ("nginx" is "nginx.service"); other types keep theirs ("poweroff.target").
    services: tuple[tuple[str, str], ...] = ()
    # Unit-file states of declared units: (name, state) with state one of "enabled" (the default for
    # every unit), "disabled", "static" or "masked" (the unit cannot be started or enabled).
    unit_files: tuple[tuple[str, str], ...] = ()
    # (alias, unit): the alias answers for a declared unit, as a symlink in /etc/systemd/system does.
    unit_aliases: tuple[tuple[str, str], ...] = ()
    # (unit, text): the unit file of a declared unit. Without one, `systemctl show` reads the unit's
    # real file where the guest has it (/etc/systemd/system, /lib/systemd/system, ...).
    unit_texts: tuple[tuple[str, str], ...] = ()
    # (guest path, text): files the guest sees in place of the host's, read-only (e.g. /etc/hosts, a CA
    # bundle). The path must exist on the host: a file is bound over it.
    files: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ScriptResult:
    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool
    killed: bool


class ScriptProcess:
    """A script running in a sandbox; ``wait`` enforces the timeout given at start.

    Output goes to files, not pipes: a background process the script leaves behind keeps a pipe
    open, and the run would look hung although the script has ended.
    """

    def __init__(
        self, proc: subprocess.Popen[bytes], timeout: float, out: pathlib.Path, err: pathlib.Path
    ) -> None:
        self._proc = proc
        self._deadline = time.monotonic() + timeout
        self._out = out
        self._err = err
        self._result: ScriptResult | None = None
        self._killed = False

    def wait(self, timeout: float | None = None) -> ScriptResult | None:
        """The result, or None if the script still runs after ``timeout`` seconds."""
        if self._result is not None:
            return self._result
        remaining = self._deadline - time.monotonic()
        budget = remaining if timeout is None else min(timeout, remaining)
        timed_out = False
        try:
            self._proc.wait(timeout=max(budget, 0.0))
        except subprocess.TimeoutExpired:
            if time.monotonic() < self._deadline and not self._killed:
                return None
            timed_out = not self._killed
            self._kill_group()
            self._proc.wait()
        # What the script started and left in its process group ends with it.
        self._kill_group()
        self._result = ScriptResult(
            exit_code=None if (timed_out or self._killed) else self._proc.returncode,
            stdout=self._out.read_text(encoding="utf-8", errors="replace"),
            stderr=self._err.read_text(encoding="utf-8", errors="replace"),
            timed_out=timed_out,
            killed=self._killed,
        )
        return self._result

    @property
    def pid(self) -> int:
        """The script's process (also its process group)."""
        return self._proc.pid

    def kill(self) -> None:
        if self._result is None:
            self._killed = True
            self._kill_group()

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)


@functools.cache
def sandbox_available() -> tuple[bool, str]:
    """Whether this machine can build sandboxes, and if not, why (for a skip message)."""
    if sys.platform != "linux":
        return False, "sandboxes need Linux namespaces"
    if os.geteuid() != 0:
        return False, "sandboxes need root (mounts, network namespaces, firewall rules)"
    tools = ("bwrap", "ip", "iptables", "nft", "mount", "umount", "mountpoint")
    missing = [tool for tool in tools if not shutil.which(tool)]
    if missing:
        packages = "bubblewrap, iproute2, iptables, nftables, util-linux"
        return False, f"missing tools: {', '.join(missing)} (Debian packages: {packages})"
    probe = pathlib.Path(tempfile.mkdtemp(prefix="sandbox-probe-"))
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)], capture_output=True, check=False
        )
        if done.returncode != 0:
            return False, f"cannot mount tmpfs: {done.stderr.decode(errors='replace').strip()}"
        subprocess.run(["umount", str(probe)], check=False)
    finally:
        probe.rmdir()
    return True, "ok"


def _run(args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise SandboxError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


_names = itertools.count()


class Sandbox:
    """One guest VM. ``workdir`` must be a fresh, empty or missing directory owned by this sandbox."""

    def __init__(self, name: str, spec: GuestSpec, workdir: pathlib.Path) -> None:
        for disk in spec.disks:
            _check_guest_path(disk.mount)
            if disk.size_mb < 1 or not 0 <= disk.used_percent < 100:
                raise InvalidInput(f"disk {disk.mount}: size_mb must be >= 1 and used_percent in [0, 100)")
        if len({d.mount for d in spec.disks}) != len(spec.disks):
            raise InvalidInput("two disks share a mount point")
        self.name = name
        self.spec = spec
        self.workdir = pathlib.Path(workdir)
        # Unique across pytest workers: netns names are global to the host.
        self.netns = f"ar-{os.getpid()}-{next(_names)}-{uuid.uuid4().hex[:6]}"
        self._mounted: list[pathlib.Path] = []
        self._netns_made = False
        self._started = False
        self._running: list[ScriptProcess] = []
        self._runs = itertools.count()

    # -- paths ------------------------------------------------------------------------------------
    @property
    def state_dir(self) -> pathlib.Path:
        """Guest ``/run/guest``: unit states and pids of what the guest started."""
        return self.workdir / "state"

    def host_path(self, guest_path: str) -> pathlib.Path:
        """Where a guest path under a disk, ``/var`` or ``/tmp`` lives on the host (for tests)."""
        _check_guest_path(guest_path)
        for index, disk in sorted(enumerate(self.spec.disks), key=lambda d: -len(d[1].mount)):
            if _under(guest_path, disk.mount):
                return self._disk_dir(index) / guest_path[len(disk.mount) :].lstrip("/")
        for top in ("/var", "/tmp"):
            if _under(guest_path, top):
                return self.workdir / top.lstrip("/") / guest_path[len(top) :].lstrip("/")
        raise InvalidInput(f"{guest_path} is read-only in the guest (not under a disk, /var or /tmp)")

    def _disk_dir(self, index: int) -> pathlib.Path:
        return self.workdir / "disks" / str(index)

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        if self._started:
            return
        ok, reason = sandbox_available()
        if not ok:
            raise SandboxError(f"sandbox unavailable: {reason}")
        self._started = True
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for sub in ("var", "tmp", "state/units", "state/unitfiles", "state/pids", "scripts", "files"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        (self.workdir / "tmp").chmod(0o1777)
        for index, disk in enumerate(self.spec.disks):
            target = self._disk_dir(index)
            target.mkdir(parents=True)
            _run(["mount", "-t", "tmpfs", "-o", f"size={disk.size_mb}m,mode=0755", "tmpfs", str(target)])
            self._mounted.append(target)
        _run(["ip", "netns", "add", self.netns])
        self._netns_made = True
        _run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        for port in self.spec.firewall_drop_ports:
            self._iptables(["-A", "INPUT", "-p", "tcp", "--dport", str(int(port)), "-j", "DROP"])
        self._write_guest_tools()
        for index, (guest_path, text) in enumerate(self.spec.files):
            _check_guest_path(guest_path)
            if not pathlib.Path(guest_path).is_file():
                raise InvalidInput(f"guest file {guest_path}: no such file to bind over")
            (self.workdir / "files" / str(index)).write_text(text)
        seed_guest(self)
        for index, disk in enumerate(self.spec.disks):
            fill_disk(self._disk_dir(index), disk)
        if self.spec.ssh_listening and not self.spec.sshd_stopped:
            _run(["ip", "netns", "exec", self.netns, *self._listener_cmd(22)])

    def _iptables(self, args: list[str]) -> str:
        return _run(["ip", "netns", "exec", self.netns, "iptables", "-w", *args]).stdout

    def firewall_rules(self) -> str:
        """The guest's IPv4 firewall as ``iptables -S`` prints it."""
        return self._iptables(["-S"])

    def _listener_cmd(self, port: int) -> list[str]:
        return [self._python, str(self.state_dir / "listener.py"), str(port), str(self.state_dir / "pids")]

    @functools.cached_property
    def _python(self) -> str:
        return os.path.realpath(sys.executable)

    def _write_guest_tools(self) -> None:
        listener = self.state_dir / "listener.py"
        listener.write_text(_LISTENER)
        (self.state_dir / "unitprops.py").write_text(_UNITPROPS)
        shim = self.state_dir / "systemctl"
        shim.write_text(_SYSTEMCTL.replace("@PYTHON@", self._python))
        shim.chmod(0o755)
        units = {_unit_key(name): state for name, state in self.spec.services}
        if self.spec.ssh_listening or self.spec.sshd_stopped:
            units["ssh"] = "inactive" if self.spec.sshd_stopped else "active"
        file_states = dict.fromkeys(units, "enabled")
        for name, file_state in self.spec.unit_files:
            if _unit_key(name) not in units:
                raise InvalidInput(f"unit file {name}: the unit is not declared in services")
            if file_state not in {"enabled", "disabled", "static", "masked"}:
                raise InvalidInput(f"unit file {name}: unknown state {file_state!r}")
            file_states[_unit_key(name)] = file_state
        folder = self.state_dir / "units"
        for unit, state in units.items():
            if state not in {"active", "inactive", "failed", "broken"}:
                raise InvalidInput(f"service {unit}: unknown state {state!r}")
            (folder / unit).write_text(state + "\n")
            (folder / f"{unit}.unit-file").write_text(file_states[unit] + "\n")
        for alias, unit in self.spec.unit_aliases:
            if _unit_key(unit) not in units or _unit_key(alias) in units:
                raise InvalidInput(f"alias {alias}: must name a declared unit and not be one itself")
            (folder / f"{_unit_key(alias)}.alias").write_text(_unit_key(unit) + "\n")
        for unit, text in self.spec.unit_texts:
            if _unit_key(unit) not in units:
                raise InvalidInput(f"unit text {unit}: the unit is not declared in services")
            key = _unit_key(unit)
            kinds = ("target", "socket", "mount", "automount", "swap", "path", "timer", "slice", "scope")
            full = key if key.rsplit(".", 1)[-1] in kinds else f"{key}.service"
            (self.state_dir / "unitfiles" / full).write_text(text)

    def close(self) -> None:
        """Stop everything the sandbox started and remove it; safe to call twice."""
        for proc in self._running:
            proc.kill()
            proc.wait()
        self._running.clear()
        pids = self.state_dir / "pids"
        if pids.is_dir():
            for pidfile in pids.iterdir():
                with contextlib.suppress(ValueError, ProcessLookupError, OSError):
                    os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
        if self._netns_made:
            _run(["ip", "netns", "del", self.netns], check=False)
            self._netns_made = False
        for target in reversed(self._mounted):
            if _run(["umount", str(target)], check=False).returncode != 0:
                _run(["umount", "-l", str(target)], check=False)
        self._mounted.clear()
        if self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running scripts --------------------------------------------------------------------------
    def start_script(self, script: str, env: Mapping[str, str], timeout: float) -> ScriptProcess:
        """Start ``script`` (the text of a file with a shebang) as root in the guest."""
        self.start()
        for key, value in env.items():
            if not key or "=" in key or "\0" in key or "\0" in value:
                raise InvalidInput(f"environment variable {key!r} cannot be passed to a process")
        path = self.workdir / "scripts" / f"script-{next(self._runs)}.sh"
        path.write_text(script)
        path.chmod(0o700)
        guest_env = {"PATH": GUEST_PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb", **env}
        argv = ["ip", "netns", "exec", self.netns, *self._bwrap_args(), "/run/script/script.sh"]
        argv[argv.index("@SCRIPT@")] = str(path)
        out, err = path.with_suffix(".out"), path.with_suffix(".err")
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(
                argv,
                env=guest_env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,  # one process group: a timeout kills the whole script
            )
        handle = ScriptProcess(proc, timeout, out, err)
        self._running.append(handle)
        return handle

    def run(self, script: str, env: Mapping[str, str], timeout: float) -> ScriptResult:
        handle = self.start_script(script, env, timeout)
        result = handle.wait()
        self._running.remove(handle)
        assert result is not None  # wait() without a timeout returns at the latest at the deadline
        return result

    def _bwrap_args(self) -> list[str]:
        args = ["bwrap", "--die-with-parent", "--unshare-ipc", "--unshare-uts", "--hostname", self.name]
        disks = sorted(enumerate(self.spec.disks), key=lambda d: d[1].mount.count("/") - (d[1].mount == "/"))
        root_disk = bool(disks) and disks[0][1].mount == "/"
        if root_disk:
            # A root disk first, so the system directories below are bound on top of it.
            args += ["--bind", str(self._disk_dir(disks.pop(0)[0])), "/"]
        for entry in sorted(pathlib.Path("/").iterdir()):
            if entry.name in _PRIVATE_TOP:
                continue
            if entry.is_symlink():
                args += ["--symlink", str(entry.readlink()), str(entry)]
            elif entry.is_dir():
                args += ["--ro-bind", str(entry), str(entry)]
        args += ["--dev", "/dev", "--proc", "/proc", "--ro-bind", "/sys", "/sys", "--tmpfs", "/run"]
        if not root_disk:
            args += ["--bind", str(self.workdir / "var"), "/var", "--bind", str(self.workdir / "tmp"), "/tmp"]
        # Parents before children: a disk at /var/lib/docker lands on the /var disk.
        for index, disk in disks:
            args += ["--bind", str(self._disk_dir(index)), disk.mount]
        for index, (guest_path, _) in enumerate(self.spec.files):
            args += ["--ro-bind", str(self.workdir / "files" / str(index)), guest_path]
        args += ["--bind", str(self.state_dir), "/run/guest"]
        args += ["--ro-bind", str(self.state_dir / "systemctl"), "/usr/bin/systemctl"]
        args += ["--ro-bind", "@SCRIPT@", "/run/script/script.sh"]
        args += ["--cap-add", "ALL"]
        return args

    # -- measurements -----------------------------------------------------------------------------
    def disk_usage(self, mount: str) -> tuple[int, int]:
        """(used_bytes, total_bytes) of the filesystem at a guest mount point."""
        for index, disk in enumerate(self.spec.disks):
            if disk.mount == mount:
                st = os.statvfs(self._disk_dir(index))
                return (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_blocks * st.f_frsize
        raise InvalidInput(f"no disk is mounted at {mount}")

    def unit_state(self, unit: str) -> str:
        path = self.state_dir / "units" / _unit_key(unit)
        return path.read_text().strip() if path.exists() else "not-found"

    def connect(self, port: int, timeout: float = 1.0) -> bool:
        """Whether a TCP connection to 127.0.0.1:``port`` inside the guest's namespace succeeds."""
        code = (
            "import socket,sys\n"
            f"s=socket.socket(); s.settimeout({float(timeout)!r})\n"
            f"sys.exit(0 if s.connect_ex(('127.0.0.1', {int(port)})) == 0 else 1)\n"
        )
        done = _run(["ip", "netns", "exec", self.netns, self._python, "-c", code], check=False)
        return done.returncode == 0


_UNIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_@.:-]{0,250}")


def _unit_key(name: str) -> str:
    """How the stand-in files a unit: services without their suffix, other types with theirs."""
    if not _UNIT_NAME.fullmatch(name) or ".." in name:
        raise InvalidInput(f"unit name {name!r} is not a plain systemd unit name")
    return name.removesuffix(".service")


def _check_guest_path(path: str) -> None:
    parts = path.split("/")
    if not path.startswith("/") or any(p in {".", ".."} for p in parts) or "\0" in path:
        raise InvalidInput(f"guest path {path!r} must be absolute, without '.' or '..' segments")


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


# -- seeding ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeedFile:
    """A file the seed writes: ``kind`` says whether a remediation may delete it."""

    guest_path: str
    size: int
    age_days: float
    kind: str  # "junk" (safe to delete when old enough), "active" (in use), "user" (never delete)


# Shares of a /var disk's fill. Old junk is over half of it, so a 93 % full disk can reach 20 % free;
# the apt cache alone frees about 9 %, so a small target stops before the logs are touched.
_VAR_LAYOUT: tuple[tuple[str, float, float, str], ...] = (
    ("/var/cache/apt/archives/linux-image-6.1.0-18-amd64_6.1.76-1_amd64.deb", 0.09, 40, "junk"),
    ("/var/cache/apt/archives/libssl3_3.0.11-1~deb12u2_amd64.deb", 0.03, 40, "junk"),
    ("/var/cache/apt/archives/partial/curl_7.88.1-10+deb12u5_amd64.deb", 0.01, 40, "junk"),
    ("/var/log/syslog.2.gz", 0.05, 30, "junk"),
    ("/var/log/syslog.3.gz", 0.04, 37, "junk"),
    ("/var/log/auth.log.1", 0.02, 20, "junk"),
    ("/var/log/kern.log.old", 0.02, 60, "junk"),
    ("/var/log/dpkg.log-20260101", 0.02, 90, "junk"),
    ("/var/log/nginx/access.log.4.gz", 0.03, 28, "junk"),
    (
        "/var/log/journal/3f1e0c/system@00000000000000000000000000000001-0000000000000001-@TS@.journal",
        0.06,
        45,
        "junk",
    ),
    ("/var/crash/_usr_sbin_appd.0.crash", 0.03, 15, "junk"),
    ("/var/lib/systemd/coredump/core.appd.0.1d2c.zst", 0.04, 15, "junk"),
    ("/var/tmp/build-cache.tar", 0.02, 12, "junk"),
    ("/var/log/syslog.1", 0.02, 1, "junk"),  # rotated yesterday: younger than the age limit
    ("/var/tmp/session-recent.bin", 0.01, 0.5, "junk"),
    ("/var/log/syslog", 0.03, 0, "active"),
    ("/var/log/auth.log", 0.01, 0, "active"),
    ("/var/log/nginx/access.log", 0.02, 20, "active"),  # idle site: old mtime, still the live log
    ("/var/log/journal/3f1e0c/system.journal", 0.02, 0, "active"),
    ("/var/lib/appdata/customers.db", 0.15, 200, "user"),
    ("/var/lib/appdata/backup-20250101.gz", 0.06, 300, "user"),  # looks rotated, but is not a log
    ("/var/www/uploads/report.1", 0.04, 100, "user"),
    ("/var/lib/postgresql/15/main/base/16384/2619", 0.05, 100, "user"),
)
_TMP_LAYOUT: tuple[tuple[str, float, float, str], ...] = (
    ("/tmp/old-upload-9f2a.tmp", 0.3, 20, "junk"),
    ("/tmp/.X11-unix-stale/cache.bin", 0.1, 20, "junk"),
    ("/tmp/in-progress-export.csv", 0.2, 0, "active"),
)
_USER_LAYOUT: tuple[tuple[str, float, float, str], ...] = (("/important/records.db", 0.5, 400, "user"),)


def seed_plan(mount: str, budget: int) -> list[SeedFile]:
    """Files to put on a disk at ``mount`` that together use about ``budget`` bytes."""
    layout = _VAR_LAYOUT if mount == "/var" else _TMP_LAYOUT if mount == "/tmp" else _USER_LAYOUT
    if mount == "/":
        layout = _VAR_LAYOUT + _TMP_LAYOUT
    total = sum(share for _, share, _, _ in layout)
    plan = []
    for path, share, age, kind in layout:
        guest = path if mount in {"/", "/var", "/tmp"} else mount.rstrip("/") + path
        plan.append(SeedFile(guest, int(budget * share / total) // _BLOCK * _BLOCK, age, kind))
    return plan


def seed_guest(box: Sandbox) -> None:
    """Give a guest without a /var or /tmp disk a lived-in, small /var and /tmp."""
    disks = {d.mount for d in box.spec.disks}
    if "/" in disks:
        return
    if "/var" not in disks:
        write_files(box, seed_plan("/var", 2 * 1024 * 1024))
    if "/tmp" not in disks:
        write_files(box, seed_plan("/tmp", 256 * 1024))


def fill_disk(root: pathlib.Path, disk: DiskSpec) -> None:
    """Fill a disk with its seed, then top up user data to reach ``used_percent`` exactly."""
    st = os.statvfs(root)
    total = st.f_blocks * st.f_frsize
    goal = int(total * disk.used_percent / 100)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    # Directories cost blocks too: leave some headroom for them before the top-up.
    plan = seed_plan(disk.mount, max(goal - used - 64 * _BLOCK, 0))
    box_files = [(root / f.guest_path[len(disk.mount) :].lstrip("/"), f) for f in plan]
    for host, seed in box_files:
        _write(host, seed.size, seed.age_days)
    st = os.statvfs(root)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    if goal > used:
        _write(root / ".userdata-fill" / "volume.dat", (goal - used) // _BLOCK * _BLOCK, 365)


def write_files(box: Sandbox, files: list[SeedFile]) -> None:
    for seed in files:
        _write(box.host_path(seed.guest_path), seed.size, seed.age_days)


def _write(path: pathlib.Path, size: int, age_days: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if "@TS@" in path.name:
        # journald reads an archived journal's age from the realtime (µs, hex) in its file name.
        stamp = int((time.time() - age_days * _DAY) * 1_000_000)
        path = path.with_name(path.name.replace("@TS@", f"{stamp:016x}"))
    with path.open("wb") as fh:
        fh.write(b"seeded by the sandbox\n")
        if size > 0:
            os.posix_fallocate(fh.fileno(), 0, size)
    when = time.time() - age_days * _DAY
    os.utime(path, (when, when))


def seeded_files(mount: str, budget: int = 1 << 20) -> Iterator[SeedFile]:
    """The seed layout of a mount (tests use it to know what must survive)."""
    yield from seed_plan(mount, budget)


# -- guest tools ------------------------------------------------------------------------------------
# Binds, listens, then forks: the caller returns only once the port accepts connections and the
# server runs in a session of its own.
_LISTENER = r"""
import os, socket, sys
port, piddir = int(sys.argv[1]), sys.argv[2]
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("0.0.0.0", port))
sock.listen(16)
ready_r, ready_w = os.pipe()
pid = os.fork()
if pid:
    # Return only once the child has left our process group: a caller may kill the group next.
    os.close(ready_w)
    os.read(ready_r, 1)
    with open(os.path.join(piddir, "listener-%d" % port), "w") as fh:
        fh.write(str(pid))
    os._exit(0)
os.setsid()
os.close(ready_r)
os.write(ready_w, b"1")
os.close(ready_w)
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
while True:
    conn, _ = sock.accept()
    conn.sendall(b"SSH-2.0-sandbox\r\n")
    conn.close()
"""

# Unit-file properties as `systemctl show` reports them, read from the unit's file (test-given files in
# /run/guest/unitfiles first, then the real ones the guest has) with its drop-ins and the implicit
# dependencies DefaultDependencies=yes adds to a service. Unknown properties are refused.
_UNITPROPS = r"""
import glob, os, sys
unit, prop = sys.argv[1], sys.argv[2]
DIRS = ["/run/guest/unitfiles", "/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system",
        "/lib/systemd/system"]
LISTS = {"Requires", "Requisite", "Wants", "BindsTo", "PartOf", "Upholds", "After", "Before", "Conflicts",
         "OnFailure", "OnSuccess", "PropagatesStopTo", "StopPropagatedFrom"}
ACTIONS = {"SuccessAction", "FailureAction", "StartLimitAction", "JobTimeoutAction"}
if prop not in LISTS | ACTIONS | {"DefaultDependencies", "Description", "FragmentPath"}:
    sys.stderr.write("unsupported property\n")
    sys.exit(1)
instance = ""
names = [unit]
if "@" in unit:
    prefix, rest = unit.split("@", 1)
    instance, _, suffix = rest.rpartition(".")
    names.append(prefix + "@." + suffix)
fragment = None
for name in names:
    for folder in DIRS:
        if os.path.isfile(os.path.join(folder, name)):
            fragment = os.path.join(folder, name)
            break
    if fragment:
        break
files = [fragment] if fragment else []
for name in names:
    for folder in DIRS:
        files += sorted(glob.glob(os.path.join(folder, name + ".d", "*.conf")))
values = {}
for path in files:
    section = None
    for raw in open(path, encoding="utf-8", errors="replace"):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        if section != "Unit" or "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        value = value.replace("%i", instance).replace("%I", instance)
        if key in LISTS:
            values[key] = values.get(key, []) + value.split() if value else []
        else:
            values[key] = value
default_deps = values.get("DefaultDependencies", "yes").lower() not in ("no", "false", "0", "off")
if default_deps and unit.endswith(".service"):
    for key, extra in (("Requires", ["sysinit.target"]), ("After", ["sysinit.target", "basic.target"]),
                       ("Before", ["shutdown.target"]), ("Conflicts", ["shutdown.target"])):
        values[key] = values.get(key, []) + [u for u in extra if u not in values.get(key, [])]
if prop in LISTS:
    print(" ".join(values.get(prop, [])))
elif prop in ACTIONS:
    print(values.get(prop) or "none")
elif prop == "DefaultDependencies":
    print("yes" if default_deps else "no")
elif prop == "FragmentPath":
    print(fragment or "")
else:
    print(values.get(prop, ""))
"""

# The guest's service manager: unit states live in /run/guest/units/<unit>, unit-file states in
# <unit>.unit-file, aliases in <alias>.alias; <unit>.enabled records that `systemctl enable` ran.
_SYSTEMCTL = r"""#!/bin/bash
set -u
units=/run/guest/units
quiet=0
value=0
prop=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -q | --quiet) quiet=1 ;;
    --value) value=1 ;;
    -p | --property) prop="$2"; shift ;;
    --now | --no-pager | --no-block | --system) ;;
    --)
      shift
      args+=("$@")
      break
      ;;
    *) args+=("$1") ;;
  esac
  shift
done
verb="${args[0]:-}"
unit="${args[1]:-}"
unit="${unit%.service}"
if [ -n "$unit" ] && [ -f "$units/$unit.alias" ]; then unit=$(head -n1 "$units/$unit.alias"); fi
case "$unit" in
  *.target | *.socket | *.mount | *.automount | *.swap | *.path | *.timer | *.slice | *.scope) id=$unit ;;
  *.device) id=$unit ;;
  *) id=$unit.service ;;
esac
say() { [ "$quiet" = 1 ] || echo "$@"; }
state() { if [ -f "$units/$unit" ]; then head -n1 "$units/$unit"; else echo "not-found"; fi; }
file_state() { if [ -f "$units/$unit.unit-file" ]; then head -n1 "$units/$unit.unit-file"; fi; }
masked() { [ "$(file_state)" = masked ]; }
case "$verb" in
  is-active)
    s=$(state)
    [ "$s" = broken ] && s=failed
    [ "$s" = not-found ] && s=inactive
    say "$s"
    [ "$s" = active ] ;;
  is-failed)
    s=$(state)
    [ "$s" = broken ] && s=failed
    say "$s"
    [ "$s" = failed ] ;;
  is-enabled)
    f=$(file_state)
    if [ -z "$f" ]; then say not-found; exit 1; fi
    say "$f"
    [ "$f" = enabled ] || [ "$f" = static ] ;;
  show)
    s=$(state)
    case "$prop" in
      Id) v=$id ;;
      LoadState) v=loaded; [ "$s" = not-found ] && v=not-found; masked && v=masked ;;
      ActiveState) v=$s; [ "$s" = broken ] && v=failed; [ "$s" = not-found ] && v=inactive ;;
      UnitFileState) v=$(file_state) ;;
      *) v=$(@PYTHON@ /run/guest/unitprops.py "$id" "$prop") || exit 1 ;;
    esac
    if [ "$value" = 1 ]; then echo "$v"; else echo "$prop=$v"; fi ;;
  start | restart | reload-or-restart | try-restart)
    s=$(state)
    if [ "$s" = not-found ]; then
      echo "Failed to start $id: Unit $id not found." >&2
      exit 5
    fi
    if masked; then echo "Failed to start $id: Unit $id is masked." >&2; exit 1; fi
    if [ "$s" = broken ]; then echo "Job for $id failed." >&2; exit 1; fi
    if { [ "$unit" = ssh ] || [ "$unit" = sshd ]; } && [ "$s" != active ]; then
      @PYTHON@ /run/guest/listener.py 22 /run/guest/pids || exit 1
    fi
    echo active > "$units/$unit" ;;
  stop)
    [ -f "$units/$unit" ] && [ "$(state)" != broken ] && echo inactive > "$units/$unit" ;;
  enable)
    if [ ! -f "$units/$unit" ]; then
      echo "Failed to enable unit: Unit file $id does not exist." >&2
      exit 1
    fi
    if masked; then echo "Failed to enable unit: Unit file $id is masked." >&2; exit 1; fi
    [ "$(file_state)" = static ] || echo enabled > "$units/$unit.unit-file"
    touch "$units/$unit.enabled" ;;
  status)
    s=$(state)
    echo "$id - sandbox unit"
    echo "   Active: $s"
    [ "$s" = active ] ;;
  *)
    echo "systemctl: '$verb' is not available in this guest" >&2
    exit 1 ;;
esac
"""
