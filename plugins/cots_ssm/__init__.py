"""Run a COTS batch on a fleet of EC2 instances through SSM Run Command, from Airflow."""

__version__ = "0.1.0"
