"""What parsing the DAG file costs for 1 job and for 50 jobs of the jobs file, and their ratio.

Run: .venv/bin/python benchmarks/bench_jobs_parse.py [--jobs 1 50] [--repeat 5]
Not a test: it prints what it measured. Each measure is a fresh interpreter that imports Airflow's
DagBag (not timed), refuses every socket connection (a network call at parse time fails the
bench), then times ``DagBag(dag_folder=dags/cots_jobs.py)`` over a generated jobs file
(``COTS_JOBS_FILE``) of N jobs on tag and instance-id fleets. That is the DAG processor's work for
the file: reading and checking the jobs, importing the package, building the DAGs. The median of
``--repeat`` runs is printed per size, wall and CPU time (CPU time is what a loaded machine does not
blur), with the goal: 50 jobs within 1.5x of 1 job.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
GOAL = 1.5

CHILD = """
import json, socket, sys, time
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow 3.0 / 3.1
    from airflow.models.dagbag import DagBag

def refuse(*args, **kwargs):
    raise RuntimeError(f"network call at parse time: {args[1:]}")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
started, cpu_started = time.perf_counter(), time.process_time()
bag = DagBag(dag_folder=sys.argv[1])
elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
errors = {path: text[-300:] for path, text in bag.import_errors.items()}
print(json.dumps({"seconds": elapsed, "cpu": cpu, "dags": len(bag.dags), "errors": errors}))
"""


def jobs_file(count: int) -> dict:
    jobs = []
    for n in range(count):
        job: dict = {
            "id": f"cots_job_{n:03d}",
            "description": f"Generated job {n}",
            "schedule": f"{n % 60} {n % 24} * * *",
            "timezone": ["UTC", "Europe/Paris", "America/New_York"][n % 3],
            "script_arguments": ["--keywords", f"k{n}"],
            "max_failed_instances": f"{n % 10}%",
            "tags": ["bench"],
        }
        if n % 2:
            job["instance_ids"] = [f"i-{n:017x}", f"i-{n + 1000:017x}"]
        else:
            job["target_tags"] = {"Role": [f"fleet-{n}"], "Env": ["prod"]}
        jobs.append(job)
    return {"defaults": {"owner": "bench", "poll_interval_seconds": 120}, "jobs": jobs}


def measure(count: int, repeat: int, workdir: Path) -> list[dict]:
    path = workdir / f"jobs-{count}.yaml"
    path.write_text(yaml.safe_dump(jobs_file(count)))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT / "dags")]),
        "AIRFLOW_HOME": str(workdir / "airflow-home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "COTS_JOBS_FILE": str(path),
    }
    answers = []
    for _ in range(repeat):
        result = subprocess.run(
            [sys.executable, "-c", CHILD, str(ROOT / "dags" / "cots_jobs.py")],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        answer = json.loads(result.stdout.strip().splitlines()[-1])
        if answer["errors"] or answer["dags"] != count:
            raise SystemExit(f"{count} job(s): {answer['dags']} DAG(s), import errors {answer['errors']}")
        answers.append(answer)
    return answers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs=2, default=[1, 50], metavar=("FEW", "MANY"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
        wall, cpu = {}, {}
        for count in args.jobs:
            answers = measure(count, args.repeat, Path(tmp))
            wall[count] = statistics.median(a["seconds"] for a in answers)
            cpu[count] = statistics.median(a["cpu"] for a in answers)
            runs = " ".join(f"{a['seconds'] * 1000:.0f}" for a in answers)
            print(f"{count:>4} job(s): median {wall[count] * 1000:4.0f} ms wall, "
                  f"{cpu[count] * 1000:4.0f} ms CPU (wall of each run, ms: {runs})", flush=True)  # fmt: skip
    few, many = args.jobs
    for name, medians in (("wall", wall), ("CPU", cpu)):
        ratio = medians[many] / medians[few]
        per_job = (medians[many] - medians[few]) / (many - few) * 1000
        print(f"{name}: {many}/{few} jobs = {ratio:.2f}x (goal <= {GOAL}x); {per_job:.1f} ms per extra job")
    print("no network call: every socket connection was refused during the parse")
    return 0


if __name__ == "__main__":
    sys.exit(main())
