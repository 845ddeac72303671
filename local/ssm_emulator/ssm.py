"""The moto extension: Run Command actions on moto's SSM responses, answered by an emulator.

moto dispatches `X-Amz-Target: AmazonSSM.<Action>` to the method `<action>` (snake_case) of
`SimpleSystemManagerResponse`. `install()` sets six such methods (replacing moto's always-Success
SendCommand, ListCommands and GetCommandInvocation, adding the three moto lacks). It runs when an
emulator starts, never at import time, and is idempotent. Requests that do not come through an
emulator's middleware (moto's own server, `mock_aws` in-process) still get moto's behaviour.

Which emulator answers: the middleware of each server marks its request thread with its service
(`serving()`), so several emulators can live in one process with separate Run Command state. They
share moto's other state (EC2, SNS, SQS, S3), which is global to the process.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

from moto.core.responses import ActionResult
from moto.ssm.responses import SimpleSystemManagerResponse

from ssm_emulator.service import RunCommandService

ACTIONS = (
    "send_command",
    "list_commands",
    "list_command_invocations",
    "get_command_invocation",
    "cancel_command",
    "describe_instance_information",
)
_MARKER = "_ssm_emulator_installed"

_local = threading.local()


@contextlib.contextmanager
def serving(service: RunCommandService) -> Iterator[None]:
    """Route the SSM calls handled in this thread to `service`."""
    previous = getattr(_local, "service", None)
    _local.service = service
    try:
        yield
    finally:
        _local.service = previous


def current_service() -> RunCommandService | None:
    """Return the service bound to this request thread by an emulator's middleware, if any."""
    return getattr(_local, "service", None)


def _make_action(name: str, original: Any) -> Any:
    def action(self: SimpleSystemManagerResponse) -> Any:
        service = current_service()
        if service is None:
            # Not a request of an emulator (plain moto use, e.g. mock_aws): behave as moto does.
            if original is None:
                raise NotImplementedError(f"The {name} action has not been implemented")
            return original(self)
        params = json.loads(self.body or "{}") if isinstance(self.body, str | bytes) else {}
        return ActionResult(getattr(service, name)(self.current_account, self.region, params))

    action.__name__ = name
    action.__doc__ = f"Answer {name} from the SSM emulator."
    return action


def install() -> None:
    """Patch moto's SSM responses (once per process)."""
    if getattr(SimpleSystemManagerResponse, _MARKER, False):
        return
    for name in ACTIONS:
        original = getattr(SimpleSystemManagerResponse, name, None)
        setattr(SimpleSystemManagerResponse, name, _make_action(name, original))
    setattr(SimpleSystemManagerResponse, _MARKER, True)
