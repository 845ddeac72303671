"""The stack follows the jobs file: every job's fleet and topic is allowed, and nothing wider.

The first class reads the shipped files (``dags/cots_jobs.yaml``, ``mwaa/startup.sh``, the template
and ``mwaa/execution-role-policy.json``): it fails, naming the job and the field, as soon as a job is
added or changed without ``make mwaa-policy``.
"""

import json
import shutil

import pytest
import yaml
from policy import (
    EXAMPLE_VALUES,
    JOBS_FILE,
    POLICY_FILE,
    TEMPLATE,
    deployed_jobs,
    drift,
    lint,
    load_template,
    policy_document,
    render,
    scope_violations,
    size_problems,
    startup_env,
    unalerted,
    uncovered,
    write,
)

from cots_ssm.jobs.loader import JobsFileError

LEDGER = {
    "id": "monthly_reconciliation",
    "instance_ids": ["i-0123456789abcdef0", "mi-0fedcba9876543210"],
    "sns_topic_arn": "arn:aws:sns:eu-west-1:123456789012:ledger-alerts",
}
BILLING = {"id": "billing_engine", "target_tags": {"Role": ["cots"], "Env": ["prod", "staging"]}}


def jobs_of(tmp_path, *extra, env=None):
    data = yaml.safe_load(JOBS_FILE.read_text())
    data["jobs"] += list(extra)
    path = tmp_path / "cots_jobs.yaml"
    path.write_text(yaml.safe_dump(data))
    return deployed_jobs(path, env=env if env is not None else startup_env())


def rendered(jobs, **values):
    """The policy of ``jobs`` as the template would render it."""
    template = load_template()
    text = json.dumps(policy_document(jobs))
    template["Resources"]["ExecutionRolePolicy"]["Properties"]["PolicyDocument"]["Fn::Sub"][0] = text
    return render(template, **values)


class TestTheShippedStack:
    def test_every_shipped_job_is_allowed_by_the_policy_file_and_the_template(self):
        jobs = deployed_jobs()
        assert [job.id for job in jobs] == ["cots_nightly_batch", "document_indexer"]
        assert uncovered(jobs, json.loads(POLICY_FILE.read_text())) == []
        assert uncovered(jobs, render()) == []

    def test_the_template_and_the_policy_file_are_the_jobs_files(self):
        assert drift(deployed_jobs()) == [], "run `make mwaa-policy`"

    def test_the_indexer_fleet_is_allowed_and_an_untagged_host_is_not(self):
        policy = json.loads(POLICY_FILE.read_text())
        (indexer,) = [s for s in policy["Statement"] if s["Sid"] == "SendToTheFleetOfDocumentIndexer"]
        assert indexer["Condition"] == {"StringEquals": {"ssm:resourceTag/Role": ["indexer"]}}
        assert scope_violations(policy) == []


class TestUncovered:
    def test_a_new_job_names_each_field_the_old_policy_refuses(self, tmp_path):
        jobs = jobs_of(tmp_path, LEDGER, BILLING)

        assert uncovered(jobs, json.loads(POLICY_FILE.read_text())) == [
            "job 'monthly_reconciliation', field 'instance_ids': ssm:SendCommand on i-0123456789abcdef0 "
            "is not allowed",
            "job 'monthly_reconciliation', field 'instance_ids': ssm:SendCommand on mi-0fedcba9876543210 "
            "is not allowed",
            "job 'monthly_reconciliation', field 'sns_topic_arn': sns:Publish on "
            "arn:aws:sns:eu-west-1:123456789012:ledger-alerts is not allowed",
        ], "billing_engine's hosts carry Role=cots, which the nightly job's statement allows"

    def test_a_value_the_condition_lacks_is_uncovered(self, tmp_path):
        jobs = jobs_of(tmp_path, {"id": "wider", "target_tags": {"Role": ["cots", "cots-dr"]}})
        assert uncovered(jobs[-1:], json.loads(POLICY_FILE.read_text())) == [
            "job 'wider', field 'target_tags': ssm:SendCommand on instances tagged "
            "{'Role': ['cots', 'cots-dr']} is not allowed",
            "job 'wider', field 'target_tags': ssm:SendCommand on managed-instances tagged "
            "{'Role': ['cots', 'cots-dr']} is not allowed",
        ]

    def test_a_condition_on_a_tag_the_job_does_not_select_by_is_uncovered(self, tmp_path):
        """Hosts of a job selected by Role alone need not carry Env: a Role+Env condition refuses them."""
        policy = rendered(jobs_of(tmp_path, BILLING)[-1:])
        nightly = jobs_of(tmp_path)[:1]
        assert len(uncovered(nightly, policy)) == 2

    def test_a_refused_job_stops_the_generation_naming_it(self, tmp_path):
        with pytest.raises(JobsFileError, match="job 'bad' .*field 'timezone'"):
            jobs_of(tmp_path, {"id": "bad", "timezone": "Europe/Pariss"})


class TestGenerated:
    def test_covers_tags_ids_hybrid_nodes_and_topics_and_nothing_wider(self, tmp_path):
        jobs = jobs_of(tmp_path, LEDGER, BILLING)
        policy = rendered(jobs)

        assert uncovered(jobs, policy) == []
        assert scope_violations(policy) == []
        assert size_problems(rendered(jobs, **EXAMPLE_VALUES)) == []
        assert lint(rendered(jobs, **EXAMPLE_VALUES)) == []
        named = {s["Sid"]: s for s in policy["Statement"]}["SendToNamedInstances"]
        assert named["Resource"] == [
            "arn:aws:ec2:REGION:ACCOUNT:instance/i-0123456789abcdef0",
            "arn:aws:ssm:REGION:ACCOUNT:managed-instance/mi-0fedcba9876543210",
        ]
        assert "Condition" not in named
        billing = {s["Sid"]: s for s in policy["Statement"]}["SendToTheFleetOfBillingEngine"]
        assert billing["Condition"] == {
            "StringEquals": {"ssm:resourceTag/Env": ["prod", "staging"], "ssm:resourceTag/Role": ["cots"]}
        }
        (topics,) = [s for s in policy["Statement"] if s["Action"] == "sns:Publish"]
        assert topics["Resource"] == [
            "arn:aws:sns:REGION:ACCOUNT:cots-batch-alerts",
            "arn:aws:sns:eu-west-1:123456789012:ledger-alerts",
        ]

    def test_jobs_sharing_a_fleet_share_one_statement(self, tmp_path):
        jobs = jobs_of(tmp_path, {"id": "second_on_cots", "target_tags": {"Role": ["cots"]}})
        sids = [s["Sid"] for s in rendered(jobs)["Statement"]]
        assert sids.count("SendToTheFleetOfCotsNightlyBatch") == 1
        assert not any("SecondOnCots" in sid for sid in sids)

    def test_the_startup_scripts_topic_is_allowed(self, tmp_path):
        topic = "arn:aws:sns:us-east-1:123456789012:night-shift"
        jobs = jobs_of(tmp_path, env={**startup_env(), "COTS_BATCH_SNS_TOPIC_ARN": topic})
        assert uncovered(jobs, json.loads(POLICY_FILE.read_text())) == [
            f"job '{job}', field 'sns_topic_arn': sns:Publish on {topic} is not allowed"
            for job in ("cots_nightly_batch", "document_indexer")
        ]
        assert uncovered(jobs, rendered(jobs)) == []

    def test_too_many_fleets_for_one_managed_policy_are_refused_by_name(self, tmp_path):
        many = [{"id": f"job{n}", "target_tags": {"Role": [f"fleet-{n:03d}"]}} for n in range(40)]
        (problem,) = size_problems(rendered(jobs_of(tmp_path, *many), **EXAMPLE_VALUES))
        assert "IAM allows 6144" in problem

    def test_write_then_drift_is_empty_and_a_new_job_makes_it_drift(self, tmp_path):
        template, policy_file = tmp_path / TEMPLATE.name, tmp_path / POLICY_FILE.name
        shutil.copy(TEMPLATE, template)
        shutil.copy(POLICY_FILE, policy_file)
        jobs = jobs_of(tmp_path, LEDGER)

        assert drift(jobs, template, policy_file) == [
            "cots-ssm-batch.yaml: the execution role's policy is not the jobs file's"
        ]
        write(jobs, template, policy_file)
        assert drift(jobs, template, policy_file) == []
        assert uncovered(jobs, json.loads(policy_file.read_text())) == []
        before, after = load_template(), load_template(template)
        for loaded in (before, after):
            del loaded["Resources"]["ExecutionRolePolicy"]["Properties"]["PolicyDocument"]
        assert after == before, "only the policy text changes"


class TestUnalerted:
    def test_a_job_without_any_topic_is_named_and_one_with_a_topic_is_not(self, tmp_path):
        jobs = jobs_of(tmp_path, LEDGER)
        assert unalerted(jobs) == [
            f"job '{job}': no alert topic (sns_topic_arn, COTS_BATCH_SNS_TOPIC_ARN): its alerts are only "
            "logged; set COTS_BATCH_SNS_TOPIC_ARN in mwaa/startup.sh to the stack's AlertTopicArn"
            for job in ("cots_nightly_batch", "document_indexer")
        ]
        env = {**startup_env(), "COTS_BATCH_SNS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:night"}
        assert unalerted(jobs_of(tmp_path, env=env)) == []


class TestStartupEnv:
    def test_reads_the_exports_and_skips_the_commented_ones(self, tmp_path):
        script = tmp_path / "startup.sh"
        script.write_text(
            "#!/bin/sh\n"
            'export COTS_BATCH_TARGET_TAGS=\'{"Role": ["cots"]}\'\n'
            '# export COTS_BATCH_SNS_TOPIC_ARN="arn:aws:sns:r:1:x"\n'
            'export COTS_BATCH_SCHEDULE="0 2 * * *"  # nightly\n'
        )
        assert startup_env(script) == {
            "COTS_BATCH_TARGET_TAGS": '{"Role": ["cots"]}',
            "COTS_BATCH_SCHEDULE": "0 2 * * *",
        }
