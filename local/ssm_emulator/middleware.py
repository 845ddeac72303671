"""The WSGI middleware in front of moto: control API, call counting and injected API errors.

Requests under `/_emulator/` go to the control API; every other request is counted by action
(`X-Amz-Target: AmazonSSM.SendCommand` for JSON services, `Action=` in the query string or the
form body for query services such as SNS and EC2), possibly answered with an injected throttling
or server error, and otherwise passed to moto with the emulator's service bound to the thread. A
lost answer is a call passed to moto whose answer is then thrown away: the client gets a 500, or
its connection is closed without an answer, although the call took effect.
"""

from __future__ import annotations

import io
import json
import re
import socket
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from ssm_emulator.bootstrap import INTERNAL_HEADER
from ssm_emulator.faults import FaultState
from ssm_emulator.service import RunCommandService
from ssm_emulator.ssm import serving

CONTROL_PREFIX = "/_emulator/"
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Route = Callable[[dict[str, Any]], Any]

_INTERNAL_KEY = "HTTP_" + INTERNAL_HEADER.upper().replace("-", "_")
_SERVICE_RE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/")
# (JSON __type, query Code, EC2 Code, message) per injected error.
_ERRORS = {
    400: ("ThrottlingException", "Throttling", "RequestLimitExceeded", "Rate exceeded"),
    500: ("InternalServerError", "InternalFailure", "InternalError", "Internal server error (injected)"),
    503: ("ServiceUnavailable", "ServiceUnavailable", "Unavailable", "Service unavailable (injected)"),
}
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
}
_REASONS[503] = "Service Unavailable"


class ControlError(Exception):
    """A control API request that cannot be served (answered with HTTP 400)."""


class EmulatorMiddleware:
    """Wraps moto's WSGI app for one emulator."""

    def __init__(
        self,
        app: WSGIApp,
        service: RunCommandService,
        faults: FaultState,
        routes: dict[tuple[str, str], Route],
    ) -> None:
        self.app = app
        self.service = service
        self.faults = faults
        self.routes = routes

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return self._control(environ, start_response, path[len(CONTROL_PREFIX) :].strip("/"))
        action, protocol = detect_action(environ)
        if action and environ.get(_INTERNAL_KEY) != "1":
            verdict, status = self.faults.decide(action)
            if verdict in ("throttle", "error"):
                return _api_error(start_response, protocol, status)
            if verdict in ("lose", "drop"):
                self._act_silently(environ)
                if verdict == "drop":
                    _drop_connection(environ)
                return _api_error(start_response, protocol, 500)
        with serving(self.service):
            return self.app(environ, start_response)

    def _act_silently(self, environ: dict[str, Any]) -> None:
        """Let moto act on the request and throw its answer away."""
        with serving(self.service):
            answer = self.app(environ, lambda *_: lambda _data: None)
            try:
                for _chunk in answer:
                    pass
            finally:
                close = getattr(answer, "close", None)
                if close is not None:
                    close()

    def _control(
        self, environ: dict[str, Any], start_response: Callable[..., Any], name: str
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        route = self.routes.get((method, name))
        if route is None:
            known = any(path == name for _, path in self.routes)
            status = 405 if known else 404
            return _json(start_response, status, {"error": f"no control route {method} /_emulator/{name}"})
        try:
            body = _read_body(environ)
            payload = json.loads(body or b"{}")
            return _json(start_response, 200, route(payload))
        except (ControlError, ValueError, TypeError, KeyError) as error:
            return _json(start_response, 400, {"error": f"{type(error).__name__}: {error}"})


def detect_action(environ: dict[str, Any]) -> tuple[str | None, str]:
    """Return (action, protocol) of an AWS request; protocol is "json", "query" or "ec2"."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1], "json"
    match = _SERVICE_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
    protocol = "ec2" if match and match.group(1) == "ec2" else "query"
    action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if action:
        return action[0], protocol
    if environ.get("REQUEST_METHOD") == "POST" and "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
        body = _read_body(environ)
        action = parse_qs(body.decode("utf-8", errors="replace")).get("Action")
        if action:
            return action[0], protocol
    return None, protocol


def _drop_connection(environ: dict[str, Any]) -> None:
    """Close the client's TCP connection without an answer, as a network or load balancer may."""
    connection: socket.socket = environ["werkzeug.socket"]
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # the client is gone already: it is dropped either way
    connection.close()
    # werkzeug takes a ConnectionError from the app for a client that went away: it logs nothing,
    # sends nothing, and the request thread ends normally.
    raise ConnectionAbortedError("answer dropped by the SSM emulator (injected)")


def _read_body(environ: dict[str, Any]) -> bytes:
    """Read the request body and put it back, so moto can read it again."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _api_error(start_response: Callable[..., Any], protocol: str, status: int) -> Iterable[bytes]:
    json_type, query_code, ec2_code, message = _ERRORS[status]
    request_id = str(uuid.uuid4())
    if protocol == "json":
        body = json.dumps({"__type": json_type, "message": message}).encode()
        content_type = "application/x-amz-json-1.1"
    elif protocol == "ec2":
        body = (
            f"<Response><Errors><Error><Code>{ec2_code}</Code><Message>{message}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        ).encode()
        content_type = "text/xml"
    else:
        fault = "Sender" if status == 400 else "Receiver"
        body = (
            f"<ErrorResponse><Error><Type>{fault}</Type><Code>{query_code}</Code><Message>{message}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        content_type = "text/xml"
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("x-amzn-RequestId", request_id),
        ("x-amzn-ErrorType", json_type),
    ]
    start_response(f"{status} {_REASONS[status]}", headers)
    return [body]


def _json(start_response: Callable[..., Any], status: int, payload: Any) -> Iterable[bytes]:
    body = json.dumps(payload, default=str).encode()
    start_response(
        f"{status} {_REASONS[status]}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]
