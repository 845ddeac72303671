from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from ssm_fleet.plan import (
    TOKEN_CHARS,
    Token,
    current_attempt,
    lookup_since,
    parse_token,
    plan_chunks,
    run_commands,
    run_digest,
    tag_targets,
)

IDS = [f"i-{n:017x}" for n in range(120)]


class TestPlanChunks:
    def test_120_ids_become_3_commands_of_at_most_50(self):
        chunks = plan_chunks("d" * 16, instance_ids=IDS)
        assert [len(c.instance_ids) for c in chunks] == [50, 50, 20]
        assert [c.index for c in chunks] == [1, 2, 3] and {c.total for c in chunks} == {3}
        assert [i for c in chunks for i in c.instance_ids] == IDS

    def test_tags_are_one_command_with_tag_keys(self):
        (chunk,) = plan_chunks("d" * 16, tags={"Role": ["cots"], "Env": ["prod", "dr"]})
        assert chunk.target_kwargs() == {
            "Targets": [{"Key": "tag:Role", "Values": ["cots"]}, {"Key": "tag:Env", "Values": ["prod", "dr"]}]
        }

    def test_tag_targets(self):
        assert tag_targets({"Role": ["cots"]}) == [{"Key": "tag:Role", "Values": ["cots"]}]


class TestToken:
    def test_digest_is_stable_and_depends_on_every_part(self):
        assert run_digest("dag", "run", "task", "-1") == run_digest("dag", "run", "task", "-1")
        assert run_digest("dag", "run", "task", "-1") != run_digest("dag", "run2", "task", "-1")
        assert len(run_digest("a")) == 16

    @pytest.mark.parametrize("user", ["", "x" * 65])
    @pytest.mark.parametrize("attempt", [1, 999])
    def test_comment_fits_in_100_chars_and_parses_back(self, user, attempt):
        ids = [f"i-{n:017x}" for n in range(50 * 999)]
        chunk = plan_chunks(run_digest("a"), attempt=attempt, instance_ids=ids)[-1]
        comment = chunk.comment(user)
        assert len(comment) <= len(user) + TOKEN_CHARS <= 100
        assert parse_token(comment) == Token(run_digest("a"), attempt, 999, 999) == chunk.token

    def test_tokens_written_before_attempts_existed_are_attempt_1(self):
        assert parse_token("nightly [af:0123456789abcdef 2/3]") == Token("0123456789abcdef", 1, 2, 3)

    def test_foreign_comments_are_ignored(self):
        assert parse_token("nightly batch") is None
        assert parse_token(None) is None

    def test_run_commands_finds_only_this_run(self):
        first = plan_chunks("a" * 16, instance_ids=IDS)
        second = plan_chunks("a" * 16, attempt=2, instance_ids=IDS[:3])
        other = plan_chunks("b" * 16, instance_ids=IDS)
        listed = [
            {"CommandId": "c5", "Comment": second[0].comment(), "RequestedDateTime": "5"},
            {"CommandId": "c3", "Comment": first[2].comment(), "RequestedDateTime": "3"},
            {"CommandId": "c1", "Comment": first[0].comment("x"), "RequestedDateTime": "1"},
            {"CommandId": "c2", "Comment": other[1].comment(), "RequestedDateTime": "2"},
            {"CommandId": "c4", "Comment": "unrelated"},
        ]
        assert sorted(c["CommandId"] for c in run_commands("a" * 16, listed)) == ["c1", "c3", "c5"]
        assert [parse_token(c["Comment"]).attempt for c in listed[:4]] == [2, 1, 1, 1]


class TestRunContext:
    def test_attempt_counts_clears(self):
        assert current_attempt({"dag_run": SimpleNamespace(clear_number=0)}) == 1
        assert current_attempt({"dag_run": SimpleNamespace(clear_number=2)}) == 3
        assert current_attempt({}) == 1

    def test_lookup_starts_an_hour_before_the_run_was_due(self):
        due = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
        assert lookup_since({"dag_run": SimpleNamespace(run_after=due)}) == due - timedelta(hours=1)

    def test_lookup_without_a_run_goes_a_day_back(self):
        since = lookup_since({})
        assert timedelta(hours=24) < datetime.now(UTC) - since < timedelta(hours=26)

    def test_lookup_keeps_the_zone_for_the_hook_to_convert(self):
        due = datetime(2026, 11, 27, 3, 0, tzinfo=timezone(timedelta(hours=1)))
        assert lookup_since({"dag_run": SimpleNamespace(run_after=due)}) == datetime(
            2026, 11, 27, 1, tzinfo=UTC
        )
