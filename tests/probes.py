"""A hostile new user's probes: bad inputs and faults, each run as a user would run it, each
expected to end in one clear line with the documented exit status.

    python -m tests.probes                  # every probe; writes docs/probes.md
    python -m tests.probes oom-cgroup ...   # some of them, printed only (-v: with their output)

Each probe runs in its own scratch project (a user's repository: `benchmarks/test_user.py`, a
two-case MLP on its own data, see USER_FILE) or in this checkout (`cd "$CHECKOUT"`), as a bash
command. A probe is *clear* when the command exits with a documented status, prints the line it
is expected to print, and shows no traceback or INTERNALERROR. The list grew from the probes of
issues #23 and #38; it is not part of a test tier (it takes about 20 minutes and needs root for the
memory cgroup and the small filesystems); `tests/test_docs.py` checks that docs/probes.md is its
latest output.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "probes.md"

USER_FILE = '''\
import keras
import numpy as np
from keras import layers

from fitbench import Experiment, Schedule, Workload


def blobs(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(1200, 20)).astype("float32")
    y = (x[:, :3].sum(axis=1) > 0).astype("int64")
    return {"train": (x[:800], y[:800]), "validation": (x[800:1000], y[800:1000]), "test": (x[1000:], y[1000:])}


def mlp(input_shape, units=16, classes=2):
    return keras.Sequential([keras.Input(shape=input_shape), layers.Dense(units, activation="relu"),
                             layers.Dense(classes, activation="softmax")])


WORKLOAD = Workload(name="blobs-mlp", dataset=blobs, model=mlp, optimizer="adam", batch_size=32,
                    schedules={"smoke": Schedule(epochs=4)})

EXPERIMENT = Experiment(title="Blobs MLP", workload=WORKLOAD,
                        grid={"u16": {"model_args": {"units": 16}}, "u32": {"model_args": {"units": 32}}},
                        targets={"smoke": {"u16": 0.6, "u32": 0.6}})


def test_blobs(case, train):
    result = train(case.workload)
    result.assert_target(case.split, case.threshold)
'''

RUN = "pytest benchmarks --profile smoke --devices cpu"  # the user's session
SEED = 'cd "$CHECKOUT" && pytest benchmarks --profile smoke --devices cpu --benchmark-storage "$PROBE/.benchmarks"'
SAVED = '"$SHARED/run.json"'  # the user's run saved by the first probe
EDIT_RUN = ('python - "$SHARED/run.json" {out} <<\'PY\'\nimport json, sys\nrun = json.load(open(sys.argv[1]))\n{code}\n'
            'json.dump(run, open(sys.argv[2], "w"))\nPY\n')
# After a failed save: every JSON left in the folder must parse (nothing truncated).
INTACT = ('python -c "import json, pathlib, sys; [json.loads(p.read_text()) for p in pathlib.Path(sys.argv[1])'
          '.rglob(\'*.json\')]; print(\'every JSON left there parses\')" {folder} || exit 99')
CGROUP = ('cg=$(ls -d /sys/fs/cgroup/memory 2>/dev/null)/fitbench-probe-$$ && mkdir "$cg" && '
          'echo {limit} > "$cg/memory.limit_in_bytes" && trap \'sleep 1; rmdir "$cg"\' EXIT && '
          'sh -c \'echo $$ > "$0/cgroup.procs" && exec "$@"\' "$cg" ')
# After a crash of one case of two: the other case's record must be in the saved run.
KEPT = ('python -c "import json, sys; names = [b[\'name\'] for b in json.load(open(\'r.json\'))[\'benchmarks\']]; '
        'print(\'saved:\', names); sys.exit(0 if names == [\'test_blobs[cpu-u32]\'] else 99)" || exit 99')
MOUNT = 'mkdir -p {dir} && mount -t tmpfs -o size={size} tmpfs {dir} && trap "umount {dir}" EXIT && '


def edit_run(code: str, out: str) -> str:
    return EDIT_RUN.format(code=code, out=out)


@dataclass(frozen=True)
class Probe:
    name: str
    source: str  # the issue (and item) it came from
    does: str  # what the user does, in words
    command: str  # bash, in the scratch project; $CHECKOUT, $PROBE, $SHARED and $DATA are set
    exits: tuple[int, ...]  # the documented exit statuses
    says: str  # a regular expression for the line the user must see
    edits: tuple[tuple[str, str], ...] = ()  # replacements in benchmarks/test_user.py


PROBES: tuple[Probe, ...] = (
    # The user's own repository.
    Probe("user-session", "README", "the user's two-case smoke session, saved (the later probes use it)",
          f"{RUN} --benchmark-json $SHARED/run.json", (0,), r"2 passed"),
    Probe("target-not-in-grid", "#23 5", "a target names a case the grid lacks",
          RUN, (2, 4), r"names 'u64', not in the grid",
          (('"u32": 0.6}', '"u64": 0.6}'),)),
    Probe("target-out-of-range", "#23 5", "an accuracy target of 1.5",
          RUN, (2, 4), r"target 1.5 is not in \(0, 1\]", (('"u16": 0.6,', '"u16": 1.5,'),)),
    Probe("profile-without-target", "#23 5", "a profile with no targets",
          RUN, (2, 4), r"has no target", (('targets={"smoke": {"u16": 0.6, "u32": 0.6}}', 'targets={"smoke": {}}'),)),
    Probe("one-epoch-schedule", "#23 5", "a schedule of one epoch (no timed round)",
          RUN, (2, 4), r"at least 2 epochs", (("Schedule(epochs=4)", "Schedule(epochs=1)"),)),
    Probe("misspelled-metric", "#38 3", 'metric="accurracy"',
          RUN, (2, 4), r"not a Keras metric name \(did you mean 'accuracy'\?\)",
          (('batch_size=32,', 'batch_size=32, metric="accurracy",'),)),
    Probe("metric-object-without-goal", "#39 2", "a keras.metrics.Metric of the user's own, no goal given",
          RUN, (2, 4), r"higher_is_better",
          (('batch_size=32,', 'batch_size=32, metric=Agreement(),'),
           ("def blobs", "class Agreement(keras.metrics.Mean):\n    pass\n\n\ndef blobs"))),
    Probe("metric-function-without-goal", "#39 2", "a metric function, no goal given",
          RUN, (2, 4), r"higher_is_better",
          (('batch_size=32,', 'batch_size=32, metric=hits,'),
           ("def blobs", "def hits(y_true, y_pred):\n    return y_pred[:, 0]\n\n\ndef blobs"))),
    Probe("model-signature", "#39 3", "a model function that asks for num_classes",
          RUN, (2, 4), r"cannot be called as fitbench calls it",
          (("def mlp(input_shape, units=16, classes=2)", "def mlp(input_shape, num_classes, units=16)"),)),
    Probe("model-raises", "#38 3", "the model function raises",
          RUN, (1,), r"mlp\(.*\) raised ValueError: units must be positive",
          (("    return keras.Sequential(",
            "    raise ValueError('units must be positive')\n    return keras.Sequential("),)),
    Probe("variant-misspelled", "guide", "a grid case whose variant dict misspells a setting",
          RUN, (2,), r"variant setting\(s\) pipelin unknown",
          (('"u32": {"model_args": {"units": 32}}', '"u32": {"variant": {"pipelin": "numpy"}}'),)),
    Probe("dataset-raises", "#38 3", "the dataset function raises",
          RUN, (1,), r"dataset function test_user\.blobs raised FileNotFoundError",
          (("    rng = np.random", "    open('my_data.csv')\n    rng = np.random"),)),
    Probe("dataset-objects", "#39 1", "the data's inputs are Python objects, not numbers",
          RUN, (1,), r"train inputs are object .*; give numeric arrays",
          (('return {"train": (x[:800]', 'x = np.array([{"a": row} for row in x])\n    return {"train": (x[:800]'),)),
    Probe("dataset-rows-mismatch", "guide", "labels with fewer rows than the inputs",
          RUN, (1,), r"train has 800 inputs and 700 targets",
          (('"train": (x[:800], y[:800])', '"train": (x[:800], y[:700])'),)),
    Probe("dataset-without-validation", "#39 3", "no validation split, and the workload asks for none",
          RUN, (1,), r"has no validation split of its own: give the workload validation=",
          (('"validation": (x[800:1000], y[800:1000]), ', ''),)),
    Probe("dataset-nan", "#23 3", "NaN in the training inputs",
          RUN, (1,), r"train inputs hold NaN", (('x[:800], y[:800])', 'x[:800] * np.nan, y[:800])'),)),
    Probe("exploding-loss", "#23 3", "SGD at learning rate 1e4",
          RUN, (1,), r"diverged at epoch \d+: loss",
          (('optimizer="adam"', 'optimizer={"class_name": "SGD", "config": {"learning_rate": 1e4}}'),
           ("layers.Dense(units, activation=\"relu\")", "layers.Dense(units, activation=\"relu\"), "
            "layers.Dense(units, activation=\"relu\")"))),
    Probe("target-missed", "guide", "a target the model cannot reach (accuracy 0.999)",
          RUN, (1,), r"test accuracy 0\.\d+ is below the target test accuracy >= 0\.999",
          (('"u16": 0.6,', '"u16": 0.999,'),)),
    Probe("model-segfaults", "#38 1", "the model function of one case of two segfaults",
          f"{RUN} --benchmark-json r.json; s=$?; {KEPT}; exit $s", (1,),
          r"crashed: .*SIGSEGV.*while running test_blobs\[cpu-u16\]",
          (("    return keras.Sequential(", "    if units == 16:\n        import os, signal\n"
            "        os.kill(os.getpid(), signal.SIGSEGV)\n    return keras.Sequential("),)),
    Probe("segfault-at-import", "#38 1", "the benchmark file segfaults when imported",
          RUN, (2,), r"killed by SIGSEGV .* before it started any test",
          (("import keras\n", "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\nimport keras\n"),)),
    Probe("oom-cgroup", "#38 1", "in a 2.4 GB memory cgroup: a case the OOM killer ends (784 x 200,000 MLP, "
          "Adam), then a small one", CGROUP.format(limit=2_400_000_000) + f"{RUN} --benchmark-json r.json; s=$?; "
          f"{KEPT}; exit $s",
          (1,), r"crashed: .*SIGKILL.*OOM killer.*limit 2\.4 GB",
          (('"u16": {"model_args": {"units": 16}}', '"u16": {"model_args": {"units": 200_000}}'),
           ("size=(1200, 20)", "size=(1200, 784)"), ('"u32": 0.6}', '"u32": 0.5}'))),  # 784 noisy features
    Probe("prlimit-address-space", "#23 2", "the same huge case under prlimit --as=3000000000",
          f"prlimit --as=3000000000 {RUN}", (1,), r"crashed: .*address-space limit of 3\.0 GB",
          (('"u16": {"model_args": {"units": 16}}', '"u16": {"model_args": {"units": 200_000}}'),
           ("size=(1200, 20)", "size=(1200, 784)"))),
    Probe("old-module", "#38 3", "a file written for fitbench 0.1: from fitbench.workloads import Workload",
          RUN, (1, 2, 4), r"fitbench\.workloads.*(became|is now|moved)",
          (("from fitbench import Experiment, Schedule, Workload",
            "from fitbench import Experiment, Schedule\nfrom fitbench.workloads import Workload"),)),
    Probe("old-assert", "#38 3", "fitbench 0.1's result.assert_accuracy",
          RUN, (1, 2, 4), r"assert_accuracy.*assert_target",
          (("result.assert_target(case.split, case.threshold)", "result.assert_accuracy(case.threshold)"),)),
    Probe("umask", "#23 4", "umask 022: the results' mode",
          f"umask 022 && {RUN} -q --benchmark-json r.json --benchmark-autosave >/dev/null; "
          "stat -c '%a %n' r.json .benchmarks/*/*.json", (0,), r"^644 r\.json$"),
    Probe("two-autosaves-at-once", "#23 1", "two autosaving sessions started together in one checkout",
          f"{RUN} -q --benchmark-autosave >a.log & {RUN} -q --benchmark-autosave >b.log; wait; "
          "echo saved: $(ls .benchmarks/*/ | grep -c '^0.*json$')", (0,), r"^saved: 2$"),
    Probe("killed-session", "#23 7", "the session SIGKILLed after its first test, then --benchmark-compare",
          f"set -m; {RUN} --benchmark-autosave >a.log 2>&1 & for _ in $(seq 300); do "
          "ls .benchmarks/*/partial_* >/dev/null 2>&1 && break; sleep 1; done; kill -9 -$!; sleep 2; "
          f"{RUN} -k u16 --benchmark-compare 2>&1 | grep -m1 -i 'compare'", (0,),
          r"no saved run|partial"),
    Probe("interrupted-session", "guide", "Ctrl-C 4 s after the tests start (during the first)",
          f"set -m; PYTHONUNBUFFERED=1 {RUN} --benchmark-json r.json >a.log 2>&1 & for _ in $(seq 600); do "
          "grep -q 'worker \\[2 items\\]' a.log && break; sleep 0.2; done; sleep 4; "
          "kill -INT -$!; wait $!; s=$?; cat a.log; exit $s",
          (2,), r"!+ KeyboardInterrupt !+"),
    Probe("full-disk-json", "#38 2", "--benchmark-json on a full 16 KB filesystem",
          MOUNT.format(dir="full", size="16k") + f"{{ {RUN} --benchmark-json full/run.json; s=$?; "
          + INTACT.format(folder="full") + "; exit $s; }", (1,), r"could not save the results: .*No space left"),
    Probe("full-disk-autosave", "#38 2", "--benchmark-autosave onto a disk that fills after the first run",
          MOUNT.format(dir="full", size="2m") + f"{{ {RUN} -q --benchmark-autosave --benchmark-storage full >/dev/null "
          "&& dd if=/dev/zero of=full/filler bs=4k 2>/dev/null; rm -f full/filler.keep; "
          f"{RUN} --benchmark-autosave --benchmark-storage full; s=$?; rm -f full/filler; "
          + INTACT.format(folder="full") + "; exit $s; }", (1,), r"could not save the results: .*No space left"),
    Probe("read-only-json", "#38 2", "--benchmark-json into a read-only filesystem",
          MOUNT.format(dir="ro", size="1m") + f"mount -o remount,ro ro && {{ {RUN} --benchmark-json ro/run.json; }}",
          (1,), r"could not save the results: .*Read-only file system"),
    # This checkout's seed suite.
    Probe("unknown-device", "#23", "--devices gpu9", f"{SEED} --devices gpu9", (4,), r"unknown device gpu9"),
    Probe("unknown-profile", "guide", "--profile nightly", f"{SEED} --profile nightly", (4,), r"nightly"),
    Probe("damaged-dataset", "#23", "a damaged train-images-idx3-ubyte.gz",
          'cp -r "$DATA" data && chmod -R u+w data && printf garbage | dd of=data/fashion-mnist/'
          'train-images-idx3-ubyte.gz conv=notrunc 2>/dev/null && '
          f'{SEED} -k batch_size-512 --data-dir "$PROBE/data" --require-data --offline',
          (1, 4), r"cannot decompress .* damaged or truncated"),
    Probe("truncated-dataset", "guide", "a truncated t10k-labels-idx1-ubyte.gz",
          'cp -r "$DATA" data && chmod -R u+w data && truncate -s 300 data/fashion-mnist/t10k-labels-idx1-ubyte.gz && '
          f'{SEED} -k batch_size-512 --data-dir "$PROBE/data" --require-data --offline',
          (1, 4), r"t10k-labels-idx1-ubyte\.gz: .*(truncated|damaged)"),
    Probe("no-data", "guide", "--require-data --offline with an empty data directory",
          f'mkdir empty && {SEED} -k batch_size-512 --data-dir "$PROBE/empty" --require-data --offline',
          (1, 4), r"(?i)fashion.?mnist.*(not found|no .*file|missing)"),
    Probe("tpu-named-unreachable", "#23 6", "--devices tpu --tpu nonsense", f"{SEED} --devices tpu --tpu nonsense",
          (4,), r"TPU 'nonsense' not reachable"),
    Probe("tpu-none", "#23 6", "--devices tpu, no TPU named", f"{SEED} --devices tpu -rs", (0, 5),
          r"no TPU reachable"),
    Probe("gpu-absent", "guide", "--devices gpu on a machine without one", f"{SEED} --devices gpu -rs", (0, 5),
          r"(?i)no GPU"),
    Probe("replicas-not-dividing", "#38 3", "--cpu-replicas 3 with batch 512 (skipped at collection)",
          f"{SEED} --cpu-replicas 3 -k batch_size-512 -rs", (0, 5), r"does not divide"),
    Probe("select-nothing", "guide", "-k nomatch", f"{SEED} -k nomatch", (5,), r"deselected"),
    Probe("compare-without-saved-run", "#23 7", "--benchmark-compare with nothing saved",
          f"{SEED} -k batch_size-512 --benchmark-compare", (0,),
          r"refused: no saved run"),  # pytest-benchmark's way: a warning, and the session goes on
    Probe("gate-incomparable-baseline", "guide", "--gate against a baseline that claims 2 replicas",
          edit_run('for bench in run["benchmarks"]:\n    bench["extra_info"]["measurement"]["replicas"] = 2',
                   "two.json") + f"{RUN} --gate two.json", (1,), r"replicas: 2 != 1"),
    # The fitbench commands, on the saved run.
    Probe("compare-missing-file", "guide", "fitbench compare of a file that is not there",
          f"fitbench compare {SAVED} nothere.json", (2,), r"nothere\.json.*(no such file|not found)"),
    Probe("compare-not-json", "guide", "fitbench compare of a text file",
          f"echo hello > x.json && fitbench compare {SAVED} x.json", (2,), r"x\.json.*JSON"),
    Probe("compare-truncated", "#38 2", "fitbench compare of a file cut at 4,096 bytes",
          f"head -c 4096 {SAVED} > cut.json && fitbench compare {SAVED} cut.json", (2,),
          r"cut\.json: not JSON"),
    Probe("compare-schema-99", "#23 7", "a run whose fitbench.schema is 99",
          edit_run('run["fitbench"]["schema"] = 99', "s99.json") + f"fitbench compare {SAVED} s99.json", (2,),
          r"schema 99 is newer than this fitbench reads"),
    Probe("compare-replicas", "#23", "a run that claims 2 replicas",
          edit_run('for bench in run["benchmarks"]:\n    bench["extra_info"]["measurement"]["replicas"] = 2',
                   "two.json") + f"fitbench compare {SAVED} two.json", (2,), r"replicas: 1 != 2"),
    Probe("compare-other-cpu", "#38 3", "a baseline whose pytest-benchmark brand_raw differs",
          edit_run('run["machine_info"]["cpu"]["brand_raw"] = "Some Other CPU @ 9 GHz"', "other.json")
          + f"fitbench compare other.json {SAVED}", (2,), r"Some Other CPU"),
    Probe("compare-no-benchmarks", "guide", "a pytest-benchmark JSON without benchmarks",
          edit_run('run["benchmarks"] = []', "none.json") + f"fitbench compare none.json {SAVED}", (2,),
          r"none\.json has no benchmarks"),
    Probe("explain-without-profiles", "#36", "fitbench explain of runs made without --explain-steps",
          f"fitbench explain {SAVED} {SAVED}", (2,), r"(?i)profil"),
    Probe("noise-one-run", "guide", "fitbench noise of one run", f"fitbench noise {SAVED}", (2,),
          r"needs 2 or more runs"),
    Probe("report-empty-folder", "guide", "fitbench report of an empty folder",
          "mkdir nothing && fitbench report nothing", (2,), r"nothing"),
    Probe("history-missing-folder", "#37", "fitbench history of a folder that is not there",
          "fitbench history nothere", (2,), r"nothere"),
    Probe("history-confirm-without-pytest", "#37", "fitbench history --confirm without pytest arguments",
          f"fitbench history {SAVED} --confirm", (2,), r"--confirm.*pytest"),
    Probe("ab-outside-git", "guide", "fitbench ab where there is no git repository",
          "fitbench ab --base HEAD -- benchmarks --profile smoke", (2,), r"(?i)git"),
    Probe("ab-unknown-commit", "guide", "fitbench ab --base nosuchcommit",
          "git init -q && git add benchmarks && git -c user.name=u -c user.email=u@x commit -qm one && "
          "fitbench ab --base nosuchcommit -- benchmarks --profile smoke", (2,), r"nosuchcommit"),
    Probe("ab-select-nothing", "#38 3", "fitbench ab -k nomatch",
          "git init -q && git add benchmarks && git -c user.name=u -c user.email=u@x commit -qm one && "
          "fitbench ab --base HEAD --rounds 1 -- benchmarks --profile smoke -k nomatch", (2,),
          r"(?i)collected nothing|no test"),
    Probe("ab-read-only-output", "#38 3", "fitbench ab --output on a read-only filesystem",
          MOUNT.format(dir="ro", size="1m") + "mount -o remount,ro ro && git init -q && git add benchmarks && "
          "git -c user.name=u -c user.email=u@x commit -qm one && "
          "fitbench ab --base HEAD --rounds 1 --output ro/ab -- benchmarks --profile smoke", (2,),
          r"ro/ab.*Read-only file system"),
    Probe("ab-bad-budget", "#37", "fitbench ab --budget soon", "fitbench ab --base HEAD --budget soon -- benchmarks",
          (2,), r"soon"),
    Probe("bisect-same-ends", "guide", "fitbench bisect with good and bad the same commit",
          "git init -q && git add benchmarks && git -c user.name=u -c user.email=u@x commit -qm one && "
          "fitbench bisect HEAD HEAD -- benchmarks --profile smoke", (2,), r"(?i)same|no commit|between"),
    Probe("workers-fail", "#23 7", "fitbench workers 2 -- false", "fitbench workers 2 -- false", (1,),
          r"worker 0 .*exited with status 1.*worker 1 exited with status 1"),
)


@dataclass
class Outcome:
    probe: Probe
    exit: int
    line: str  # the expected line, or the output's last line when it is missing
    clear: bool
    why: str  # what made it unclear
    seconds: float
    output: str = ""


def user_file(edits: tuple[tuple[str, str], ...]) -> str:
    text = USER_FILE
    for old, new in edits:
        if old not in text:
            raise ValueError(f"probe edit {old!r} does not match the user file")
        text = text.replace(old, new)
    return text


def run(probe: Probe, shared: Path, timeout: int = 900) -> Outcome:
    project = Path(tempfile.mkdtemp(prefix=f"probe-{probe.name}-"))
    (project / "benchmarks").mkdir()
    (project / "benchmarks" / "test_user.py").write_text(user_file(probe.edits))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "FITBENCH_"))}
    env.update(CHECKOUT=str(ROOT), PROBE=str(project), SHARED=str(shared),
               DATA=os.environ.get("FITBENCH_DATA_DIR", str(ROOT.parent / "shared" / "datasets")))
    env.pop("PYTHONPATH", None)
    started = time.monotonic()
    try:
        done = subprocess.run(["bash", "-c", probe.command], cwd=project, env=env, capture_output=True, text=True,
                              timeout=timeout, start_new_session=True)
        output, status = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as expired:
        output, status = f"{expired.stdout or ''}{expired.stderr or ''}\n(timed out after {timeout} s)", -1
    seconds = time.monotonic() - started
    shutil.rmtree(project, ignore_errors=True)
    return judge(probe, status, output, seconds)


def judge(probe: Probe, status: int, output: str, seconds: float) -> Outcome:
    # The header's rootdir names the probe's folder, which would match its own words.
    lines = [line.strip() for line in output.splitlines() if line.strip() and not line.startswith("rootdir: ")]
    found = [line for line in lines if re.search(probe.says, line)]
    problems = []
    if status not in probe.exits:
        problems.append(f"exit {status}, documented {'/'.join(map(str, probe.exits))}")
    if not found:
        problems.append("the expected line is missing")
    if "Traceback (most recent call last)" in output or "INTERNALERROR" in output:
        problems.append("a traceback")
    if status == 99:
        problems.append("the check after it failed (a truncated file left, or a finished case not saved)")
    # The last line that says it: a collection error's E line comes after the source it quotes.
    line = found[-1] if found else (lines[-1] if lines else "(nothing)")
    return Outcome(probe, status, line, not problems, "; ".join(problems), seconds, output)


HEADER = "| # | source | probe | exit | clear | what it prints |\n|---:|---|---|---:|---|---|"


def row(number: int, outcome: Outcome) -> str:
    line = outcome.line if len(outcome.line) <= 400 else outcome.line[:397] + "..."
    clear = "yes" if outcome.clear else f"**no**: {outcome.why}"
    return (f"| {number} | {outcome.probe.source} | `{outcome.probe.name}`: {outcome.probe.does} | "
            f"{outcome.exit} | {clear} | `{line.replace('|', '/').replace('`', '')}` |")


def write_doc(rows: list[str], when: str, rerun: str = "") -> None:
    """docs/probes.md from its rows: the run's time and machine, and how many are clear."""
    import tensorflow as tf

    from fitbench.measure.devices import cpu_name

    clear = sum(" | yes | " in line for line in rows)
    DOC.write_text(
        "# Probes: a hostile new user's bad inputs and faults\n\n"
        "Written by `python -m tests.probes` (the list and what each is expected to print are in "
        "`tests/probes.py`); do not edit by hand.\n\n"
        f"Run on {when}, {cpu_name()} with {os.cpu_count()} CPUs, TensorFlow {tf.__version__}: "
        f"**{clear} of {len(rows)} clear** (the documented exit status, the expected line, no traceback)."
        + (f" {rerun}" if rerun else "") + "\n\n" + HEADER + "\n" + "\n".join(rows) + "\n")


def main(names: list[str]) -> int:
    verbose = "-v" in names  # each probe's whole output too
    update = "--update" in names  # re-run these probes and replace their rows in docs/probes.md
    names = [name for name in names if name not in ("-v", "--update")]
    unknown = set(names) - {probe.name for probe in PROBES}
    if unknown:
        print(f"unknown probe(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    chosen = [probe for probe in PROBES if not names or probe.name in names]
    shared = Path(tempfile.mkdtemp(prefix="probes-shared-"))
    if chosen[0] is not PROBES[0]:
        chosen.insert(0, PROBES[0])  # the saved run the others read
    outcomes = []
    for probe in chosen:
        outcome = run(probe, shared)
        outcomes.append(outcome)
        print(f"{'clear  ' if outcome.clear else 'UNCLEAR'} {probe.name} ({outcome.seconds:.0f} s, exit "
              f"{outcome.exit}): {outcome.line[:300]}" + ("" if outcome.clear else f"  [{outcome.why}]"), flush=True)
        if verbose:
            print("    " + "\n    ".join(outcome.output.splitlines()[-40:]))
    clear = sum(outcome.clear for outcome in outcomes)
    print(f"{clear} of {len(outcomes)} clear")
    now = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())
    if not names:
        write_doc([row(number, outcome) for number, outcome in enumerate(outcomes, 1)], now)
    elif update:
        text = DOC.read_text()
        when = re.search(r"^Run on (.*?), ", text, flags=re.MULTILINE).group(1)
        rows = re.findall(r"^\| \d+ \| .*$", text, flags=re.MULTILINE)
        numbers = {probe.name: number for number, probe in enumerate(PROBES, 1)}
        for outcome in outcomes:
            if outcome.probe.name in names:
                rows[numbers[outcome.probe.name] - 1] = row(numbers[outcome.probe.name], outcome)
        # The earlier re-runs stay named: each row says when it ran.
        earlier = " ".join(re.findall(r"Re-run on \d{4}-\d\d-\d\d \d\d:\d\d UTC: [^.]*\.", text))
        write_doc(rows, when, f"{earlier} Re-run on {now}: {', '.join(f'`{name}`' for name in names)}.".strip())
    shutil.rmtree(shared, ignore_errors=True)
    return 0 if clear == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
