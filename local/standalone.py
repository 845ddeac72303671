"""``make run``: ``airflow standalone`` on the embedded default, the DAG ready in the UI.

Starts the local AWS emulator (port 5000, 3 instances tagged ``Role=cots``) and Airflow's
standalone mode (scheduler, DAG processor, triggerer and API server on SQLite) with the AWS
connection pointing at the emulator. Open http://localhost:8080, log in as ``admin`` with the
password printed below, and trigger ``cots_nightly_batch`` from its form. Ctrl-C stops both.
"""

from __future__ import annotations

import sys

from devenv import ROOT, airflow_env, emulator, migrate, raise_on_sigterm, standalone


def main() -> int:
    raise_on_sigterm()
    home = ROOT / "build" / "standalone" / "airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    with emulator(port=5000, instances=3) as aws:
        print(f"Local AWS at {aws.endpoint_url}: instances {', '.join(aws.instance_ids)}", flush=True)
        print(f"SNS topic {aws.topic_arn}; alerts land in {aws.queue_url}", flush=True)
        # 10 s: a shorter interval than a poke takes to end invites an Airflow requeue race (README).
        env = airflow_env(aws, home, POLL_SECONDS="10")
        migrate(env)
        passwords = home / "simple_auth_manager_passwords.json.generated"
        print(f"Airflow UI: http://localhost:8080 (user admin, password in {passwords})", flush=True)
        try:
            with standalone(env) as process:
                return process.wait()
        except KeyboardInterrupt:
            print("Stopping Airflow and the local AWS ...", flush=True)
            return 0


if __name__ == "__main__":
    sys.exit(main())
