"""Nightly COTS batches on EC2 fleets, from a jobs file: the application on top of :mod:`ssm_fleet`.

One DAG per job (``jobs``), its trigger form (``params``), what a run changed (``overrides``), the start
window (``window``), the report task (``report``), the alerts' wording (``wording``), the fleet page
(``fleet``) and the job settings (``config``).
"""

__version__ = "0.2.0"
