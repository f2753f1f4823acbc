"""How a fleet VM runs a script: for real in a Linux sandbox, or by answering its declared outcome.

A run is polled, never waited on: a declared run finishes when the fleet clock has passed its duration,
so a thousand VMs "running" a two-second script cost nothing until someone asks how they are doing.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .fleetfile import GuestSpec, OutcomeSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuestOutput:
    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    killed: bool = False
    ended_at: float | None = None  # when the script ended, if known better than "when it was polled"


class GuestRun(Protocol):
    def poll(self, now: float) -> GuestOutput | None:
        """The output once the script has ended, else None."""
        ...

    def kill(self) -> None: ...


@dataclass
class Convergence:
    """What declared runs changed on a VM: outcome indexes that fixed their condition."""

    fixed: set[int] = field(default_factory=set)


def _is_dry_run(env: Mapping[str, str], args: tuple[str, ...]) -> bool:
    values = {k.lower(): v for k, v in env.items()}
    if values.get("dry_run") == "1" or values.get("dryrun") == "1":
        return True
    return "DRY_RUN=1" in args


def pick_outcome(outcomes: tuple[OutcomeSpec, ...], script: str) -> tuple[int, OutcomeSpec] | None:
    for index, outcome in enumerate(outcomes):
        if outcome.match in script:
            return index, outcome
    return None


class DeclaredRun:
    """A run that answers the fleet file's outcome once the fleet clock passes its duration."""

    def __init__(
        self,
        outcome: OutcomeSpec | None,
        index: int,
        convergence: Convergence,
        started: float,
        *,
        dry_run: bool,
    ) -> None:
        self.outcome = outcome or OutcomeSpec(
            exit_code=1, stderr="this fleet VM declares no outcome for this script\n"
        )
        self.index = index
        self.convergence = convergence
        self.started = started
        self.dry_run = dry_run
        self.killed = False
        self._output: GuestOutput | None = None

    def poll(self, now: float) -> GuestOutput | None:
        if self._output is not None:
            return self._output
        if self.killed:
            self._output = GuestOutput(None, "", "", killed=True)
            return self._output
        if self.outcome.stuck or now < self.started + self.outcome.duration_seconds:
            return None
        self._output = self._answer()
        return self._output

    def _answer(self) -> GuestOutput:
        outcome = self.outcome
        result = dict(outcome.result) if outcome.result is not None else None
        stdout = outcome.stdout
        exit_code = outcome.exit_code
        if result is not None and result.get("status") == "fixed":
            if self.index in self.convergence.fixed:
                # The condition was repaired by an earlier run: a repeat finds nothing to do.
                after = result.get("after", {})
                result = {**result, "status": "already-ok", "before": after, "after": after}
                stdout, exit_code = "nothing to do: already in the desired state\n", 0
            elif self.dry_run:
                before = result.get("before", {})
                result = {**result, "status": "not-fixed", "after": before, "dryRun": True}
                stdout, exit_code = "dry run: no change made\n", 1
            else:
                self.convergence.fixed.add(self.index)
        if result is not None:
            stdout = stdout if not stdout or stdout.endswith("\n") else stdout + "\n"
            stdout += "REMEDIATION_RESULT " + json.dumps(result, separators=(",", ":")) + "\n"
        # A declared run ends at start + duration, as Azure reports it, not when someone looked.
        return GuestOutput(
            exit_code, stdout, outcome.stderr, ended_at=self.started + self.outcome.duration_seconds
        )

    def kill(self) -> None:
        self.killed = True


class EndedRun:
    """A run that ended before it began."""

    def __init__(self, output: GuestOutput) -> None:
        self.output = output

    def poll(self, now: float) -> GuestOutput | None:
        return self.output

    def kill(self) -> None:
        return None


class SandboxRun:
    """A script that really runs in the VM's sandbox."""

    def __init__(self, process: Any) -> None:
        self.process = process
        self._output: GuestOutput | None = None

    def poll(self, now: float) -> GuestOutput | None:
        if self._output is None:
            result = self.process.wait(timeout=0)
            if result is None:
                return None
            self._output = GuestOutput(
                result.exit_code,
                result.stdout,
                result.stderr,
                timed_out=result.timed_out,
                killed=result.killed,
            )
        return self._output

    def kill(self) -> None:
        self.process.kill()


def sandbox_support() -> tuple[bool, str]:
    """Whether Linux fleet VMs can run scripts for real here, and why not."""
    try:
        from . import sandbox
    except ImportError:
        return False, "the guest sandbox module is not installed"
    try:
        ok, reason = sandbox.sandbox_available()
    except Exception as exc:  # a broken host must not take the emulator down
        return False, f"sandbox check failed: {exc}"
    return bool(ok), str(reason)


class SandboxPool:
    """One sandbox per fleet VM, started on its first script and closed with the emulator."""

    def __init__(self, workdir: Path, enabled: bool | None = None) -> None:
        self.workdir = workdir
        self._lock = threading.Lock()
        self._boxes: dict[str, Any] = {}
        if enabled is None:
            enabled, reason = sandbox_support()
            if not enabled:
                log.info("fleet VMs answer declared outcomes: %s", reason)
        self.enabled = enabled

    def get(self, key: str, name: str, spec: GuestSpec) -> Any:
        from . import sandbox

        with self._lock:
            box = self._boxes.get(key)
            if box is None:
                guest = sandbox.GuestSpec(
                    disks=tuple(sandbox.DiskSpec(d.mount, d.size_mb, d.used_percent) for d in spec.disks),
                    ssh_listening=spec.ssh_listening,
                    firewall_drop_ports=spec.firewall_drop_ports,
                    sshd_stopped=spec.sshd_stopped,
                    services=spec.services,
                )
                safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40]
                box = sandbox.Sandbox(safe, guest, self.workdir / f"{safe}-{len(self._boxes)}")
                box.start()
                self._boxes[key] = box
            return box

    def disk_usage(self, key: str, mount: str) -> tuple[int, int] | None:
        with self._lock:
            box = self._boxes.get(key)
        return None if box is None else box.disk_usage(mount)

    def close(self) -> None:
        with self._lock:
            boxes, self._boxes = list(self._boxes.values()), {}
        for box in boxes:
            try:
                box.close()
            except Exception:
                log.exception("closing a fleet sandbox failed")


def with_positional_args(script: str, args: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """The script and environment that give it ``args`` as $1..$n, as the agent would pass them.

    The values travel in the environment, never in the script text.
    """
    if not args:
        return script, {}
    env = {f"RUNCOMMAND_ARG_{i}": value for i, value in enumerate(args, 1)}
    line = "set -- " + " ".join(f'"${{RUNCOMMAND_ARG_{i}}}"' for i in range(1, len(args) + 1))
    lines = script.split("\n")
    at = 1 if lines and lines[0].startswith("#!") else 0
    return "\n".join([*lines[:at], line, *lines[at:]]), env


def start_run(
    *,
    script: str,
    env: Mapping[str, str],
    args: tuple[str, ...],
    timeout: float,
    os_type: str,
    guest: GuestSpec | None,
    outcomes: tuple[OutcomeSpec, ...],
    convergence: Convergence,
    now: float,
    sandbox_for: Callable[[], Any] | None,
) -> GuestRun:
    """Start ``script`` on a VM: in its sandbox when it has one and it is usable, else declared."""
    if os_type == "linux" and guest is not None and sandbox_for is not None:
        text, extra = with_positional_args(script, args)
        try:
            process = sandbox_for().start_script(text, {**env, **extra}, timeout)
        except Exception as exc:
            # The guest could not run it (a broken host, a bad environment name): the run fails, as on a
            # VM whose extension cannot start the script, and the emulator keeps serving.
            log.warning("fleet guest could not start a script: %s", exc)
            return EndedRun(GuestOutput(None, "", f"the guest could not start the script: {exc}\n"))
        return SandboxRun(process)
    picked = pick_outcome(outcomes, script)
    index, outcome = picked if picked is not None else (-1, None)
    return DeclaredRun(outcome, index, convergence, now, dry_run=_is_dry_run(env, args))
