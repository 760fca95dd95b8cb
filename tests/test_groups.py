"""Process groups started one way: a signal sent to a child while it is still starting (between
fork and exec) ends it, instead of vanishing into the parent's inherited Python handler."""

from __future__ import annotations

import os
import signal
import threading
import time

from fitbench.processes import groups


def test_a_sigterm_while_the_child_starts_ends_it(tmp_path):
    pid_file = tmp_path / "pid"

    def starting() -> None:  # runs in the child between fork and exec: the window
        pid_file.write_text(str(os.getpid()))
        time.sleep(2)

    def terminate_when_started() -> None:
        while not pid_file.exists() or not pid_file.read_text():
            time.sleep(0.01)
        os.kill(int(pid_file.read_text()), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, groups.raise_interrupt)  # a supervisor's handler
    try:
        killer = threading.Thread(target=terminate_when_started)
        killer.start()
        process = groups.start(["sleep", "600"], preexec=starting)
        killer.join()
    finally:
        signal.signal(signal.SIGTERM, previous)
    try:
        assert process.wait(timeout=20) == -signal.SIGTERM  # not `sleep 600` living on
    finally:
        groups.end_groups([process], 1.0)


def test_a_signal_to_the_supervisor_while_it_starts_a_child_is_kept_for_after(tmp_path):
    received = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        # Sent by the child before its exec: the supervisor is blocked in the fork then.
        process = groups.start(["sleep", "600"], preexec=lambda: os.kill(os.getppid(), signal.SIGTERM))
        time.sleep(0.1)
        assert process.poll() is None  # the child started, and the signal was not lost either
    finally:
        signal.signal(signal.SIGTERM, previous)
        groups.end_groups([process], 1.0)
    assert received == [signal.SIGTERM]
