"""fitbench's pytest plugin, registered by the package's ``pytest11`` entry point: `pip install
fitbench` and `pytest` in any repository with a benchmark file runs it.

By concern: `options` (command-line options and markers), `hooks` (the session's start and
end), `collect` (parametrization over devices and each experiment's grid), `fixtures`
(`train`, `case`, `device`, `load_dataset`), `results` (records to pytest-benchmark's JSON),
`gating` (--gate), `summary` (the terminal), `durable` (nothing lost), `isolation` (a
benchmark session trains in one pytest-xdist worker, so a crash fails one test), `crashes` (how
a worker died), `finish` (the session's end, in one written order), `session` (its state).
"""

# TensorFlow is imported on first use (fitbench.core.lazy), through fitbench.measure.startup,
# which filters its C++ start-up lines: the controller of an isolated session, which trains
# nothing, never imports it.

# Each after the modules it imports (pytest can rewrite asserts only in a module it imports itself).
pytest_plugins = [
    "fitbench.plugin.isolation",
    "fitbench.plugin.options",
    "fitbench.plugin.results",
    "fitbench.plugin.gating",
    "fitbench.plugin.summary",
    "fitbench.plugin.collect",
    "fitbench.plugin.hooks",
    "fitbench.plugin.crashes",
    "fitbench.plugin.fixtures",
    "fitbench.plugin.finish",
]
