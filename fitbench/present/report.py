"""`fitbench report`: report.md with the notebooks' tables and PNG plots, from saved JSON.

Each table shows, for one experiment and profile, the newest run of each measurement (a
benchmark measured the same way) and says which run each row comes from. Given several
runs, history plots draw each measurement across the runs that have it, one line per
measurement, never mixing profiles. Every run given is either used or named as skipped,
with the reason. Titles, grids and plots come from the benchmark files' EXPERIMENTs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402

from fitbench.compare import history, scaling  # noqa: E402
from fitbench.compare.results import (  # noqa: E402
    Run,
    device_speedups,
    load_run,
    variant_speedups,
    write_atomically,
)
from fitbench.core.record import Record  # noqa: E402
from fitbench.measure import experiments
from fitbench.measure.experiments import UNIT_METRICS, Experiment, Plot  # noqa: E402
from fitbench.present.format import (  # noqa: E402
    change_point,
    efficiency,
    number,
    variant_lines,
    weak_scaling,
)

DEVICES = ("cpu", "gpu", "tpu")
MARKERS = {"cpu": "o", "gpu": "s", "tpu": "^"}
# An accuracy axis spans at least this much, so differences below seed-to-seed noise do not
# look like trends.
MIN_ACCURACY_SPAN = 0.05


@dataclass(frozen=True)
class Entry:
    """A record and the run it came from."""

    record: Record
    run: Run

    @property
    def measurement_key(self) -> tuple[str, str]:
        return self.record.name, self.record.measurement.key()


def newest_per_measurement(runs: Sequence[Run]) -> dict[tuple[str, str], list[Entry]]:
    """Every measurement's entries, oldest run first."""
    found: dict[tuple[str, str], list[Entry]] = {}
    for run in sorted(runs, key=lambda r: r.datetime):
        for record in run.records:
            entry = Entry(record, run)
            found.setdefault(entry.measurement_key, []).append(entry)
    return found


def colors(count: int) -> list:
    """`count` distinct colours: no colour twice in one plot."""
    if count <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(count)]
    if count <= 20:
        return [plt.get_cmap("tab20")(i) for i in range(count)]
    return [plt.get_cmap("turbo")(i / (count - 1)) for i in range(count)]


def _variation(record: Record) -> str:
    """What sets a measurement apart beyond case and device, for labels ('2 replicas')."""
    replicas, workers = record.measurement.replicas, record.measurement.workers
    return (f", {replicas} replicas" if replicas > 1 else "") + (f", {workers} workers" if workers > 1 else "")


def table(entries: list[Entry], source_column: bool) -> list[str]:
    lines = ["| case | device | checked metric | target | median s/epoch | samples/s | first epoch s | "
             "time to target | GFLOP/s | efficiency | epochs x train samples | schedule bound |"
             + (" run |" if source_column else ""),
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|" + ("---|" if source_column else "")]
    for entry in entries:
        row = entry.record
        metric = row.checked_metric
        schedule = row.measurement.schedule
        lines.append(
            f"| {row.case or '-'} | {row.device}{_variation(row)} | "
            f"{number(row.target_value, 4) if row.status == 'completed' else row.status} ({metric}) | "
            f"{(row.check.goal + ' ' + number(row.check.threshold, 4)) if row.check else '-'} | "
            f"{number(row.median_epoch_seconds, 3)} | "
            f"{number(row.samples_per_second, 0)} | {number(row.first_epoch_seconds, 2)} | "
            f"{row.time_to_target().describe() if row.check else '-'} | "
            f"{'n/a' if row.flops_unknown else number(row.gflops_per_second, 1)} | "
            f"{efficiency(row, entry.run.info.peak_gflops)} | "
            f"{schedule.get('epochs')} x {schedule.get('train_samples'):,} | "
            f"{schedule.get('bound') or 'full schedule'} |" + (f" {entry.run.label} |" if source_column else ""))
    return lines


def _metric_limits(axis, values: list[float], unit: bool) -> None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return
    low, high = min(finite), max(finite)
    span = MIN_ACCURACY_SPAN if unit else 0.05 * max(abs(low), abs(high), 1e-9)
    if high - low < span:
        middle = (low + high) / 2
        low, high = middle - span / 2, middle + span / 2
    pad = (high - low) * 0.1
    axis.set_ylim(max(0.0, low - pad), min(1.0, high + pad)) if unit else axis.set_ylim(low - pad, high + pad)


def tick_labels(values: list[float], log: bool = False, closest: float = 0.08) -> list[str]:
    """Labels for ticks at `values`; a label closer than `closest` (fraction of the axis) to the
    previous shown one is left blank, so that 100 and 128 on a 50..500 axis do not overlap."""
    position = (lambda v: math.log2(v)) if log else (lambda v: v)
    low, high = position(values[0]), position(values[-1])
    span = (high - low) or 1.0
    labels, last = [], None
    for value in values:
        where = (position(value) - low) / span
        shown = last is None or where - last >= closest
        labels.append(f"{value:g}" if shown else "")
        last = where if shown else last
    return labels


def series_plot(path: Path, plot: Plot, entries: list[Entry]) -> Path | None:
    """Seconds per epoch and the checked metric against one hyperparameter, a line per device."""
    points = [(plot.x[e.record.case], e.record) for e in entries if e.record.case in plot.x]
    if len({x for x, _ in points}) < 2:
        return None
    figure, (time_axis, metric_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    lines = sorted({(r.device, _variation(r)) for _, r in points}, key=lambda d: (DEVICES.index(d[0])
                                                                                  if d[0] in DEVICES else 9, d[1]))
    palette = colors(len(lines))
    metric_values = []
    for (device, variation), color in zip(lines, palette, strict=True):
        mine = sorted((x, r) for x, r in points if (r.device, _variation(r)) == (device, variation))
        xs = [x for x, _ in mine]
        style = {"marker": MARKERS.get(device, "o"), "label": device + variation, "color": color}
        time_axis.plot(xs, [r.median_epoch_seconds for _, r in mine], **style)
        metric_axis.plot(xs, [r.target_value for _, r in mine], **style)
        metric_values += [r.target_value for _, r in mine]
        thresholds = [(x, r.check.threshold) for x, r in mine if r.check]
        if thresholds:
            metric_axis.plot([x for x, _ in thresholds], [t for _, t in thresholds], linestyle=":",
                               color=color, label=f"{device}{variation} threshold")
            metric_values += [t for _, t in thresholds]
    check = next((r.check for _, r in points if r.check), None)
    metric = check.name if check else points[0][1].checked_metric
    time_axis.set(title=f"{plot.title}: time", xlabel=plot.xlabel, ylabel="median seconds per epoch (s)")
    time_axis.set_ylim(bottom=0)
    metric_axis.set(title=f"{plot.title}: {metric}", xlabel=plot.xlabel, ylabel=metric)
    _metric_limits(metric_axis, metric_values, unit=(check.metric if check else "accuracy") in UNIT_METRICS)
    values = sorted({x for x, _ in points})
    labels = tick_labels(values, log=plot.log_x)
    if plot.labels:  # named cases rather than numbers
        names = {plot.x[case]: label for case, label in plot.labels.items()}
        labels = [names.get(value, f"{value:g}") for value in values]
    for axis in (time_axis, metric_axis):
        if plot.log_x:
            axis.set_xscale("log", base=2)
        axis.set_xticks(values, labels)  # the measured values only, no in-between ticks
        axis.grid(alpha=0.3)
        axis.legend(title="device", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def speedup_plot(path: Path, records: list[Record]) -> Path | None:
    speedups = device_speedups(records)
    if not speedups:
        return None
    figure, axis = plt.subplots(figsize=(9, 0.45 * len(speedups) + 1.6))
    labels = [f"{s.experiment.removeprefix('test_')} {s.case} {s.device} vs {s.reference}" for s in speedups]
    axis.barh(labels, [s.ratio for s in speedups], color=colors(len(speedups)))
    axis.set(title="Device speed-up per training sample", xlabel="speed-up (x, reference time / device time)")
    axis.axvline(1, color="black", linewidth=0.8)
    axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def variant_plot(path: Path, records: list[Record]) -> Path | None:
    """Each variant's epoch-time speed-up over its f32 baseline, with its interval, a panel per case."""
    speedups = variant_speedups(records)
    if not speedups:
        return None
    cases: dict[str, list] = {}
    for speedup in speedups:
        cases.setdefault(f"vs {speedup.baseline_case} on {speedup.device}", []).append(speedup)
    rows = max(len(group) for group in cases.values())
    figure, axes = plt.subplots(1, len(cases), figsize=(max(6.5, 4.2 * len(cases)), 0.45 * rows + 1.8), squeeze=False)
    for axis, (case, group) in zip(axes[0], cases.items(), strict=True):
        ratios = [s.ratio for s in group]
        highs = [s.high if math.isfinite(s.high) else s.ratio for s in group]
        errors = [[r - s.low for r, s in zip(ratios, group, strict=True)],
                  [h - r for r, h in zip(ratios, highs, strict=True)]]
        bar_colors = ["tab:green" if s.passed is not False else "tab:red" for s in group]
        axis.barh([s.variant for s in group], ratios, xerr=errors, color=bar_colors, alpha=0.8, capsize=3)
        axis.axvline(1, color="black", linewidth=0.8)
        axis.invert_yaxis()  # the grid's order, top down
        axis.set(title=case, xlabel="speed-up over f32 (x, 90% interval)")
        axis.grid(axis="x", alpha=0.3)
    figure.suptitle("Epoch-time speed-up of each variant (red: missed its target)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


CHANGE_COLORS = {"regression": "tab:red", "improvement": "tab:green", "shift": "tab:gray"}


def history_plot(path: Path, title: str, series: list[list[Entry]],
                 change_points: Sequence[history.ChangePoint] = ()) -> Path | None:
    """Median epoch time of each measurement (a line each) across the runs that have it, with
    `fitbench history`'s change points of these measurements marked between their two runs."""
    series = [s for s in series if len(s) >= 2]
    if not series:
        return None
    runs = sorted({id(e.run): e.run for s in series for e in s}.values(), key=lambda r: r.datetime)
    position = {id(run): index for index, run in enumerate(runs)}
    figure, axis = plt.subplots(figsize=(11, 4.8))
    for entries, color in zip(series, colors(len(series)), strict=True):
        record = entries[-1].record
        label = f"{record.case or record.experiment} {record.device}{_variation(record)}"
        axis.plot([position[id(e.run)] for e in entries], [e.record.median_epoch_seconds for e in entries],
                  marker="o", color=color, label=label)
    for change in change_points:
        if id(change.after.run) in position:
            where = position[id(change.after.run)] - 0.5
            axis.axvline(where, color=CHANGE_COLORS.get(change.verdict, "tab:gray"), linestyle="--", linewidth=1)
            axis.annotate(f"{change.verdict} x{change.ratio:.2f}", (where, 1), xycoords=("data", "axes fraction"),
                          xytext=(3, -12), textcoords="offset points", fontsize=7,
                          color=CHANGE_COLORS.get(change.verdict, "tab:gray"))
    axis.set_xticks(range(len(runs)), [tick_label(run) for run in runs], fontsize=8,
                    rotation=30 if len(runs) > 8 else 0, ha="right" if len(runs) > 8 else "center")
    axis.set(title=title, xlabel="run (number, commit, date; oldest first)", ylabel="median seconds per epoch (s)")
    highest = max(e.record.median_epoch_seconds for s in series for e in s)
    axis.set_ylim(bottom=0, top=highest * (1.2 if change_points else 1.05))  # room for the marks' labels
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, ncol=2 if len(series) > 8 else 1, bbox_to_anchor=(1.01, 1), loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _series_key(record: Record) -> str:
    return f"{record.name} {record.measurement.key()}"


def tick_label(run: Run) -> str:
    """Run number (or file name), short commit, and month-day hour:minute, on three lines."""
    commit = (run.commit_info or {}).get("id") or ""
    return "\n".join(part for part in (run.number or Path(run.path).stem, commit[:7],
                                        run.datetime[5:16].replace("T", " ")) if part)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")


PROFILE_ORDER = ("full", "default", "smoke")


def sections_of(runs: Sequence[Run], known: dict[str, Experiment]) -> tuple[dict, list[tuple[str, str, list[Entry]]]]:
    """The newest entry of each measurement (and all of them, per measurement), grouped by
    experiment and profile, in the benchmark files' order and each experiment's grid order."""
    measurements = newest_per_measurement(runs)
    grouped: dict[tuple[str, str], list[Entry]] = {}
    for entries in measurements.values():
        newest = entries[-1]
        grouped.setdefault((newest.record.experiment, newest.record.profile), []).append(newest)
    order = list(known)

    def grid_position(entry: Entry) -> tuple:
        experiment = known.get(entry.record.experiment)
        cases = experiment.cases if experiment else []
        case = entry.record.case
        return (cases.index(case) if case in cases else len(cases), case,
                DEVICES.index(entry.record.device) if entry.record.device in DEVICES else 9,
                entry.record.measurement.replicas)

    keys = sorted(grouped, key=lambda k: (order.index(k[0]) if k[0] in order else len(order), k[0],
                                          PROFILE_ORDER.index(k[1]) if k[1] in PROFILE_ORDER else 9))
    return measurements, [(name, profile, sorted(grouped[name, profile], key=grid_position))
                          for name, profile in keys]


def section_lines(name: str, profile: str, entries: list[Entry], known: dict[str, Experiment],
                  level: str = "##") -> list[str]:
    """One experiment's heading, where its figures come from, and its table."""
    experiment = known.get(name)
    title = experiment.title if experiment else name
    sources = sorted({e.run.label for e in entries})
    present = sorted({e.record.device for e in entries}, key=lambda d: DEVICES.index(d) if d in DEVICES else 9)
    absent = [d for d in DEVICES if d not in present]
    return ["", f"{level} {title} (`{name}`, profile {profile})", "",
            (f"From run {sources[0]}." if len(sources) == 1 else
             f"From {len(sources)} runs (the run column says which)."),
            f"Devices: {', '.join(present)}" + (f"; not in these runs: {', '.join(absent)}." if absent else "."),
            f"Device: {entries[0].record.device_description or '?'}.",
            *[f"{n} trainings shared the machine at once (pytest-xdist): these times are not comparable "
              "with a serial run's." for n in sorted({e.record.measurement.concurrent for e in entries}) if n > 1],
            "", *table(entries, source_column=len(sources) > 1)]


def render(runs: Sequence[Run], directory: Path, known: dict[str, Experiment] | None = None) -> str:
    known = experiments.discover() if known is None else known
    measurements, ordered = sections_of(runs, known)
    used: dict[int, set[str]] = {id(run): set() for run in runs}
    for _, _, entries in ordered:
        for entry in entries:
            used[id(entry.run)].add("tables")
    sections = {(name, profile): entries for name, profile, entries in ordered}
    newest_run = max(runs, key=lambda r: r.datetime)
    lines = [
        "# fitbench report", "",
        f"Machine: {newest_run.environment.describe()}.", "",
        "Times are steady-state seconds per epoch (median of epochs 2..N; epoch 1, with tracing, is "
        "the first-epoch column). Accuracy is the one each benchmark asserts; `val` is validation, "
        "`test` the test set. Each table holds the newest run of each measurement.",
    ]
    for name, profile, entries in ordered:
        lines += section_lines(name, profile, entries, known)
        experiment = known.get(name)
        for plot in experiment.report_plots() if experiment else ():
            made = series_plot(directory / f"{plot.name}_{profile}.png", plot, entries)
            if made:
                lines += ["", f"![{made.stem}]({made.name})"]
    newest_records = [e.record for entries in measurements.values() for e in entries[-1:]]
    lines += comparison_lines(runs, newest_records, directory)
    lines += history_lines(runs, measurements, sections, known, directory, used)
    missing = [f"`{name}` ({experiment.title})" for name, experiment in known.items()
               if not any(k[0] == name for k in sections)]
    if missing:
        lines += ["", "## Missing", "", "In no run given: " + "; ".join(missing) + "."]
    lines += runs_lines(runs, used)
    return "\n".join(lines) + "\n"

def comparison_lines(runs: Sequence[Run], newest_records: list[Record], directory: Path) -> list[str]:
    """The device comparison, the training variants and weak scaling, with their plots."""
    lines: list[str] = []
    speedups = device_speedups(newest_records)
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
        made = speedup_plot(directory / "device_speedup.png", newest_records)
        lines += ["", f"![{made.stem}]({made.name})"]
    else:
        lines.append("No case ran on more than one device, so there is no device comparison: "
                     "run with a GPU or TPU present (`--devices cpu,gpu`) to get one.")

    variants = variant_lines(newest_records)
    if variants:
        lines += ["", "## Training variants", "", "Each variant against the f32 / XLA-off / 1-step / tf.data "
                  "variant of the same measurement; efficiency is in the tables above.", ""]
        lines += [f"* {line.strip()}" for line in variants[1:]]
        made = variant_plot(directory / "variant_speedup.png", newest_records)
        lines += ["", f"![{made.stem}]({made.name})"]

    figures = [figure for run in runs for figure in run.info.scaling]
    if figures:
        lines += ["", "## Scaling", "", "Weak scaling (`fitbench workers N --scaling`): the same batch per worker "
                  "and cores per worker on 1 and N workers; efficiency = N workers' samples/s over N x one "
                  "worker's, with its 90% interval.", ""]
        lines += [f"* {weak_scaling(scaling.WeakScaling.from_dict(figure))}" for figure in figures]

    return lines


def history_lines(runs: Sequence[Run], measurements: dict, sections: dict, known: dict[str, Experiment],
                  directory: Path, used: dict[int, set[str]]) -> list[str]:
    """Each section's median epoch time across runs, with fitbench history's change points."""
    lines = ["", "## History", ""]
    histories = []
    found = {_series_key(series.points[-1].record): series for series in history.history(runs)}
    marked: list[str] = []
    for (name, profile) in sections:
        series = [entries for entries in measurements.values()
                  if (entries[-1].record.experiment, entries[-1].record.profile) == (name, profile)]
        experiment = known.get(name)
        changes = [change for entries in series
                   for change in getattr(found.get(_series_key(entries[-1].record)), "change_points", [])]
        marked += [change_point(change) for change in changes]
        made = history_plot(directory / f"history_{_slug(name)}_{profile}.png",
                            f"{experiment.title if experiment else name} ({profile}): median epoch time across runs",
                            series, changes)
        if made:
            histories.append(made)
            for entries in series:
                if len(entries) >= 2:
                    for entry in entries:
                        used[id(entry.run)].add("history")
    if histories:
        if marked:  # fitbench history's change points, drawn dashed between their two runs
            lines += ["Change points (`fitbench history`):", ""] + [f"* {line.strip()}" for line in marked] + [""]
        lines += [f"![{p.stem}]({p.name})" for p in histories]
    else:
        lines.append("No measurement is in more than one run: give several runs of one profile "
                     "(for example `.benchmarks/*/*.json`) for history plots.")
    return lines


def runs_lines(runs: Sequence[Run], used: dict[int, set[str]]) -> list[str]:
    """Every run given, and what the report used it for."""
    lines = ["", "## Runs", "", "| run | file | profile | benchmarks | used for |", "|---|---|---|---:|---|"]
    for run in sorted(runs, key=lambda r: r.datetime):
        uses = used[id(run)]
        use = (" and ".join(sorted(uses)) if uses else
               "skipped: a newer run has each of its measurements, and none of them is in another run")
        profiles = ", ".join(sorted({r.profile for r in run.records})) or "-"
        lines.append(f"| {run.label} | `{run.path}` | {profiles} | {len(run.records)} | {use} |")
    return lines



def write(paths: Sequence[str | os.PathLike], output: str | os.PathLike,
          benchmarks: Sequence[str | os.PathLike] = ()) -> Path:
    """Read the runs (NotBenchmarkJSON for a bad file, before anything is written); write report.md.
    `benchmarks`: the benchmark files or directories whose EXPERIMENTs describe the runs."""
    runs = [load_run(path) for path in paths]
    known = experiments.discover(*benchmarks)
    directory = Path(output)
    directory.mkdir(parents=True, exist_ok=True)
    report = directory / "report.md"
    write_atomically(report, render(runs, directory, known))  # whole or not at all, on a full disk too
    return report


RESULTS_START = "<!-- fitbench results: start (generated by fitbench report --update-readme; do not edit) -->"
RESULTS_END = "<!-- fitbench results: end -->"


def results_markdown(runs: Sequence[Run], known: dict[str, Experiment], command: str) -> str:
    """The README's results: every experiment's table from the runs, headed by the machine,
    the software, the runs' dates and the command that wrote it."""
    _, ordered = sections_of(runs, known)
    newest = max(runs, key=lambda r: r.datetime)
    dates = sorted({run.datetime[:10] for run in runs})
    lines = [f"Machine: {newest.environment.describe()}; measured {', '.join(dates)} "
             f"({', '.join(run.label for run in sorted(runs, key=lambda r: r.datetime))}). "
             f"Written by `{command}`: re-run it on a saved run to refresh this section."]
    for name, profile, entries in ordered:
        lines += section_lines(name, profile, entries, known, level="###")
    return "\n".join(lines)


def update_readme(paths: Sequence[str | os.PathLike], readme: str | os.PathLike, command: str,
                  benchmarks: Sequence[str | os.PathLike] = ()) -> Path:
    """Replace the README's generated results section (between RESULTS_START and RESULTS_END)."""
    runs = [load_run(path) for path in paths]
    return replace_generated(readme, RESULTS_START, RESULTS_END, "results",
                             lambda: results_markdown(runs, experiments.discover(*benchmarks), command))


def replace_generated(readme: str | os.PathLike, start: str, end: str, what: str, body: Callable[[], str]) -> Path:
    """Replace a generated section of a markdown file (between the `start` and `end` lines) with
    `body()`; ValueError naming the two lines when the file has no such section."""
    readme = Path(readme)
    text = readme.read_text()
    if start not in text or end not in text:
        raise ValueError(f"{readme} has no generated {what} section: add the two lines "
                         f"{start!r} and {end!r} where it should go")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    write_atomically(readme, f"{head}{start}\n{body()}\n{end}{tail}")  # a README is never left half written
    return readme
