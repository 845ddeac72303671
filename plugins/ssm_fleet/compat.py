"""Imports that moved between the Airflow 3 versions MWAA runs (3.0.6 to 3.3.x)."""

from __future__ import annotations

try:  # Airflow 3.2+: exceptions live in the task SDK.
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
    )
except ImportError:  # pragma: no cover - Airflow 3.0 / 3.1
    from airflow.exceptions import (  # type: ignore[no-redef,attr-defined,unused-ignore]
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
    )

__all__ = ["AirflowException", "AirflowFailException", "AirflowSensorTimeout", "AirflowSkipException"]

try:  # Airflow 3.1+
    from airflow.sdk import CronTriggerTimetable
except ImportError:  # pragma: no cover - Airflow 3.0
    from airflow.timetables.trigger import CronTriggerTimetable  # type: ignore[assignment,unused-ignore]

__all__ += ["CronTriggerTimetable"]
