"""Many COTS jobs from one declarative file (``dags/cots_jobs.yaml``), one DAG per job.

The application layer on top of the reusable package: ``schema`` (the JSON schema, the one source of
the rules), ``loader`` (pure Python: reads and checks the file, merges defaults), ``dag`` (builds the
DAGs from the operators, the sensor and the notifiers).
"""
