"""`fitbench workers N -- COMMAND`: N local processes as one cluster on loopback.

Each worker runs COMMAND (a pytest session) with its own ``TF_CONFIG`` (the cluster's
addresses on 127.0.0.1 ports the OS gave, and its index), pinned to its share of this
machine's cores (CPU affinity, which TensorFlow sizes its thread pools by) and, on a machine
with NVIDIA GPUs, to its share of them (``CUDA_VISIBLE_DEVICES``). Worker 0 is the
chief: its output is the launcher's, and only it writes results (fitbench.plugin.hooks); the others'
output goes to a log each. In an interleaved run (`fitbench interleave`) only the chief takes
turns: the other workers follow it, blocked in the first all-reduce of each epoch.

Every worker trains in step with the others, so one that dies leaves them blocked in an
all-reduce. The launcher watches them: when one exits abnormally (a signal, or a status other
than pytest's 0 tests passed / 1 tests failed / 5 none collected), is stopped (SIGSTOP) for
`stall_timeout` seconds, or still runs `finish_timeout` seconds after another ended normally,
it names that worker in one line, ends every worker (SIGTERM to its process group, so the
chief saves what it finished; SIGKILL after a grace period) and leaves no process behind.
On separate machines TensorFlow's own coordination service does this (missed heartbeats end
the cluster's collectives with an error naming the task).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fitbench.processes import groups, turns
from fitbench.processes.cluster import TF_CONFIG, free_ports, tf_config

HOST = "127.0.0.1"
NORMAL_EXITS = (0, 1, 5)  # pytest: all passed, some tests failed, none collected
PYTEST_EXITS = {0: " (passed)", 1: " (tests failed)", 5: " (no tests collected)"}
FINISH_TIMEOUT = 300.0  # seconds the others may run on after one worker ended normally
STALL_TIMEOUT = 60.0  # seconds a worker may be stopped (SIGSTOP) before it counts as not answering
GRACE_SECONDS = 30.0  # after SIGTERM, for a worker to save what it finished, before SIGKILL
POLL_SECONDS = 0.2


class LaunchError(ValueError):
    """Workers that cannot be started as asked (the message names the fix)."""


@dataclass
class Worker:
    index: int
    cores: list[int]
    process: subprocess.Popen
    log: Path | None  # None: the chief, whose output is the launcher's
    started: float = field(default_factory=time.monotonic)
    stopped_since: float | None = None

    @property
    def name(self) -> str:
        return f"worker {self.index}" + (" (chief)" if self.index == 0 else "")


def available_cores() -> list[int]:
    """The cores this process may run on (its CPU affinity; every core where there is none)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # no CPU affinity (macOS): no pinning
        return list(range(os.cpu_count() or 1))


def assign_cores(workers: int, cores_per_worker: int | None, available: Sequence[int]) -> list[list[int]]:
    """Each worker's cores: consecutive, disjoint shares of `available` (default: all of them,
    split evenly)."""
    if workers < 1:
        raise LaunchError("fitbench workers needs 1 or more workers")
    per = cores_per_worker or len(available) // workers
    if per < 1 or per * workers > len(available):
        raise LaunchError(f"{workers} workers x {max(per, 1)} core{'s' if per > 1 else ''} need "
                          f"{workers * max(per, 1)} cores; this process may use {len(available)}: "
                          "use fewer workers or a smaller --cores-per-worker")
    return [list(available[i * per:(i + 1) * per]) for i in range(workers)]


def local_gpus(env: dict[str, str] | None = None) -> list[str]:
    """This machine's NVIDIA GPUs as CUDA_VISIBLE_DEVICES ids: the variable's own list when it is
    set, else `nvidia-smi -L`'s (none when it is absent). The launcher never imports TensorFlow."""
    env = os.environ if env is None else env
    if env.get("CUDA_VISIBLE_DEVICES") is not None:
        return [part for part in env["CUDA_VISIBLE_DEVICES"].split(",") if part.strip() and part.strip() != "-1"]
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(index) for index, line in enumerate(line for line in listed.splitlines() if line.startswith("GPU "))]


def assign_gpus(workers: int, gpus: Sequence[str]) -> list[list[str]] | None:
    """Each worker's GPUs: disjoint, equal shares (two local workers must not train on the same
    GPU); None without GPUs."""
    if not gpus:
        return None
    if len(gpus) < workers:
        raise LaunchError(f"{workers} workers need a GPU each; this machine has {len(gpus)}: use {len(gpus)} "
                          "workers or fewer, or hide the GPUs (CUDA_VISIBLE_DEVICES=-1) to train on CPUs")
    per = len(gpus) // workers
    return [list(gpus[i * per:(i + 1) * per]) for i in range(workers)]


def describe_exit(status: int) -> str:
    if status < 0:
        try:
            return f"was killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"was killed by signal {-status}"
    return f"exited with status {status}"


def _stopped(pid: int) -> bool:
    """Whether the process is stopped (SIGSTOP, a debugger): Linux /proc; elsewhere never known."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] in ("T", "t")


class Launcher:
    """Starts the workers, watches them and ends them all when one fails; see the module docstring."""

    def __init__(self, command: Sequence[str], workers: int, logs: Path, cores_per_worker: int | None = None,
                 finish_timeout: float = FINISH_TIMEOUT, stall_timeout: float = STALL_TIMEOUT,
                 grace: float = GRACE_SECONDS, say: Callable[[str], None] = print):
        if not command:
            raise LaunchError("give the command each worker runs after --, for example: "
                              "fitbench workers 2 -- pytest benchmarks -k batch_size-512 --profile smoke")
        self.cores = assign_cores(workers, cores_per_worker, available_cores())
        self.gpus = assign_gpus(workers, local_gpus())
        self.command, self.count, self.logs = list(command), workers, logs
        self.finish_timeout, self.stall_timeout, self.grace, self.say = finish_timeout, stall_timeout, grace, say
        self.workers: list[Worker] = []

    def environment(self, index: int, addresses: list[str]) -> dict[str, str]:
        env = {**os.environ, TF_CONFIG: tf_config(addresses, index)}
        if self.gpus is not None:  # each worker sees only its own GPUs
            env["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus[index])
        if index > 0:
            env.pop(turns.ENV, None)  # only the chief takes turns in an interleaved run
        return env

    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        addresses = [f"{HOST}:{port}" for port in free_ports(self.count, HOST)]
        shares = "; ".join(f"worker {i}: core{'s' if len(c) > 1 else ''} {','.join(map(str, c))}"
                           + (f", GPU {','.join(self.gpus[i])}" if self.gpus else "")
                           for i, c in enumerate(self.cores))
        self.say(f"fitbench workers: {self.count} worker{'s' if self.count > 1 else ''} on {', '.join(addresses)} "
                 f"({shares}); worker 0 is the chief and writes the results"
                 + (f"; the others' output is in {self.logs}" if self.count > 1 else ""))
        for index, cores in enumerate(self.cores):
            log = None if index == 0 else self.logs / f"worker-{index}.log"
            output = open(log, "wb") if log else None  # noqa: SIM115 - handed to the child, closed below
            try:
                groups.start(
                    self.command, env=self.environment(index, addresses), stdout=output,
                    stderr=subprocess.STDOUT if output else None,
                    preexec=(lambda cores=cores: os.sched_setaffinity(0, cores))
                    if hasattr(os, "sched_setaffinity") else None,
                    # Recorded before a pending Ctrl-C is let in: stop() then ends it too.
                    started=lambda process, index=index, cores=cores, log=log: self.workers.append(
                        Worker(index, cores, process, log)))
            except OSError as error:
                self.stop(f"worker {index} could not start ({error})")
                raise LaunchError(f"cannot run {self.command[0]!r}: {error}") from error
            finally:
                if output:
                    output.close()

    def run(self) -> int:
        """Start, watch, end; the exit status (the worst worker's, 130 when interrupted)."""
        try:
            with groups.interrupted_by(signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                self.start()
                failure = self.watch()
        except KeyboardInterrupt:
            self.stop("fitbench workers was interrupted")
            return 130
        if failure is not None:
            worker, why = failure
            self.say(f"fitbench workers: {worker.name} (pid {worker.process.pid}) {why}; ending the other workers")
            self.show_log(worker)
            self.stop(f"{worker.name} failed")
            status = worker.process.returncode
            if status is not None and status < 0:
                return 128 - status  # killed by a signal, as a shell reports it
            # Its own abnormal status; 3 (pytest's internal error) when it was stopped or ran on.
            return status if status not in (None, *NORMAL_EXITS) else 3
        statuses = [w.process.returncode for w in self.workers]
        if any(statuses):  # each worker's end, in one line: which one failed its tests, or none ran
            self.say("fitbench workers: " + "; ".join(
                f"{w.name} {describe_exit(w.process.returncode)}{PYTEST_EXITS.get(w.process.returncode, '')}"
                for w in self.workers))
        return max(statuses, key=abs)

    def watch(self) -> tuple[Worker, str] | None:
        """Until every worker has ended: the first that failed and how, or None when all ended normally."""
        first_end: float | None = None
        while True:
            now, running = time.monotonic(), []
            for worker in self.workers:
                status = worker.process.poll()
                if status is None:
                    running.append(worker)
                    if _stopped(worker.process.pid):
                        worker.stopped_since = worker.stopped_since or now
                        if now - worker.stopped_since > self.stall_timeout:
                            return worker, f"has been stopped for {self.stall_timeout:.0f} s (not answering)"
                    else:
                        worker.stopped_since = None
                elif status not in NORMAL_EXITS:
                    return worker, f"{describe_exit(status)} after {now - worker.started:.0f} s"
                elif first_end is None:
                    first_end = now
            if not running:
                return None
            if first_end is not None and now - first_end > self.finish_timeout:
                return running[0], (f"still runs {self.finish_timeout:.0f} s after another worker finished "
                                    "(not answering)")
            time.sleep(POLL_SECONDS)

    def show_log(self, worker: Worker) -> None:
        if worker.log is None or not worker.log.exists():
            return
        tail = worker.log.read_text(errors="replace").splitlines()[-15:]
        self.say(f"fitbench workers: the last lines of {worker.log}:")
        for line in tail:
            self.say(f"  | {line}")

    def stop(self, why: str) -> None:
        """End every worker still running (SIGTERM to its group, SIGKILL after the grace period)
        and wait until none of their processes is left."""
        groups.end_groups([worker.process for worker in self.workers], self.grace)
