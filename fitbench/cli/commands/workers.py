"""`fitbench workers`: a pytest command as N local workers of one cluster, and weak scaling."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fitbench.cli.common import fail, print_sessions, worst_status


def add_parser(commands: argparse._SubParsersAction) -> None:
    work = commands.add_parser(
        "workers",
        help="run a pytest command as N local workers of one cluster (MultiWorkerMirroredStrategy on loopback)",
        description="Start N copies of COMMAND as one cluster: each with its TF_CONFIG (127.0.0.1 ports) and "
        "its share of the cores; worker 0 is the chief, whose output you see and which alone writes results. "
        "A worker that dies or stops answering ends every worker, named in one line. Example: "
        "fitbench workers 2 -- pytest benchmarks -k batch_size-512 --profile smoke --devices cpu",
    )
    work.add_argument("workers", type=int, metavar="N",
                      help="how many worker processes; then -- and the command each runs")
    work.add_argument("--cores-per-worker", type=int, default=None, metavar="C",
                      help="cores each worker is pinned to (default: this machine's cores split evenly)")
    work.add_argument("--logs", default=None, metavar="DIR",
                      help="where the other workers' output goes (default: a new temporary directory)")
    work.add_argument("--scaling", action="store_true",
                      help="weak scaling: run COMMAND on 1 worker and on N, C cores each, with each case's batch "
                      "per worker, taking turns one timed epoch each; print each benchmark's efficiency "
                      "(N workers' samples/s over N x one worker's) with its interval")
    work.add_argument("--finish-timeout", type=float, default=300.0,
                      help="seconds the other workers may run on after one finished (default %(default)s)")
    work.add_argument("--stall-timeout", type=float, default=60.0,
                      help="seconds a worker may be stopped before it counts as not answering (default %(default)s)")
    work.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the command as N local workers of one cluster; with --scaling, interleaved with the
    same command on 1 worker, and print the weak-scaling efficiency."""
    import tempfile

    from fitbench.processes import launch

    command = args.worker_command
    logs = Path(args.logs or tempfile.mkdtemp(prefix="fitbench-workers-"))
    if args.scaling:
        return scaling_command(args, command, logs)
    try:
        launcher = launch.Launcher(command, args.workers, logs, args.cores_per_worker,
                                   finish_timeout=args.finish_timeout, stall_timeout=args.stall_timeout,
                                   say=lambda line: print(line, flush=True))
        return launcher.run()
    except launch.LaunchError as error:
        return fail("workers", str(error))


def scaling_command(args: argparse.Namespace, command: list[str], logs: Path) -> int:
    """1 worker and N workers with the same cores each, the batch per worker (weak scaling),
    taking turns one timed epoch each; then each benchmark's efficiency, written to the
    N-worker run's JSON."""
    import shlex

    from fitbench.compare import results, scaling
    from fitbench.present import format
    from fitbench.processes import turns
    from fitbench.processes.launch import assign_cores, available_cores

    try:
        cores = len(assign_cores(args.workers, args.cores_per_worker, available_cores())[0])
    except ValueError as error:
        return fail("workers", str(error))
    if args.workers < 2:
        return fail("workers", "--scaling compares 1 worker with N: give N of 2 or more")
    if any(part.startswith("--benchmark-json") for part in command):
        return fail("workers", "--scaling writes its own --benchmark-json files (in --logs); drop yours")
    logs.mkdir(parents=True, exist_ok=True)
    paths = {n: logs / f"workers-{n}.json" for n in (1, args.workers)}
    sessions = [
        f"{shlex.quote(sys.executable)} -m fitbench workers {n} --cores-per-worker {cores} --logs "
        f"{shlex.quote(str(logs / f'workers-{n}'))} -- {shlex.join(command)} --batch-per-worker "
        f"--benchmark-json {shlex.quote(str(path))}"
        for n, path in paths.items()]
    print(f"fitbench workers --scaling: 1 and {args.workers} workers, {cores} core{'s' if cores > 1 else ''} each, "
          f"batch per worker, taking turns one timed epoch each; logs in {logs}", flush=True)
    outcomes = turns.Driver(sessions, logs).run()
    print_sessions(outcomes, logs)
    try:
        one, many = (results.load_run(path) for path in paths.values())
    except results.NotBenchmarkJSON as error:
        return fail("workers", f"a session wrote no results ({error}); see its log above")
    measured = scaling.weak_scaling(one.records, many.records)
    for figure in measured:
        print(format.weak_scaling(figure))
    for line in scaling.unpaired(one.records, many.records):
        print(line)
    scaling.write(paths[args.workers], measured)
    print(f"wrote the scaling to {paths[args.workers]} (fitbench section)")
    return worst_status(outcomes) if measured else max(worst_status(outcomes), 1)
