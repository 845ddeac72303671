"""The control API's routes: JSON in, JSON out, under `/_emulator/` on the AWS port.

| Method | Path                           | Body                                          |
|--------|--------------------------------|-----------------------------------------------|
| GET    | /_emulator/health              |                                               |
| GET    | /_emulator/info                |                                               |
| GET    | /_emulator/counters            |                                               |
| GET    | /_emulator/faults              |                                               |
| GET    | /_emulator/processes           |                                               |
| GET    | /_emulator/executions          |                                               |
| GET    | /_emulator/execution-log       |                                               |
| POST   | /_emulator/reset               |                                               |
| POST   | /_emulator/throttle            | {"action", "count"?, "rate"?}                 |
| POST   | /_emulator/server-error        | {"action", "count"?, "status"?}               |
| POST   | /_emulator/lost-answer         | {"action", "count"?, "mode"?} ("500", "drop") |
| POST   | /_emulator/require-tag         | {"key", "value"} (null key clears)            |
| POST   | /_emulator/untag               | {"instance_id", "key"}                        |
| POST   | /_emulator/offline             | {"instance_ids", "offline"?, "for_seconds"?}  |
| POST   | /_emulator/terminate           | {"instance_id"}                               |
| POST   | /_emulator/force-exit          | {"instance_id", "code"} (null clears)         |
| POST   | /_emulator/extra-duration      | {"instance_id", "seconds"}                    |
| POST   | /_emulator/consistency-delay   | {"seconds", "actions"?}                       |
| POST   | /_emulator/catch-up            |                                               |
| POST   | /_emulator/resolve-delay       | {"seconds", "count"?} (0 clears)              |
| POST   | /_emulator/odd-status          | {"instance_id", "status", "reads"?} (null st.)|
| POST   | /_emulator/empty-plugins       | {"instance_id", "empty"?}                     |
| POST   | /_emulator/time-scale          | {"factor"}                                    |
| POST   | /_emulator/instances           | {"count", "tags"?, "online"?}                 |
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ssm_emulator.middleware import ControlError, Route

if TYPE_CHECKING:
    from ssm_emulator.server import EmulatorServer

Body = dict[str, Any]


class ControlRoutes:
    """The control API handlers of one server."""

    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        self.faults = server.faults
        self.registry = server.registry
        # Instances set offline `for_seconds` come back by themselves; a reset cancels what is pending.
        self._comebacks: list[threading.Timer] = []

    def table(self) -> dict[tuple[str, str], Route]:
        """Map (method, path below /_emulator/) to a handler."""
        return {
            ("GET", "health"): lambda _: {"status": "ok"},
            ("GET", "info"): lambda _: self.server.info(),
            ("GET", "counters"): lambda _: self.faults.counters(),
            ("GET", "faults"): lambda _: {
                **self.faults.snapshot(),
                "offline": self.server.offline_instances(),
                "terminated": self.registry.terminated(),
            },
            ("GET", "processes"): lambda _: {"live_process_groups": self.server.runner.live_groups()},
            ("GET", "executions"): lambda _: self.faults.executions(),
            ("GET", "execution-log"): lambda _: {
                "executions": [e.as_dict() for e in self.faults.execution_log.entries()]
            },
            ("POST", "reset"): self.reset,
            ("POST", "throttle"): self.throttle,
            ("POST", "server-error"): self.server_error,
            ("POST", "lost-answer"): self.lost_answer,
            ("POST", "require-tag"): self.require_tag,
            ("POST", "untag"): self.untag,
            ("POST", "offline"): self.offline,
            ("POST", "terminate"): self.terminate,
            ("POST", "force-exit"): self.force_exit,
            ("POST", "extra-duration"): self.extra_duration,
            ("POST", "consistency-delay"): self.consistency_delay,
            ("POST", "catch-up"): lambda _: {"caught_up": self.server.service.catch_up()},
            ("POST", "resolve-delay"): self.resolve_delay,
            ("POST", "odd-status"): self.odd_status,
            ("POST", "empty-plugins"): self.empty_plugins,
            ("POST", "time-scale"): self.time_scale,
            ("POST", "instances"): self.instances,
        }

    def reset(self, _: Body) -> Body:
        for timer in self._comebacks:
            timer.cancel()
        self._comebacks.clear()
        self.faults.reset()
        self.registry.all_online()
        self.registry.restore_tags()
        self.registry.restore_terminated()
        self.server.wake()
        return {"reset": True}

    def throttle(self, body: Body) -> Body:
        count, rate = body.get("count"), body.get("rate")
        self.faults.throttle(
            str(body["action"]),
            count=None if count is None else int(count),
            rate=None if rate is None else float(rate),
        )
        return {"throttle": body["action"]}

    def server_error(self, body: Body) -> Body:
        action = str(body["action"])
        self.faults.server_error(action, count=int(body.get("count", 1)), status=int(body.get("status", 500)))
        return {"server_error": action}

    def lost_answer(self, body: Body) -> Body:
        action, mode = str(body["action"]), str(body.get("mode", "500"))
        self.faults.lost_answer(action, count=int(body.get("count", 1)), mode=mode)
        return {"lost_answer": action, "mode": mode}

    def require_tag(self, body: Body) -> Body:
        key, value = body.get("key"), body.get("value")
        self.faults.require_tag(None if key is None else str(key), None if value is None else str(value))
        return {"require_tag": self.faults.snapshot()["require_tag"]}

    def untag(self, body: Body) -> Body:
        instance_id, key = str(body["instance_id"]), str(body["key"])
        if instance_id not in self.registry.ids():
            raise ControlError(f"not an emulator instance: {instance_id}")
        return {"instance_id": instance_id, "key": key, "removed": self.registry.untag(instance_id, key)}

    def offline(self, body: Body) -> Body:
        ids = [str(i) for i in body["instance_ids"]]
        offline = bool(body.get("offline", True))
        unknown = self.registry.set_online(ids, not offline)
        if unknown:
            raise ControlError(f"not emulator instances: {', '.join(unknown)}")
        self.server.wake()
        if offline and body.get("for_seconds") is not None:
            self._come_back_after(ids, float(body["for_seconds"]))
        return {"instance_ids": ids, "offline": offline}

    def _come_back_after(self, ids: list[str], seconds: float) -> None:
        """Bring instances back `Online` after `seconds`, as a host that finished rebooting."""

        def back() -> None:
            self.registry.set_online(ids, True)
            self.server.wake()

        timer = threading.Timer(max(0.0, seconds), back)
        timer.daemon = True
        self._comebacks.append(timer)
        timer.start()

    def terminate(self, body: Body) -> Body:
        instance_id = str(body["instance_id"])
        if instance_id not in self.registry.ids():
            raise ControlError(f"not an emulator instance: {instance_id}")
        return {"instance_id": instance_id, "terminated": self.registry.terminate(instance_id)}

    def force_exit(self, body: Body) -> Body:
        code = body.get("code")
        self.faults.force_exit(str(body["instance_id"]), None if code is None else int(code))
        return {"instance_id": body["instance_id"], "code": code}

    def extra_duration(self, body: Body) -> Body:
        self.faults.extra_duration(str(body["instance_id"]), float(body["seconds"]))
        return {"instance_id": body["instance_id"], "seconds": float(body["seconds"])}

    def consistency_delay(self, body: Body) -> Body:
        actions = body.get("actions")
        if actions is not None and not isinstance(actions, list):
            raise ControlError(f"actions must be a list of action names, not {actions!r}")
        self.faults.set_consistency_delay(float(body["seconds"]), actions)  # a ValueError answers 400
        return {"seconds": self.faults.consistency_delay, "actions": list(self.faults.lagging_reads)}

    def resolve_delay(self, body: Body) -> Body:
        count = body.get("count")
        self.faults.set_resolve_delay(float(body["seconds"]), None if count is None else int(count))
        return {"resolve_delay": self.faults.snapshot()["resolve_delay"]}

    def odd_status(self, body: Body) -> Body:
        instance_id, status, reads = self._instance(body), body.get("status"), body.get("reads")
        self.faults.set_odd_status(
            instance_id, None if status is None else str(status), None if reads is None else int(reads)
        )
        return {"instance_id": instance_id, "status": status, "reads": reads}

    def empty_plugins(self, body: Body) -> Body:
        instance_id, empty = self._instance(body), bool(body.get("empty", True))
        self.faults.set_empty_plugins(instance_id, empty)
        return {"instance_id": instance_id, "empty": empty}

    def _instance(self, body: Body) -> str:
        instance_id = str(body["instance_id"])
        if instance_id not in self.registry.ids():
            raise ControlError(f"not an emulator instance: {instance_id}")
        return instance_id

    def time_scale(self, body: Body) -> Body:
        factor = float(body["factor"])
        if factor <= 0:
            raise ControlError("factor must be positive")
        self.faults.time_scale = factor
        return {"factor": factor}

    def instances(self, body: Body) -> Body:
        tags = body.get("tags")
        ids = self.server.add_instances(int(body["count"]), tags=tags, online=bool(body.get("online", True)))
        self.server.wake()
        return {"instance_ids": ids}


def build_routes(server: EmulatorServer) -> dict[tuple[str, str], Route]:
    """Map (method, path below /_emulator/) to the handlers of one server."""
    return ControlRoutes(server).table()
