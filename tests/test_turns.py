"""The ring of interleaved sessions: strict turns, sessions leaving early, a broken ring."""

from __future__ import annotations

import json
import sys
import threading
import time

import pytest

from fitbench import turns


def session(directory, index, epochs, log, active, errors):
    """A session as the runner drives it: join, take a turn before each epoch, leave."""
    try:
        ring = turns.Ring.join(f"{directory}:{index}")
        for epoch in range(epochs):
            turn = ring.take()
            active.append(index)
            if len(active) > 1:
                errors.append(f"sessions {active} ran at once")
            log.append((turn, index, epoch))
            time.sleep(0.002)
            active.remove(index)
        ring.leave()
    except Exception as error:  # noqa: BLE001 - reported by the test
        errors.append(repr(error))


def run_ring(tmp_path, epochs_per_session):
    directory = tmp_path / "ring"
    turns.create(directory, len(epochs_per_session), timeout=20)
    log, active, errors = [], [], []
    threads = [threading.Thread(target=session, args=(directory, i, n, log, active, errors))
               for i, n in enumerate(epochs_per_session)]
    for thread in threads:
        thread.start()
    while not all((directory / f"ready-{i}").exists() for i in range(len(threads))):
        time.sleep(0.01)
    turns.start(directory, set())
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    return log


def test_sessions_take_strict_turns_in_ring_order(tmp_path):
    log = run_ring(tmp_path, [4, 4, 4])
    assert [index for _, index, _ in log] == [0, 1, 2] * 4
    assert [turn for turn, _, _ in log] == list(range(12))  # one turn per epoch, none lost
    # Epoch k of every session ran within one trip of the token: what the gate pairs.
    by_session = {i: [t for t, index, _ in log if index == i] for i in range(3)}
    assert all(abs(a - b) < 3 for a, b in zip(by_session[0], by_session[1], strict=True))


def test_a_session_that_ends_early_leaves_the_ring_to_the_others(tmp_path):
    log = run_ring(tmp_path, [2, 5, 3])
    assert [index for _, index, _ in log] == [0, 1, 2, 0, 1, 2, 1, 2, 1, 1]
    assert sorted(e for _, i, e in log if i == 1) == list(range(5))


def test_a_session_alone_keeps_the_token(tmp_path):
    log = run_ring(tmp_path, [3])
    assert [turn for turn, _, _ in log] == [0, 1, 2]


def test_a_lost_token_times_out_and_the_session_runs_on_alone(tmp_path):
    directory = tmp_path / "ring"
    turns.create(directory, 2, timeout=0.2)
    ring = turns.Ring.join(f"{directory}:0")  # session 1 never joins and the ring never starts
    assert ring.take() is None and "no turn within" in ring.broken
    assert ring.take() is None  # it no longer waits
    ring.leave()


def test_a_bad_ring_specification_is_a_clear_error(tmp_path):
    with pytest.raises(turns.RingError, match="fitbench interleave"):
        turns.Ring.join(f"{tmp_path}/nowhere:0")
    turns.create(tmp_path / "ring", 2)
    with pytest.raises(turns.RingError, match="outside the ring of 2"):
        turns.Ring.join(f"{tmp_path / 'ring'}:5")


SESSION = """
import json, os, sys, time
from fitbench import turns
ring = turns.Ring.join(os.environ[turns.ENV])
seen = []
for _ in range(3):
    seen.append((ring.take(), time.monotonic()))
    time.sleep(0.01)
ring.leave()
json.dump(seen, open(sys.argv[1], "w"))
"""


def test_run_starts_the_ring_once_every_session_has_joined_or_ended(tmp_path):
    script = tmp_path / "session.py"
    script.write_text(SESSION)
    commands = [f"{sys.executable} {script} {tmp_path / f'{i}.json'}" for i in range(2)]
    commands.append("exit 3")  # ends before joining (a usage error): the ring goes on without it
    statuses = turns.run(commands, tmp_path, timeout=20)
    assert statuses == [0, 0, 3]
    first, second = (json.loads((tmp_path / f"{i}.json").read_text()) for i in range(2))
    assert [t for t, _ in first] == [0, 2, 4] and [t for t, _ in second] == [1, 3, 5]
    assert (tmp_path / "session-2.log").exists()


def test_the_driver_forwards_a_token_sent_to_a_session_that_died_without_leaving(tmp_path):
    script, dying = tmp_path / "session.py", tmp_path / "dying.py"
    script.write_text(SESSION)
    dying.write_text("import os\nfrom fitbench import turns\nturns.Ring.join(os.environ[turns.ENV])\nos._exit(5)\n")
    commands = [f"{sys.executable} {script} {tmp_path / '0.json'}", f"{sys.executable} {dying}",
                f"{sys.executable} {script} {tmp_path / '2.json'}"]
    assert turns.run(commands, tmp_path, timeout=20) == [0, 5, 0]
    first, third = (json.loads((tmp_path / f"{i}.json").read_text()) for i in (0, 2))
    turns_seen = sorted(t for t, _ in first + third)
    assert None not in turns_seen and len(set(turns_seen)) == 6  # every turn taken, none twice
