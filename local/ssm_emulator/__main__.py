"""Command line: run the emulator until SIGTERM / SIGINT (or until --parent-pid is gone).

    python -m ssm_emulator --port 5000 --instances 3 --tag Role=cots --info-file emu.json

It prints one `name: value` line per fact, then `READY <endpoint_url>` once it serves.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from ssm_emulator.server import EmulatorServer

PARENT_POLL_SECONDS = 0.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="python -m ssm_emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5000, help="TCP port, 0 for any free one (default: 5000)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--instances", type=int, default=3, help="EC2 instances to bootstrap (default: 3)")
    parser.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="instance tag, repeatable (default: Role=cots)",
    )
    parser.add_argument("--region", default="us-east-1", help="AWS region (default: us-east-1)")
    parser.add_argument("--state-dir", help="instance working directories and outputs (default: a temp dir)")
    parser.add_argument("--info-file", help="also write the facts as JSON to this file")
    parser.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    parser.add_argument(
        "--time-scale", type=float, help="factor on TimeoutSeconds (default: $SSM_EMULATOR_TIME_SCALE or 1)"
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level, e.g. INFO (default: WARNING)")
    return parser.parse_args(argv)


def parse_tags(pairs: list[str]) -> dict[str, str]:
    """Turn ["Role=cots", "Env=dev"] into {"Role": "cots", "Env": "dev"}."""
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--tag takes KEY=VALUE, got {pair!r}")
        tags[key] = value
    return tags


def process_gone(pid: int) -> bool:
    """Tell whether a process has exited (a zombie counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state == "Z"


def watch_parent(pid: int, stop: threading.Event) -> None:
    """Set `stop` once process `pid` is gone."""
    while not stop.wait(PARENT_POLL_SECONDS):
        if process_gone(pid):
            logging.getLogger(__name__).warning("parent process %s is gone; stopping", pid)
            stop.set()


def announce(facts: dict[str, Any], info_file: str | None) -> None:
    """Print the facts and the READY line; write them to `info_file` first if asked."""
    if info_file:
        path = Path(info_file)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(facts, indent=2) + "\n")
        tmp.replace(path)
    for name in (
        "endpoint_url",
        "region",
        "account_id",
        "instance_ids",
        "topic_arn",
        "queue_url",
        "state_dir",
        "pid",
    ):
        value = facts[name]
        print(f"{name}: {' '.join(value) if isinstance(value, list) else value}")
    print(f"READY {facts['endpoint_url']}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the emulator in the foreground."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = EmulatorServer(
        port=args.port,
        host=args.host,
        instances=args.instances,
        tags=parse_tags(args.tag) if args.tag else None,
        region=args.region,
        state_dir=args.state_dir,
        time_scale=args.time_scale,
    )
    server.start()
    try:
        if args.parent_pid:
            threading.Thread(target=watch_parent, args=(args.parent_pid, stop), daemon=True).start()
        announce(server.info(), args.info_file)
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
    print("STOPPED", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
