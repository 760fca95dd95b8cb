"""The `fitbench` command (also `python -m fitbench`): one module per command in
`fitbench.cli.commands`, each with its `add_parser` and its `run`; this module only dispatches."""

from __future__ import annotations

import importlib
import sys

from fitbench.cli.common import ArgumentParser, fail

COMMANDS = ("overhead", "compare", "explain", "ab", "bisect", "report", "noise", "history", "interleave",
            "workers", "fingerprint")
# Everything after -- is the command the sessions (or workers) run.
TAKES_A_COMMAND = ("workers", "ab", "bisect", "history")
# These never load TensorFlow themselves: their sessions do.
WITHOUT_TENSORFLOW = ("compare", "explain", "interleave", "workers", "ab", "bisect", "history")


def parser() -> ArgumentParser:
    top = ArgumentParser(prog="fitbench", description="How fast, and how well, TensorFlow/Keras trains: "
                         "compare runs, A/B two versions, bisect, track history, report.")
    commands = top.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    for name in COMMANDS:
        importlib.import_module(f"fitbench.cli.commands.{name}").add_parser(commands)
    return top


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    after: list[str] = []
    if argv[:1] and argv[0] in TAKES_A_COMMAND and "--" in argv:
        cut = argv.index("--")
        argv, after = argv[:cut], argv[cut + 1:]
    args = parser().parse_args(argv)
    args.worker_command = args.pytest_args = after
    if args.command in ("ab", "bisect") and not after:
        return fail(args.command, f"give the pytest arguments after --, for example: fitbench {args.command} "
                    f"{'--base main' if args.command == 'ab' else 'GOOD BAD'} -- benchmarks -k test_batch_size "
                    "--profile smoke")
    if args.command not in WITHOUT_TENSORFLOW:
        from fitbench.measure import startup

        startup.load()
    if args.command in ("compare", "explain"):  # one list: CANDIDATE and --candidate-also
        args.candidate = [args.candidate, *args.candidate_also]
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
