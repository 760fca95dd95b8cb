"""The `fitbench` command (also `python -m fitbench`)."""

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


def overhead_command(args: argparse.Namespace) -> int:
    from fitbench.cli import overhead
    from fitbench.measure import datasets, devices, experiments

    devices.configure()
    try:
        experiment = experiments.load(args.benchmark_file)
    except (FileNotFoundError, ValueError) as error:
        return fail("overhead", str(error))
    cases = args.cases or experiment.cases
    unknown = [case for case in cases if case not in experiment.grid]
    if unknown:
        return fail("overhead", f"no case {', '.join(unknown)} in {args.benchmark_file}; "
                    f"its grid has {', '.join(experiment.cases)}")
    workload = experiment.workload
    dataset = datasets.load(workload.dataset, args.data_dir, allow_download=not args.offline,
                            args=workload.dataset_args)
    device = devices.resolve(args.device)
    schedule = experiment.workload.schedule(args.profile, device.kind)
    print(f"{experiment.title} ({args.profile}: {schedule.epochs} epochs) on {device.description}; "
          f"{args.repeats} alternating repeats per side")
    print(f"{'case':>24} {'plain fit s/epoch':>18} {'runner s/epoch':>15} {'difference':>11} "
          f"{'90% interval':>17} {'fit, iterator per epoch':>24} {'fit on NumPy s/epoch':>21} "
          f"{'runner, numpy variant':>22} {'difference, 90% interval':>27}")
    worst = 0.0
    for case in cases:
        pooled = overhead.compare(experiment.workload_of(case), args.profile, device, dataset, repeats=args.repeats)
        low, high = pooled.interval()
        # Agreement is shown only when the whole interval lies inside +-tolerance.
        worst = max(worst, abs(low), abs(high))
        interval = f"[{low:+.1%}, {high:+.1%}]"
        numpy_difference, numpy_low, numpy_high = pooled.numpy_interval()
        numpy_interval = f"{numpy_difference:+.1%} [{numpy_low:+.1%}, {numpy_high:+.1%}]"
        print(f"{case or '-':>24} {pooled.plain_median:>18.3f} {pooled.runner_median:>15.3f} "
              f"{pooled.overhead:>+11.1%} {interval:>17} {pooled.churn_median:>24.3f} "
              f"{pooled.numpy_median:>21.3f} {pooled.numpy_runner_median:>22.3f} {numpy_interval:>27}", flush=True)
    per_call = overhead.fit_call_seconds(device)
    print(f"for reference, one extra fit() call costs {per_call * 1000:.1f} ms (1-batch epoch, median of 50);"
          " the runner calls fit() for epoch 1 only")
    return 0 if worst <= args.tolerance else 1


def compare_command(args: argparse.Namespace) -> int:
    """Exit 0: the gate passes; 1: a regression or a missing benchmark; 2: the inputs cannot be
    compared (a bad file or option, another machine, other software, nothing comparable)."""
    from fitbench.compare import gate
    from fitbench.compare.results import NotBenchmarkJSON, load_run
    from fitbench.core.options import GateSettings

    problem = next(filter(None, (writable(path) for path in (args.json, args.markdown))), None)
    if problem:
        return fail("compare", problem)
    try:
        settings = GateSettings.read(lambda name: getattr(args, name))
        baseline = [load_run(path) for path in args.baseline]
        candidate = [load_run(path) for path in args.candidate]
        comparison = gate.compare(baseline, candidate, settings)
    except (NotBenchmarkJSON, gate.MachineMismatch, gate.SoftwareMismatch, gate.NothingComparable,
            ValueError) as error:
        return fail("compare", str(error))
    print_comparison(comparison, args.markdown, args.json)
    return 1 if comparison.failures else 0


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
        with open(json_path, "w") as out:
            json.dump(comparison.as_dict(), out, indent=2, default=str)


def ab_command(args: argparse.Namespace) -> int:
    """Exit as `fitbench compare` does (0 passes, 1 a regression or a missing benchmark, 2 the
    A/B cannot be run or compared); 130 when interrupted."""
    from fitbench.cli import ab
    from fitbench.compare import gate
    from fitbench.core.options import GateSettings
    from fitbench.present import format

    problem = next(filter(None, (writable(path) for path in (args.json, args.markdown))), None)
    if problem:
        return fail("ab", problem)
    try:
        settings = GateSettings.read(lambda name: getattr(args, name))
        plan = ab.plan(args.base, args.candidate, args.base_python, args.candidate_python, args.base_env,
                       args.candidate_env, args.pytest_args, args.output, args.rounds, args.budget, args.order,
                       Path.cwd())
        outcome = ab.AB(plan, settings, say=lambda line: print(line, flush=True),
                        timeout=args.timeout, join_timeout=args.join_timeout).run()
    except (ab.ABError, gate.MachineMismatch, gate.SoftwareMismatch, gate.NothingComparable, ValueError) as error:
        return fail("ab", str(error))
    if outcome.interrupted:
        print("fitbench ab: interrupted; each session saved what it finished in " + str(plan.output))
        return 130
    comparison = outcome.comparison
    print_comparison(comparison, args.markdown, args.json)
    with open(plan.output / "verdicts.json", "w") as out:
        json.dump({**comparison.as_dict(), "rounds": outcome.rounds, "seconds": round(outcome.seconds, 1),
                   "undecided": outcome.undecided, "runs": outcome.runs}, out, indent=2, default=str)
    for verdict in comparison.verdicts + ([comparison.overall] if comparison.overall else []):
        if verdict.name in outcome.undecided:
            print(f"UNDECIDED at the budget: {verdict.name}: epoch time x{format.ratio(verdict)} "
                  f"after {verdict.candidate_epochs} pairs")
    print(f"fitbench ab: {outcome.rounds} round{'s' if outcome.rounds > 1 else ''} in {outcome.seconds / 60:.1f} min; "
          f"runs and verdicts in {plan.output} (fitbench report {plan.output}/base-*.json "
          f"{plan.output}/candidate-*.json)")
    return 1 if comparison.failures else 0


def bisect_command(args: argparse.Namespace) -> int:
    """Exit 0: the first bad commit or environment is named; 1: the search ended without one
    (the budget, or only skipped steps left); 2: it cannot be run; 130: interrupted."""
    import time

    from fitbench.cli import ab, bisect
    from fitbench.core.options import GateSettings

    problem = next(filter(None, (writable(path) for path in (args.json, args.markdown))), None)
    if problem:
        return fail("bisect", problem)
    if bool(args.python_versions) == bool(args.good):
        return fail("bisect", "give GOOD and BAD commits, or --python-versions PY0 ... PYn (good first), not both")
    if args.good and not args.bad:
        return fail("bisect", "give the bad commit after the good one: fitbench bisect GOOD BAD -- ...")
    output = Path(args.output or Path.cwd() / ".benchmarks" / "bisect" / time.strftime("%Y%m%d-%H%M%S")).resolve()
    try:
        settings = GateSettings.read(lambda name: getattr(args, name))
        budget = ab.parse_duration(args.budget) if args.budget else None
        bisector = bisect.Bisector(args.pytest_args, output, settings, args.rounds, budget,
                                   say=lambda line: print(line, flush=True))
        if args.python_versions:
            search = bisect.bisect_pythons(bisector, args.python_versions, Path.cwd())
        else:
            search = bisect.bisect_commits(bisector, args.good, args.bad, Path.cwd())
    except (ab.ABError, ValueError) as error:
        return fail("bisect", str(error))
    except KeyboardInterrupt:
        print(f"fitbench bisect: interrupted; the steps so far are in {output}")
        return 130
    lines = search.describe()
    for line in lines:
        print(line)
    output.mkdir(parents=True, exist_ok=True)
    with open(output / "bisect.json", "w") as out:
        json.dump(search.as_dict(), out, indent=2)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(search.as_dict(), out, indent=2)
    if args.markdown:
        with open(args.markdown, "a") as out:
            out.write("## fitbench bisect\n\n" + "\n".join(f"- {step.describe()}" for step in search.steps)
                      + "\n\n**" + "**\n\n".join(lines) + "**\n")
    return 0 if search.first_bad else 1


def report_command(args: argparse.Namespace) -> int:
    from fitbench.compare.results import NotBenchmarkJSON
    from fitbench.present import report

    if args.update_readme:
        command = " ".join(["fitbench report", *args.runs, "--update-readme", args.update_readme])
        try:
            path = report.update_readme(args.runs, args.update_readme, command, args.benchmarks)
        except (NotBenchmarkJSON, ValueError) as error:
            return fail("report", str(error))
        except OSError as error:
            return fail("report", f"{args.update_readme}: {error.strerror or error}")
        print(f"updated the results section of {path}")
        return 0
    problem = writable(str(Path(args.output) / "report.md")) if Path(args.output).is_dir() else None
    if problem:
        return fail("report", problem)
    try:
        path = report.write(args.runs, args.output, args.benchmarks)
    except (NotBenchmarkJSON, ValueError) as error:
        return fail("report", str(error))
    except OSError as error:
        return fail("report", f"cannot write to {args.output}: {error.strerror or error}")
    print(f"wrote {path}")
    return 0


def noise_command(args: argparse.Namespace) -> int:
    from fitbench.compare import gate
    from fitbench.compare.results import NotBenchmarkJSON, load_run

    try:
        noise, dof = gate.run_noise([load_run(path) for path in args.runs])
    except (NotBenchmarkJSON, ValueError) as error:
        return fail("noise", str(error))
    print(f"run-to-run noise: {noise:.3f} (sd of log median epoch time, {dof} degrees of freedom); "
          f"gate with --run-noise {noise:.3f}")
    return 0


def history_command(args: argparse.Namespace) -> int:
    from fitbench.compare import history
    from fitbench.compare.results import NotBenchmarkJSON, load_run

    paths = []
    for place in map(Path, args.runs):
        if place.is_dir():
            paths += sorted(place.rglob("*.json"))
        elif place.exists():
            paths.append(place)
        else:
            return fail("history", f"{place}: no such file or folder")
    runs, skipped = [], []
    for path in paths:
        try:
            runs.append(load_run(path))
        except NotBenchmarkJSON as error:
            skipped.append(str(error))
    if not runs:
        return fail("history", "no fitbench run among " + ", ".join(args.runs)
                    + (f" ({skipped[0]})" if skipped else ""))
    found = history.history(runs, args.time_threshold)
    for line in skipped:
        print(f"skipped: {line}")
    for series in found:
        partial = f" (partial runs: {', '.join(series.partial)})" if series.partial else ""
        if series.note:
            print(f"{'-':<12} {series.name}: {series.note}{partial}")
        for change in series.change_points:
            print(change.describe() + partial)
    alerts = history.alerts(found, args.alert_last) if args.alert_last else []
    if args.markdown:
        Path(args.markdown).write_text(history_markdown(found, alerts, args.alert_last))
    if args.alert_last:
        print(f"{len(alerts)} regression{'' if len(alerts) == 1 else 's'} among the last {args.alert_last} runs")
    return 1 if alerts else 0


def history_markdown(found: list, alerts: list, last: int | None) -> str:
    lines = ["## fitbench history", ""]
    if last:
        lines += [f"**{len(alerts)} regression{'' if len(alerts) == 1 else 's'} among the last {last} runs**", ""]
    lines += ["| benchmark | change | epoch time ratio [90% CI] | between | p | software |",
              "|---|---|---|---|---|---|"]
    for series in found:
        for c in series.change_points:
            lines.append(f"| `{series.name}` | {c.verdict} | {c.ratio:.3f} [{c.low:.3f}, {c.high:.3f}] | "
                         f"{c.before.label} → {c.after.label} | {c.p_value:.2g} | {', '.join(c.software) or '-'} |")
        if series.note:
            lines.append(f"| `{series.name}` | - | - | {series.note} | - | - |")
    return "\n".join(lines) + "\n"


def interleave_command(args: argparse.Namespace) -> int:
    """Run the commands as one ring; print each session's output, then one line per session;
    exit with the worst status (130 when interrupted)."""
    import tempfile

    from fitbench.processes import turns

    directory = Path(args.logs or tempfile.mkdtemp(prefix="fitbench-interleave-"))
    directory.mkdir(parents=True, exist_ok=True)
    driver = turns.Driver(args.commands, directory, timeout=args.timeout, join_timeout=args.join_timeout,
                          deadline=args.deadline, order=args.order)
    print(f"fitbench interleave: {len(args.commands)} sessions, logs in {directory}", flush=True)
    outcomes = driver.run()
    print_sessions(outcomes, directory)
    for index, outcome in enumerate(outcomes):
        print(outcome.describe(index))
    return 130 if driver.interrupted else worst_status(outcomes)


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


def workers_command(args: argparse.Namespace) -> int:
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
        print(figure.describe())
    for line in scaling.unpaired(one.records, many.records):
        print(line)
    scaling.write(paths[args.workers], measured)
    print(f"wrote the scaling to {paths[args.workers]} (fitbench section)")
    return worst_status(outcomes) if measured else max(worst_status(outcomes), 1)


def fingerprint_command(args: argparse.Namespace) -> int:
    """Print this machine's fingerprint (what the gate compares), or a short hash of it."""
    import hashlib
    from dataclasses import asdict

    from fitbench.core.record import Environment
    from fitbench.measure import devices

    devices.configure()
    print_ = asdict(Environment.from_machine_info(devices.machine_info()))
    text = json.dumps(print_, sort_keys=True)
    print(hashlib.sha256(text.encode()).hexdigest()[:16] if args.short else json.dumps(print_, indent=2))
    return 0


def add_verdict_options(parser: argparse.ArgumentParser) -> None:
    """The gate's options and where its verdicts go: `fitbench compare` and `fitbench ab` alike."""
    from fitbench.core.options import add_gate_options

    add_gate_options(parser.add_argument)
    parser.add_argument("--markdown", default=None, metavar="FILE",
                        help="append a markdown summary (for example $GITHUB_STEP_SUMMARY)")
    parser.add_argument("--json", default=None, metavar="FILE", help="write the verdicts as JSON")


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="fitbench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    over = commands.add_parser(
        "overhead",
        help="compare the runner's steady-state epoch time with a plain model.fit(epochs=N)",
    )
    over.add_argument("benchmark_file", nargs="?", default="benchmarks/test_batch_size.py",
                      help="benchmark file whose EXPERIMENT to use (default: %(default)s)")
    over.add_argument("--profile", default="default", help="schedule profile (default: %(default)s)")
    over.add_argument("--data-dir", default=None, help="as pytest's --data-dir")
    over.add_argument("--offline", action="store_true", help="never try Keras' download")
    over.add_argument("--device", default="cpu", choices=["cpu", "gpu", "tpu"])
    over.add_argument("--cases", nargs="+", default=None, metavar="CASE",
                      help="case ids of the experiment's grid (default: all of them)")
    over.add_argument("--repeats", type=int, default=3, help="alternating repeats per side")
    over.add_argument("--tolerance", type=float, default=0.05,
                      help="exit non-zero unless every 90%% interval of the difference lies within "
                      "+-this fraction (default 0.05)")
    over.set_defaults(handler=overhead_command)

    comp = commands.add_parser(
        "compare",
        help="gate CANDIDATE against BASELINE (pytest-benchmark JSON): a verdict per benchmark",
        description="Compare, benchmark by benchmark and only like with like, steady-state epoch times "
        "(run medians with the run-to-run noise; interleaved runs: signed-rank test on epoch pairs, plus "
        "a verdict on all benchmarks at once), the checked metric and first-epoch time. Exit status: 0 the gate "
        "passes, 1 a regression or a missing benchmark, 2 the runs cannot be compared (bad file or "
        "option, another machine, other software without --compare-software, nothing comparable).",
    )
    comp.add_argument("baseline", nargs="+", help="baseline JSON file(s); several are pooled")
    comp.add_argument("candidate", help="candidate JSON file")
    comp.add_argument("--candidate-also", nargs="*", default=[], metavar="JSON",
                      help="more candidate runs to pool with CANDIDATE")
    add_verdict_options(comp)
    comp.set_defaults(handler=compare_command)

    abp = commands.add_parser(
        "ab",
        help="A/B in one job: two versions of the code (--base REF) or two environments (--base-python, "
        "--candidate-python) run the same pytest selection, taking turns, and are gated like fitbench compare",
        description="Run `pytest PYTEST_ARGS` as two sessions that take turns one timed epoch each (the order "
        "alternates every round): the base and the candidate, each with its own checkout (a temporary git "
        "worktree of --base/--candidate, else the working tree), Python and environment; then gate the "
        "candidate against the base as fitbench compare does. Example: fitbench ab --base main -- benchmarks "
        "-k test_batch_size --profile smoke --devices cpu. Exit status: 0 passes, 1 a regression or a missing "
        "benchmark, 2 the A/B cannot be run or compared, 130 interrupted.",
    )
    abp.add_argument("--base", default=None, metavar="REF",
                     help="the base's code: a branch, tag or commit, or merge-base:origin/main (default: the "
                     "working tree, for two environments)")
    abp.add_argument("--candidate", default=None, metavar="REF", help="the candidate's code (default: the working "
                     "tree, uncommitted changes included)")
    abp.add_argument("--base-python", default=None, metavar="PATH",
                     help="the base's Python, for example another venv's bin/python (default: this one)")
    abp.add_argument("--candidate-python", default=None, metavar="PATH", help="the candidate's Python")
    abp.add_argument("--base-env", action="append", default=[], metavar="NAME=VALUE",
                     help="an environment variable for the base's session only (repeatable)")
    abp.add_argument("--candidate-env", action="append", default=[], metavar="NAME=VALUE",
                     help="an environment variable for the candidate's session only (repeatable), for example "
                     "TF_ENABLE_ONEDNN_OPTS=0")
    abp.add_argument("--rounds", type=int, default=None,
                     help="rounds of the selection, each a ring of a fresh session a side; the side started "
                     f"first alternates (default {DEFAULT_AB_ROUNDS}: one round cannot tell a per-session effect "
                     "from a change)")
    abp.add_argument("--budget", default=None, metavar="DURATION",
                     help="instead of --rounds: rounds until every benchmark is decided or the next would not "
                     "fit in DURATION (20m, 1h); sequential test, valid at every look")
    abp.add_argument("--order", default="alternate", choices=["alternate", "random", "fixed"],
                     help="turn order within each round (default %(default)s: reversed every other round)")
    abp.add_argument("--output", default=None, metavar="DIR",
                     help="where both runs' JSON, the session logs and verdicts.json go (default: "
                     ".benchmarks/ab/DATE-TIME)")
    abp.add_argument("--timeout", type=float, default=1800.0,
                     help="seconds a session may hold the turn before it counts as not answering")
    abp.add_argument("--join-timeout", type=float, default=600.0,
                     help="seconds for both sessions to start (imports, collection)")
    add_verdict_options(abp)
    abp.set_defaults(handler=ab_command)

    bis = commands.add_parser(
        "bisect",
        help="find the commit (or environment) that made training slower: git bisect, each step a fitbench ab "
        "of the midpoint against GOOD",
        description="Drive git bisect between GOOD and BAD in a temporary worktree: each step is a fitbench ab "
        "of git's midpoint commit against GOOD on the selection; a regression in epoch time marks it bad, none "
        "good, a commit that cannot be measured is skipped. With --python-versions, the same search over an "
        "ordered list of environments (the first good, the last bad). Example: fitbench bisect v1.2 main -- "
        "benchmarks -k test_batch_size --profile smoke --devices cpu. Exit status: 0 the first bad one is "
        "named, 1 the search ended without one (budget, skips), 2 it cannot be run, 130 interrupted.")
    bis.add_argument("good", nargs="?", default=None, help="a commit without the slowdown (a branch, tag or sha)")
    bis.add_argument("bad", nargs="?", default=None, help="a later commit with it")
    bis.add_argument("--python-versions", nargs="+", default=None, metavar="PYTHON",
                     help="instead of commits: Pythons in order (for example one venv per TensorFlow nightly), "
                     "the first good and the last bad")
    bis.add_argument("--rounds", type=int, default=None,
                     help=f"rounds of each step's A/B (default {DEFAULT_AB_ROUNDS}, as fitbench ab)")
    bis.add_argument("--budget", default=None, metavar="DURATION",
                     help="bound the whole search (20m, 2h): a step starts only if it fits; what is left is named")
    bis.add_argument("--output", default=None, metavar="DIR",
                     help="where each step's runs and the search's bisect.json go (default: "
                     ".benchmarks/bisect/DATE-TIME)")
    add_verdict_options(bis)
    bis.set_defaults(handler=bisect_command)

    rep = commands.add_parser("report", help="markdown report with tables and plots from saved runs")
    rep.add_argument("runs", nargs="+", help="pytest-benchmark JSON files: each measurement's newest run is "
                     "tabulated, every measurement in several runs gets a history line")
    rep.add_argument("-o", "--output", default="reports", help="output directory (default: %(default)s)")
    rep.add_argument("--benchmarks", nargs="+", default=(), metavar="PATH",
                     help="benchmark files, or directories of test_*.py, whose EXPERIMENTs name and plot "
                     "the results (default: this checkout's benchmarks/)")
    rep.add_argument("--update-readme", metavar="README.md", default=None,
                     help="instead of a report: rewrite the generated results section of this README "
                     "(its tables, naming the machine, the date and this command)")
    rep.set_defaults(handler=report_command)

    noise = commands.add_parser("noise", help="this machine's run-to-run noise, from repeated unchanged runs")
    noise.add_argument("runs", nargs="+", help="2+ pytest-benchmark JSON files of the same code")
    noise.set_defaults(handler=noise_command)

    hist = commands.add_parser(
        "history", help="change points in saved runs over time, per measurement; nightly alerts",
        description="For each measurement (same machine, same measurement), the runs in time order: steps in "
        "the median epoch time found by PELT (ruptures) and judged as the gate judges two runs. Exit status: 1 "
        "with --alert-last N when a regression starts among the last N runs, else 0; 2 when nothing can be read.")
    hist.add_argument("runs", nargs="+", help="pytest-benchmark JSON files, or folders of them (searched recursively)")
    hist.add_argument("--alert-last", type=int, default=0, metavar="N",
                      help="exit 1 when a regression change point starts among each series' last N runs")
    hist.add_argument("--time-threshold", type=float, default=0.05, metavar="F",
                      help="smallest epoch-time step that counts as a regression (default %(default)s = 5%%)")
    hist.add_argument("--markdown", default=None, metavar="FILE",
                      help="also write the table as markdown (a job summary)")
    hist.set_defaults(handler=history_command)

    inter = commands.add_parser(
        "interleave",
        help="run pytest sessions as a ring that takes turns, one timed epoch each, so that a "
        "baseline and a candidate see the same machine",
        description="Start each COMMAND (a shell command line running `pytest benchmarks ...`, for "
        "example from two checkouts) at once; the sessions then take turns, one timed epoch each "
        "and nothing else running meanwhile. fitbench compare pairs the epochs of two sessions "
        "of one ring. Exit status: the worst of the sessions'.",
    )
    inter.add_argument("commands", nargs="+", metavar="COMMAND", help="2 or more shell command lines")
    inter.add_argument("--logs", default=None, metavar="DIR",
                       help="where each session's output goes (default: a new temporary directory)")
    inter.add_argument("--timeout", type=float, default=1800.0,
                       help="seconds a session may hold the token (its epoch, or its start-up) before it "
                       "counts as not answering and is ended; also how long a session waits for its turn "
                       "before running on alone (default %(default)s)")
    inter.add_argument("--join-timeout", type=float, default=600.0,
                       help="seconds for every session to start and join the ring; later ones are ended "
                       "(default %(default)s)")
    inter.add_argument("--deadline", type=float, default=6 * 3600.0,
                       help="seconds for the whole ring; then every session is ended, saving what it "
                       "finished (default %(default)s)")
    inter.add_argument("--order", default="alternate", choices=["alternate", "random", "fixed"],
                       help="turn order within each round (default %(default)s: reversed every other round, so "
                       "that no session always follows another)")
    inter.set_defaults(handler=interleave_command)

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
    work.set_defaults(handler=workers_command)

    finger = commands.add_parser("fingerprint", help="this machine's fingerprint (machine and software)")
    finger.add_argument("--short", action="store_true", help="a 16-character hash, for cache keys")
    finger.set_defaults(handler=fingerprint_command)

    argv = sys.argv[1:] if argv is None else list(argv)
    after: list[str] = []
    if argv[:1] in (["workers"], ["ab"], ["bisect"]) and "--" in argv:  # everything after -- is the sessions' command
        cut = argv.index("--")
        argv, after = argv[:cut], argv[cut + 1:]
    args = parser.parse_args(argv)
    args.worker_command = args.pytest_args = after
    if args.command in ("ab", "bisect") and not after:
        return fail(args.command, f"give the pytest arguments after --, for example: fitbench {args.command} "
                    f"{'--base main' if args.command == 'ab' else 'GOOD BAD'} -- benchmarks -k test_batch_size "
                    "--profile smoke")
    if args.command not in ("compare", "interleave", "workers", "ab", "bisect"):  # these never load TensorFlow
        from fitbench.measure import startup

        startup.load()
    if args.command == "compare":
        args.candidate = [args.candidate, *args.candidate_also]
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
