"""`fitbench report`: report.md with the notebooks' tables and PNG plots, from saved JSON.

The last run given is the one tabulated and plotted; with several runs, a history plot
shows each benchmark's median epoch time across them, oldest first, labelled by commit.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402

from fitbench.results import Row, Run, device_speedups, load_run  # noqa: E402

# The experiments of benchmarks/, so that a report can say which ones a run lacks.
EXPERIMENTS = {
    "test_batch_size": "Fashion-MNIST MLP: batch size",
    "test_mnist_architecture": "MNIST MLP: width, depth, activations, batch size",
    "test_fashion_cnn": "Fashion-MNIST CNN across devices",
}
DEVICES = ("cpu", "gpu", "tpu")
MARKERS = {"cpu": "o", "gpu": "s", "tpu": "^"}


def _units(row: Row) -> list[int]:
    return list((row.extra_info.get("model_args") or {}).get("units") or [])


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"


def table(rows: list[Row]) -> list[str]:
    lines = ["| case | device | accuracy | threshold | median s/epoch | samples/s | first epoch s | "
             "GFLOP/s | epochs x train images | schedule bound |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for row in sorted(rows, key=lambda r: (r.batch_size if r.experiment == "test_batch_size" else 0,
                                           r.case, DEVICES.index(r.device) if r.device in DEVICES else 9)):
        metric = (row.accuracy_metric or "test_accuracy").replace("_accuracy", "")
        lines.append(
            f"| {row.case or '-'} | {row.device} | {_fmt(row.accuracy, 4)} ({metric}) | "
            f"{_fmt(row.accuracy_threshold, 3)} | {_fmt(row.median_epoch_seconds, 3)} | "
            f"{_fmt(row.samples_per_second, 0)} | {_fmt(row.first_epoch_seconds, 2)} | "
            f"{_fmt(row.extra_info.get('gflops_per_second'), 1)} | {row.epochs} x {row.train_samples:,} | "
            f"{row.schedule_bound or 'full schedule'} |")
    return lines


def _series_plot(path: Path, title: str, xlabel: str, rows: list[Row], x_of: Callable[[Row], float],
                 log_x: bool = False) -> Path:
    """Seconds per epoch and accuracy against one hyperparameter, a line per device."""
    figure, (time_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    for device in DEVICES:
        points = sorted((x_of(r), r) for r in rows if r.device == device)
        if not points:
            continue
        xs = [x for x, _ in points]
        style = {"marker": MARKERS[device], "label": device}
        time_axis.plot(xs, [r.median_epoch_seconds for _, r in points], **style)
        accuracy_axis.plot(xs, [r.accuracy for _, r in points], **style)
    metric = rows[0].accuracy_metric or "test_accuracy"
    time_axis.set(title=f"{title}: time", xlabel=xlabel, ylabel="median seconds per epoch (s)")
    accuracy_axis.set(title=f"{title}: accuracy", xlabel=xlabel,
                      ylabel=f"{metric.replace('_', ' ')} (fraction)")
    values = sorted({x_of(r) for r in rows})
    for axis in (time_axis, accuracy_axis):
        if log_x:
            axis.set_xscale("log", base=2)
            axis.set_xticks(values, [f"{v:g}" for v in values])  # the grid's own values, not 2^k
        axis.grid(alpha=0.3)
        axis.legend(title="device")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _speedup_plot(path: Path, run: Run) -> Path | None:
    speedups = device_speedups(run.rows)
    if not speedups:
        return None
    figure, axis = plt.subplots(figsize=(9, 0.45 * len(speedups) + 1.6))
    labels = [f"{s.experiment.removeprefix('test_')} {s.case} {s.device} vs {s.reference}" for s in speedups]
    axis.barh(labels, [s.ratio for s in speedups], color="tab:green")
    axis.set(title="Device speed-up per training sample", xlabel="speed-up (x, reference time / device time)")
    axis.axvline(1, color="black", linewidth=0.8)
    axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _history_plot(path: Path, runs: Sequence[Run], experiment: str) -> Path | None:
    ordered = sorted(runs, key=lambda run: run.datetime)
    rows = {row.key: row for run in ordered for row in run.rows if row.experiment == experiment}
    names = sorted(rows, key=lambda key: (rows[key].batch_size, key))  # 32 before 128
    if len(ordered) < 2 or not names:
        return None
    figure, axis = plt.subplots(figsize=(11, 4.8))
    positions = range(len(ordered))
    for name in names:
        values = []
        for run in ordered:
            match = next((r for r in run.rows if r.key == name), None)
            values.append(match.median_epoch_seconds if match else math.nan)
        axis.plot(positions, values, marker="o", label=name.removeprefix(f"{experiment}"))
    axis.set_xticks(list(positions), [run.label for run in ordered], rotation=20, ha="right", fontsize=8)
    axis.set(title=f"{EXPERIMENTS.get(experiment, experiment)}: median epoch time across runs",
             xlabel="run (oldest first; commit)", ylabel="median seconds per epoch (s)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, ncol=2 if len(names) > 8 else 1, bbox_to_anchor=(1.01, 1), loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plots(run: Run, runs: Sequence[Run], directory: Path) -> dict[str, list[Path]]:
    """PNG files by experiment ('' for those about the whole run)."""
    made: dict[str, list[Path]] = {}

    def add(key: str, path: Path | None) -> None:
        if path is not None:
            made.setdefault(key, []).append(path)

    by_experiment: dict[str, list[Row]] = {}
    for row in run.rows:
        by_experiment.setdefault(row.experiment, []).append(row)
    batch = by_experiment.get("test_batch_size", [])
    if batch:
        add("test_batch_size", _series_plot(directory / "batch_size.png", "Fashion-MNIST MLP",
                                            "batch size (samples, log scale)", batch, lambda r: r.batch_size,
                                            log_x=True))
    mnist = by_experiment.get("test_mnist_architecture", [])
    width = [r for r in mnist if len(_units(r)) == 1 and r.batch_size == 32]
    depth = [r for r in mnist if _units(r) and set(_units(r)) == {128} and r.batch_size == 32
             and r.extra_info.get("model_args", {}).get("activations", "relu") == "relu"]
    if len(width) > 1:
        add("test_mnist_architecture", _series_plot(directory / "mnist_width.png", "MNIST MLP width",
                                                    "hidden units (one hidden layer)", width,
                                                    lambda r: _units(r)[0]))
    if len(depth) > 1:
        add("test_mnist_architecture", _series_plot(directory / "mnist_depth.png", "MNIST MLP depth",
                                                    "hidden layers (128 units each)", depth,
                                                    lambda r: len(_units(r))))
    add("", _speedup_plot(directory / "device_speedup.png", run))
    for experiment in sorted({row.experiment for r in runs for row in r.rows}):
        add(f"history:{experiment}", _history_plot(directory / f"history_{experiment}.png", runs, experiment))
    return made


def render(runs: Sequence[Run], directory: Path) -> str:
    run = max(runs, key=lambda r: r.datetime)
    made = plots(run, runs, directory)
    machine = run.machine_info
    lines = [
        "# fitbench report",
        "",
        f"Run: `{run.path}` ({run.datetime or 'no date'}; commit "
        f"{(run.commit_info or {}).get('id', 'unknown')[:12]}).  ",
        f"Machine: {machine.get('cpu_name') or (machine.get('cpu') or {}).get('brand_raw', '?')}; "
        f"GPUs: {', '.join(machine.get('gpus') or []) or 'none'}; TensorFlow {machine.get('tensorflow', '?')}, "
        f"Keras {machine.get('keras', '?')}, Python {machine.get('python', machine.get('python_version', '?'))}.",
        "",
        "Times are steady-state seconds per epoch (median of epochs 2..N; epoch 1, with tracing, is "
        "the first-epoch column). Accuracy is the one each benchmark asserts; `val` is validation, "
        "`test` the test set.",
    ]
    missing_experiments = [f"`{name}` ({title})" for name, title in EXPERIMENTS.items()
                           if not any(r.experiment == name for r in run.rows)]
    experiments = sorted({r.experiment for r in run.rows}, key=lambda e: list(EXPERIMENTS).index(e)
                         if e in EXPERIMENTS else 99)
    for experiment in experiments:
        rows = [r for r in run.rows if r.experiment == experiment]
        present = sorted({r.device for r in rows}, key=DEVICES.index)
        absent = [d for d in DEVICES if d not in present]
        lines += ["", f"## {EXPERIMENTS.get(experiment, experiment)} (`{experiment}`)", "",
                  f"Devices: {', '.join(present)}" + (f"; not in this run: {', '.join(absent)}." if absent else "."),
                  f"Profile: {rows[0].profile or '?'}; device: {rows[0].device_description or '?'}.", "",
                  *table(rows)]
        for path in made.get(experiment, []):
            lines += ["", f"![{path.stem}]({path.name})"]
    speedups = device_speedups(run.rows)
    lines += ["", "## Device comparison", ""]
    if speedups:
        lines += ["Per training sample, at the same global batch size: a bounded CPU run (a subset of the "
                  "data) costs the same per step as a full one, so the ratio is fair; rows say when the "
                  "schedules differ.", "",
                  "| experiment | case | device | reference | speed-up | device s/sample | reference s/sample | "
                  "same schedule |", "|---|---|---|---|---:|---:|---:|---|"]
        lines += [f"| {s.experiment} | {s.case or '-'} | {s.device} | {s.reference} | {s.ratio:.1f}x | "
                  f"{s.device_seconds_per_sample:.2e} | {s.reference_seconds_per_sample:.2e} | "
                  f"{'yes' if s.same_schedule else 'no (bounded)'} |" for s in speedups]
        lines += ["", *(f"![{p.stem}]({p.name})" for p in made.get("", []))]
    else:
        lines.append("No case ran on more than one device in this run, so there is no device comparison: "
                     "run with a GPU or TPU present (`--devices cpu,gpu`) to get one.")
    history = {k.split(":", 1)[1]: v for k, v in made.items() if k.startswith("history:")}
    lines += ["", "## History", ""]
    if history:
        lines.append(f"{len(runs)} runs, oldest first: " + ", ".join(
            f"`{r.label}`" for r in sorted(runs, key=lambda r: r.datetime)) + ".")
        for paths in history.values():
            lines += ["", *(f"![{p.stem}]({p.name})" for p in paths)]
    else:
        lines.append("One run only: give several (for example `.benchmarks/*/*.json`) for a history plot.")
    if missing_experiments:
        lines += ["", "## Missing", "", "Not in this run: " + "; ".join(missing_experiments) + "."]
    return "\n".join(lines) + "\n"


def write(paths: Sequence[str | os.PathLike], output: str | os.PathLike) -> Path:
    """Read the runs (NotBenchmarkJSON for a bad file, before anything is written); write report.md."""
    runs = [load_run(path) for path in paths]
    directory = Path(output)
    directory.mkdir(parents=True, exist_ok=True)
    report = directory / "report.md"
    report.write_text(render(runs, directory))
    return report
