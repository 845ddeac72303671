import pytest

from cots_ssm.params import choose_targets

TAGS = {"Role": ["cots"]}
IDS = ["i-0123456789abcdef0", "i-0123456789abcdef1"]


def by_tags(ids, tags):
    return choose_targets(ids, tags, default_ids=[], default_tags=TAGS)


def by_ids(ids, tags):
    return choose_targets(ids, tags, default_ids=IDS, default_tags={})


class TestTriggerContract:
    def test_nightly_run_takes_the_configured_tags(self):
        assert by_tags([], TAGS) == {"instance_ids": [], "target_tags": TAGS}

    def test_only_instance_ids_runs_on_exactly_those(self):
        # The form sends every field: the untouched default tags step aside.
        assert by_tags(IDS[:1], TAGS) == {"instance_ids": IDS[:1], "target_tags": {}}
        assert by_tags(IDS[:1], None) == {"instance_ids": IDS[:1], "target_tags": {}}

    def test_rendered_template_text_is_read(self):
        assert by_tags(str(IDS[:1]), str(TAGS)) == {"instance_ids": IDS[:1], "target_tags": {}}

    def test_only_other_tags(self):
        assert by_tags([], {"Role": ["other"]}) == {"instance_ids": [], "target_tags": {"Role": ["other"]}}

    def test_both_given_are_passed_on_for_the_operator_to_refuse(self):
        both = by_tags(IDS[:1], {"Role": ["other"]})
        assert both == {"instance_ids": IDS[:1], "target_tags": {"Role": ["other"]}}

    def test_a_fleet_configured_by_ids(self):
        assert by_ids(IDS, {}) == {"instance_ids": IDS, "target_tags": {}}
        assert by_ids(IDS, {"Role": ["dr"]}) == {"instance_ids": [], "target_tags": {"Role": ["dr"]}}
        assert by_ids(IDS[:1], {}) == {"instance_ids": IDS[:1], "target_tags": {}}

    @pytest.mark.parametrize("ids", [[], None])
    def test_emptied_ids_fall_back_to_the_default_tags(self, ids):
        assert by_tags(ids, {}) == {"instance_ids": [], "target_tags": TAGS}
