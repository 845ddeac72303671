"""Creating the emulator's fleet and alert plumbing through its own AWS endpoint.

Calls made here carry the `X-Ssm-Emulator-Internal` header, so the middleware neither counts
them nor injects faults into them.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

INTERNAL_HEADER = "X-Ssm-Emulator-Internal"
#: moto's bundled Amazon Linux 2 image (moto/ec2/resources/amis.json.gz).
DEFAULT_AMI = "ami-04681a1dbd79675a5"
TOPIC_NAME = "cots-batch-alerts"
QUEUE_NAME = "cots-batch-alerts"
#: moto accepts any keys; these never leave the machine.
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}  # noqa: S105


def internal_client(service: str, endpoint_url: str, region: str) -> Any:
    """Return a boto3 client for the emulator's own endpoint whose calls are marked internal."""
    client = boto3.session.Session().client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}),
        **FAKE_CREDENTIALS,
    )

    def _mark_internal(request: Any, **_: Any) -> None:
        request.headers[INTERNAL_HEADER] = "1"

    client.meta.events.register("before-send.*.*", _mark_internal)
    return client


def launch_instances(
    endpoint_url: str, region: str, count: int, tags: dict[str, str]
) -> list[dict[str, Any]]:
    """Run `count` EC2 instances with `tags` (and a Name tag) and return their descriptions."""
    if count <= 0:
        return []
    ec2 = internal_client("ec2", endpoint_url, region)
    tag_list = [{"Key": key, "Value": value} for key, value in tags.items()]
    if "Name" not in tags:
        tag_list.append({"Key": "Name", "Value": "cots-batch-node"})
    reservation = ec2.run_instances(
        ImageId=DEFAULT_AMI,
        InstanceType="t3.micro",
        MinCount=count,
        MaxCount=count,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tag_list}],
    )
    return list(reservation["Instances"])


def create_alerts(endpoint_url: str, region: str) -> tuple[str, str]:
    """Create the alert topic and an SQS queue subscribed to it; return (topic ARN, queue URL).

    Raw message delivery stays off, so each SQS body is the SNS JSON envelope
    (`Type`, `Subject`, `Message`, ...), as on AWS.
    """
    sns = internal_client("sns", endpoint_url, region)
    sqs = internal_client("sqs", endpoint_url, region)
    topic_arn = sns.create_topic(Name=TOPIC_NAME)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=QUEUE_NAME)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return topic_arn, queue_url


def upload_output(s3: Any, bucket: str, key: str, body: bytes) -> bool:
    """Write one output file with an internal S3 client; return False when the bucket does not exist."""
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    except s3.exceptions.NoSuchBucket:
        return False
    return True
