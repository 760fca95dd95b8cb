"""The `fitbench` command (also `python -m fitbench`)."""

from __future__ import annotations

import argparse
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
    schedule = workload.schedule(args.profile)
    print(f"{workload.name} ({args.profile}: {schedule.epochs} epochs) on {device.description}; "
          f"{args.repeats} alternating repeats per side")
    print(f"{'batch':>6} {'plain fit s/epoch':>18} {'runner s/epoch':>15} {'difference':>11} "
          f"{'fit on NumPy s/epoch':>21}")
    worst = 0.0
    for batch_size in args.batch_sizes or module.BATCH_SIZES:
        pooled = overhead.compare(workload.but(batch_size=batch_size), args.profile, device, dataset,
                                  repeats=args.repeats)
        worst = max(worst, abs(pooled.overhead))
        print(f"{batch_size:>6} {pooled.plain_median:>18.3f} {pooled.runner_median:>15.3f} "
              f"{pooled.overhead:>+11.1%} {pooled.numpy_median:>21.3f}", flush=True)
    per_call = overhead.fit_call_seconds(device)
    print(f"for reference, one extra fit() call costs {per_call * 1000:.1f} ms (1-batch epoch, median of 50);"
          " the runner calls fit() for epoch 1 only")
    return 0 if worst <= args.tolerance else 1


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
                      help="exit non-zero when a difference exceeds this fraction (default 0.05)")
    over.set_defaults(handler=overhead_command)

    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
