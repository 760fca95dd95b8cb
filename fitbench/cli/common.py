"""What the `fitbench` commands share: one-line usage errors, where verdicts go, the options
declared once for several commands, and the ring's sessions printed."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


class ArgumentParser(argparse.ArgumentParser):
    """Usage errors in one line, exit 2 (argparse's own prints the whole usage first)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


# Two rounds, each a fresh pair of sessions, the side started first swapped between them: a
# session's own speed differs from another's by 1-3% on these VMs (more on some), and more
# against the one started first; one round cannot tell that from a change (docs/gating.md).
# Here, not in fitbench.cli.ab, so that the parser does not import the comparison's libraries.
DEFAULT_AB_ROUNDS = 2
DEFAULT_EXPLAIN_STEPS = 40  # --explain: 4 chunks of 10 steps (fitbench.measure.opprofile.CHUNK), each a turn
# --explain without --rounds: an explanation judges each line against its spread between the
# sessions of a side; with 2 a side that spread has 2 degrees of freedom (t of about 8 for a line
# at 99%), with 3 it has 4 (t of about 4), enough to name a +30% MatMul family on this 2-vCPU VM,
# where its session means spread by 3-7% (docs/explain.md).
DEFAULT_EXPLAIN_ROUNDS = 3


def fail(command: str, message: str) -> int:
    """One line on stderr; exit 2: the inputs cannot be used."""
    print(f"fitbench {command}: {message}", file=sys.stderr)
    return 2


def writable(path: str | None) -> str | None:
    """Why `path` cannot be written, or None."""
    if not path:
        return None
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        return f"{path}: no such directory {parent}"
    if target.is_dir():
        return f"{path}: is a directory"
    existed = target.exists()
    try:
        with open(target, "a"):
            pass
    except OSError as error:
        return f"cannot write {path}: {error.strerror or error}"
    if not existed:
        target.unlink()
    return None


def print_comparison(comparison, markdown: str | None, json_path: str | None) -> None:
    """The gate's verdicts: lines on the terminal, markdown appended, JSON written."""
    from fitbench.present import format

    for line in format.verdict_lines(comparison):
        print(line)
    for line in format.failure_lines(comparison):
        print(line)
    if markdown:
        with open(markdown, "a") as out:  # appends, as $GITHUB_STEP_SUMMARY expects
            out.write(format.verdict_markdown(comparison))
    if json_path:
        write_json(json_path, comparison.as_dict())


def write_json(path: str | Path, document: object) -> bool:
    """Write a command's JSON (verdicts, explanations, a search) whole or not at all (a reader, or a
    full disk, never sees half a file); a failure is one line on stderr, and False."""
    from fitbench.compare.results import write_atomically

    try:
        write_atomically(Path(path), json.dumps(document, indent=2, default=str))
    except OSError as error:
        print(f"fitbench: could not write {path}: {error.strerror or error}", file=sys.stderr)
        return False
    return True


def add_verdict_options(parser: argparse.ArgumentParser) -> None:
    """The gate's options and where its verdicts go: `fitbench compare` and `fitbench ab` alike."""
    from fitbench.core.options import add_gate_options

    add_gate_options(parser.add_argument)
    parser.add_argument("--markdown", default=None, metavar="FILE",
                        help="append a markdown summary (for example $GITHUB_STEP_SUMMARY)")
    parser.add_argument("--json", default=None, metavar="FILE", help="write the verdicts as JSON")


def add_ring_options(parser: argparse.ArgumentParser) -> None:
    """--timeout, --join-timeout, --order and --waiting: how sessions that take turns are started and ordered
    (`fitbench ab` and `fitbench interleave`), declared once."""
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds a session may hold the turn (its epoch, or its start-up) before it counts as "
                        "not answering and is ended; also how long a session waits for its turn before running on "
                        "alone (default %(default)s)")
    parser.add_argument("--join-timeout", type=float, default=600.0,
                        help="seconds for every session to start (imports, collection) and join the ring; later "
                        "ones are ended (default %(default)s)")
    parser.add_argument("--order", default="alternate", choices=["alternate", "random", "fixed"],
                        help="turn order within each round (default %(default)s: reversed every other round, so "
                        "that no session always follows another)")
    parser.add_argument("--waiting", default="paused", choices=["paused", "running"],
                        help="what a session waiting for its turn does (default %(default)s: its process group is "
                        "stopped, so that its threads take nothing from the epoch being timed; running: it only "
                        "blocks, as rings did before)")


def print_sessions(outcomes: list, directory: Path) -> None:
    """Each ring session's output, from its log, under a line naming it."""
    for index, outcome in enumerate(outcomes):
        log = directory / f"session-{index}.log"
        print(f"===== session {index + 1} of {len(outcomes)}: {outcome.command} ({log}) =====")
        sys.stdout.write(log.read_text(errors="replace") if log.exists() else "(no output)\n")
        sys.stdout.flush()


def worst_status(outcomes: list) -> int:
    """The worst exit status of the ring's sessions (128 + N for signal N; 1 when unknown)."""
    statuses = [1 if o.status is None else (128 - o.status if o.status < 0 else o.status) for o in outcomes]
    return max(statuses, key=abs)
