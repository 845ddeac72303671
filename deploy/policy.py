"""The execution role's policy, generated from the jobs file; the stack and the MWAA policy file follow it.

``policy_document()`` builds the policy from ``dags/cots_jobs.yaml``, read through the package's own
loader with the ``COTS_BATCH_*`` values of ``mwaa/startup.sh`` (what MWAA runs): SendCommand on the
document, on instances carrying each job's tags (``ssm:resourceTag`` conditions, keys ANDed and
values ORed as SSM selects them), on each instance a job names by id (EC2 ``i-`` and hybrid ``mi-``),
and Publish on the stack's topic and every topic a job names. ``--write`` puts it into the
CloudFormation template (``cots-ssm-batch.yaml``) and renders ``mwaa/execution-role-policy.json``
from the template with its parameter defaults and placeholders (``REGION``, ``ACCOUNT``).
``uncovered()`` names each job and field the policy does not allow, ``scope_violations()`` every
grant broader than the package needs. Usage: ``python deploy/policy.py [--write | --check] [--lint]``.

Over 350 lines for a reason: the policy's generation and the checks that it covers every job and
grants nothing more are one contract, read side by side.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import shlex
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent
ROOT = DEPLOY.parent
sys.path.insert(0, str(ROOT / "plugins"))  # the package's own loader reads the jobs file

from cots_ssm.jobs.loader import Job, JobsFileError, load_jobs  # noqa: E402

TEMPLATE = DEPLOY / "cots-ssm-batch.yaml"
POLICY_FILE = ROOT / "mwaa" / "execution-role-policy.json"
JOBS_FILE = ROOT / "dags" / "cots_jobs.yaml"
STARTUP_SCRIPT = ROOT / "mwaa" / "startup.sh"
PLACEHOLDERS = {"AWS::Partition": "aws", "AWS::Region": "REGION", "AWS::AccountId": "ACCOUNT"}
TAG_CONDITION_KEYS = ("ssm:resourcetag/", "aws:resourcetag/")
# What SendCommand can target besides documents (service, resource): a grant matching either reaches hosts.
HOSTS = (("ec2", "instance/i-0123456789abcdef0"), ("ssm", "managed-instance/mi-0123456789abcdef0"))
#: The document the jobs' DAGs send (cots_ssm.jobs.dag); the stack's DocumentName parameter names it.
JOBS_DOCUMENT = "AWS-RunShellScript"
#: IAM's limit on a managed policy, whitespace not counted.
MANAGED_POLICY_MAX_CHARS = 6144
# Written as CloudFormation ${} references: the template substitutes them, render() too.
_PARTITION, _REGION, _ACCOUNT = "${AWS::Partition}", "${Region}", "${AWS::AccountId}"
_TEXT_START = "        - |\n"  # the policy text of ExecutionRolePolicy, a block under its !Sub
_TEXT_INDENT = " " * 10


def startup_env(path: Path = STARTUP_SCRIPT) -> dict[str, str]:
    """The ``export NAME=value`` lines of the MWAA startup script (commented ones are not run)."""
    env: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            env[name] = value
    return env


def deployed_jobs(path: Path = JOBS_FILE, env: Mapping[str, str] | None = None) -> tuple[Job, ...]:
    """The jobs of ``path`` as MWAA loads them (``env``: the startup script's); refused jobs raise."""
    jobs_file = load_jobs(path, env=startup_env() if env is None else env)
    if jobs_file.errors:
        raise JobsFileError("\n".join(["fix the jobs file first:", *map(str, jobs_file.errors)]))
    return jobs_file.jobs


def _host_arn(
    instance_id: str, partition: str = _PARTITION, region: str = _REGION, account: str = _ACCOUNT
) -> str:
    if instance_id.startswith("mi-"):  # a hybrid (on-premises) node is an SSM resource, not EC2
        return f"arn:{partition}:ssm:{region}:{account}:managed-instance/{instance_id}"
    return f"arn:{partition}:ec2:{region}:{account}:instance/{instance_id}"


def _sid(prefix: str, job_id: str) -> str:
    return prefix + "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", job_id))


def fleet_statements(jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """SendCommand on each job's fleet: one statement per distinct tag selection, one for named ids."""
    by_condition: dict[str, dict[str, Any]] = {}
    named: set[str] = set()
    for job in jobs:
        if job.config.instance_ids:
            named.update(_host_arn(i) for i in job.config.instance_ids)
            continue
        tags = {
            f"ssm:resourceTag/{key}": sorted(values) for key, values in sorted(job.config.target_tags.items())
        }
        condition = {"StringEquals": tags}
        by_condition.setdefault(
            json.dumps(condition, sort_keys=True),
            {
                "Sid": _sid("SendToTheFleetOf", job.id),
                "Effect": "Allow",
                "Action": "ssm:SendCommand",
                "Resource": [
                    f"arn:{_PARTITION}:ec2:{_REGION}:{_ACCOUNT}:instance/*",
                    f"arn:{_PARTITION}:ssm:{_REGION}:{_ACCOUNT}:managed-instance/*",
                ],
                "Condition": condition,
            },
        )
    statements = list(by_condition.values())
    if named:
        statements.append(
            {
                "Sid": "SendToNamedInstances",
                "Effect": "Allow",
                "Action": "ssm:SendCommand",
                "Resource": sorted(named),
            }
        )
    return statements


def policy_document(jobs: Sequence[Job]) -> dict[str, Any]:
    """The execution role's policy for ``jobs``, in CloudFormation ``!Sub`` form (``${Region}``...)."""
    topics = sorted({job.config.sns_topic_arn for job in jobs if job.config.sns_topic_arn})
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "SendTheBatchDocument",
                "Effect": "Allow",
                "Action": "ssm:SendCommand",
                "Resource": f"arn:{_PARTITION}:ssm:{_REGION}::document/${{DocumentName}}",
            },
            *fleet_statements(jobs),
            {
                "Sid": "WatchAndCancel",
                "Effect": "Allow",
                "Action": [
                    "ssm:ListCommands",
                    "ssm:ListCommandInvocations",
                    "ssm:GetCommandInvocation",
                    "ssm:CancelCommand",
                    "ssm:DescribeInstanceInformation",
                ],
                "Resource": "*",
            },
            {
                "Sid": "FailureAlert",
                "Effect": "Allow",
                "Action": "sns:Publish",
                "Resource": ["${AlertTopic}", *topics],
            },
        ],
    }


def policy_text(jobs: Sequence[Job]) -> str:
    """The policy as the template holds it: indented JSON with ``${}`` references."""
    return json.dumps(policy_document(jobs), indent=2) + "\n"


def template_with_policy(template_text: str, text: str) -> str:
    """``template_text`` with the policy block of ``ExecutionRolePolicy`` replaced by ``text``."""
    start = template_text.index("PolicyDocument: !Sub\n")
    start = template_text.index(_TEXT_START, start) + len(_TEXT_START)
    end = start
    for line in template_text[start:].splitlines(keepends=True):
        if line.strip() and not line.startswith(_TEXT_INDENT):
            break
        end += len(line)
    block = "".join(_TEXT_INDENT + line if line.strip() else line for line in text.splitlines(keepends=True))
    return template_text[:start] + block + template_text[end:]


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
    names = _names(template, values)
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


def _names_one_host(resource: str) -> bool:
    """Whether an ARN names one instance (``instance/i-...``), no wildcard in its resource part."""
    parts = resource.split(":", 5)
    return (
        len(parts) == 6
        and parts[5].startswith(("instance/i-", "managed-instance/mi-"))
        and not any(c in parts[5] for c in "*?")
    )


def _tag_condition_keys(statement: dict[str, Any]) -> list[str]:
    keys = []
    for operator, condition in statement.get("Condition", {}).items():
        if operator.startswith("StringEquals") or operator.startswith("StringLike"):
            keys += [key for key in condition if key.lower().startswith(TAG_CONDITION_KEYS)]
    return keys


def scope_violations(policy: dict[str, Any]) -> list[str]:
    """Every grant broader than the package needs: SendCommand or Publish on ``*``, untagged host patterns.

    A statement may name single instances without a tag condition (the jobs that name their fleet by id).
    """
    found = []
    for index, statement in enumerate(_as_list(policy.get("Statement", []))):
        where = f"statement {index} ({statement.get('Sid', 'no Sid')})"
        resources = [str(r) for r in _as_list(statement.get("Resource", []))]
        if _grants(statement, "ssm:SendCommand"):
            if "NotResource" in statement or "*" in resources:
                found.append(f"{where}: ssm:SendCommand on every resource")
            hosts = [r for r in resources if _reaches_hosts(r) and not _names_one_host(r)]
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


def _resource_allows(statement: Mapping[str, Any], resource: str) -> bool:
    if "NotResource" in statement:  # never generated; read as allowing nothing we can vouch for
        return False
    return any(fnmatch.fnmatchcase(resource, str(p)) for p in _as_list(statement.get("Resource", [])))


def _condition_admits(condition: Mapping[str, Any] | None, tags: Mapping[str, Sequence[str]] | None) -> bool:
    """Whether every host carrying ``tags`` (keys ANDed, any of the values) meets ``condition``.

    ``tags`` None: a host known by id only, so any condition may refuse it. Only ``StringEquals`` on
    ``ssm:resourceTag/<key>`` is understood; any other condition counts as refusing (not vouched for).
    """
    if not condition:
        return True
    if tags is None:
        return False
    wanted = {key.lower(): set(values) for key, values in tags.items()}
    for operator, entries in condition.items():
        if operator != "StringEquals":
            return False
        for key, values in entries.items():
            name = key.lower().removeprefix("ssm:resourcetag/")
            if name == key.lower() or name not in wanted or not wanted[name] <= set(_as_list(values)):
                return False
    return True


def allows(
    policy: Mapping[str, Any], action: str, resource: str, tags: Mapping[str, Sequence[str]] | None = None
) -> bool:
    """Whether an Allow statement of ``policy`` grants ``action`` on ``resource`` (carrying ``tags``)."""
    return any(
        _grants(dict(statement), action)
        and _resource_allows(statement, resource)
        and _condition_admits(statement.get("Condition"), tags)
        for statement in _as_list(policy.get("Statement", []))
    )


def uncovered(
    jobs: Sequence[Job], policy: Mapping[str, Any], *, region: str = "REGION", account: str = "ACCOUNT"
) -> list[str]:
    """Each job and field whose AWS call ``policy`` would refuse (``policy`` rendered with these values).

    SendCommand on the jobs' document, on each instance a job names, and on EC2 and hybrid hosts that
    carry exactly a job's tags; Publish on each topic a job names.
    """
    document = f"arn:aws:ssm:{region}::document/{JOBS_DOCUMENT}"
    found = []
    for job in jobs:
        config, where = job.config, f"job {job.id!r}"
        if not allows(policy, "ssm:SendCommand", document):
            found.append(f"{where}: ssm:SendCommand on the document {JOBS_DOCUMENT} is not allowed")
        for instance_id in config.instance_ids:
            if not allows(policy, "ssm:SendCommand", _host_arn(instance_id, "aws", region, account)):
                found.append(
                    f"{where}, field 'instance_ids': ssm:SendCommand on {instance_id} is not allowed"
                )
        for sample in ("i-0123456789abcdef0", "mi-0123456789abcdef0") if not config.instance_ids else ():
            host = _host_arn(sample, "aws", region, account)
            if not allows(policy, "ssm:SendCommand", host, config.target_tags):
                found.append(
                    f"{where}, field 'target_tags': ssm:SendCommand on {host.split(':')[5].split('/')[0]}s "
                    f"tagged {config.target_tags} is not allowed"
                )
        if config.sns_topic_arn and not allows(policy, "sns:Publish", config.sns_topic_arn):
            found.append(
                f"{where}, field 'sns_topic_arn': sns:Publish on {config.sns_topic_arn} is not allowed"
            )
    return found


def unalerted(jobs: Sequence[Job]) -> list[str]:
    """Jobs whose failure alert would only be logged: neither they nor the startup script name a topic."""
    return [
        f"job {job.id!r}: no alert topic (sns_topic_arn, COTS_BATCH_SNS_TOPIC_ARN): its alerts are only "
        "logged; set COTS_BATCH_SNS_TOPIC_ARN in mwaa/startup.sh to the stack's AlertTopicArn"
        for job in jobs
        if not job.config.sns_topic_arn
    ]


def size_problems(policy: Mapping[str, Any]) -> list[str]:
    """IAM refuses a managed policy over 6,144 characters (whitespace not counted)."""
    size = len(re.sub(r"\s", "", json.dumps(policy)))
    if size <= MANAGED_POLICY_MAX_CHARS:
        return []
    return [
        f"the policy has {size} characters, IAM allows {MANAGED_POLICY_MAX_CHARS}: give jobs that share a "
        "fleet the same tags (one statement for all of them)"
    ]


# -- the hosts' role: what the SSM agent needs to write the command output to CloudWatch Logs ------
LOG_WRITES = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents")


def _resolved(node: Any, names: Mapping[str, str]) -> Any:
    """``node`` with its ``Fn::Sub`` strings substituted from ``names`` (the list form's map ignored)."""
    if isinstance(node, dict) and set(node) == {"Fn::Sub"}:
        text = node["Fn::Sub"][0] if isinstance(node["Fn::Sub"], list) else node["Fn::Sub"]
        return re.sub(r"\$\{([^}!]+)\}", lambda m: names[m.group(1)], text)
    if isinstance(node, dict):
        return {key: _resolved(value, names) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolved(item, names) for item in node]
    return node


def _names(template: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, str]:
    names = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}
    names.update(PLACEHOLDERS)
    names.update(values)
    names.setdefault("Region", names["FleetRegion"] or names["AWS::Region"])
    return names


def host_policy(template: dict[str, Any] | None = None, /, **values: str) -> dict[str, Any]:
    """The hosts' inline policy (beside ``AmazonSSMManagedInstanceCore``), rendered as :func:`render` does."""
    template = template or load_template()
    (inline,) = template["Resources"]["InstanceRole"]["Properties"]["Policies"]
    policy: dict[str, Any] = _resolved(inline["PolicyDocument"], _names(template, values))
    return policy


def host_scope_violations(policy: Mapping[str, Any], log_group: str) -> list[str]:
    """Every log write the hosts may do outside ``log_group`` (and its streams), or on a wildcard group."""
    found = []
    allowed = (f":log-group:{log_group}", f":log-group:{log_group}:*", f":log-group:{log_group}:log-stream:*")
    for index, statement in enumerate(_as_list(policy.get("Statement", []))):
        granted = [a for a in LOG_WRITES if _grants(dict(statement), a)]
        resources = [str(r) for r in _as_list(statement.get("Resource", []))]
        wider = [r for r in resources if not r.endswith(allowed) or "*" in r.split(":log-group:")[0]]
        if granted and ("NotResource" in statement or wider):
            found.append(
                f"hosts' statement {index} ({statement.get('Sid', 'no Sid')}): {', '.join(granted)} on "
                f"{', '.join(wider) or 'NotResource'}, beyond the log group {log_group}"
            )
    return found


def drift(jobs: Sequence[Job], template_path: Path = TEMPLATE, policy_path: Path = POLICY_FILE) -> list[str]:
    """Where the template or the policy file differs from what ``jobs`` need: run ``make mwaa-policy``."""
    found = []
    template = load_template(template_path)
    text = template["Resources"]["ExecutionRolePolicy"]["Properties"]["PolicyDocument"]["Fn::Sub"][0]
    if text != policy_text(jobs):
        found.append(f"{template_path.name}: the execution role's policy is not the jobs file's")
    if policy_path.read_text() != json.dumps(render(template), indent=2) + "\n":
        found.append(f"{policy_path.name} differs from {template_path.name}")
    return found


def write(jobs: Sequence[Job], template_path: Path = TEMPLATE, policy_path: Path = POLICY_FILE) -> None:
    """Put the policy ``jobs`` need into the template, then render the policy file from it."""
    template_path.write_text(template_with_policy(template_path.read_text(), policy_text(jobs)))
    policy_path.write_text(json.dumps(render(load_template(template_path)), indent=2) + "\n")


def lint_problems(jobs: Sequence[Job]) -> list[str]:
    """Scope, size, coverage and parliament findings on both roles' policies."""
    template = load_template()
    group = f"/aws/ssm/{_names(template, {})['DocumentName']}"
    example = render(template, **EXAMPLE_VALUES)
    return [
        *scope_violations(render(template)),
        *size_problems(example),
        *uncovered(jobs, render(template)),
        *lint(example),
        *host_scope_violations(host_policy(template), group),
        *lint(host_policy(template, **EXAMPLE_VALUES)),
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--write", action="store_true", help=f"write the template's policy and {POLICY_FILE.name}"
    )
    action.add_argument("--check", action="store_true", help="fail if either differs from the jobs file's")
    parser.add_argument("--lint", action="store_true", help="also lint it (parliament, scope, coverage)")
    args = parser.parse_args(argv)
    jobs = deployed_jobs()
    if args.write:
        write(jobs)
    problems = lint_problems(jobs) if args.lint else []
    if args.check:
        problems += [f"{p}: run `make mwaa-policy`" for p in drift(jobs)] + uncovered(jobs, render())
    for warning in unalerted(jobs) if args.check or args.lint else ():
        print(f"warning: {warning}", file=sys.stderr)
    for problem in problems:
        print(f"{TEMPLATE.name}: {problem}", file=sys.stderr)
    if problems:
        return 1
    if not (args.write or args.check):
        print(policy_text(jobs), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
