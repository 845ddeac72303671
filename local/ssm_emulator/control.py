"""`EmulatorControl`: a small HTTP client of the emulator's control API (standard library only)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from typing import Any

from ssm_emulator.execution_log import Execution, find_overlaps

__all__ = ["EmulatorControl", "EmulatorControlError", "Execution", "find_overlaps"]


class EmulatorControlError(RuntimeError):
    """The control API refused a request (bad arguments, unknown instance, ...)."""


class EmulatorControl:
    """Set faults, read counters and add instances on a running emulator.

    :param endpoint_url: the emulator's endpoint, e.g. "http://127.0.0.1:5000".
    :param timeout: seconds to wait for each control call. (default: 30)
    """

    def __init__(self, endpoint_url: str, timeout: float = 30.0) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        self.timeout = timeout
        # The emulator is local: never send control calls through an HTTP proxy from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __repr__(self) -> str:
        return f"EmulatorControl({self.endpoint_url!r})"

    # -- faults ------------------------------------------------------------------------------
    def throttle(self, action: str, count: int | None = None, rate: float | None = None) -> None:
        """Answer `ThrottlingException` (HTTP 400) to the next `count` calls of `action`, or a `rate` of them.

        `action` is the API name ("ListCommandInvocations"), or "*" for every action. `rate` is
        deterministic: 0.25 throttles every 4th call. With both, `count` caps the throttled calls.
        """
        self._post("throttle", {"action": action, "count": count, "rate": rate})

    def server_error(self, action: str, count: int = 1, status: int = 500) -> None:
        """Answer HTTP 500 `InternalServerError` (or 503 `ServiceUnavailable`) to the next `count` calls."""
        self._post("server-error", {"action": action, "count": count, "status": status})

    def lost_answer(self, action: str, count: int = 1, mode: str = "500") -> None:
        """Let the next `count` calls of `action` take effect, then lose their answer.

        `mode` "500" answers HTTP 500 `InternalServerError` instead of moto's answer; "drop" closes
        the connection without an answer (botocore raises `ConnectionClosedError`). Either way the
        call happened: a SendCommand created its command and its scripts run.
        """
        self._post("lost-answer", {"action": action, "count": count, "mode": mode})

    def require_tag(self, key: str | None, value: str | None = None) -> None:
        """Refuse SendCommand to any instance without tag `key`=`value`, as a least-privilege role does.

        The refusal is HTTP 400 `AccessDeniedException` naming the first such instance, before
        anything is created. `None` clears it.
        """
        self._post("require-tag", {"key": key, "value": value})

    def untag(self, instance_id: str, key: str) -> bool:
        """Remove tag `key` from an instance in EC2 (reset puts it back); return whether it had it."""
        return bool(self._post("untag", {"instance_id": instance_id, "key": key})["removed"])

    def set_offline(
        self, instance_ids: Iterable[str], offline: bool = True, for_seconds: float | None = None
    ) -> None:
        """Set instances' PingStatus to ConnectionLost (commands stay Pending) or back to Online.

        With `for_seconds`, offline instances come back `Online` by themselves after that long (a host
        that was rebooting); `reset()` cancels a come-back not yet due.
        """
        body: dict[str, object] = {"instance_ids": list(instance_ids), "offline": offline}
        if for_seconds is not None:
            body["for_seconds"] = for_seconds
        self._post("offline", body)

    def terminate(self, instance_id: str) -> bool:
        """Take an instance out of the fleet, as an EC2 termination does; return whether it was in it.

        From then on SendCommand naming it answers `InvalidInstanceId`, DescribeInstanceInformation
        and tag targets no longer list it, and its Pending invocations never start (they end
        `Delivery Timed Out`); a script already running ends as it would. `reset()` brings it back.
        """
        return bool(self._post("terminate", {"instance_id": instance_id})["terminated"])

    def force_exit(self, instance_id: str, code: int | None) -> None:
        """Make the scripts on `instance_id` end with exit code `code` whatever they do (None clears)."""
        self._post("force-exit", {"instance_id": instance_id, "code": code})

    def extra_duration(self, instance_id: str, seconds: float) -> None:
        """Make the scripts on `instance_id` sleep `seconds` before their commands (0 clears)."""
        self._post("extra-duration", {"instance_id": instance_id, "seconds": seconds})

    def consistency_delay(self, seconds: float, actions: Sequence[str] | None = None) -> None:
        """Hide each new command from SSM's reads for `seconds` after SendCommand (0 clears).

        Meanwhile ListCommands does not list it (by id: an empty list), ListCommandInvocations lists
        none of its invocations and GetCommandInvocation raises `InvocationDoesNotExist`; its scripts
        run all the same. `actions` limits the lag to some of those three reads (default: all).
        """
        self._post(
            "consistency-delay", {"seconds": seconds, "actions": None if actions is None else list(actions)}
        )

    def catch_up(self) -> int:
        """End the consistency delay of every command sent so far, now; return how many were still hidden.

        SSM's reads catch up with its writes at a moment the test chooses, not after fixed seconds.
        A `consistency_delay` still set keeps hiding the commands sent after this call.
        """
        return int(self._post("catch-up", {})["caught_up"])

    def resolve_delay(self, seconds: float, count: int | None = None) -> None:
        """Leave new tag commands unresolved for `seconds` after SendCommand (0 clears).

        Meanwhile the command is `Pending` with `TargetCount` 0, ListCommandInvocations lists none of
        its invocations, GetCommandInvocation raises `InvocationDoesNotExist` and nothing starts;
        then its targets (as they were at SendCommand) get their invocations and run. A CancelCommand
        meanwhile ends it `Cancelled` with no invocation: no host ever runs it. `count` limits the
        delay to the next `count` tag commands (default: every one while set). Commands by
        `InstanceIds` are resolved at once, as AWS knows their targets.
        """
        self._post("resolve-delay", {"seconds": seconds, "count": count})

    def odd_status(self, instance_id: str, status: str | None = "Paused", reads: int | None = None) -> None:
        """Answer `instance_id`'s invocations with `status`, one SSM does not document, for `reads` reads.

        Each ListCommandInvocations item and GetCommandInvocation answer for the instance counts as
        one read and shows `status` as its `Status`, `StatusDetails` and plugin statuses, whatever
        the invocation really does underneath (its script runs and ends as usual). `reads=None`
        keeps it until cleared; `status=None` clears it. Command statuses are not changed.
        """
        self._post("odd-status", {"instance_id": instance_id, "status": status, "reads": reads})

    def empty_plugins(self, instance_id: str, empty: bool = True) -> None:
        """List `instance_id`'s invocations with `CommandPlugins: []` even with `Details` (False clears).

        The invocation's own `Status`, `StatusDetails` and output URLs stay; the exit code, the
        output and the start and end times (which only the plugins carry) are missing.
        """
        self._post("empty-plugins", {"instance_id": instance_id, "empty": empty})

    def time_scale(self, factor: float) -> None:
        """Scale TimeoutSeconds (the delivery timeout) of new commands, e.g. 0.05 makes 30 s last 1.5 s."""
        self._post("time-scale", {"factor": factor})

    def reset(self) -> None:
        """Clear every fault, counter and execution count, bring every instance back online and retag it."""
        self._post("reset", {})

    # -- queries and fleet -----------------------------------------------------------------------
    def counters(self) -> dict[str, dict[str, int]]:
        """Return calls per action: `{"SendCommand": {"calls", "accepted", "throttled", ...}}`.

        The fields are `calls`, `accepted`, `throttled`, `server_errors` and `lost_answers` (calls
        accepted whose answer was then lost; they are counted in `accepted` too).
        """
        return dict(self._get("counters"))

    def executions(self) -> dict[str, int]:
        """Return how many script processes each instance started since the last reset."""
        return {instance_id: int(n) for instance_id, n in self._get("executions").items()}

    def execution_log(self) -> list[Execution]:
        """Return every script process started since the last reset, in start order.

        Each `Execution` has the instance, the command, the pid, its start and end (monotonic
        seconds of the emulator's clock in `started` / `ended`, wall-clock UTC ISO 8601 in
        `started_at` / `ended_at`; no end while it runs) and its exit code (128 + signal if killed).
        """
        return [Execution.from_dict(entry) for entry in self._get("execution-log")["executions"]]

    def overlapping_executions(self) -> list[tuple[Execution, Execution]]:
        """Return each pair of executions on one host that ran at the same time ("ran twice at once")."""
        return find_overlaps(self.execution_log())

    def faults(self) -> dict[str, Any]:
        """Return the active faults, the offline instances and the terminated ones."""
        return dict(self._get("faults"))

    def info(self) -> dict[str, Any]:
        """Return endpoint_url, region, account_id, instance_ids, topic_arn, queue_url, state_dir, pid."""
        return dict(self._get("info"))

    def health(self) -> bool:
        """Tell whether the emulator answers."""
        try:
            return self._get("health").get("status") == "ok"
        except (OSError, EmulatorControlError):
            return False

    def live_process_groups(self) -> list[int]:
        """Return the process groups started by the emulator that still have a live process."""
        return list(self._get("processes")["live_process_groups"])

    def add_instances(self, n: int, tags: dict[str, str] | None = None, online: bool = True) -> list[str]:
        """Launch `n` more SSM-managed EC2 instances (default tags: the emulator's); return their ids."""
        return list(self._post("instances", {"count": n, "tags": tags, "online": online})["instance_ids"])

    # -- transport ---------------------------------------------------------------------------------
    def _get(self, name: str) -> Any:
        return self._call("GET", name, None)

    def _post(self, name: str, payload: dict[str, Any]) -> Any:
        return self._call("POST", name, payload)

    def _call(self, method: str, name: str, payload: dict[str, Any] | None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(  # noqa: S310 - the URL is the emulator's own http endpoint
            f"{self.endpoint_url}/_emulator/{name}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", errors="replace")
            raise EmulatorControlError(
                f"{method} /_emulator/{name} failed ({error.code}): {detail}"
            ) from error
