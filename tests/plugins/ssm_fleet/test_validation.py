import shlex
import subprocess

import pytest

from ssm_fleet import validation
from ssm_fleet.validation import InvalidParameterError


class TestInstanceIds:
    @pytest.mark.parametrize("value", [["i-0123456789abcdef0"], ["i-12345678"], ["mi-0123456789abcdef0"]])
    def test_valid(self, value):
        assert validation.instance_ids(value) == value

    @pytest.mark.parametrize(
        "bad",
        ["i-0abc; touch pwned", "i-0123456789ABCDEF0", "$(reboot)", "i-0123456789abcdef0 ", "", None, 7],
    )
    def test_injection_and_typos_are_refused_naming_the_value(self, bad):
        with pytest.raises(InvalidParameterError, match=r"instance_ids=") as error:
            validation.instance_ids(["i-0123456789abcdef0", bad])
        assert error.value.value == bad

    def test_a_bare_string_is_not_a_list(self):
        with pytest.raises(InvalidParameterError, match="non-empty list"):
            validation.instance_ids("i-0123456789abcdef0")

    def test_duplicates_are_refused(self):
        with pytest.raises(InvalidParameterError, match="more than once"):
            validation.instance_ids(["i-12345678", "i-12345678"])


class TestTargetTags:
    def test_valid(self):
        assert validation.target_tags({"Role": ["cots"], "Env": "prod"}) == {
            "Role": ["cots"],
            "Env": ["prod"],
        }

    @pytest.mark.parametrize(
        ("value", "field"),
        [
            ({}, "target_tags"),
            ({"Role": []}, "target_tags['Role']"),
            ({"Role": [f"v{n}" for n in range(51)]}, "target_tags['Role']"),
            ({"Role": ["cots; rm -rf /"]}, "target_tags['Role']"),
            ({"aws:secret": ["x"]}, "target_tags key"),
            ({f"k{n}": ["v"] for n in range(6)}, "target_tags"),
        ],
    )
    def test_invalid(self, value, field):
        with pytest.raises(InvalidParameterError) as error:
            validation.target_tags(value)
        assert error.value.field == field

    @pytest.mark.parametrize(("ids", "tags"), [(None, None), (["i-12345678"], {"Role": ["cots"]}), ([], {})])
    def test_exactly_one_target(self, ids, tags):
        with pytest.raises(InvalidParameterError, match="exactly one"):
            validation.exactly_one_target(ids, tags)


class TestLimits:
    @pytest.mark.parametrize(
        ("field", "value", "low", "high"),
        [
            ("delivery_timeout_seconds", 29, 30, 2_592_000),
            ("delivery_timeout_seconds", 2_592_001, 30, 2_592_000),
            ("execution_timeout_seconds", 0, 1, 172_800),
            ("execution_timeout_seconds", "1h", 1, 172_800),
        ],
    )
    def test_out_of_range(self, field, value, low, high):
        with pytest.raises(InvalidParameterError, match=rf"{field}="):
            validation.integer_in_range(field, value, low, high)

    def test_rendered_numbers_are_accepted(self):
        assert validation.integer_in_range("x", "600", 30, 900) == 600
        assert validation.integer_in_range("x", 60.0, 30, 900) == 60

    @pytest.mark.parametrize(
        ("field", "value"),
        [("max_concurrency", "0"), ("max_concurrency", "101%"), ("max_errors", "-1"), ("max_errors", "ten")],
    )
    def test_rate_controls(self, field, value):
        with pytest.raises(InvalidParameterError, match=field):
            validation.rate_control(field, value)

    @pytest.mark.parametrize(
        ("field", "value"), [("max_concurrency", "10%"), ("max_errors", "0"), ("max_errors", 5)]
    )
    def test_rate_controls_accepted(self, field, value):
        assert validation.rate_control(field, value) == str(value)

    def test_comment_leaves_room_for_the_token(self):
        assert validation.comment("x" * 70, reserved=30) == "x" * 70
        with pytest.raises(InvalidParameterError, match="at most 70"):
            validation.comment("x" * 71, reserved=30)

    @pytest.mark.parametrize("bucket", ["A-Bucket", "ab", "bad..name", "-x-"])
    def test_bucket_names(self, bucket):
        with pytest.raises(InvalidParameterError, match="output_s3_bucket_name"):
            validation.s3_output(bucket, None)

    def test_prefix_without_bucket(self):
        with pytest.raises(InvalidParameterError, match="output_s3_key_prefix"):
            validation.s3_output(None, "logs/")

    @pytest.mark.parametrize("lines", [[], [""], ["ok", "  "], ["a\x00b"], None])
    def test_commands(self, lines):
        with pytest.raises(InvalidParameterError, match="commands"):
            validation.commands(lines)


class TestQuoting:
    HOSTILE = ["; touch pwned", "$(id)", "`id`", "a b", "it's", '"', "--flag=x|y", "*", "&&", "\\"]

    def test_arguments_reach_the_script_verbatim_through_a_real_shell(self, tmp_path):
        line = validation.quoted_command("printf '%s\\n'", self.HOSTILE)
        out = subprocess.run(["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True, check=True)
        assert out.stdout.splitlines() == self.HOSTILE
        assert not (tmp_path / "pwned").exists()

    def test_control_characters_are_refused(self):
        with pytest.raises(InvalidParameterError, match="script_arguments"):
            validation.script_arguments(["ok", "two\nlines"])

    def test_script_arguments_refuse_a_parameter_reference(self):
        """SSM resolves {{ssm:name}} inside parameter values: the preflight refuses it too."""
        with pytest.raises(InvalidParameterError, match=r"script_arguments='x\{\{ssm:/db/pw\}\}'"):
            validation.script_arguments(["ok", "x{{ssm:/db/pw}}"])
        assert validation.script_arguments(["{b}", "{ {"]) == ["{b}", "{ {"]

    def test_quoting_is_shlex(self):
        assert validation.quoted_command("run.sh", ["a b"]) == "run.sh " + shlex.quote("a b")


class TestFromTemplate:
    @pytest.mark.parametrize(
        ("rendered", "value"),
        [
            ('["i-12345678"]', ["i-12345678"]),
            ("['i-12345678']", ["i-12345678"]),
            ('{"Role": ["cots"]}', {"Role": ["cots"]}),
            ("plain", "plain"),
            ("[not json", "[not json"),
        ],
    )
    def test_rendered_text(self, rendered, value):
        assert validation.from_template(rendered) == value


class TestAgainstBotocoreModel:
    """Our limits are AWS's: read them from botocore's own SSM service model, not from the docs."""

    @pytest.fixture(scope="class")
    def shapes(self):
        import botocore.session

        model = botocore.session.get_session().get_service_model("ssm")
        return model.operation_model("SendCommand").input_shape.members

    def test_instance_ids_per_command(self, shapes):
        assert shapes["InstanceIds"].metadata["max"] == validation.MAX_INSTANCE_IDS_PER_COMMAND

    def test_targets_and_tag_values(self, shapes):
        assert shapes["Targets"].metadata["max"] == validation.MAX_TARGETS
        assert shapes["Targets"].member.members["Values"].metadata["max"] == validation.MAX_TAG_VALUES == 50

    def test_comment(self, shapes):
        assert shapes["Comment"].metadata["max"] == validation.MAX_COMMENT_CHARS

    def test_delivery_timeout(self, shapes):
        limits = shapes["TimeoutSeconds"].metadata
        assert (limits["min"], limits["max"]) == validation.DELIVERY_TIMEOUT_RANGE

    @pytest.mark.parametrize(
        ("member", "field"), [("MaxConcurrency", "max_concurrency"), ("MaxErrors", "max_errors")]
    )
    def test_rate_control_patterns(self, shapes, member, field):
        assert shapes[member].metadata["pattern"] == validation.RATE_CONTROL[field].pattern

    def test_s3_prefix_and_document_name_lengths(self, shapes):
        assert shapes["OutputS3KeyPrefix"].metadata["max"] == 500
        assert shapes["DocumentName"].metadata["pattern"] == validation.DOCUMENT_NAME.pattern

    @pytest.mark.parametrize("value", ["1", "10", "50%", "100%"])
    def test_accepted_rate_values_match_the_model(self, shapes, value):
        import re

        assert re.match(shapes["MaxConcurrency"].metadata["pattern"], value)
        assert validation.rate_control("max_concurrency", value) == value


class TestBoolean:
    @pytest.mark.parametrize(
        ("value", "expected"), [(True, True), (False, False), ("true", True), ("False", False)]
    )
    def test_real_booleans_and_their_text(self, value, expected):
        assert validation.boolean("preflight", value) is expected

    @pytest.mark.parametrize("value", ["yes", "0", 0, 1, None, "", "{{ params.x }}"])
    def test_anything_else_is_refused_naming_field_and_value(self, value):
        with pytest.raises(InvalidParameterError) as error:
            validation.boolean("cloudwatch_output", value)
        assert error.value.field == "cloudwatch_output" and repr(value) in str(error.value)
