"""The execution role's policy, from its one source: the CloudFormation template next to this file.

``render()`` resolves the policy text of ``cots-ssm-batch.yaml`` with the template's parameter
defaults and placeholders (``REGION``, ``ACCOUNT``), which is what ``mwaa/execution-role-policy.json``
holds for those who create the role by hand. ``scope_violations()`` names every grant that is broader
than the package needs. Usage: ``python deploy/policy.py [--write | --check]``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent
TEMPLATE = DEPLOY / "cots-ssm-batch.yaml"
POLICY_FILE = DEPLOY.parent / "mwaa" / "execution-role-policy.json"
PLACEHOLDERS = {"AWS::Partition": "aws", "AWS::Region": "REGION", "AWS::AccountId": "ACCOUNT"}
TAG_CONDITION_KEYS = ("ssm:resourcetag/", "aws:resourcetag/")
# What SendCommand can target besides documents (service, resource): a grant matching either reaches hosts.
HOSTS = (("ec2", "instance/i-0123456789abcdef0"), ("ssm", "managed-instance/mi-0123456789abcdef0"))


# A SafeLoader of our own that reads CloudFormation's short forms (``!Sub``) as their long forms.
_CfnLoader: Any = type("_CfnLoader", (yaml.SafeLoader,), {})


def _intrinsic(loader: Any, suffix: str, node: Any) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    template: dict[str, Any] = yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 (a SafeLoader)
    return template


def render(template: dict[str, Any] | None = None, /, **values: str) -> dict[str, Any]:
    """The execution role's policy with parameter defaults, overridden by ``values``.

    Names a template parameter or pseudo parameter (``AWS::Region``); ``Region`` (the fleet's
    region) and ``AlertTopic`` (the topic's ARN) follow from the others unless given.
    """
    template = template or load_template()
    text, _ = template["Resources"]["ExecutionRolePolicy"]["Properties"]["PolicyDocument"]["Fn::Sub"]
    names = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}
    names.update(PLACEHOLDERS)
    names.update(values)
    names.setdefault("Region", names["FleetRegion"] or names["AWS::Region"])
    names.setdefault(
        "AlertTopic",
        f"arn:{names['AWS::Partition']}:sns:{names['AWS::Region']}:{names['AWS::AccountId']}:"
        f"{names['AlertTopicName']}",
    )

    def substitute(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            raise KeyError(f"the policy text uses ${{{match.group(1)}}}, which is no parameter")
        return names[match.group(1)]

    policy: dict[str, Any] = json.loads(re.sub(r"\$\{([^}!]+)\}", substitute, text))
    return policy


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _grants(statement: dict[str, Any], action: str) -> bool:
    if statement.get("Effect") != "Allow":
        return False
    if "NotAction" in statement:
        return not any(fnmatch.fnmatch(action.lower(), a.lower()) for a in _as_list(statement["NotAction"]))
    return any(fnmatch.fnmatch(action.lower(), a.lower()) for a in _as_list(statement.get("Action", [])))


def _reaches_hosts(resource: str) -> bool:
    """Whether an ARN pattern matches an EC2 or managed instance, whatever its region and account."""
    parts = resource.split(":", 5)
    if len(parts) < 6:  # "*", "arn:*": these match every ARN
        return any(fnmatch.fnmatchcase(f"arn:aws:{svc}:r:a:{res}", resource) for svc, res in HOSTS)
    return any(
        fnmatch.fnmatchcase(svc, parts[2]) and fnmatch.fnmatchcase(res, parts[5]) for svc, res in HOSTS
    )


def _tag_condition_keys(statement: dict[str, Any]) -> list[str]:
    keys = []
    for operator, condition in statement.get("Condition", {}).items():
        if operator.startswith("StringEquals") or operator.startswith("StringLike"):
            keys += [key for key in condition if key.lower().startswith(TAG_CONDITION_KEYS)]
    return keys


def scope_violations(policy: dict[str, Any]) -> list[str]:
    """Every grant broader than the package needs: SendCommand or Publish on ``*``, untagged hosts."""
    found = []
    for index, statement in enumerate(_as_list(policy.get("Statement", []))):
        where = f"statement {index} ({statement.get('Sid', 'no Sid')})"
        resources = [str(r) for r in _as_list(statement.get("Resource", []))]
        if _grants(statement, "ssm:SendCommand"):
            if "NotResource" in statement or "*" in resources:
                found.append(f"{where}: ssm:SendCommand on every resource")
            hosts = [r for r in resources if _reaches_hosts(r)]
            if hosts and not _tag_condition_keys(statement):
                found.append(
                    f"{where}: ssm:SendCommand on {', '.join(hosts)} without a resource-tag condition"
                )
        if _grants(statement, "sns:Publish") and ("NotResource" in statement or "*" in resources):
            found.append(f"{where}: sns:Publish on every topic")
    return found


# Parliament reads SendCommand as needing a document in every statement, and cannot parse the
# account-less ARN of an AWS-owned document; the two statements are split on purpose (the tag
# condition must not apply to the document, which carries no tags), so those findings are expected.
EXPECTED_FINDINGS = {("RESOURCE_MISMATCH", "ssm:SendCommand")}
EXAMPLE_VALUES = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}


def lint(policy: dict[str, Any]) -> list[str]:
    """Parliament's findings on ``policy`` (rendered with example values), less the expected ones."""
    with warnings.catch_warnings():  # parliament imports pkg_resources, deprecated by setuptools
        warnings.simplefilter("ignore", UserWarning)
        from parliament import analyze_policy_string

    found = []
    for finding in analyze_policy_string(json.dumps(policy)).findings:
        actions = {d.get("action") for d in finding.detail} if isinstance(finding.detail, list) else {None}
        if not all((finding.issue, action) in EXPECTED_FINDINGS for action in actions):
            found.append(f"{finding.issue}: {finding.detail} at {finding.location}")
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help=f"write {POLICY_FILE.name}")
    action.add_argument("--check", action="store_true", help=f"fail if {POLICY_FILE.name} differs")
    parser.add_argument("--lint", action="store_true", help="also lint it (parliament, scope)")
    args = parser.parse_args(argv)
    text = json.dumps(render(), indent=2) + "\n"
    if args.lint:
        problems = scope_violations(render()) + lint(render(**EXAMPLE_VALUES))
        for problem in problems:
            print(f"{TEMPLATE.name}: {problem}", file=sys.stderr)
        if problems:
            return 1
    if args.write:
        POLICY_FILE.write_text(text)
    elif args.check and POLICY_FILE.read_text() != text:
        print(f"{POLICY_FILE} differs from {TEMPLATE.name}: run `make mwaa-policy`", file=sys.stderr)
        return 1
    elif not args.check:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
