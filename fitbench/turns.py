"""Interleaved runs: pytest sessions on one machine that take turns, one timed epoch each.

A shared machine's speed drifts from one second to the next (on a 2-vCPU VM a fixed NumPy
loop ran at 0.65x to 1.35x of its median within a minute), so a baseline run and a candidate
run made one after the other differ by more than the 5% a gate looks for, in either
direction. Interleaving makes them sample the same machine: `fitbench interleave CMD CMD ...`
starts the sessions as a ring that passes one token around, and a session runs only while it
holds the token. Each session passes the token on right before each timed epoch and waits
for it to come back, so the ring runs epoch k of session 0, epoch k of session 1, ..., and
nothing else runs while an epoch is timed (the waiting sessions are blocked in a read).

The token travels through one FIFO per session (Linux/macOS), as a JSON line: the turn
number (how often the token has been passed) and the sessions that have left the ring. A
session that ends marks itself as left and hands the token to the driver, which passes it on
only once that process has exited (a TensorFlow process takes seconds to exit, which would
overlap the next session's epoch); the driver also forwards a token sent to a session that
died without leaving. A session that does not get the token back within the timeout (a
partner died holding it) stops taking turns, warns, and runs on alone; its later epochs
carry no turn, so they are not paired.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ENV = "FITBENCH_INTERLEAVE"  # "DIRECTORY:INDEX", set by `fitbench interleave` for each session
DEFAULT_TIMEOUT = 1800.0  # seconds; longer than a session holds the token (a CNN's first epoch)


class RingError(RuntimeError):
    """The ring cannot be joined or has broken."""


DRIVER = "driver"  # the FIFO name of the driver (`run`), to which leaving sessions hand the token


def create(directory: Path, size: int, timeout: float = DEFAULT_TIMEOUT, driver: bool = False) -> str:
    """Make a ring of `size` sessions in `directory`: one FIFO each (and the driver's) and
    the ring's id."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in [*range(size), *([DRIVER] if driver else [])]:
        os.mkfifo(directory / f"{name}.fifo")
    ring_id = uuid.uuid4().hex[:12]
    (directory / "ring.json").write_text(
        json.dumps({"id": ring_id, "size": size, "timeout": timeout, "driver": driver}))
    return ring_id


def next_session(index: int, size: int, left: set[int]) -> int | None:
    """The first session after `index`, in ring order, that has not left (possibly `index`)."""
    order = [(index + step) % size for step in range(1, size + 1)]
    return next((i for i in order if i not in left), None)


def start(directory: Path, left: set[int]) -> None:
    """Hand the first token to the first session that has not left (by the driver)."""
    size = json.loads((directory / "ring.json").read_text())["size"]
    first = next_session(size - 1, size, left)
    if first is not None:
        _send(directory, first, {"turn": 0, "left": sorted(left)})


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
    holding: bool = False
    turn: int = -1
    left: set[int] = field(default_factory=set)
    broken: str = ""  # why this session stopped taking turns
    _inbox: int = -1
    _buffer: bytes = b""

    @classmethod
    def join(cls, spec: str) -> Ring:
        """Join the ring named by `spec` ("DIRECTORY:INDEX", the value of FITBENCH_INTERLEAVE)."""
        directory, _, index_text = spec.rpartition(":")
        try:
            described = json.loads((Path(directory) / "ring.json").read_text())
            index = int(index_text)
        except (OSError, ValueError) as error:
            raise RingError(f"{ENV}={spec!r} does not name a ring ({error}); run the sessions "
                            "through `fitbench interleave`, which sets it") from error
        if not 0 <= index < described["size"]:
            raise RingError(f"{ENV}={spec!r}: index {index} is outside the ring of {described['size']}")
        ring = cls(Path(directory), index, described["size"], described["id"], described["timeout"],
                   described.get("driver", False))
        ring._inbox = os.open(ring.directory / f"{index}.fifo", os.O_RDWR)
        (ring.directory / f"ready-{index}").touch()
        return ring

    def _pass(self) -> bool:
        """Pass the token to the next session still in the ring; False when none is left."""
        following = next_session(self.index, self.size, self.left | {self.index})
        if following is None:
            return False
        _send(self.directory, following, {"turn": self.turn + 1, "left": sorted(self.left)})
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
            self.turn += 1  # alone in the ring: keep the token
            return self.turn
        try:
            message = self._receive()
        except TimeoutError:
            self.broken = (f"no turn within {self.timeout:.0f} s (a session of the ring stopped); "
                           "running on alone, the rest of this session's epochs are not interleaved")
            return None
        self.holding, self.turn, self.left = True, message["turn"], set(message["left"])
        return self.turn

    def leave(self) -> None:
        """Leave the ring: wait for the token if needed, mark this session as left, pass it on."""
        if self._inbox < 0:
            return
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
        return {"ring": self.ring_id, "index": self.index, "size": self.size}


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


def run(commands: Sequence[str], directory: Path, timeout: float = DEFAULT_TIMEOUT,
        poll_seconds: float = 0.2) -> list[int]:
    """Run shell `commands` as one ring, each session's output to directory/session-N.log;
    their exit statuses, in order. The ring starts once every session has joined (or ended
    before joining: a usage error), so no session's startup overlaps another's epochs."""
    ring_directory = directory / "ring"
    create(ring_directory, len(commands), timeout, driver=True)
    # Open from the start, so that nothing written to them is lost: a FIFO drops its data when
    # its last descriptor closes (a session that died, the driver's before it reads).
    fifos = {name: os.open(ring_directory / f"{name}.fifo", os.O_RDWR) for name in [*range(len(commands)), DRIVER]}
    processes = []
    for index, command in enumerate(commands):
        env = {**os.environ, ENV: f"{ring_directory}:{index}"}
        with open(directory / f"session-{index}.log", "wb") as log:
            processes.append(subprocess.Popen(command, shell=True, env=env, stdout=log,
                                              stderr=subprocess.STDOUT))

    def joined(index: int) -> bool:
        return (ring_directory / f"ready-{index}").exists()

    while True:
        never_joined = {i for i, p in enumerate(processes) if p.poll() is not None and not joined(i)}
        if all(joined(i) or i in never_joined for i in range(len(processes))):
            break
        time.sleep(poll_seconds)
    start(ring_directory, never_joined)
    _forward_tokens(ring_directory, processes, fifos, never_joined, poll_seconds)
    return [process.wait() for process in processes]


def _forward_tokens(directory: Path, processes: list[subprocess.Popen], fifos: dict[int | str, int],
                    left: set[int], poll_seconds: float) -> None:
    """The driver's part: pass on the token of each session that left once its process has
    exited, and any token sent to a session that died without leaving."""
    size = len(processes)
    inbox = fifos[DRIVER]
    dead: dict[int, int] = {}  # index -> its FIFO, for sessions that exited without leaving
    try:
        while len(left) < size:
            ready, _, _ = select.select([inbox, *dead.values()], [], [], poll_seconds)
            for descriptor in ready:
                for message in _read_lines(descriptor):
                    sender = message.get("from")
                    if sender is None:  # a token sent to a dead session
                        sender = next(i for i, d in dead.items() if d == descriptor)
                    else:
                        processes[sender].wait()
                    left |= {*message["left"], sender}
                    following = next_session(sender, size, left)
                    if following is not None:
                        _send(directory, following, {"turn": message["turn"] + 1, "left": sorted(left)})
            for index, process in enumerate(processes):
                if process.poll() is not None and index not in left and index not in dead \
                        and not (directory / f"left-{index}").exists():
                    dead[index] = fifos[index]
            if all(p.poll() is not None for p in processes) and not select.select([inbox], [], [], 0)[0]:
                break
    finally:
        for descriptor in fifos.values():
            os.close(descriptor)
