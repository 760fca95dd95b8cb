"""The session summary: one line per benchmark, readable in 100 columns, then device ratios."""

from __future__ import annotations

import math

from fitbench.results import Row, Speedup, device_speedups

COLUMNS = [  # (title, width, right-aligned)
    ("experiment", 18, False), ("case", 22, False), ("dev", 3, False), ("accuracy", 14, True),
    ("s/epoch", 8, True), ("samples/s", 9, True), ("1st ep s", 8, True), ("vs cpu", 7, True),
]


def _accuracy(row: Row) -> str:
    if row.accuracy is None:
        return "-"
    if row.accuracy_threshold is None:
        return f"{row.accuracy:.4f}"
    mark = ">=" if row.passed else "< "
    return f"{row.accuracy:.3f}{mark}{row.accuracy_threshold:g}"


def _number(value: float, digits: int) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def lines(rows: list[Row], speedups: list[Speedup] | None = None) -> list[str]:
    """The table's lines (header first); `vs cpu` is the per-sample speed ratio to the CPU."""
    if not rows:
        return []
    speedups = device_speedups(rows) if speedups is None else speedups
    ratios = {(s.experiment, s.case, s.device): s.ratio for s in speedups if s.reference == "cpu"}
    header = " ".join(f"{title:>{w}}" if right else f"{title:<{w}}" for title, w, right in COLUMNS)
    out = [header, "-" * len(header)]
    for row in sorted(rows, key=lambda r: (r.experiment, r.device, r.batch_size, r.case)):
        ratio = ratios.get((row.experiment, row.case, row.device))
        cells = [
            row.experiment.removeprefix("test_"), row.case or "-", row.device, _accuracy(row),
            _number(row.median_epoch_seconds, 3), _number(row.samples_per_second, 0),
            _number(row.first_epoch_seconds, 2), f"{ratio:.1f}x" if ratio else "",
        ]
        out.append(" ".join(
            f"{_fit(cell, w):>{w}}" if right else f"{_fit(cell, w):<{w}}"
            for cell, (_, w, right) in zip(cells, COLUMNS, strict=True)
        ))
    return out


def speedup_lines(speedups: list[Speedup]) -> list[str]:
    return [speedup.describe() for speedup in speedups]
