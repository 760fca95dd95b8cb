"""A session as one worker of a cluster: what the cluster is, read from the environment.

TensorFlow's multi-worker engine, ``tf.distribute.MultiWorkerMirroredStrategy``, learns its
cluster from ``TF_CONFIG`` (JSON: ``{"cluster": {"worker": ["host:port", ...]}, "task":
{"type": "worker", "index": i}}``) or from a cluster resolver such as
``SlurmClusterResolver`` (a job step started by ``srun`` with several tasks). This module only
reads that description (no TensorFlow): fitbench.measure.devices builds the strategy from it, and
fitbench.processes.launch writes it for local workers on loopback.

The chief is the ``chief`` task when the cluster has one, else worker 0 (TensorFlow's own
rule, ``multi_worker_util.is_chief``); only the chief writes results.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass

TF_CONFIG = "TF_CONFIG"
TRAINING_TASKS = ("chief", "worker")  # the tasks that train; an 'evaluator' or 'ps' does not
SOURCES = ("auto", "tf_config", "slurm", "none")
SLURM_PORT_ENV = "FITBENCH_SLURM_PORT"  # first port of SlurmClusterResolver's range (default 8888)


class ClusterError(ValueError):
    """A cluster description that cannot be used (the message names the problem and the fix)."""


@dataclass(frozen=True)
class Cluster:
    """This session's place in a cluster."""

    tasks: dict[str, int]  # training tasks by type: {"worker": 2} or {"chief": 1, "worker": 1}
    task_type: str
    task_id: int
    source: str  # "TF_CONFIG" or "Slurm"

    @property
    def workers(self) -> int:
        """Processes that train (the chief included)."""
        return sum(self.tasks.values())

    @property
    def is_chief(self) -> bool:
        if "chief" in self.tasks:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_id == 0

    @property
    def name(self) -> str:
        """'worker 1' (of the cluster), for messages."""
        return f"{self.task_type} {self.task_id}"

    def describe(self) -> str:
        role = " (chief: writes the results)" if self.is_chief else " (not the chief: writes no results)"
        shape = ", ".join(f"{count} {kind}{'' if count == 1 else 's'}" for kind, count in self.tasks.items())
        return f"{self.name}{role} of a {self.workers}-worker cluster ({shape}; from {self.source})"

    def resolver(self):
        """TensorFlow's cluster resolver for this description."""
        import tensorflow as tf

        if self.source == "Slurm":
            port = int(os.environ.get(SLURM_PORT_ENV, "8888"))
            return tf.distribute.cluster_resolver.SlurmClusterResolver(port_base=port)
        return tf.distribute.cluster_resolver.TFConfigClusterResolver()


def from_tf_config(text: str) -> Cluster:
    """The cluster of a TF_CONFIG value; ClusterError names what is wrong with it."""
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ClusterError(f"TF_CONFIG is not JSON ({error}); it must look like "
                           '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}') \
            from error
    if not isinstance(config, dict):
        raise ClusterError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    cluster, task = config.get("cluster") or {}, config.get("task") or {}
    tasks = {kind: len(cluster[kind]) for kind in TRAINING_TASKS if cluster.get(kind)}
    if not tasks:
        raise ClusterError("TF_CONFIG names no 'worker' (or 'chief') addresses in 'cluster'; "
                           "unset TF_CONFIG to run on this machine alone")
    task_type, task_id = task.get("type"), task.get("index")
    if task_type not in tasks or not isinstance(task_id, int) or not 0 <= task_id < tasks[task_type]:
        raise ClusterError(f"TF_CONFIG's task {task!r} is not one of its cluster's training tasks "
                           f"({', '.join(f'{k} 0..{n - 1}' for k, n in tasks.items())}); set 'task': "
                           '{"type": "worker", "index": N} for this process')
    if tasks.get("chief", 0) > 1:
        raise ClusterError("TF_CONFIG has more than one chief; a cluster has at most one")
    return Cluster(tasks, task_type, task_id, "TF_CONFIG")


def from_slurm(env: Mapping[str, str]) -> Cluster | None:
    """The cluster of a Slurm job step with several tasks (srun -n N), else None."""
    tasks = int(env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS") or 0)
    if tasks < 2 or "SLURM_PROCID" not in env:
        return None
    return Cluster({"worker": tasks}, "worker", int(env["SLURM_PROCID"]), "Slurm")


def detect(source: str = "auto", env: Mapping[str, str] | None = None) -> Cluster | None:
    """This session's cluster, or None to train on this machine alone.

    auto: TF_CONFIG when it is set, else a Slurm job step of several tasks; tf_config / slurm:
    that one (an error when it is absent); none: never a cluster.
    """
    env = os.environ if env is None else env
    if source not in SOURCES:
        raise ClusterError(f"unknown cluster source {source!r}: choose from {', '.join(SOURCES)}")
    if source == "none":
        return None
    if source in ("auto", "tf_config") and env.get(TF_CONFIG):
        return from_tf_config(env[TF_CONFIG])
    if source == "tf_config":
        raise ClusterError("--cluster tf_config, but TF_CONFIG is not set; set it on every worker "
                           "(README: More than one machine) or start local workers with `fitbench workers N -- ...`")
    if source in ("auto", "slurm"):
        found = from_slurm(env)
        if found is not None or source == "auto":
            return found
    raise ClusterError("--cluster slurm, but this is not a Slurm job step with 2 or more tasks; "
                       "start it with `srun -n N pytest ...` inside an allocation")


def lost_worker(message: str) -> str:
    """'worker 1 (stopped sending heartbeats)' from TensorFlow's error when a peer is lost."""
    reported = message.split("Collective ops is aborted by", 1)[-1]  # past this worker's own op name
    tasks = sorted(set(re.findall(r"/job:(\w+)/replica:\d+/task:(\d+)", reported)))
    how = ("stopped sending heartbeats" if "heartbeat" in message else
           next((line.strip() for line in message.splitlines() if line.strip()), "no message"))[:200]
    named = ", ".join(f"{job} {task}" for job, task in tasks) or "a worker"
    return f"{named} ({how})"


def tf_config(addresses: list[str], index: int) -> str:
    """TF_CONFIG for worker `index` of a cluster of workers at `addresses`."""
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports free on `host` now (the OS picks them; held until all are chosen)."""
    sockets = []
    try:
        for _ in range(count):
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind((host, 0))
            sockets.append(listener)
        return [listener.getsockname()[1] for listener in sockets]
    finally:
        for listener in sockets:
            listener.close()
