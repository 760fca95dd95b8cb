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

A write that fails (a full disk, ENOSPC; a read-only one, EROFS) loses nothing already saved:
every file is written to a temporary file renamed over the old one (pytest-benchmark's final
``--benchmark-json`` write included), so the old file stays whole; the session goes on, and at
its end one line names each path that could not be written, why, and what was kept where (the
copy written after the last test that could be saved); the session then exits 1.

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
        self.unwritten: dict[str, str] = {}  # path -> why it could not be written (the last error)
        self.written: set[str] = set()  # paths written at least once
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
                self.attempt(path, lambda path=path: write_atomically(path, text))
        if not partial and self.saved_copy is not None:
            storage = self.session.storage
            self.attempt(Path(storage.get(f"NNNN_{self.session.save or self.session.autosave}.json")),
                         lambda: save_numbered(storage, self.session.save or self.session.autosave, text))

    def attempt(self, path: Path, write) -> None:
        """Write, or note why `path` could not be written (a full or read-only disk) and go on."""
        try:
            write()
        except OSError as error:
            self.unwritten[str(path)] = str(error.strerror or error)
        else:
            self.written.add(str(path))
            self.unwritten.pop(str(path), None)

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
            # nothing, so the records are kept here; and it is not told to save, which would
            # only print its false "Not saving anything, no benchmarks have been run!".
            self.write(partial=bool(state(self.config).interrupted))
            if state(self.config).records.entries:
                self.session.json, self.session.save, self.session.autosave = None, None, None
        session = self.session
        if session is not None and hasattr(session.storage, "get") and not self.distributed:
            # pytest-benchmark saves the final run now, under the next free number; two sessions
            # ending together would take the same one, and one file would replace the other.
            save = exclusive_save(session.storage)
            name = session.save or session.autosave or "run"
            session.storage.save = lambda output, name_=name: self.attempt(
                Path(session.storage.get(f"NNNN_{name_}.json")), lambda: save(output, name_))
        if session is not None and session.json and not self.distributed:
            # pytest-benchmark opens --benchmark-json and writes into it: a full disk would leave
            # it truncated. Through a temporary file instead, the old file stays whole.
            session.save_json = lambda output: self.attempt(Path(session.json), lambda: write_atomically(
                Path(session.json), _dumps(output)))

    def after_save(self, session: pytest.Session | None = None) -> None:
        """After pytest-benchmark saved the final run (fitbench.plugin.finish): the partial copy
        goes once the final run is saved; what could not be written is said, and fails the session."""
        if not self.unwritten:
            if self.saved_copy is not None:
                self.saved_copy.unlink(missing_ok=True)
            return
        kept = sorted(self.written)  # each holds what its last successful write saved
        line = ("fitbench: could not save the results: " + "; ".join(
            f"{path}: {why}" for path, why in self.unwritten.items())
            + (f"; kept: {', '.join(kept)} (the benchmarks up to the last one that could be saved)"
               if kept else "; nothing of this session was kept")
            + "; free space or give a writable --benchmark-json / --benchmark-storage, and run again")
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line, red=True, bold=True)
        else:
            print(line)
        if session is not None and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


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


def _dumps(output: dict) -> str:
    from pytest_benchmark.utils import safe_dumps

    return safe_dumps(output, ensure_ascii=True, indent=4)


def exclusive_save(storage):
    """pytest-benchmark's FileStorage.save(output_json, name), through save_numbered."""
    from pytest_benchmark.utils import safe_dumps

    def save(output_json: dict, name: str) -> None:
        save_numbered(storage, name, safe_dumps(output_json, ensure_ascii=True, indent=4))

    return save
