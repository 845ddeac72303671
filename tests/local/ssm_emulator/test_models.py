"""How commands, invocations and their outputs look through the API (models.py)."""

from __future__ import annotations

import datetime as dt
import uuid

from botocore.exceptions import ClientError


class TestOutputs:
    def test_outputs_are_cut_at_the_api_limits(self, emu, run):
        script = ["head -c 30000 /dev/zero | tr '\\0' a", "head -c 9000 /dev/zero | tr '\\0' b >&2"]
        command, results = run.run(script, emu.instance_ids[:1])
        result = results[emu.instance_ids[0]]
        assert result["StandardOutputContent"] == "a" * 24_000
        assert result["StandardErrorContent"] == "b" * 8_000
        plugin = run.invocations(command["CommandId"])[emu.instance_ids[0]]["CommandPlugins"][0]
        assert plugin["Output"] == "a" * 2_500
        assert plugin["Name"] == "aws:runShellScript"

    def test_limits_count_characters_not_bytes(self, emu, run):
        _, results = run.run(["for i in $(seq 25000); do printf 'é'; done"], emu.instance_ids[:1])
        assert results[emu.instance_ids[0]]["StandardOutputContent"] == "é" * 24_000

    def test_plugin_output_joins_stdout_and_stderr_like_the_agent(self, emu, run):
        command, _ = run.run(["echo out", "echo err >&2"], emu.instance_ids[:1])
        plugin = run.invocations(command["CommandId"])[emu.instance_ids[0]]["CommandPlugins"][0]
        assert plugin["Output"] == "out\n\n----------ERROR-------\nerr\n"

    def test_without_details_there_are_no_plugins(self, emu, run):
        command, _ = run.run(["true"], emu.instance_ids[:1])
        assert (
            run.invocations(command["CommandId"], details=False)[emu.instance_ids[0]]["CommandPlugins"] == []
        )

    def test_s3_output_gets_urls_and_the_full_output(self, emu, run, client, wait_for):
        s3 = client("s3")
        bucket = f"emu-output-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        command, results = run.run(
            ["head -c 30000 /dev/zero | tr '\\0' z"],
            emu.instance_ids[:1],
            OutputS3BucketName=bucket,
            OutputS3KeyPrefix="batch",
        )
        result = results[emu.instance_ids[0]]
        key = (
            f"batch/{command['CommandId']}/{emu.instance_ids[0]}/awsrunShellScript/0.awsrunShellScript/stdout"
        )
        assert result["StandardOutputUrl"] == f"https://s3.us-east-1.amazonaws.com/{bucket}/{key}"

        def uploaded() -> bytes | None:
            try:
                return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except ClientError:
                return None

        assert wait_for(uploaded, what="the stdout object") == b"z" * 30_000

    def test_cloudwatch_output_config_is_echoed(self, emu, run):
        config = {"CloudWatchLogGroupName": "/cots/batch", "CloudWatchOutputEnabled": True}
        command, results = run.run(["true"], emu.instance_ids[:1], CloudWatchOutputConfig=config)
        assert command["CloudWatchOutputConfig"] == config
        assert results[emu.instance_ids[0]]["CloudWatchOutputConfig"] == config


class TestTimes:
    def test_times_are_aws_json_timestamps(self, emu, run):
        before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)
        command, results = run.run(["true"], emu.instance_ids[:1])
        listed = run.invocations(command["CommandId"])[emu.instance_ids[0]]
        assert command["RequestedDateTime"] >= before
        assert listed["CommandPlugins"][0]["ResponseFinishDateTime"] >= listed["RequestedDateTime"]
        started = results[emu.instance_ids[0]]["ExecutionStartDateTime"]
        assert dt.datetime.fromisoformat(started.replace("Z", "+00:00")) >= before
