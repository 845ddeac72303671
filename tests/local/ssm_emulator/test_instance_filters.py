"""DescribeInstanceInformation: filters, paging and refusals."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError


def listed_ids(ssm, **kwargs) -> list[str]:
    paginator = ssm.get_paginator("describe_instance_information")
    return [i["InstanceId"] for page in paginator.paginate(**kwargs) for i in page["InstanceInformationList"]]


class TestFilters:
    def test_tag_filter(self, emu, ssm, unique_tag):
        added = emu.add_instances(2, tags=unique_tag)
        assert listed_ids(ssm, Filters=[{"Key": "tag:Fleet", "Values": [unique_tag["Fleet"]]}]) == added

    def test_tag_key_filter(self, emu, ssm, unique_tag):
        key = unique_tag["Fleet"]
        added = emu.add_instances(1, tags={key: "any"})
        assert listed_ids(ssm, Filters=[{"Key": "tag-key", "Values": [key]}]) == added

    def test_ping_status_filter(self, emu, ssm, unique_tag):
        added = emu.add_instances(3, tags=unique_tag)
        emu.control.set_offline(added[:1])
        by_tag = {"Key": "tag:Fleet", "Values": [unique_tag["Fleet"]]}
        lost = listed_ids(ssm, Filters=[by_tag, {"Key": "PingStatus", "Values": ["ConnectionLost"]}])
        online = listed_ids(ssm, Filters=[by_tag, {"Key": "PingStatus", "Values": ["Online"]}])
        assert (lost, online) == (added[:1], added[1:])

    def test_legacy_filter_list(self, emu, ssm):
        found = listed_ids(
            ssm, InstanceInformationFilterList=[{"key": "InstanceIds", "valueSet": emu.instance_ids[:2]}]
        )
        assert found == emu.instance_ids[:2]

    def test_filters_are_anded(self, emu, ssm):
        found = listed_ids(
            ssm,
            Filters=[
                {"Key": "InstanceIds", "Values": emu.instance_ids},
                {"Key": "PlatformTypes", "Values": ["Windows"]},
            ],
        )
        assert found == []


class TestPaging:
    def test_pages_of_max_results(self, emu, ssm, unique_tag):
        added = emu.add_instances(12, tags=unique_tag)
        pages = ssm.get_paginator("describe_instance_information").paginate(
            Filters=[{"Key": "tag:Fleet", "Values": [unique_tag["Fleet"]]}], PaginationConfig={"PageSize": 5}
        )
        sizes, ids = [], []
        for page in pages:
            sizes.append(len(page["InstanceInformationList"]))
            ids += [i["InstanceId"] for i in page["InstanceInformationList"]]
        assert (sizes, ids) == ([5, 5, 2], added)


class TestRefusals:
    @pytest.mark.parametrize(
        ("request_", "code"),
        [
            ({"Filters": [{"Key": "Color", "Values": ["red"]}]}, "InvalidFilterKey"),
            (
                {"Filters": [{"Key": "PingStatus", "Values": ["Sleeping"]}]},
                "InvalidInstanceInformationFilterValue",
            ),
            (
                {"InstanceInformationFilterList": [{"key": "tag:Role", "valueSet": ["cots"]}]},
                "InvalidFilterKey",
            ),
            ({"Filters": [{"Key": "InstanceIds", "Values": ["web-1"]}]}, "InvalidInstanceId"),
            ({"MaxResults": 4}, "ValidationException"),
            ({"MaxResults": 51}, "ValidationException"),
            ({"NextToken": "not-a-token"}, "InvalidNextToken"),
        ],
        ids=[
            "unknown key",
            "bad ping status",
            "tag in legacy list",
            "bad id",
            "4 results",
            "51 results",
            "token",
        ],
    )
    def test_invalid_requests(self, emu, ssm_raw, request_, code):
        with pytest.raises(ClientError) as excinfo:
            ssm_raw.describe_instance_information(**request_)
        assert excinfo.value.response["Error"]["Code"] == code
