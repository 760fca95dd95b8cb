"""The spread of paired epochs per measure (`fitbench noise --pairs`), from an A/A's two sides."""

from __future__ import annotations

import json
import math

import numpy as np

from fitbench import cli
from fitbench.compare import noise
from fitbench.compare.results import load_run
from tests.helpers import interleaved_runs


def with_host(path, rng, steal_share=0.0, cpu_noise=0.01):
    """Give each epoch host figures: CPU time near its wall time, a share of steal."""
    document = json.loads(open(path).read())
    for entry in document["benchmarks"]:
        for epoch in entry["extra_info"]["epochs"]:
            epoch["hardware"] = {"host": {"cpu_seconds": 1.5 * rng.lognormal(0, cpu_noise), "steal_seconds":
                                          steal_share * epoch["seconds"] * 2, "other_busy_seconds": 0.0, "cpus": 2}}
    open(path, "w").write(json.dumps(document))
    return path


def test_the_pair_spread_is_given_per_measure_and_benchmark(tmp_path):
    rng = np.random.default_rng(0)
    base, cand = interleaved_runs(tmp_path, 1.0)
    runs = [load_run(with_host(base, rng)), load_run(with_host(cand, rng, steal_share=0.1))]
    spreads = noise.pair_spreads(runs)
    assert [s.name for s in spreads] == ["t[a]", "t[b]", "t[c]"] and all(s.pairs == 11 for s in spreads)
    for spread in spreads:
        # The helper's pairs differ by 1% (lognormal sd 0.01 each side): about 0.014 in log ratio.
        assert 0.005 < spread.spread["wall"] < 0.03
        assert 0.005 < spread.spread["CPU time"] < 0.03
        assert math.isclose(spread.steal, 0.05)  # the median over both sides' epochs: 0% and 10%
    assert math.isclose(noise.pooled(spreads, "wall"), math.sqrt(
        sum(s.spread["wall"] ** 2 for s in spreads) / 3))
    assert "all (pooled)" in noise.table(spreads)


def test_fitbench_noise_pairs_prints_the_table_and_refuses_runs_that_did_not_take_turns(tmp_path, capsys):
    rng = np.random.default_rng(1)
    base, cand = interleaved_runs(tmp_path, 1.0)
    assert cli.main(["noise", "--pairs", with_host(base, rng), with_host(cand, rng)]) == 0
    out = capsys.readouterr().out
    assert "wall minus steal" in out and "t[a]" in out
    alone = json.loads(open(base).read())
    for entry in alone["benchmarks"]:
        entry["extra_info"].pop("interleave")
    (tmp_path / "alone.json").write_text(json.dumps(alone))
    assert cli.main(["noise", "--pairs", str(tmp_path / "alone.json")]) == 2
    assert "no epochs of these runs took turns" in capsys.readouterr().err
