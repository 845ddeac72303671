"""The middleware in front of moto: control routes, and everything else passed to moto."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest


def call(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method=method)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "health", None, 200),
        ("GET", "no-such-route", None, 404),
        ("GET", "throttle", None, 405),
        ("POST", "throttle", b"not json", 400),
        ("POST", "throttle", b'{"count": 1}', 400),
    ],
    ids=["health", "unknown route", "wrong method", "not json", "missing action"],
)
def test_control_routes(emu, method, path, body, status):
    code, payload = call(f"{emu.endpoint_url}/_emulator/{path}", method, body)
    assert code == status
    assert ("error" in payload) == (status != 200)


def test_rest_services_pass_through_untouched(emu, client):
    s3 = client("s3")
    s3.create_bucket(Bucket="middleware-pass-through")
    s3.put_object(Bucket="middleware-pass-through", Key="k", Body=b"v")
    assert s3.get_object(Bucket="middleware-pass-through", Key="k")["Body"].read() == b"v"


def test_form_encoded_actions_are_counted_and_reach_moto(emu, client):
    sns = client("sns")
    sns.publish(TopicArn=emu.topic_arn, Message="counted")
    assert emu.control.counters()["Publish"] == {
        "calls": 1,
        "accepted": 1,
        "throttled": 0,
        "server_errors": 0,
        "lost_answers": 0,
    }
