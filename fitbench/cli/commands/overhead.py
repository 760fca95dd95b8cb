"""`fitbench overhead`: the per-epoch runner against a plain ``model.fit(epochs=N)``, alternating."""

from __future__ import annotations

import argparse

from fitbench.cli.common import fail
from fitbench.core.options import add_data_options


def add_parser(commands: argparse._SubParsersAction) -> None:
    over = commands.add_parser(
        "overhead",
        help="compare the runner's steady-state epoch time with a plain model.fit(epochs=N)",
    )
    over.add_argument("benchmark_file", nargs="?", default="benchmarks/test_batch_size.py",
                      help="benchmark file whose EXPERIMENT to use (default: %(default)s)")
    over.add_argument("--profile", default="default", help="schedule profile (default: %(default)s)")
    add_data_options(over.add_argument)
    over.add_argument("--device", default="cpu", choices=["cpu", "gpu", "tpu"])
    over.add_argument("--cases", nargs="+", default=None, metavar="CASE",
                      help="case ids of the experiment's grid (default: all of them)")
    over.add_argument("--repeats", type=int, default=3, help="alternating repeats per side")
    over.add_argument("--tolerance", type=float, default=0.05,
                      help="exit non-zero unless every 90%% interval of the difference lies within "
                      "+-this fraction (default 0.05)")
    over.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
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
