"""The GPU workflow's triggers: a fork's code never runs on the self-hosted runners unasked.

The jobs' `if:` expressions are evaluated here for the events GitHub sends (the payload
fields they read), by translating GitHub's expression syntax (`||`, `&&`, `==`, `!=`,
property access, string literals) to Python; actionlint checks them in .ci/run."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.helpers import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "gpu.yml"
REPOSITORY = "fitbench/fitbench"


class Context(dict):
    """A GitHub expression context: a missing property is null, as in GitHub's expressions."""

    def __getattr__(self, name: str):
        value = self.get(name)
        return Context(value) if isinstance(value, dict) else (Context() if value is None else value)

    def __eq__(self, other):
        return isinstance(other, dict) and dict.__eq__(self, other)

    __hash__ = None


def evaluate(expression: str, event_name: str, payload: dict, variables: dict | None = None) -> bool:
    python = expression.replace("||", " or ").replace("&&", " and ")
    assert not re.search(r"!(?!=)|\$\{\{|\*", python), f"unsupported syntax in {expression!r}"
    github = Context({"event_name": event_name, "event": payload, "repository": REPOSITORY,
                      "ref": payload.get("ref", "refs/pull/1/merge")})
    return bool(eval(f"({python})", {"__builtins__": {}}, {"github": github, "vars": Context(variables or {})}))


def pull_request(action: str, fork: bool, labels: tuple[str, ...] = (), label: str | None = None) -> dict:
    head = "someone/fitbench" if fork else REPOSITORY
    payload = {"action": action, "pull_request": {"number": 7, "head": {"repo": {"full_name": head}},
                                                  "labels": [{"name": n} for n in labels]}}
    if label:
        payload["label"] = {"name": label}
    return payload


def workflow() -> dict:
    document = yaml.safe_load(WORKFLOW.read_text())
    document["on"] = document.pop(True, document.get("on"))  # YAML 1.1 reads the key `on` as true
    return document


CASES = [
    # (event, payload, runs the GPU job)
    ("pull_request", pull_request("opened", fork=True), False),
    ("pull_request", pull_request("synchronize", fork=True), False),
    ("pull_request", pull_request("synchronize", fork=True, labels=("run-gpu",)), False),  # new code: ask again
    ("pull_request", pull_request("reopened", fork=True, labels=("run-gpu",)), False),
    ("pull_request", pull_request("labeled", fork=True, labels=("documentation",), label="documentation"), False),
    ("pull_request", pull_request("labeled", fork=True, labels=("run-gpu",), label="run-gpu"), True),
    ("pull_request", pull_request("opened", fork=False), True),
    ("pull_request", pull_request("synchronize", fork=False), True),
    ("pull_request", pull_request("labeled", fork=False, labels=("documentation",), label="documentation"), False),
    ("push", {"ref": "refs/heads/main"}, True),
    ("workflow_dispatch", {"ref": "refs/heads/main"}, True),
]


@pytest.mark.parametrize("event, payload, runs", CASES,
                         ids=[f"{e}-{p.get('action', '')}-{'fork' if 'someone' in str(p) else 'own'}-"
                              f"{p.get('label', {}).get('name', 'no label')}" for e, p, _ in CASES])
def test_the_gpu_job_runs_only_when_asked(event, payload, runs):
    jobs = workflow()["jobs"]
    assert evaluate(jobs["gpu"]["if"], event, payload) is runs
    # The TPU job follows the same rule once a TPU runner is configured, and never without one.
    assert evaluate(jobs["tpu"]["if"], event, payload, {"TPU_RUNNER": "true"}) is runs
    assert evaluate(jobs["tpu"]["if"], event, payload, {}) is False


def test_the_workflow_never_runs_a_fork_with_a_write_token_or_secrets():
    document = workflow()
    assert "pull_request_target" not in document["on"] and "workflow_run" not in document["on"]
    assert document["permissions"] == {"contents": "read"}
    assert not re.search(r"\$\{\{[^}]*secrets\.", WORKFLOW.read_text())
    for job in document["jobs"].values():
        assert "self-hosted" in job["runs-on"]
        checkout = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/checkout"))
        assert checkout["with"]["persist-credentials"] is False


def test_the_nightly_job_runs_only_main_on_a_schedule_or_by_hand():
    """The one workflow that may push (its results branch) never runs a pull request's code."""
    path = ROOT / ".github" / "workflows" / "nightly.yml"
    document = yaml.safe_load(path.read_text())
    triggers = document[True]  # YAML reads the key `on` as true
    assert set(triggers) == {"schedule", "workflow_dispatch"}
    assert document["permissions"] == {"contents": "write"}
    (job,) = document["jobs"].values()
    assert evaluate(job["if"], "schedule", {"ref": "refs/heads/main"}) is True
    assert evaluate(job["if"], "workflow_dispatch", {"ref": "refs/heads/feature"}) is False
    assert "fitbench history results/ab --alert-last 3 --confirm --bisect" in path.read_text()
    assert "fitbench ab --base \"$FITBENCH_REFERENCE\" --candidate \"$GITHUB_SHA\"" in path.read_text()
    assert "fetch-depth: 0" in path.read_text()  # the reference and the confirmed commits can be checked out
