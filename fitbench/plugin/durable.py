"""Nothing lost: the session's JSON is on disk after every benchmark, and SIGTERM ends a session
as Ctrl-C does.

pytest-benchmark writes its JSON once, when the session ends; a session killed before then
(SIGKILL, the OOM killer, a cancelled CI job) would leave nothing. So when the session saves
(``--benchmark-json``, ``--benchmark-autosave``, ``--benchmark-save``), this plugin rewrites
that file after each test, through pytest-benchmark's own hooks (``generate_json``,
``update_json``: the same format, with fitbench's section), atomically (a temporary file
renamed over the old one), marked ``"partial": true`` in its ``fitbench`` section. At the end
of the session pytest-benchmark writes the final file as usual, and the saved run's partial
copy (``partial_NAME_PID_RANDOM.json``: outside pytest-benchmark's numbering, unique to the
session) is removed; the final run takes the next free number exclusively (save_numbered), so
that sessions sharing a storage folder never replace each other's. A session that was interrupted says so in
that file too. SIGTERM (``timeout``, Slurm, Kubernetes, CI runners cancelling) is turned into
a KeyboardInterrupt, so the session ends as with Ctrl-C: the summary, and the JSON of every
benchmark it finished.

Under pytest-xdist with several workers pytest-benchmark disables itself and writes nothing
(with one, the isolated default, it measures as usual: `isolation`). The controller then
writes the same JSON from the records its workers report (their epochs 2..N as the rounds,
statistics by pytest-benchmark's own `Stats`), after each test and at the end; the records
say how many trainings shared the machine.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from fitbench.compare.results import write_atomically
from fitbench.core import run_info
from fitbench.plugin import isolation
from fitbench.plugin.session import state

PLUGIN_NAME = "fitbench-durable"


class DurableResults:
    """Rewrites the session's JSON after each test (see the module docstring)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.saved_copy: Path | None = None  # the autosave file's partial copy
        self.machine_info: dict | None = None
        self.commit_info: dict | None = None

    @property
    def session(self):
        return getattr(self.config, "_benchmarksession", None)

    @property
    def distributed(self) -> bool:
        """pytest-xdist's controller of several workers: pytest-benchmark is disabled, the workers
        train side by side. (With one worker, an isolated session, it measures as usual.)"""
        return (bool(self.config.getoption("numprocesses", None)) and not hasattr(self.config, "workerinput")
                and not isolation.isolating_controller(self.config))

    def targets(self) -> list[Path]:
        session = self.session
        if session is None or (session.disabled and not self.distributed):
            return []
        paths = [Path(session.json)] if session.json else []
        name = session.save or session.autosave
        if name and hasattr(session.storage, "get"):  # file storage (not elasticsearch)
            if self.saved_copy is None:
                # Outside pytest-benchmark's numbering (NNNN_*): it takes no number, and neither
                # --benchmark-compare nor another session's next number sees it; unique to this
                # session, so that sessions sharing a storage folder never write the same file.
                self.saved_copy = Path(session.storage.get(f"partial_{name}_{os.getpid()}_{uuid.uuid4().hex[:8]}.json"))
            paths.append(self.saved_copy)
        return paths

    def pytest_runtest_logfinish(self, nodeid: str, location) -> None:
        self.write(partial=True)

    def write(self, partial: bool) -> None:
        """The JSON so far (partial: to --benchmark-json and this session's partial copy), or
        the final one when pytest-benchmark writes none (to --benchmark-json, and saved under
        the next free number)."""
        targets = self.targets()
        entries = self.worker_entries() if self.distributed else None
        if not targets or not state(self.config).records.entries:
            return
        text = self.render(partial, entries)
        for path in targets:
            if partial or path != self.saved_copy:
                write_atomically(path, text)
        if not partial and self.saved_copy is not None:
            save_numbered(self.session.storage, self.session.save or self.session.autosave, text)

    def worker_entries(self) -> list[dict]:
        """pytest-benchmark's entries for the benchmarks pytest-xdist's workers ran."""
        from pytest_benchmark.stats import Stats

        entries = []
        for entry in state(self.config).records.entries:
            stats = Stats()
            rounds = [epoch["seconds"] for epoch in entry["extra_info"]["epochs"][1:]]
            if not rounds:
                continue  # ended before a timed round: in the fitbench section, not a benchmark
            for seconds in rounds:
                stats.update(seconds)
            entries.append({"group": entry["group"], "name": entry["name"], "fullname": entry["fullname"],
                            "params": entry["params"], "param": entry["param"], "extra_info": entry["extra_info"],
                            "options": {"rounds": len(rounds), "source": "pytest-xdist worker, the runner's clock"},
                            "stats": {**stats.as_dict(), "data": rounds, "iterations": 1}})
        return entries

    def render(self, partial: bool, entries: list[dict] | None = None) -> str:
        from pytest_benchmark.utils import safe_dumps

        config, session = self.config, self.session
        if self.machine_info is None:  # once: both are slow (CPU probing, git)
            self.machine_info = session.get_machine_info()
            self.commit_info = config.hook.pytest_benchmark_generate_commit_info(config=config)
            config.hook.pytest_benchmark_update_commit_info(config=config, commit_info=self.commit_info)
        benchmarks = [] if entries is not None else session.benchmarks
        output = config.hook.pytest_benchmark_generate_json(
            config=config, benchmarks=benchmarks, include_data=True,
            machine_info=self.machine_info, commit_info=self.commit_info)
        if entries is not None:
            output["benchmarks"] = entries
        config.hook.pytest_benchmark_update_json(config=config, benchmarks=benchmarks, output_json=output)
        run_info.update(output, partial=partial)
        return safe_dumps(output, ensure_ascii=True, indent=4)

    def pytest_keyboard_interrupt(self, excinfo) -> None:
        # Ctrl-C or SIGTERM: the final JSON holds the benchmarks that finished, marked partial.
        state(self.config).interrupted = True

    def before_save(self) -> None:
        """At the session's end, before pytest-benchmark saves (fitbench.plugin.finish): the final
        file written where pytest-benchmark writes none, and its numbered save made exclusive."""
        if self.distributed:  # pytest-benchmark writes nothing under xdist: the final file is ours
            self.write(partial=bool(state(self.config).interrupted))
        elif self.session is not None and not self.session.benchmarks:
            # No timed round anywhere (every test ended in epoch 1): pytest-benchmark writes
            # nothing, so the records are kept here.
            self.write(partial=bool(state(self.config).interrupted))
        if self.session is not None and hasattr(self.session.storage, "get") and not self.distributed:
            # pytest-benchmark saves the final run now, under the next free number; two sessions
            # ending together would take the same one, and one file would replace the other.
            self.session.storage.save = exclusive_save(self.session.storage)

    def after_save(self) -> None:
        """After pytest-benchmark saved the final run (fitbench.plugin.finish)."""
        if self.saved_copy is not None:
            self.saved_copy.unlink(missing_ok=True)  # the final run is saved: its partial copy goes


def save_numbered(storage, name: str, text: str) -> Path:
    """Save `text` in pytest-benchmark's storage under the next free number (NNNN_name.json),
    taken exclusively: if another session saved under that number since it was counted, the
    next one."""
    while True:
        path = Path(storage.get(f"{storage._next_num}_{name}.json"))
        try:
            write_atomically(path, text, exclusive=True)
        except FileExistsError:
            continue
        storage.logger.info(f"Saved benchmark data in: {path}")
        return path


def exclusive_save(storage):
    """pytest-benchmark's FileStorage.save(output_json, name), through save_numbered."""
    from pytest_benchmark.utils import safe_dumps

    def save(output_json: dict, name: str) -> None:
        save_numbered(storage, name, safe_dumps(output_json, ensure_ascii=True, indent=4))

    return save
