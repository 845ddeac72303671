"""The SSM documents whose parameters the package builds, and how each one quotes script arguments.

Pure Python, no Airflow import. Script arguments reach a host as text that its shell parses, so they
are accepted only for a document whose quoting is implemented and tested here:

- ``AWS-RunShellScript`` (``/bin/sh`` on Linux and macOS): each argument in POSIX single quotes
  (``validation.quoted_command``, ``shlex.quote``);
- ``AWS-RunPowerShellScript`` (Windows: the agent writes the lines to a ``.ps1`` file and runs it
  with ``powershell -File``): each argument in a PowerShell single-quoted (verbatim) string, where
  ``$`` and the backtick are plain characters and every quote character that ends such a string,
  ``'`` and U+2018 to U+201B, is doubled; then the script's exit code is made the command's own
  (PowerShell reports only what ``exit N`` gives).

Any other document given ``commands``, ``script_arguments`` or ``working_directory`` is refused, and
an argument containing ``{{`` is refused for every document (``validation.script_arguments``: SSM
resolves ``{{ssm:name}}`` from Parameter Store inside parameter values). Every refusal is an
``InvalidParameterError`` naming the field and the value, raised before anything is sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ssm_fleet import validation

#: PowerShell ends a single-quoted string at any of these (its tokenizer's single-quote characters).
POWERSHELL_SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
_POWERSHELL_QUOTE = re.compile(f"([{POWERSHELL_SINGLE_QUOTES}])")
#: After the script line: a failed command without an exit code of its own exits 1, else its code.
POWERSHELL_EXIT_LINES = (
    "if (-not $?) { if ($LASTEXITCODE) { exit $LASTEXITCODE } else { exit 1 } }",
    "exit $LASTEXITCODE",
)
#: Before it: a code left by an earlier line must not be taken for the script's.
POWERSHELL_RESET_LINE = "$global:LASTEXITCODE = 0"


def powershell_quote(argument: str) -> str:
    """One argument for PowerShell: a verbatim single-quoted string, its quote characters doubled."""
    return "'" + _POWERSHELL_QUOTE.sub(r"\1\1", argument) + "'"


def _posix_lines(lines: list[str], arguments: list[str]) -> list[str]:
    return [*lines[:-1], validation.quoted_command(lines[-1], arguments)] if arguments else lines


def _powershell_lines(lines: list[str], arguments: list[str]) -> list[str]:
    last = " ".join([lines[-1], *map(powershell_quote, arguments)])
    return [*lines[:-1], POWERSHELL_RESET_LINE, last, *POWERSHELL_EXIT_LINES]


@dataclass(frozen=True)
class ShellDocument:
    """A command document the package knows: how its shell gets the lines and the quoted arguments.

    :param name: the AWS-owned document.
    :param command_lines: the lines and the script's arguments -> its ``commands`` parameter, each
        argument quoted onto the last line (the script).
    """

    name: str
    command_lines: Callable[[list[str], list[str]], list[str]]


KNOWN_DOCUMENTS: Mapping[str, ShellDocument] = {
    "AWS-RunShellScript": ShellDocument("AWS-RunShellScript", _posix_lines),
    "AWS-RunPowerShellScript": ShellDocument("AWS-RunPowerShellScript", _powershell_lines),
}


def _refuse_unknown(document_name: str, given: Mapping[str, Any]) -> None:
    for field, value in given.items():
        if value not in (None, "", [], ()):
            raise validation.InvalidParameterError(
                field,
                value,
                f"given for the document {document_name!r}, whose quoting this package does not implement; "
                f"known documents: {', '.join(KNOWN_DOCUMENTS)} (other documents: pass their own "
                "parameters, without commands)",
            )


def document_parameters(
    document_name: str,
    *,
    commands: Any = None,
    script_arguments: Any = None,
    parameters: Mapping[str, Any] | None = None,
    execution_timeout_seconds: Any = 3600,
    working_directory: Any = None,
) -> dict[str, list[str]]:
    """The SendCommand ``Parameters`` of ``document_name``, every value checked; nothing is sent here.

    :param document_name: the SSM document.
    :param commands: the lines to run (a known document only); the arguments go onto the last one.
    :param script_arguments: the script's arguments, each quoted for the document's shell (default: none).
    :param parameters: other parameters, passed as they are; for an unknown document, its only ones
        (a ``commands`` key among them is refused too) (default: none).
    :param execution_timeout_seconds: ``executionTimeout`` of a known document, 1-172800 (default: 3600).
    :param working_directory: ``workingDirectory`` of a known document (default: the agent's).
    """
    params = {k: v if isinstance(v, list) else [str(v)] for k, v in (parameters or {}).items()}
    document = KNOWN_DOCUMENTS.get(document_name)
    if document is None:
        _refuse_unknown(
            document_name,
            {
                "commands": validation.from_template(commands) or params.get("commands"),
                "script_arguments": validation.from_template(script_arguments),
                "working_directory": working_directory,
            },
        )
        return params
    lines = validation.commands(validation.from_template(commands))
    arguments = validation.script_arguments(validation.from_template(script_arguments))
    params["commands"] = document.command_lines(lines, arguments)
    timeout = validation.integer_in_range(
        "execution_timeout_seconds", execution_timeout_seconds, *validation.EXECUTION_TIMEOUT_RANGE
    )
    params["executionTimeout"] = [str(timeout)]
    directory = validation.working_directory(working_directory)
    if directory:
        params["workingDirectory"] = [directory]
    return params
