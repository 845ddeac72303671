"""Run a shell command on a fleet of EC2 instances through SSM Run Command, from Airflow.

The library: laid out like the Amazon provider (``hooks``, ``operators``, ``sensors``, ``triggers``,
``notifications``, ``links``) over a pure model of SSM's answers (``status``, ``invocations``,
``ledger``, ``verdict``, ``render``, ``check``, ``send``, ``plan``, ``validation``, ``documents``,
``alert``, ``errors``). It knows nothing of the application that uses it (``cots_ssm``: jobs file, DAG
factory, trigger form, fleet page); a test keeps that direction (``tests/test_layers.py``).
"""

__version__ = "0.2.0"
