"""Interleaved runs: pytest sessions on one machine that take turns, one timed epoch each.

A shared machine's speed drifts from one second to the next (on a 2-vCPU VM a fixed NumPy
loop ran at 0.65x to 1.35x of its median within a minute), so a baseline run and a candidate
run made one after the other differ by more than the 5% a gate looks for, in either
direction. Interleaving makes them sample the same machine: `fitbench interleave CMD CMD ...`
starts the sessions as a ring that passes one token around, and a session runs only while it
holds the token. Each session passes the token on right before each timed epoch and waits
for it to come back, so the ring runs epoch k of session 0, epoch k of session 1, ..., and
nothing else runs while an epoch is timed (the waiting sessions are blocked in a read).

Who holds each turn is the ring's order (`holder`). Turns come in rounds of one turn per
session. In a *fixed* order every round runs 0, 1, ..., so session 1 always follows
session 0: anything that favours a position (the caches and clocks a predecessor leaves)
then reads as a difference between the sessions. The default order *alternates*: odd rounds
run in reverse (0 1 | 1 0 | 0 1 ...), so each session is first in half the rounds; *random*
draws each round's order from the ring's seed. Epoch k of every session still falls in
round k, which is what the gate pairs.

The token travels through one FIFO per session (Linux/macOS), as a JSON line: the turn
number (how often the token has been passed) and the sessions that have left the ring. A
session that ends marks itself as left and hands the token to the driver, which passes it on
only once that process has exited (a TensorFlow process takes seconds to exit, which would
overlap the next session's epoch); the driver also forwards a token sent to a session that
died without leaving. A session that does not get the token back within the timeout (a
partner died holding it) stops taking turns, warns, and runs on alone; its later epochs
carry no turn, so they are not paired.

The waiting sessions are *paused*: a session that receives the token stops the process
group of every other session of the ring (SIGSTOP), and a session continues the group of the
one it passes the token to (SIGCONT, after the token is written, so that it wakes to find
it). A blocked read costs nothing, but a waiting TensorFlow process does not only read: its
thread pools, tf.data's prefetch and autotuning threads and Python's garbage collector run on,
on the same cores as the timed epoch (the record's per-epoch `other_busy_seconds` shows what
they took). A cluster's chief is never paused (TensorFlow's coordination service, which it
hosts, must keep answering the other workers' heartbeats). Only a ring the driver made pauses
(`--waiting running` keeps the old way): the
driver starts each session in a process group of its own, and a session never stops its own
group or the driver's. The driver continues a session before it forwards the token to it, and
continues every session when one dies without leaving (so that their timeouts can run).

The driver ends what does not end by itself: a session that has not joined by the join
deadline, one that holds the token longer than the timeout (it stopped answering), and every
session at the overall deadline or when the driver itself is interrupted (Ctrl-C, SIGTERM).
Ending a session is SIGTERM to its process group (a pytest session then ends as with Ctrl-C,
saving what it finished), then SIGKILL after a grace period; the driver first marks the ring
as stopping, so that leaving sessions do not wait for a token. Each session's outcome is one
line.
"""

from __future__ import annotations

import json
import os
import random
import select
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fitbench.processes import groups

ENV = "FITBENCH_INTERLEAVE"  # "DIRECTORY:INDEX", set by `fitbench interleave` for each session
DEFAULT_TIMEOUT = 1800.0  # seconds; longer than a session holds the token (a CNN's first epoch)
DEFAULT_JOIN_TIMEOUT = 600.0  # seconds for a session to start and join (imports, TensorFlow, collection)
DEFAULT_DEADLINE = 6 * 3600.0  # seconds for the whole ring
GRACE_SECONDS = 60.0  # after SIGTERM, for a session to write what it finished, before SIGKILL
STOP = "stop"  # the file the driver writes when it ends the ring
ORDERS = ("alternate", "random", "fixed")  # how each round of turns is ordered (see `holder`)
DEFAULT_ORDER = "alternate"
WAITING = ("paused", "running")  # what the sessions that wait for the token do (see the docstring)
DEFAULT_WAITING = "paused"


class RingError(RuntimeError):
    """The ring cannot be joined or has broken."""


DRIVER = "driver"  # the FIFO name of the driver (`run`), to which leaving sessions hand the token


def create(directory: Path, size: int, timeout: float = DEFAULT_TIMEOUT, driver: bool = False,
           order: str = DEFAULT_ORDER, pause: bool = False) -> str:
    """Make a ring of `size` sessions in `directory` (emptied first, so a directory can be
    reused): one FIFO each (and the driver's) and the ring's id, which seeds a random order.
    `pause`: the sessions stop each other's process groups while they wait (a driver's ring,
    whose sessions each lead a group of their own)."""
    if order not in ORDERS:
        raise ValueError(f"unknown turn order {order!r}; one of {', '.join(ORDERS)}")
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    for name in [*range(size), *([DRIVER] if driver else [])]:
        os.mkfifo(directory / f"{name}.fifo")
    ring_id = uuid.uuid4().hex[:12]
    (directory / "ring.json").write_text(
        json.dumps({"id": ring_id, "size": size, "timeout": timeout, "driver": driver, "order": order,
                    "pause": pause, "driver_group": os.getpgrp()}))
    return ring_id


def holder(turn: int, size: int, order: str = DEFAULT_ORDER, seed: str = "") -> int:
    """The session that holds `turn`: round turn // size, in the ring's order."""
    round_, position = divmod(turn, size)
    if order == "alternate" and round_ % 2:
        return size - 1 - position
    if order == "random":
        sessions = list(range(size))
        random.Random(f"{seed}:{round_}").shuffle(sessions)
        return sessions[position]
    return position


def next_turn(turn: int, size: int, left: set[int], order: str = DEFAULT_ORDER,
              seed: str = "") -> tuple[int, int] | None:
    """(the turn after `turn` whose holder has not left, that holder), or None when all left.
    Every session holds one turn a round, so two rounds are enough to find one."""
    for following in range(turn + 1, turn + 1 + 2 * size):
        index = holder(following, size, order, seed)
        if index not in left:
            return following, index
    return None


def start(directory: Path, left: set[int]) -> None:
    """Hand the first token to the holder of the first turn that has not left (by the driver)."""
    described = json.loads((directory / "ring.json").read_text())
    first = next_turn(-1, described["size"], left, described.get("order", "fixed"), described["id"])
    if first is not None:
        _send(directory, first[1], {"turn": first[0], "left": sorted(left)})


def _send(directory: Path, name: int | str, message: dict) -> None:
    # O_RDWR never blocks on a FIFO (Linux, macOS), even before its reader has opened it; a
    # line this short is written atomically.
    descriptor = os.open(directory / f"{name}.fifo", os.O_RDWR)
    try:
        os.write(descriptor, (json.dumps(message) + "\n").encode())
    finally:
        os.close(descriptor)


def _read_lines(descriptor: int) -> list[dict]:
    """The messages waiting in a FIFO, without blocking."""
    data = b""
    while select.select([descriptor], [], [], 0)[0]:
        data += os.read(descriptor, 4096)
    return [json.loads(line) for line in data.splitlines() if line]


@dataclass
class Ring:
    """This session's place in a ring; `take()` before each timed epoch, `leave()` at the end."""

    directory: Path
    index: int
    size: int
    ring_id: str
    timeout: float = DEFAULT_TIMEOUT
    driver: bool = False  # leaving hands the token to the driver rather than to the next session
    order: str = "fixed"
    pause: bool = False  # stop the other sessions' groups while holding the token
    driver_group: int = 0  # never stopped
    holding: bool = False
    turn: int = -1
    left: set[int] = field(default_factory=set)
    broken: str = ""  # why this session stopped taking turns
    _inbox: int = -1
    _buffer: bytes = b""

    @classmethod
    def join(cls, spec: str, pausable: bool = True) -> Ring:
        """Join the ring named by `spec` ("DIRECTORY:INDEX", the value of FITBENCH_INTERLEAVE).
        `pausable`: the others may stop this session while they hold the token (not a cluster's
        chief: its coordination service must answer the other workers' heartbeats)."""
        directory, _, index_text = spec.rpartition(":")
        try:
            described = json.loads((Path(directory) / "ring.json").read_text())
            index = int(index_text)
        except (OSError, ValueError) as error:
            missing = Path(directory) / "ring.json"
            where = "" if missing.is_absolute() else f" (relative to {Path.cwd()})"
            raise RingError(f"{ENV}={spec!r} does not name a ring: no readable {missing}{where} "
                            f"({getattr(error, 'strerror', None) or error}); `fitbench interleave` sets it, "
                            "with an absolute path, for each session it starts") from error
        if not 0 <= index < described["size"]:
            raise RingError(f"{ENV}={spec!r}: index {index} is outside the ring of {described['size']}")
        ring = cls(Path(directory), index, described["size"], described["id"], described["timeout"],
                   described.get("driver", False), described.get("order", "fixed"),
                   described.get("pause", False), described.get("driver_group", 0))
        ring._inbox = os.open(ring.directory / f"{index}.fifo", os.O_RDWR)
        if pausable:  # before ready: the others read it
            (ring.directory / f"group-{index}").write_text(str(os.getpgrp()))
        (ring.directory / f"ready-{index}").touch()
        return ring

    def _group(self, index: int) -> int | None:
        """The process group of session `index`, when it may be stopped: a paused ring's, not
        this session's own group nor the driver's."""
        if not self.pause:
            return None
        try:
            group = int((self.directory / f"group-{index}").read_text())
        except (OSError, ValueError):
            return None
        return None if group in (os.getpgrp(), self.driver_group) or group <= 1 else group

    def _pause_others(self) -> None:
        """Holding the token: stop every other session that has not left."""
        for index in range(self.size):
            if index != self.index and index not in self.left and (group := self._group(index)) is not None:
                groups.signal_group(group, signal.SIGSTOP)

    def _pass(self) -> bool:
        """Pass the token to the holder of the next turn; False when that is this session
        itself (its next turn: it keeps the token) or no session is left."""
        following = next_turn(self.turn, self.size, self.left, self.order, self.ring_id)
        if following is None or following[1] == self.index:
            if following is not None:
                self.turn = following[0]
            return False
        _send(self.directory, following[1], {"turn": following[0], "left": sorted(self.left)})
        if (group := self._group(following[1])) is not None:
            groups.signal_group(group, signal.SIGCONT)  # after the token is in its FIFO
        self.holding = False
        return True

    def _receive(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self._inbox], [], [], max(0.0, remaining))
            if not ready:
                raise TimeoutError
            self._buffer += os.read(self._inbox, 4096)
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def take(self) -> int | None:
        """Pass the token on (when held) and block until it comes back: the turn number of
        this session's next epoch, or None once the ring is broken."""
        if self.broken:
            return None
        if self.holding and not self._pass():
            self._beat()
            return self.turn  # this session's turn again (the order says so, or it is alone)
        try:
            message = self._receive()
        except TimeoutError:
            self.broken = (f"no turn within {self.timeout:.0f} s (a session of the ring stopped); "
                           "running on alone, the rest of this session's epochs are not interleaved")
            return None
        self.holding, self.turn, self.left = True, message["turn"], set(message["left"])
        self._pause_others()
        self._beat()
        return self.turn

    def _beat(self) -> None:
        (self.directory / f"turn-{self.index}").write_text(str(self.turn))  # the driver's watchdog reads it

    def leave(self) -> None:
        """Leave the ring: wait for the token if needed, mark this session as left, pass it on."""
        if self._inbox < 0:
            return
        if (self.directory / STOP).exists():  # the driver is ending the ring: nothing to wait for
            self.broken = self.broken or "the ring was stopped"
        if not self.broken and not self.holding:
            try:
                message = self._receive()
                self.turn, self.left = message["turn"], set(message["left"])
                self.holding = True
            except TimeoutError:
                self.broken = "left without the token (timed out)"
        if self.holding:
            self.left.add(self.index)
            if self.driver:
                _send(self.directory, DRIVER, {"turn": self.turn, "left": sorted(self.left), "from": self.index})
                self.holding = False
            else:
                self._pass()
        os.close(self._inbox)
        self._inbox = -1
        (self.directory / f"left-{self.index}").touch()

    def describe(self) -> dict:
        return {"ring": self.ring_id, "index": self.index, "size": self.size, "order": self.order}


_current: Ring | None = None


def enter(ring: Ring | None) -> None:
    """Make `ring` the session's ring (None: not interleaved)."""
    global _current
    _current = ring


def current() -> Ring | None:
    return _current


def take() -> int | None:
    """Before a timed epoch: wait for this session's turn; its number (None when not in a ring)."""
    return _current.take() if _current is not None else None


@dataclass
class Outcome:
    """How one session of a ring ended."""

    command: str
    status: int | None = None  # exit status (negative: killed by that signal)
    ended_because: str = ""  # why the driver ended it, if it did

    def describe(self, index: int) -> str:
        status = "did not exit" if self.status is None else (
            f"killed by {signal.Signals(-self.status).name}" if self.status < 0 else f"exit {self.status}")
        return f"session {index + 1}: {status}" + (f" ({self.ended_because})" if self.ended_because else "")


class Driver:
    """Starts the sessions, starts the ring once they have joined, forwards tokens, and ends
    what does not end by itself (see the module docstring)."""

    def __init__(self, commands: Sequence[str], directory: Path, timeout: float = DEFAULT_TIMEOUT,
                 join_timeout: float = DEFAULT_JOIN_TIMEOUT, deadline: float = DEFAULT_DEADLINE,
                 poll_seconds: float = 0.2, grace: float = GRACE_SECONDS, order: str = DEFAULT_ORDER,
                 waiting: str = DEFAULT_WAITING):
        if waiting not in WAITING:
            raise ValueError(f"unknown waiting {waiting!r}; one of {', '.join(WAITING)}")
        self.interrupted = False
        self.order, self.waiting = order, waiting
        # Absolute: a session may cd elsewhere (another checkout) before it joins the ring.
        self.commands, self.directory = list(commands), Path(directory).resolve()
        self.ring = self.directory / "ring"
        self.timeout, self.join_timeout, self.deadline = timeout, join_timeout, deadline
        self.poll_seconds, self.grace = poll_seconds, grace
        self.outcomes = [Outcome(command) for command in self.commands]
        self.processes: list[subprocess.Popen] = []

    def run(self) -> list[Outcome]:
        self.ring_id = create(self.ring, len(self.commands), self.timeout, driver=True, order=self.order,
                              pause=self.waiting == "paused")
        # Open from the start, so that nothing written to them is lost: a FIFO drops its data when
        # its last descriptor closes (a session that died, the driver's before it reads).
        self.fifos = {name: os.open(self.ring / f"{name}.fifo", os.O_RDWR)
                      for name in [*range(len(self.commands)), DRIVER]}
        self.started = time.monotonic()
        # SIGINT too: a driver started in the background of a script inherits SIGINT ignored
        # (POSIX shells do that to asynchronous commands), and Ctrl-C must still end the ring.
        with groups.interrupted_by(signal.SIGINT, signal.SIGTERM):
            self._run()
        for outcome, process in zip(self.outcomes, self.processes, strict=False):
            # The session's shell may exit before its pytest does: wait for the whole group.
            if not groups.wait_group(process, self.grace):
                groups.end_groups([process], 0.0)
            outcome.status = process.poll()
        return self.outcomes

    def _run(self) -> None:
        try:
            for index, command in enumerate(self.commands):
                env = {**os.environ, ENV: f"{self.ring}:{index}"}
                with open(self.directory / f"session-{index}.log", "wb") as log:
                    # Its own process group: the session and anything its shell started end together.
                    groups.start(command, started=self.processes.append, shell=True, env=env, stdout=log,
                                 stderr=subprocess.STDOUT)
            left = self._wait_for_joins()
            start(self.ring, left)
            self._forward_tokens(left)
        except KeyboardInterrupt:
            self.interrupted = True
            self.stop("the driver was interrupted")
        finally:
            for descriptor in self.fifos.values():
                os.close(descriptor)

    def joined(self, index: int) -> bool:
        return (self.ring / f"ready-{index}").exists()

    def _wait_for_joins(self) -> set[int]:
        """Wait until every session has joined or ended; end those not joined by the join deadline."""
        while True:
            never_joined = {i for i, p in enumerate(self.processes) if p.poll() is not None and not self.joined(i)}
            waiting = [i for i in range(len(self.processes)) if not self.joined(i) and i not in never_joined]
            if not waiting:
                return never_joined
            if time.monotonic() - self.started > self.deadline:
                self.stop(f"the ring's deadline of {self.deadline:.0f} s passed")
                return set(range(len(self.processes)))
            if time.monotonic() - self.started > self.join_timeout:
                for index in waiting:
                    self.end(index, f"did not join the ring within {self.join_timeout:.0f} s")
                    never_joined.add(index)
                return never_joined
            time.sleep(self.poll_seconds)

    def _last_turn(self) -> tuple[float, int | None]:
        """When a turn was last taken, and by which session (its heartbeat file)."""
        latest, holder = self.started, None
        for index in range(len(self.processes)):
            beat = self.ring / f"turn-{index}"
            if beat.exists() and beat.stat().st_mtime_ns / 1e9 > latest:
                latest, holder = beat.stat().st_mtime_ns / 1e9, index
        return latest, holder

    def _forward_tokens(self, left: set[int]) -> None:
        """Pass on the token of each session that left once its process has exited, and any token
        sent to a session that died without leaving; end a session that stopped answering, and
        every session at the deadline."""
        size = len(self.processes)
        inbox = self.fifos[DRIVER]
        dead: dict[int, int] = {}  # index -> its FIFO, for sessions that exited without leaving
        progress = time.time()
        while len(left) < size:
            ready, _, _ = select.select([inbox, *dead.values()], [], [], self.poll_seconds)
            for descriptor in ready:
                for message in _read_lines(descriptor):
                    sender = message.get("from")
                    if sender is None:  # a token sent to a dead session
                        sender = next(i for i, d in dead.items() if d == descriptor)
                    else:
                        self._wait_exit(sender)
                    left |= {*message["left"], sender}
                    progress = time.time()
                    following = next_turn(message["turn"], size, left, self.order, self.ring_id)
                    if following is not None:
                        _send(self.ring, following[1], {"turn": following[0], "left": sorted(left)})
                        groups.signal_group(self.processes[following[1]].pid, signal.SIGCONT)
            for index, process in enumerate(self.processes):
                if process.poll() is not None and index not in left and index not in dead \
                        and not (self.ring / f"left-{index}").exists():
                    dead[index] = self.fifos[index]
                    self._continue_all()  # it may have died holding the token: the others' timeouts must run
            if all(p.poll() is not None for p in self.processes) and not select.select([inbox], [], [], 0)[0]:
                return
            if time.monotonic() - self.started > self.deadline:
                self.stop(f"the ring's deadline of {self.deadline:.0f} s passed")
                return
            latest, holder = self._last_turn()
            latest = max(latest, progress)
            if holder is not None and time.time() - latest > self.timeout and self.processes[holder].poll() is None:
                self.end(holder, f"stopped answering: held the token for more than {self.timeout:.0f} s")
                progress = time.time()

    def _continue_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                groups.signal_group(process.pid, signal.SIGCONT)

    def _wait_exit(self, index: int) -> None:
        try:
            self.processes[index].wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            self.end(index, f"did not exit within {self.grace:.0f} s of leaving the ring")

    def end(self, index: int, why: str) -> None:
        """SIGTERM to the session's process group; SIGKILL if it has not exited after the grace."""
        process = self.processes[index]
        if process.poll() is not None:
            return
        self.outcomes[index].ended_because = why
        groups.end_groups([process], self.grace)

    def stop(self, why: str) -> None:
        """End every session still running, at once (each saves what it finished)."""
        (self.ring / STOP).touch()
        running = [i for i, p in enumerate(self.processes) if p.poll() is None]
        for index in running:
            self.outcomes[index].ended_because = why
        groups.end_groups([self.processes[i] for i in running], self.grace)


def run(commands: Sequence[str], directory: Path, timeout: float = DEFAULT_TIMEOUT, **options) -> list[int]:
    """Run shell `commands` as one ring (each session's output to directory/session-N.log);
    their exit statuses, in order. See `Driver` for the deadlines in `options`."""
    return [outcome.status for outcome in Driver(commands, directory, timeout, **options).run()]
