"""Documents are known or refused: the exact text each shell gets from hostile arguments.

POSIX lines also go through ``/bin/sh`` here and the script's argv is compared with the arguments.
No PowerShell interpreter runs on this machine: PowerShell lines are checked against a model of its
tokenizer's rule for single-quoted strings (REFERENCE section 10), not against PowerShell itself.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

from ssm_fleet.documents import (
    KNOWN_DOCUMENTS,
    POWERSHELL_EXIT_LINES,
    POWERSHELL_RESET_LINE,
    POWERSHELL_SINGLE_QUOTES,
    document_parameters,
)
from ssm_fleet.validation import InvalidParameterError

REMOVE_ITEM = "a\u2019; Remove-Item C:\\data -Recurse; \u2019"  # the PowerShell escape

# (argument, exact text for /bin/sh)
POSIX_TABLE = [
    ("plain", "plain"),
    ("", "''"),
    ("a'; rm -rf / #", "'a'\"'\"'; rm -rf / #'"),
    ("$(id)", "'$(id)'"),
    ("`id`", "'`id`'"),
    ("${HOME}", "'${HOME}'"),
    ("*", "'*'"),
    ("a b", "'a b'"),
    ("\\", "'\\'"),
    ('"; id; "', "'\"; id; \"'"),
    ("--keywords=contract,renewal", "--keywords=contract,renewal"),  # shlex's safe set: left bare
    (REMOVE_ITEM, "'a\u2019; Remove-Item C:\\data -Recurse; \u2019'"),
    ("'", "''\"'\"''"),
    ("\u2028x", "'\u2028x'"),
]

# (argument, exact text for PowerShell)
POWERSHELL_TABLE = [
    ("plain", "'plain'"),
    ("", "''"),
    ("a'b", "'a''b'"),
    (REMOVE_ITEM, "'a\u2019\u2019; Remove-Item C:\\data -Recurse; \u2019\u2019'"),
    ("\u2018x\u2019", "'\u2018\u2018x\u2019\u2019'"),
    ("\u201a\u201b", "'\u201a\u201a\u201b\u201b'"),
    ("'; Remove-Item C:\\data; '", "'''; Remove-Item C:\\data; '''"),
    ("$env:PATH", "'$env:PATH'"),
    ("$(Remove-Item C:\\data)", "'$(Remove-Item C:\\data)'"),
    ("`$x`n", "'`$x`n'"),
    ('"; calc; "', "'\"; calc; \"'"),
    ("\u201cdouble\u201d", "'\u201cdouble\u201d'"),
    ("--%", "'--%'"),
    ("a;b|c&d", "'a;b|c&d'"),
]


def powershell_single_quoted(text: str) -> tuple[str, str]:
    """Read one single-quoted string at the start of ``text`` as PowerShell's tokenizer does.

    Any of ' and U+2018-U+201B opens and closes it; two of them in a row stand for one quote
    character (the second one). Returns (its value, what follows it).
    """
    assert text[0] in POWERSHELL_SINGLE_QUOTES
    value, index = [], 1
    while index < len(text):
        char = text[index]
        if char in POWERSHELL_SINGLE_QUOTES:
            if index + 1 < len(text) and text[index + 1] in POWERSHELL_SINGLE_QUOTES:
                value.append(text[index + 1])
                index += 2
                continue
            return "".join(value), text[index + 1 :]
        value.append(char)
        index += 1
    raise AssertionError(f"unterminated string: {text!r}")


def script_line(document, argument):
    """The line the script runs on, as SendCommand would carry it."""
    (line,) = [
        line
        for line in document_parameters(document, commands=["run"], script_arguments=[argument])["commands"]
        if line.startswith("run ")
    ]
    return line


class TestPosixQuote:
    @pytest.mark.parametrize(("argument", "text"), POSIX_TABLE)
    def test_hostile_argument_gives_exactly(self, argument, text):
        assert script_line("AWS-RunShellScript", argument) == f"run {text}"

    def test_sh_passes_every_argument_intact(self, tmp_path):
        """The rendered line through /bin/sh: the script sees each argument as one argv entry."""
        arguments = [argument for argument, _ in POSIX_TABLE]
        script = f"{shlex.quote(sys.executable)} -c 'import json, sys; print(json.dumps(sys.argv[1:]))'"
        params = document_parameters("AWS-RunShellScript", commands=[script], script_arguments=arguments)
        (line,) = params["commands"]
        done = subprocess.run(
            ["/bin/sh", "-c", line], capture_output=True, text=True, check=True, cwd=tmp_path
        )
        assert json.loads(done.stdout) == arguments
        assert list(tmp_path.iterdir()) == [], "nothing ran but the script"


class TestPowershellQuote:
    @pytest.mark.parametrize(("argument", "text"), POWERSHELL_TABLE)
    def test_hostile_argument_gives_exactly(self, argument, text):
        assert script_line("AWS-RunPowerShellScript", argument) == f"run {text}"

    @pytest.mark.parametrize(("argument", "text"), POWERSHELL_TABLE)
    def test_each_text_is_one_verbatim_string_holding_the_argument(self, argument, text):
        value, rest = powershell_single_quoted(text)
        assert (value, rest) == (argument, ""), "the string must end exactly where the text ends"

    def test_the_unquoted_remove_item_would_escape_a_plain_doubling_of_apostrophes(self):
        """Why U+2018-U+201B are doubled: doubling only ' leaves the issue's command outside the string."""
        naive = "'" + REMOVE_ITEM.replace("'", "''") + "'"
        value, rest = powershell_single_quoted(naive)
        assert rest.startswith("; Remove-Item"), (value, rest)


class TestDocumentParameters:
    def test_shell_script_lines(self):
        assert document_parameters(
            "AWS-RunShellScript",
            commands=["cd /opt", "/opt/cots/bin/run_batch.sh"],
            script_arguments=["--day", "a b"],
            execution_timeout_seconds="7200",
            working_directory="/var/lib/cots",
        ) == {
            "commands": ["cd /opt", "/opt/cots/bin/run_batch.sh --day 'a b'"],
            "executionTimeout": ["7200"],
            "workingDirectory": ["/var/lib/cots"],
        }

    def test_powershell_lines_quote_the_arguments_and_exit_with_the_scripts_code(self):
        params = document_parameters(
            "AWS-RunPowerShellScript",
            commands=["Set-Location C:\\cots", "C:\\cots\\run_batch.ps1"],
            script_arguments=[REMOVE_ITEM, "$x"],
            execution_timeout_seconds=5400,
        )
        assert params == {
            "commands": [
                "Set-Location C:\\cots",
                "$global:LASTEXITCODE = 0",
                "C:\\cots\\run_batch.ps1 'a\u2019\u2019; Remove-Item C:\\data -Recurse; \u2019\u2019' '$x'",
                "if (-not $?) { if ($LASTEXITCODE) { exit $LASTEXITCODE } else { exit 1 } }",
                "exit $LASTEXITCODE",
            ],
            "executionTimeout": ["5400"],
        }
        assert params["commands"][1] == POWERSHELL_RESET_LINE
        assert tuple(params["commands"][-2:]) == POWERSHELL_EXIT_LINES

    @pytest.mark.parametrize("document", sorted(KNOWN_DOCUMENTS))
    def test_the_execution_timeout_is_checked_for_every_known_document(self, document):
        with pytest.raises(InvalidParameterError, match="execution_timeout_seconds=0"):
            document_parameters(document, commands=["run"], execution_timeout_seconds=0)

    @pytest.mark.parametrize(
        ("given", "field"),
        [
            ({"commands": ["run"]}, "commands"),
            ({"script_arguments": ["x"]}, "script_arguments"),
            ({"parameters": {"commands": ["run"]}}, "commands"),
            ({"working_directory": "/tmp"}, "working_directory"),
            ({"commands": '["run"]'}, "commands"),  # rendered template text
        ],
    )
    def test_an_unknown_document_with_commands_or_arguments_is_refused_naming_it(self, given, field):
        with pytest.raises(InvalidParameterError, match=f"^{field}=.*'AWS-RunRemoteScript'.*known documents"):
            document_parameters("AWS-RunRemoteScript", **given)

    def test_an_unknown_document_keeps_its_own_parameters(self):
        given = {"name": "x", "action": "Install"}
        assert document_parameters("AWS-ConfigureAWSPackage", parameters=given) == {
            "name": ["x"],
            "action": ["Install"],
        }

    @pytest.mark.parametrize("document", sorted(KNOWN_DOCUMENTS))
    @pytest.mark.parametrize("argument", ["{{ssm:/prod/db/password}}", "x{{resolve:secretsmanager:s}}"])
    def test_a_parameter_reference_in_an_argument_is_refused(self, document, argument):
        with pytest.raises(InvalidParameterError, match=r"^script_arguments=.*'\{\{' is refused"):
            document_parameters(document, commands=["run"], script_arguments=[argument])
