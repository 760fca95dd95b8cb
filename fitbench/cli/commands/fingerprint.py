"""`fitbench fingerprint`: this machine's fingerprint (what the gate compares)."""

from __future__ import annotations

import argparse
import json


def add_parser(commands: argparse._SubParsersAction) -> None:
    finger = commands.add_parser("fingerprint", help="this machine's fingerprint (machine and software)")
    finger.add_argument("--short", action="store_true", help="a 16-character hash, for cache keys")
    finger.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print this machine's fingerprint (what the gate compares), or a short hash of it."""
    import hashlib
    from dataclasses import asdict

    from fitbench.core.record import Environment
    from fitbench.measure import devices

    devices.configure()
    print_ = asdict(Environment.from_machine_info(devices.machine_info()))
    text = json.dumps(print_, sort_keys=True)
    print(hashlib.sha256(text.encode()).hexdigest()[:16] if args.short else json.dumps(print_, indent=2))
    return 0
