"""Measure the gate's trust on this machine (not a test: `python -m tests.gate_trust`).

Runs one after the other (the default): R runs of the same smoke benchmarks (A/A), every
pair compared, for false alarms; R runs with a planted slowdown of 5%, 10% and 20%
(tests/plugins/slowdown.py), each compared with every unchanged run, for detection.

Interleaved (`--interleaved`): R trials, each one ring (`fitbench interleave`) of a
baseline, an unchanged run and one run per planted slowdown, in a random order; each is
compared with the baseline of its ring.

Prints the rates per benchmark comparison and per run pair (a run pair alarms when any of
its benchmarks is declared a regression), and for interleaved runs the overall verdict.

Workflows (`--workflows RUN.json ...`): given unchanged runs made one after the other (as a
user makes them), the exit status of `fitbench compare` with its defaults in each workflow
the README shows: one run a side (every consecutive pair, and every pair), and three runs a
side (consecutive blocks). A slowdown is also planted in the analysis, by scaling every
epoch of the candidate, to show what each workflow can detect.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from fitbench.compare import gate
from fitbench.compare.results import load_run
from fitbench.processes import turns

ROOT = Path(__file__).resolve().parent.parent


def smoke_command(out: Path, slowdown: float, selection: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.plugins.slowdown",
            "benchmarks", "-k", selection, "--profile", "smoke", "--devices", "cpu", "--offline",
            "--require-data", "-q", f"--benchmark-json={out}", "--benchmark-save-data",
            "--plant-slowdown", str(slowdown)]


def smoke_run(out: Path, slowdown: float, selection: str) -> Path:
    subprocess.run(smoke_command(out, slowdown, selection), cwd=ROOT, check=True, capture_output=True)
    return out


def interleaved_trial(directory: Path, trial: int, slowdowns: list[float], selection: str) -> dict[str, Path]:
    """One ring: 'base', 'same' and one session per slowdown, in a random order."""
    names = {"base": 0.0, "same": 0.0, **{f"{s:.2f}": s for s in slowdowns}}
    outputs = {name: directory / f"trial-{trial}-{name}.json" for name in names}
    if (directory / f"trial-{trial}.done").exists():
        return outputs
    order = list(names)
    random.Random(trial).shuffle(order)
    commands = [shlex.join(smoke_command(outputs[name], names[name], selection)) for name in order]
    logs = directory / f"trial-{trial}-logs"
    logs.mkdir(exist_ok=True)
    statuses = turns.run([f"cd {shlex.quote(str(ROOT))} && {c}" for c in commands], logs)
    if any(statuses):
        raise SystemExit(f"trial {trial}: a session failed ({statuses}); see {logs}")
    (directory / f"trial-{trial}.done").touch()
    return outputs


def interleaved(args: argparse.Namespace, directory: Path) -> None:
    trials = []
    for trial in range(args.runs):
        if args.analyze_only and not (directory / f"trial-{trial}.done").exists():
            continue
        trials.append(interleaved_trial(directory, trial, args.slowdowns, args.k))
        print(f"trial {trial} done", flush=True)
    levels = {"A/A": "same", **{f"+{s:.0%}": f"{s:.2f}" for s in args.slowdowns}}
    print(f"\n{len(trials)} interleaved trials (baseline vs each session of its ring)")
    print(f"{'case':>6} {'benchmarks flagged':>20} {'runs flagged':>14} {'overall':>10}  benchmark time verdicts; "
          "overall verdicts; overall ratios")
    results = {}
    for level, name in levels.items():
        verdicts: dict[str, int] = {}
        overall: dict[str, int] = {}
        ratios, flagged, total, runs_flagged = [], 0, 0, 0
        for outputs in trials:
            comparison = gate.compare([load_run(outputs["base"])], [load_run(outputs[name])])
            for v in comparison.verdicts:
                verdicts[v.time] = verdicts.get(v.time, 0) + 1
            regressed = [v for v in comparison.verdicts if v.time == gate.REGRESSION]
            flagged, total = flagged + len(regressed), total + len(comparison.verdicts)
            runs_flagged += bool(regressed)
            if comparison.overall:
                overall[comparison.overall.time] = overall.get(comparison.overall.time, 0) + 1
                ratios.append(f"{comparison.overall.ratio:.3f}")
        overall_flagged = overall.get(gate.REGRESSION, 0)
        print(f"{level:>6} {flagged:>5}/{total:<5} ({flagged / total:6.1%}) {runs_flagged:>4}/{len(trials):<4} "
              f"{overall_flagged:>4}/{len(trials):<4}  {verdicts}; {overall}; {' '.join(ratios)}")
        results[level] = {"benchmarks_flagged": flagged, "benchmarks": total, "runs_flagged": runs_flagged,
                          "runs": len(trials), "time_verdicts": verdicts, "overall_verdicts": overall,
                          "overall_ratios": ratios}
    (directory / "trust-interleaved.json").write_text(json.dumps(results, indent=2))
    print(f"JSON in {directory}")


def rates(pairs: list[tuple[list[Path], Path]], run_noise: float | str) -> dict:
    """Regression verdicts over (baseline runs, candidate run) pairs."""
    flagged = total = runs_flagged = 0
    verdict_counts: dict[str, int] = {}
    for base, cand in pairs:
        comparison = gate.compare([load_run(b) for b in base], [load_run(cand)], run_noise=run_noise)
        for v in comparison.verdicts:
            verdict_counts[v.time] = verdict_counts.get(v.time, 0) + 1
        regressed = [v for v in comparison.verdicts if v.time == gate.REGRESSION]
        flagged += len(regressed)
        total += len(comparison.verdicts)
        runs_flagged += bool(regressed)
    return {"benchmarks_flagged": flagged, "benchmarks": total, "runs_flagged": runs_flagged,
            "runs": len(pairs), "time_verdicts": verdict_counts}


def exit_status(baseline: list, candidate: list, scale: float = 1.0, **settings) -> int:
    """What `fitbench compare` exits with (0 pass, 1 fail, 2 cannot compare); its defaults
    unless `settings` override them."""
    if scale != 1.0:
        candidate = [scaled(run, scale) for run in candidate]
    try:
        comparison = gate.compare(baseline, candidate, **settings)
    except (gate.MachineMismatch, gate.SoftwareMismatch, gate.NothingComparable):
        return 2
    return 1 if comparison.failures else 0


def scaled(run, factor: float):
    """A copy of `run` whose every epoch took `factor` times as long (a slowdown planted in analysis)."""
    import copy

    run = copy.deepcopy(run)
    for record in run.records:
        for epoch in record.epochs:
            epoch.seconds *= factor
    return run


def workflows(paths: list[str]) -> None:
    runs = [load_run(path) for path in sorted(paths)]
    consecutive = [([a], [b]) for a, b in itertools.pairwise(runs)]
    every = [([a], [b]) for a, b in itertools.combinations(runs, 2)]
    blocks = [(runs[i:i + 3], runs[i + 3:i + 6]) for i in range(0, len(runs) - 5, 3)]
    print(f"{len(runs)} unchanged runs, one after the other; fitbench compare with its defaults")
    print(f"{'workflow':<40} {'pairs':>6} {'exit 0':>7} {'exit 1':>7} {'exit 2':>7}   +20% caught   +100% caught")
    for label, pairs, settings in (
            ("one run a side, consecutive runs", consecutive, {}),
            ("one run a side, every pair", every, {}),
            ("3 runs a side, consecutive blocks", blocks, {}),
            ("one run a side, epochs (--run-noise 0)", consecutive, {"run_noise": 0}),
    ):
        if not pairs:
            continue
        codes = [exit_status(b, c, **settings) for b, c in pairs]
        caught = {f: sum(exit_status(b, c, 1 + f, **settings) == 1 for b, c in pairs) for f in (0.2, 1.0)}
        print(f"{label:<40} {len(pairs):>6} {codes.count(0):>7} {codes.count(1):>7} {codes.count(2):>7}   "
              f"{caught[0.2]:>4}/{len(pairs):<7} {caught[1.0]:>4}/{len(pairs)}")
    noise, dof = gate.run_noise(runs)
    print(f"run-to-run noise of these runs: {noise:.3f} ({dof} degrees of freedom)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--slowdowns", type=float, nargs="+", default=[0.05, 0.10, 0.20])
    parser.add_argument("-k", default="test_batch_size", help="benchmarks to run (pytest -k)")
    parser.add_argument("--keep", default=None, help="directory to keep the JSON in (reused if present)")
    parser.add_argument("--analyze-only", action="store_true", help="only analyse the JSON in --keep")
    parser.add_argument("--interleaved", action="store_true",
                        help="each trial one ring of baseline, unchanged and slowed sessions")
    parser.add_argument("--workflows", nargs="+", metavar="RUN.json",
                        help="only analyse these unchanged sequential runs: fitbench compare's exit status "
                        "in each workflow the README shows")
    args = parser.parse_args()
    if args.workflows:
        workflows(args.workflows)
        return
    directory = Path(args.keep or tempfile.mkdtemp(prefix="gate-trust-"))
    directory.mkdir(parents=True, exist_ok=True)
    if args.interleaved:
        interleaved(args, directory)
        return
    plan = [(0.0, i) for i in range(args.runs)] + [(s, i) for s in args.slowdowns for i in range(args.runs)]
    plan.sort(key=lambda item: (item[1], item[0]))  # interleave levels so drift hits all alike
    files: dict[float, list[Path]] = {}
    for slowdown, index in plan:
        out = directory / f"run-{slowdown:.2f}-{index}.json"
        if not out.exists():
            if args.analyze_only:
                continue
            smoke_run(out, slowdown, args.k)
            print(f"ran {out.name}", flush=True)
        files.setdefault(slowdown, []).append(out)
    unchanged = files[0.0]
    noise, _ = gate.run_noise([load_run(path) for path in unchanged])
    print(f"run-to-run noise (sd of log run medians over {len(unchanged)} unchanged runs): {noise:.3f}")
    setups = {  # name: (pairs for A/A, pairs for a slowdown level, run_noise)
        "one baseline run, epochs (run_noise 0)": (
            [([a], b) for a, b in itertools.combinations(unchanged, 2)],
            lambda level: [([a], p) for a in unchanged for p in files[level]], 0.0),
        f"one baseline run, run_noise {noise:.3f}": (
            [([a], b) for a, b in itertools.combinations(unchanged, 2)],
            lambda level: [([a], p) for a in unchanged for p in files[level]], noise),
        f"{len(unchanged) - 1} baseline runs, noise estimated": (
            [([a for a in unchanged if a != c], c) for c in unchanged],
            lambda level: [([a for j, a in enumerate(unchanged) if j != i], p)
                           for i, p in enumerate(files[level])], "auto"),
    }
    results = {"run_noise": noise}
    for setup, (aa_pairs, planted_pairs, run_noise) in setups.items():
        print(f"\n{setup}")
        print(f"{'case':>6} {'benchmarks flagged':>20} {'run pairs flagged':>18}  time verdicts")
        rows = {"A/A": rates(aa_pairs, run_noise)}
        rows.update({f"+{level:.0%}": rates(planted_pairs(level), run_noise) for level in args.slowdowns})
        for name, r in rows.items():
            print(f"{name:>6} {r['benchmarks_flagged']:>5}/{r['benchmarks']:<5} "
                  f"({r['benchmarks_flagged'] / r['benchmarks']:6.1%}) {r['runs_flagged']:>4}/{r['runs']:<4} "
                  f"({r['runs_flagged'] / r['runs']:6.1%})  {r['time_verdicts']}")
        results[setup] = rows
    (directory / "trust.json").write_text(json.dumps(results, indent=2))
    print(f"JSON in {directory}")


if __name__ == "__main__":
    main()
