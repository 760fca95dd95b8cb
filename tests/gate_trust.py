"""Measure the gate's trust on this machine (not a test: `python -m tests.gate_trust`).

False alarms: R runs of the same smoke benchmarks (A/A), every pair compared. Detection:
R runs with a planted slowdown of 5%, 10% and 20% (tests/plugins/slowdown.py), each compared
with every unchanged run. Prints the rates per benchmark comparison and per run pair (a run
pair alarms when any of its benchmarks is declared a regression).
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from fitbench import gate
from fitbench.results import load_run

ROOT = Path(__file__).resolve().parent.parent


def smoke_run(out: Path, slowdown: float, selection: str) -> Path:
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.plugins.slowdown",
               "benchmarks", "-k", selection, "--profile", "smoke", "--devices", "cpu", "--offline",
               "--require-data", "-q", f"--benchmark-json={out}", "--benchmark-save-data",
               "--plant-slowdown", str(slowdown)]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return out


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--slowdowns", type=float, nargs="+", default=[0.05, 0.10, 0.20])
    parser.add_argument("-k", default="test_batch_size", help="benchmarks to run (pytest -k)")
    parser.add_argument("--keep", default=None, help="directory to keep the JSON in (reused if present)")
    parser.add_argument("--analyze-only", action="store_true", help="only analyse the JSON in --keep")
    args = parser.parse_args()
    directory = Path(args.keep or tempfile.mkdtemp(prefix="gate-trust-"))
    directory.mkdir(parents=True, exist_ok=True)
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
