"""MWAA for the deployment tests: moto has no MWAA, so a fake held to botocore's model of the service.

Every request is validated against botocore's input shapes (a misspelt parameter fails as it would
on AWS), unknown environments answer ``ResourceNotFoundException``, and an update goes through
``UPDATING`` for a few polls before it succeeds or fails.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.validate import validate_parameters

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy"))

MWAA_MODEL = botocore.session.get_session().get_service_model("mwaa")


class FakeMwaa:
    """GetEnvironment and UpdateEnvironment of one region, with the requests it received."""

    def __init__(self, environments: dict[str, dict[str, Any]] | None = None) -> None:
        self.environments = environments or {}
        self.updates: list[dict[str, Any]] = []
        self.polls_while_updating = 2
        self.update_error: dict[str, str] | None = None  # set: the next update fails with this error
        self.lose_next_answer = False  # set: the next update acts, then its answer is lost

    def add(self, name: str, bucket: str, **fields: Any) -> dict[str, Any]:
        """An AVAILABLE environment as GetEnvironment describes it, reading from ``bucket``."""
        self.environments[name] = {
            "Name": name,
            "Arn": f"arn:aws:airflow:us-east-1:123456789012:environment/{name}",
            "AirflowVersion": "3.0.6",
            "Status": "AVAILABLE",
            "SourceBucketArn": f"arn:aws:s3:::{bucket}",
            "DagS3Path": "dags",
            "LastUpdate": {"Status": "SUCCESS", "CreatedAt": datetime(2026, 1, 1, tzinfo=UTC)},
            **fields,
        }
        return self.environments[name]

    def _check(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        validate_parameters(params, MWAA_MODEL.operation_model(operation).input_shape)
        if params["Name"] not in self.environments:
            error = {
                "Code": "ResourceNotFoundException",
                "Message": f"Environment {params['Name']} not found",
            }
            raise ClientError({"Error": error}, operation)
        return self.environments[params["Name"]]

    def get_environment(self, **params: Any) -> dict[str, Any]:
        environment = self._check("GetEnvironment", params)
        if environment["Status"] == "UPDATING" and "_polls" in environment:
            environment["_polls"] += 1
            if environment["_polls"] > self.polls_while_updating:
                failed = environment.pop("_error")
                environment["Status"] = "AVAILABLE"
                environment["LastUpdate"]["Status"] = "FAILED" if failed else "SUCCESS"
                if failed:
                    environment["LastUpdate"]["Error"] = failed
                else:
                    environment.update(environment.pop("_pending"))
        return {"Environment": {k: v for k, v in environment.items() if not k.startswith("_")}}

    def update_environment(self, **params: Any) -> dict[str, Any]:
        environment = self._check("UpdateEnvironment", params)
        if environment["Status"] not in {"AVAILABLE", "UPDATE_FAILED"}:
            error = {"Code": "ValidationException", "Message": f"Environment is {environment['Status']}"}
            raise ClientError({"Error": error}, "UpdateEnvironment")
        self.updates.append(params)
        environment.update(
            Status="UPDATING",
            LastUpdate={"Status": "PENDING", "CreatedAt": datetime.now(UTC)},
            _polls=0,
            _error=self.update_error,
            _pending={k: v for k, v in params.items() if k != "Name"},
        )
        if self.lose_next_answer:
            self.lose_next_answer = False
            raise EndpointConnectionError(endpoint_url="https://airflow.us-east-1.amazonaws.com")
        return {"Arn": environment["Arn"]}


@pytest.fixture
def fake_mwaa() -> FakeMwaa:
    return FakeMwaa()
