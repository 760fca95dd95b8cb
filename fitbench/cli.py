"""The `fitbench` command (also `python -m fitbench`)."""

from __future__ import annotations

import argparse
import json
import os
import sys


def overhead_command(args: argparse.Namespace) -> int:
    from fitbench import datasets, devices, overhead
    from fitbench.workloads import load_benchmark_file

    devices.configure()
    module = load_benchmark_file(args.benchmark_file)
    workload = module.WORKLOAD
    dataset = datasets.load(workload.dataset, args.data_dir, allow_download=not args.offline)
    device = devices.resolve(args.device)
    schedule = workload.schedule(args.profile, device.kind)
    print(f"{workload.name} ({args.profile}: {schedule.epochs} epochs) on {device.description}; "
          f"{args.repeats} alternating repeats per side")
    print(f"{'batch':>6} {'plain fit s/epoch':>18} {'runner s/epoch':>15} {'difference':>11} "
          f"{'90% interval':>17} "
          f"{'fit, iterator per epoch':>24} {'fit on NumPy s/epoch':>21}")
    worst = 0.0
    for batch_size in args.batch_sizes or module.BATCH_SIZES:
        pooled = overhead.compare(workload.but(batch_size=batch_size), args.profile, device, dataset,
                                  repeats=args.repeats)
        low, high = pooled.interval()
        # Agreement is shown only when the whole interval lies inside +-tolerance.
        worst = max(worst, abs(low), abs(high))
        interval = f"[{low:+.1%}, {high:+.1%}]"
        print(f"{batch_size:>6} {pooled.plain_median:>18.3f} {pooled.runner_median:>15.3f} "
              f"{pooled.overhead:>+11.1%} {interval:>17} {pooled.churn_median:>24.3f} "
              f"{pooled.numpy_median:>21.3f}", flush=True)
    per_call = overhead.fit_call_seconds(device)
    print(f"for reference, one extra fit() call costs {per_call * 1000:.1f} ms (1-batch epoch, median of 50);"
          " the runner calls fit() for epoch 1 only")
    return 0 if worst <= args.tolerance else 1


def compare_command(args: argparse.Namespace) -> int:
    """Exit 0: no regression; 1: a regression; 2: the runs could not be compared."""
    from fitbench import gate
    from fitbench.results import NotBenchmarkJSON, load_run

    try:
        baseline = [load_run(path) for path in args.baseline]
        candidate = [load_run(path) for path in args.candidate]
        defaults = gate.Thresholds(time=args.time_threshold, accuracy=args.accuracy_threshold,
                                   first_epoch=args.first_epoch_threshold)
        comparison = gate.compare(baseline, candidate, alpha=args.alpha, defaults=defaults,
                                  overrides=gate.load_thresholds(args.thresholds),
                                  allow_mismatch=args.allow_mismatch,
                                  run_noise=gate.parse_run_noise(args.run_noise))
    except (NotBenchmarkJSON, gate.MachineMismatch, ValueError) as error:
        print(f"fitbench compare: {error}", file=sys.stderr)
        return 2
    for line in gate.terminal_lines(comparison):
        print(line)
    summary = gate.markdown(comparison)
    if args.markdown:
        with open(args.markdown, "a") as out:  # appends, as $GITHUB_STEP_SUMMARY expects
            out.write(summary)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(comparison.as_dict(), out, indent=2, default=str)
    if comparison.mismatch:
        print("warning: machines differ (--allow-mismatch): " + "; ".join(comparison.mismatch), file=sys.stderr)
    return 1 if comparison.regressions else 0


def report_command(args: argparse.Namespace) -> int:
    from fitbench import report
    from fitbench.results import NotBenchmarkJSON

    try:
        path = report.write(args.runs, args.output)
    except NotBenchmarkJSON as error:
        print(f"fitbench report: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


def noise_command(args: argparse.Namespace) -> int:
    from fitbench import gate
    from fitbench.results import NotBenchmarkJSON, load_run

    try:
        noise, dof = gate.run_noise([load_run(path) for path in args.runs])
    except (NotBenchmarkJSON, ValueError) as error:
        print(f"fitbench noise: {error}", file=sys.stderr)
        return 2
    print(f"run-to-run noise: {noise:.3f} (sd of log median epoch time, {dof} degrees of freedom); "
          f"gate with --run-noise {noise:.3f}")
    return 0


def interleave_command(args: argparse.Namespace) -> int:
    """Run the commands as one ring; print each session's output; exit with the worst status."""
    import tempfile
    from pathlib import Path

    from fitbench import turns

    directory = Path(args.logs or tempfile.mkdtemp(prefix="fitbench-interleave-"))
    directory.mkdir(parents=True, exist_ok=True)
    statuses = turns.run(args.commands, directory, timeout=args.timeout)
    for index, (command, status) in enumerate(zip(args.commands, statuses, strict=True)):
        log = directory / f"session-{index}.log"
        print(f"===== session {index + 1} of {len(statuses)}: {command} (exit {status}; {log}) =====")
        sys.stdout.write(log.read_text(errors="replace"))
        sys.stdout.flush()
    for index, status in enumerate(statuses):
        print(f"session {index + 1}: exit {status}")
    return max(statuses, key=abs)


def fingerprint_command(args: argparse.Namespace) -> int:
    """Print this machine's fingerprint (what the gate compares), or a short hash of it."""
    import hashlib

    from fitbench import devices, gate

    devices.configure()
    print_ = gate.fingerprint(devices.machine_info())
    text = json.dumps(print_, sort_keys=True)
    print(hashlib.sha256(text.encode()).hexdigest()[:16] if args.short else json.dumps(print_, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(prog="fitbench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    over = commands.add_parser(
        "overhead",
        help="compare the runner's steady-state epoch time with a plain model.fit(epochs=N)",
    )
    over.add_argument("benchmark_file", nargs="?", default="benchmarks/test_batch_size.py",
                      help="benchmark file whose WORKLOAD and BATCH_SIZES to use (default: %(default)s)")
    over.add_argument("--profile", default="default", help="schedule profile (default: %(default)s)")
    over.add_argument("--data-dir", default=None, help="as pytest's --data-dir")
    over.add_argument("--offline", action="store_true", help="never try Keras' download")
    over.add_argument("--device", default="cpu", choices=["cpu", "gpu", "tpu"])
    over.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                      help="default: the benchmark file's BATCH_SIZES")
    over.add_argument("--repeats", type=int, default=3, help="alternating repeats per side")
    over.add_argument("--tolerance", type=float, default=0.05,
                      help="exit non-zero unless every 90%% interval of the difference lies within "
                      "+-this fraction (default 0.05)")
    over.set_defaults(handler=overhead_command)

    comp = commands.add_parser(
        "compare",
        help="gate CANDIDATE against BASELINE (pytest-benchmark JSON): regression, improvement, "
        "no change or inconclusive per benchmark",
        description="Compare steady-state epoch times (Mann-Whitney, Holm over all benchmarks, "
        "Hodges-Lehmann interval of the ratio; runs of one `fitbench interleave` ring: signed-rank "
        "test on epoch pairs, plus a verdict on all benchmarks at once), accuracy and first-epoch "
        "time. Exit status: 0 no regression, 1 a regression, 2 the runs cannot be compared.",
    )
    comp.add_argument("baseline", nargs="+", help="baseline JSON file(s); several are pooled")
    comp.add_argument("candidate", help="candidate JSON file")
    comp.add_argument("--candidate-also", nargs="*", default=[], metavar="JSON",
                      help="more candidate runs to pool with CANDIDATE")
    comp.add_argument("--alpha", type=float, default=0.05,
                      help="false-alarm rate over all benchmarks (default %(default)s)")
    comp.add_argument("--time-threshold", type=float, default=0.05,
                      help="smallest epoch-time slowdown that counts (default %(default)s = 5%%)")
    comp.add_argument("--accuracy-threshold", type=float, default=0.02,
                      help="largest tolerated accuracy drop (default %(default)s = 2 points)")
    comp.add_argument("--first-epoch-threshold", type=float, default=1.0,
                      help="largest tolerated first-epoch slowdown (default %(default)s = 100%%, twice as slow)")
    comp.add_argument("--thresholds", default=None, metavar="FILE.json",
                      help='per-benchmark thresholds: {"glob on name or group": {"time": 0.1}}')
    comp.add_argument("--run-noise", default="auto", metavar="SD",
                      help="run-to-run noise of this machine: the sd of a run's log median epoch time "
                      "(0.08 = 8%%), measured by A/A runs; 0 compares epochs (runs do not drift); 'auto' "
                      "(default) estimates it from 3+ runs, else compares epochs")
    comp.add_argument("--allow-mismatch", action="store_true",
                      help="compare even when the machine fingerprints differ")
    comp.add_argument("--markdown", default=None, metavar="FILE",
                      help="append a markdown summary (for example $GITHUB_STEP_SUMMARY)")
    comp.add_argument("--json", default=None, metavar="FILE", help="write the verdicts as JSON")
    comp.set_defaults(handler=compare_command)

    rep = commands.add_parser("report", help="markdown report with tables and plots from saved runs")
    rep.add_argument("runs", nargs="+",
                     help="pytest-benchmark JSON files: the newest (by date) is tabulated, all go into the history")
    rep.add_argument("-o", "--output", default="reports", help="output directory (default: %(default)s)")
    rep.set_defaults(handler=report_command)

    noise = commands.add_parser("noise", help="this machine's run-to-run noise, from repeated unchanged runs")
    noise.add_argument("runs", nargs="+", help="2+ pytest-benchmark JSON files of the same code")
    noise.set_defaults(handler=noise_command)

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
                       help="seconds a session waits for its turn before running on alone (default %(default)s)")
    inter.set_defaults(handler=interleave_command)

    finger = commands.add_parser("fingerprint", help="this machine's fingerprint (versions, CPU, GPUs)")
    finger.add_argument("--short", action="store_true", help="a 16-character hash, for cache keys")
    finger.set_defaults(handler=fingerprint_command)

    args = parser.parse_args(argv)
    if getattr(args, "candidate_also", None):
        args.candidate = [args.candidate, *args.candidate_also]
    elif hasattr(args, "candidate"):
        args.candidate = [args.candidate]
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
