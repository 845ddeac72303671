import pytest

from cots_ssm.config import BatchConfig


class TestBatchConfig:
    def test_defaults_need_no_environment(self):
        config = BatchConfig.from_env({})
        assert config.schedule == "0 2 * * *" and config.timezone == "UTC"
        assert config.target_tags == {"Role": ["cots"]} and config.instance_ids == []
        assert config.deferrable is False, "reschedule mode stays the default"

    def test_environment_overrides(self):
        config = BatchConfig.from_env(
            {
                "COTS_BATCH_SCHEDULE": "30 1 * * 1-5",
                "COTS_BATCH_TIMEZONE": "Europe/Paris",
                "COTS_BATCH_INSTANCE_IDS": '["i-0123456789abcdef0"]',
                "COTS_BATCH_POLL_SECONDS": "1",
                "COTS_BATCH_SCRIPT_ARGUMENTS": '["--keywords", "a,b"]',
                "COTS_BATCH_DEFERRABLE": "True",
            }
        )
        assert config.schedule == "30 1 * * 1-5" and config.timezone == "Europe/Paris"
        assert config.instance_ids == ["i-0123456789abcdef0"]
        assert config.target_tags == {}, "ids replace the default tags: exactly one target"
        assert config.poll_interval_seconds == 1
        assert config.script_arguments == ["--keywords", "a,b"]
        assert config.deferrable is True

    @pytest.mark.parametrize(
        ("env", "named"),
        [
            ({"COTS_BATCH_TARGET_TAGS": "{Role: cots}"}, "COTS_BATCH_TARGET_TAGS"),
            ({"COTS_BATCH_POLL_SECONDS": "5m"}, "COTS_BATCH_POLL_SECONDS='5m'"),
            ({"COTS_BATCH_DEFERRABLE": "yes"}, "COTS_BATCH_DEFERRABLE='yes'"),
        ],
    )
    def test_bad_values_name_the_variable(self, env, named):
        with pytest.raises(ValueError, match=named):
            BatchConfig.from_env(env)
