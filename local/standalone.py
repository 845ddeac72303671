"""``make run``: ``airflow standalone`` on the embedded default, every job's DAG ready in the UI.

Starts the local AWS emulator (port 5000, 3 instances tagged ``Role=cots`` and 2 ``Role=indexer``,
the fleets of the two jobs of ``dags/cots_jobs.yaml``) and Airflow's standalone mode (scheduler,
DAG processor, triggerer and API server on SQLite) with the AWS connection pointing at the
emulator. Open http://localhost:8080, log in as ``admin`` with the password printed below, and
trigger ``cots_nightly_batch`` or ``document_indexer`` from its form. Ctrl-C stops both.
"""

from __future__ import annotations

import sys

from devenv import ROOT, airflow_env, emulator, migrate, raise_on_sigterm, standalone

from cots_ssm.jobs.loader import jobs_file_path, load_jobs
from ssm_emulator.control import EmulatorControl


def main() -> int:
    raise_on_sigterm()
    home = ROOT / "build" / "standalone" / "airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    with emulator(port=5000, instances=3) as aws:
        indexers = EmulatorControl(aws.endpoint_url).add_instances(2, tags={"Role": "indexer"})
        print(f"Local AWS at {aws.endpoint_url}: Role=cots {', '.join(aws.instance_ids)}; "
              f"Role=indexer {', '.join(indexers)}", flush=True)  # fmt: skip
        print(f"SNS topic {aws.topic_arn}; alerts land in {aws.queue_url}", flush=True)
        # 10 s: a shorter interval than a poke takes to end invites an Airflow requeue race (README).
        env = airflow_env(aws, home, POLL_SECONDS="10")
        migrate(env)
        passwords = home / "simple_auth_manager_passwords.json.generated"
        jobs = load_jobs(jobs_file_path(ROOT / "dags" / "cots_jobs.yaml", env), env)
        print(f"Jobs (one DAG each): {', '.join(job.id for job in jobs.jobs)}", flush=True)
        print(f"Airflow UI: http://localhost:8080 (user admin, password in {passwords})", flush=True)
        try:
            with standalone(env) as process:
                return process.wait()
        except KeyboardInterrupt:
            print("Stopping Airflow and the local AWS ...", flush=True)
            return 0


if __name__ == "__main__":
    sys.exit(main())
