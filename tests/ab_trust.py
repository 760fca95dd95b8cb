"""Tabulate what `fitbench ab --budget` runs decided (not a test: `python -m tests.ab_trust`).

Each argument is KIND=DIR: an output folder of `fitbench ab --output DIR` (its verdicts.json and
its base-N.json / candidate-N.json runs), KIND `aa` for unchanged code on both sides or
`planted` for a known slowdown. For each run: every benchmark's verdict at the budget, and, for
A/As, whether 1.000 lies in two intervals per benchmark: the one its verdict came from (the look
that decided it, at 1 - 2 alpha / looks) and the 90% interval of one fixed-sample test on all of
the run's rounds (`gate.compare`, one look: what "a 90% interval covers" means). Then the totals
docs/gating.md reports: decided, false verdicts, detections, coverage.

`--replay`: the verdicts today's gate gives the same rounds, look by look with the run's planned
number of looks, each benchmark stopped at the first look that decides it (to compare a changed
rule on runs made with the former one; a rule that decides sooner than the run's own needs no
round the run did not have).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from collections import Counter
from pathlib import Path

from fitbench.compare import gate
from fitbench.compare.results import load_run

DECIDED = {"no change", "regression", "improvement"}


def rounds(folder: Path, side: str) -> list:
    paths = sorted(folder.glob(f"{side}-*.json"), key=lambda path: int(path.stem.rsplit("-", 1)[1]))
    return [load_run(path) for path in paths]


def covers(low: float | None, high: float | None) -> bool | None:
    if low is None or high is None:
        return None
    return low <= 1.0 <= high


def replay(verdicts: dict, base: list, candidate: list) -> dict:
    """`verdicts` as today's gate decides them from the same rounds, look by look."""
    looks = max((int(found.group(1)) for verdict in [*verdicts["verdicts"], verdicts["overall"] or {}]
                 if (found := re.search(r"one of at most (\d+) looks", verdict.get("method", "")))), default=1)
    decided: dict[str, dict] = {}
    for count in range(2 if len(base) > 1 else 1, len(base) + 1):
        comparison = gate.compare(base[:count], candidate[:count], looks=looks)
        latest = [*comparison.verdicts, *([comparison.overall] if comparison.overall else [])]
        for verdict in latest:
            if verdict.name not in decided and (verdict.verdict in DECIDED or count == len(base)):
                decided[verdict.name] = {**dataclasses.asdict(verdict), "note": f"round {count}'s look"}
    overall = next((row for name, row in decided.items() if name == gate.OVERALL), None)
    return {"verdicts": [row for name, row in decided.items() if name != gate.OVERALL], "overall": overall}


def summarize(kind: str, folder: Path, replayed: bool = False) -> dict:
    verdicts = json.loads((folder / "verdicts.json").read_text())
    base, candidate = rounds(folder, "base"), rounds(folder, "candidate")
    if replayed:
        verdicts = replay(verdicts, base, candidate)
    fixed = {v.name: v for v in gate.compare(base, candidate).verdicts}
    rows = []
    for verdict in verdicts["verdicts"]:
        one_look = fixed.get(verdict["name"])
        rows.append({
            "name": verdict["name"], "verdict": verdict["verdict"], "ratio": verdict["ratio"],
            "interval": (verdict["ratio_low"], verdict["ratio_high"]),
            "covers_decided": covers(verdict["ratio_low"], verdict["ratio_high"]),
            "covers_90": None if one_look is None else covers(one_look.ratio_low, one_look.ratio_high),
            "interval_90": None if one_look is None else (one_look.ratio_low, one_look.ratio_high),
            "model_changed": bool(verdict["code_changes"]),
            "decided": verdict.get("note", ""),
        })
    overall = verdicts["overall"] or {}
    return {"kind": kind, "folder": str(folder), "rows": rows,
            "overall": tuple(overall.get(key) for key in ("verdict", "ratio", "ratio_low", "ratio_high"))}


def report(runs: list[dict]) -> None:
    for run in runs:
        print(f"{run['kind']} {run['folder']}: overall {run['overall'][0]} x{run['overall'][1]:.3f} "
              f"[{run['overall'][2]:.3f}, {run['overall'][3]:.3f}]")
        for row in run["rows"]:
            fixed = "" if row["interval_90"] is None else \
                f"; 90% one look [{row['interval_90'][0]:.3f}, {row['interval_90'][1]:.3f}]"
            print(f"  {row['verdict']:<13} {row['name']}: x{row['ratio']:.3f} "
                  f"[{row['interval'][0]:.3f}, {row['interval'][1]:.3f}]{fixed}; {row['decided']}")
    for kind in ("aa", "planted"):
        chosen = [run for run in runs if run["kind"] == kind]
        if not chosen:
            continue
        rows = [row for run in chosen for row in run["rows"]]
        tally = Counter(row["verdict"] for row in rows)
        overall = Counter(run["overall"][0] for run in chosen)
        print(f"{kind}: {len(chosen)} runs, {len(rows)} benchmark verdicts: {dict(tally)}; overall {dict(overall)}")
        if kind == "aa":
            false = tally["regression"] + tally["improvement"]
            decided = [row["covers_decided"] for row in rows if row["covers_decided"] is not None]
            fixed = [row["covers_90"] for row in rows if row["covers_90"] is not None]
            print(f"  false verdicts {false}; no change {tally['no change']} of {len(rows)}; 1.000 inside the "
                  f"deciding interval {sum(decided)} of {len(decided)}, inside the 90% one-look interval "
                  f"{sum(fixed)} of {len(fixed)} ({sum(fixed) / max(len(fixed), 1):.0%})")
        else:
            for run in chosen:
                # A planted model change reaches the benchmarks whose model changed; else all of them.
                reached = [row for row in run["rows"] if row["model_changed"]] or run["rows"]
                called = sum(row["verdict"] == "regression" for row in reached)
                print(f"  {run['folder']}: {called} of the {len(reached)} benchmarks it reaches called regression; "
                      f"overall {run['overall'][0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="KIND=DIR", help="aa=DIR or planted=DIR, an ab output folder")
    parser.add_argument("--replay", action="store_true", help="the verdicts of today's gate, look by look")
    arguments = parser.parse_args()
    runs = []
    for argument in arguments.runs:
        kind, _, folder = argument.partition("=")
        if kind not in ("aa", "planted") or not folder:
            parser.error(f"{argument}: give aa=DIR or planted=DIR")
        runs.append(summarize(kind, Path(folder), arguments.replay))
    report(runs)


if __name__ == "__main__":
    main()
