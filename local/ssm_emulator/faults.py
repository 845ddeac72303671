"""Fault injection knobs and per-action call counters of one emulator.

Every knob is set through the control API (see `control.py`) and cleared by `reset()`.
All methods are thread-safe: the WSGI server calls them from its request threads and the
scheduler reads them from its own thread.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field

from ssm_emulator.execution_log import ExecutionLog

#: `throttle` / `server_error` / `lost_answer` rules keyed by this name apply to every action.
ANY_ACTION = "*"
#: How a lost answer is lost: an HTTP 500, or a connection closed without any answer.
LOST_ANSWER_MODES = ("500", "drop")
#: The reads that lag a new command under `consistency_delay` (all of them unless told otherwise).
LAGGING_READS = ("ListCommands", "ListCommandInvocations", "GetCommandInvocation")


@dataclass
class _Rule:
    """A countdown and/or a rate: fire for the next `remaining` calls, or for a fraction of them."""

    remaining: int | None = None
    rate: float | None = None
    status: int = 500
    mode: str = ""
    credit: float = 0.0

    def fire(self) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.rate is not None:
            # Deterministic: rate=0.25 fires on every 4th call, so tests need no seeds.
            self.credit += self.rate
            if self.credit < 1.0 - 1e-9:
                return False
            self.credit -= 1.0
        if self.remaining is not None:
            self.remaining -= 1
        return True


@dataclass
class _Counter:
    accepted: int = 0
    throttled: int = 0
    server_errors: int = 0
    # Part of `accepted`: these calls took effect, only their answer was lost.
    lost_answers: int = 0

    def as_dict(self) -> dict[str, int]:
        total = self.accepted + self.throttled + self.server_errors
        return {
            "calls": total,
            "accepted": self.accepted,
            "throttled": self.throttled,
            "server_errors": self.server_errors,
            "lost_answers": self.lost_answers,
        }


@dataclass
class _OddStatus:
    """Answer an instance's invocations with `status` for the next `reads` reads (None: until cleared)."""

    status: str
    reads: int | None = None


@dataclass
class FaultState:
    """The faults and counters of one emulator (the instance registry keeps `offline`)."""

    default_time_scale: float = 1.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _throttles: dict[str, _Rule] = field(default_factory=dict)
    _server_errors: dict[str, _Rule] = field(default_factory=dict)
    _lost_answers: dict[str, list[_Rule]] = field(default_factory=dict)
    _required_tag: tuple[str, str] | None = None
    _executions: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    execution_log: ExecutionLog = field(default_factory=ExecutionLog)
    _force_exit: dict[str, int] = field(default_factory=dict)
    _extra_duration: dict[str, float] = field(default_factory=dict)
    _counters: dict[str, _Counter] = field(default_factory=lambda: defaultdict(_Counter))
    consistency_delay: float = 0.0
    lagging_reads: tuple[str, ...] = LAGGING_READS
    time_scale: float = 1.0
    _resolve_delay: float = 0.0
    _resolve_count: int | None = None
    _odd_status: dict[str, _OddStatus] = field(default_factory=dict)
    _empty_plugins: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.time_scale = self.default_time_scale

    # -- knobs -------------------------------------------------------------------------
    def throttle(self, action: str, count: int | None = None, rate: float | None = None) -> None:
        """Answer ThrottlingException to the next `count` calls of `action`, or to a `rate` of them."""
        if count is None and rate is None:
            raise ValueError("throttle needs count or rate")
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        with self._lock:
            self._throttles[action] = _Rule(remaining=count, rate=rate)

    def server_error(self, action: str, count: int = 1, status: int = 500) -> None:
        """Answer HTTP `status` (500 or 503) to the next `count` calls of `action`."""
        if status not in (500, 503):
            raise ValueError("status must be 500 or 503")
        with self._lock:
            self._server_errors[action] = _Rule(remaining=count, status=status)

    def lost_answer(self, action: str, count: int = 1, mode: str = "500") -> None:
        """Let the next `count` calls of `action` take effect, then lose their answer (`mode`).

        Rules given for the same action queue up: "500 once, then drop once" is two calls.
        """
        if mode not in LOST_ANSWER_MODES:
            raise ValueError(f"mode must be one of {', '.join(LOST_ANSWER_MODES)}")
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._lost_answers.setdefault(action, []).append(_Rule(remaining=count, mode=mode))

    def require_tag(self, key: str | None, value: str | None = None) -> None:
        """Refuse SendCommand to instances without tag `key`=`value` (a None key clears it)."""
        if key is not None and value is None:
            raise ValueError("require_tag needs a value with its key")
        with self._lock:
            self._required_tag = None if key is None else (str(key), str(value))

    def force_exit(self, instance_id: str, code: int | None) -> None:
        """Make scripts on `instance_id` end with `code` (None clears it)."""
        with self._lock:
            if code is None:
                self._force_exit.pop(instance_id, None)
            else:
                self._force_exit[instance_id] = int(code)

    def extra_duration(self, instance_id: str, seconds: float) -> None:
        """Make scripts on `instance_id` sleep `seconds` before their commands (0 clears it)."""
        with self._lock:
            if seconds <= 0:
                self._extra_duration.pop(instance_id, None)
            else:
                self._extra_duration[instance_id] = float(seconds)

    def set_consistency_delay(self, seconds: float, actions: list[str] | None = None) -> None:
        """Hide each new command from the reads `actions` (default: all of LAGGING_READS) for `seconds`."""
        chosen = LAGGING_READS if actions is None else tuple(dict.fromkeys(actions))
        unknown = [action for action in chosen if action not in LAGGING_READS]
        if unknown or not chosen:
            raise ValueError(
                f"consistency_delay actions must be among {', '.join(LAGGING_READS)}, not {unknown or chosen}"
            )
        with self._lock:
            self.consistency_delay = max(0.0, float(seconds))
            self.lagging_reads = chosen

    def set_resolve_delay(self, seconds: float, count: int | None = None) -> None:
        """Leave the next `count` tag commands (every one while set, if None) unresolved for `seconds`."""
        if seconds < 0:
            raise ValueError(f"resolve_delay seconds must be 0 or more, not {seconds}")
        if count is not None and count < 1:
            raise ValueError(f"resolve_delay count must be at least 1 (or None: every command), not {count}")
        with self._lock:
            self._resolve_delay = float(seconds)
            self._resolve_count = None if seconds == 0 else count

    def take_resolve_delay(self) -> float:
        """Seconds a new tag command stays unresolved (0: resolved at once); counts it against `count`."""
        with self._lock:
            delay = self._resolve_delay
            if delay and self._resolve_count is not None:
                self._resolve_count -= 1
                if self._resolve_count <= 0:
                    self._resolve_delay, self._resolve_count = 0.0, None
            return delay

    def set_odd_status(self, instance_id: str, status: str | None, reads: int | None = None) -> None:
        """Answer `instance_id`'s invocations with `status` for `reads` reads (None: until cleared)."""
        if reads is not None and reads < 1:
            raise ValueError(f"odd_status reads must be at least 1 (or None: until cleared), not {reads}")
        if status is not None and not status.strip():
            raise ValueError("odd_status needs a status text (None clears it)")
        with self._lock:
            if status is None:
                self._odd_status.pop(instance_id, None)
            else:
                self._odd_status[instance_id] = _OddStatus(status, reads)

    def read_status(self, instance_id: str) -> str | None:
        """The status one read shows for `instance_id`'s invocation instead of its own, if any (counted)."""
        with self._lock:
            rule = self._odd_status.get(instance_id)
            if rule is None:
                return None
            if rule.reads is not None:
                rule.reads -= 1
                if rule.reads <= 0:
                    del self._odd_status[instance_id]
            return rule.status

    def set_empty_plugins(self, instance_id: str, empty: bool = True) -> None:
        """Answer `instance_id`'s invocations with `CommandPlugins: []` (False clears it)."""
        with self._lock:
            if empty:
                self._empty_plugins.add(instance_id)
            else:
                self._empty_plugins.discard(instance_id)

    def plugins_empty(self, instance_id: str) -> bool:
        """Tell whether `instance_id`'s invocations are listed with no CommandPlugins."""
        with self._lock:
            return instance_id in self._empty_plugins

    def lags(self, action: str) -> bool:
        """Tell whether the read `action` is subject to the consistency delay."""
        return action in self.lagging_reads

    def reset(self) -> None:
        """Clear every fault and every counter."""
        with self._lock:
            self._throttles.clear()
            self._server_errors.clear()
            self._lost_answers.clear()
            self._required_tag = None
            self._executions.clear()
            self.execution_log.clear()
            self._force_exit.clear()
            self._extra_duration.clear()
            self._counters.clear()
            self.consistency_delay = 0.0
            self.lagging_reads = LAGGING_READS
            self.time_scale = self.default_time_scale
            self._resolve_delay, self._resolve_count = 0.0, None
            self._odd_status.clear()
            self._empty_plugins.clear()

    # -- queries used by the middleware and the scheduler --------------------------------
    def decide(self, action: str) -> tuple[str, int]:
        """Count one call of `action` and say how to answer it, with the HTTP status of the answer.

        The verdict is "accept", "throttle" or "error" (moto never sees the call), or "lose" or
        "drop" (moto acts on the call, then its answer is replaced by a 500 or by no answer at all).
        """
        with self._lock:
            counter = self._counters[action]
            rule = self._server_errors.get(action) or self._server_errors.get(ANY_ACTION)
            if rule is not None and rule.fire():
                counter.server_errors += 1
                return "error", rule.status
            rule = self._throttles.get(action) or self._throttles.get(ANY_ACTION)
            if rule is not None and rule.fire():
                counter.throttled += 1
                return "throttle", 400
            counter.accepted += 1
            queue = self._lost_answers.get(action) or self._lost_answers.get(ANY_ACTION) or []
            if queue and queue[0].fire():
                rule = queue[0]
                if rule.remaining == 0:
                    queue.pop(0)
                counter.lost_answers += 1
                return ("drop", 0) if rule.mode == "drop" else ("lose", 500)
            return "accept", 200

    def counters(self) -> dict[str, dict[str, int]]:
        """Return `{action: {"calls", "accepted", "throttled", "server_errors", "lost_answers"}}`."""
        with self._lock:
            return {action: counter.as_dict() for action, counter in sorted(self._counters.items())}

    def required_tag(self) -> tuple[str, str] | None:
        """Return the (key, value) SendCommand requires on every target instance, if any."""
        with self._lock:
            return self._required_tag

    def count_execution(self, instance_id: str, command_id: str, pid: int) -> None:
        """Record that a script process started on `instance_id` for `command_id`."""
        with self._lock:
            self._executions[instance_id] += 1
        self.execution_log.started(instance_id, command_id, pid)

    def executions(self) -> dict[str, int]:
        """Return how many script processes each instance started since the last reset."""
        with self._lock:
            return dict(sorted(self._executions.items()))

    def script_faults(self, instance_id: str) -> tuple[float, int | None]:
        """Return (extra seconds before the script, forced exit code or None) for an instance."""
        with self._lock:
            return self._extra_duration.get(instance_id, 0.0), self._force_exit.get(instance_id)

    def snapshot(self) -> dict[str, object]:
        """Describe the active faults (for the control API's GET /_emulator/faults)."""
        with self._lock:
            return {
                "throttle": {
                    a: {"remaining": r.remaining, "rate": r.rate} for a, r in self._throttles.items()
                },
                "server_error": {
                    a: {"remaining": r.remaining, "status": r.status} for a, r in self._server_errors.items()
                },
                "lost_answer": {
                    a: {"remaining": q[0].remaining, "mode": q[0].mode}
                    for a, q in self._lost_answers.items()
                    if q
                },
                "require_tag": None
                if self._required_tag is None
                else dict(zip(("key", "value"), self._required_tag, strict=True)),
                "force_exit": dict(self._force_exit),
                "extra_duration": dict(self._extra_duration),
                "consistency_delay": self.consistency_delay,
                "consistency_delay_actions": list(self.lagging_reads),
                "time_scale": self.time_scale,
                "resolve_delay": {"seconds": self._resolve_delay, "count": self._resolve_count},
                "odd_status": {
                    instance: {"status": rule.status, "reads": rule.reads}
                    for instance, rule in self._odd_status.items()
                },
                "empty_plugins": sorted(self._empty_plugins),
            }
