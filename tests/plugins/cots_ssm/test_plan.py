import pytest

from cots_ssm.plan import TOKEN_CHARS, parse_token, plan_chunks, run_digest, sent_chunks, tag_targets

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

    @pytest.mark.parametrize("user", ["", "x" * 70])
    def test_comment_fits_in_100_chars_and_parses_back(self, user):
        chunk = plan_chunks(run_digest("a"), instance_ids=IDS * 9)[-1]
        comment = chunk.comment(user)
        assert len(comment) <= len(user) + TOKEN_CHARS <= 100
        assert parse_token(comment) == (run_digest("a"), chunk.index, chunk.total)

    def test_foreign_comments_are_ignored(self):
        assert parse_token("nightly batch") is None
        assert parse_token(None) is None

    def test_sent_chunks_finds_only_this_run(self):
        mine, other = plan_chunks("a" * 16, instance_ids=IDS), plan_chunks("b" * 16, instance_ids=IDS)
        listed = [
            {"CommandId": "c1", "Comment": mine[0].comment("x")},
            {"CommandId": "c2", "Comment": other[1].comment()},
            {"CommandId": "c3", "Comment": mine[2].comment()},
            {"CommandId": "c4", "Comment": "unrelated"},
        ]
        found = sent_chunks("a" * 16, listed)
        assert {i: c["CommandId"] for i, c in found.items()} == {1: "c1", 3: "c3"}
