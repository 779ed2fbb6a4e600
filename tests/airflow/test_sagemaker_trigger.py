"""The SageMaker endpoint trigger: serializable, and it reports where an endpoint settled.

SageMaker cannot run here; moto's server stands in for it over HTTP.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from sluice.airflow.triggers import SageMakerEndpointTrigger

REGION = "us-east-1"


def _first_event(trigger: SageMakerEndpointTrigger, timeout: float = 30):
    async def go():
        return await asyncio.wait_for(trigger.run().__anext__(), timeout)

    return asyncio.run(go())


def test_trigger_serialize_round_trip() -> None:
    trig = SageMakerEndpointTrigger(
        "loans", "loans-prod", region="eu-west-1", aws_conn_id="aws_x", poll_interval=2.5, timeout=600
    )
    path, kwargs = trig.serialize()
    assert path == "sluice.airflow.triggers.SageMakerEndpointTrigger"
    from airflow.sdk._shared.module_loading import import_string

    again = import_string(path)(**kwargs)
    assert again.serialize() == (path, kwargs)
    assert kwargs == {
        "model": "loans",
        "endpoint_name": "loans-prod",
        "region": "eu-west-1",
        "aws_conn_id": "aws_x",
        "poll_interval": 2.5,
        "timeout": 600,
    }


@pytest.fixture
def sagemaker(s3_lake, s3_endpoint, monkeypatch):
    """moto's SageMaker on the S3 endpoint's server, reached by the trigger only through ``aws_default``.

    ``s3_lake`` points the connection at moto; the process-wide AWS_ENDPOINT_URL is removed, so a trigger
    that ignored the connection would not find the endpoint.
    """
    import boto3

    monkeypatch.delenv("AWS_ENDPOINT_URL")
    return boto3.client("sagemaker", region_name=REGION, endpoint_url=s3_endpoint)


def test_trigger_yields_in_service_from_the_aws_connection(sagemaker) -> None:
    name = f"loans-{uuid.uuid4().hex[:10]}"
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn="arn:aws:iam::123456789012:role/sluice",
        PrimaryContainer={"Image": "serve:1", "ModelDataUrl": "s3://b/loans/v1/model.tar.gz"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
        ],
    )
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)

    event = _first_event(SageMakerEndpointTrigger("loans", name, region=REGION, poll_interval=0.1, timeout=10))

    assert event.payload == {
        "model": "loans",
        "endpoint": name,
        "status": "InService",
        "endpoint_status": "InService",
        "config": name,
        "failure_reason": None,
        "polls": 1,
    }


def test_trigger_reports_a_missing_endpoint_instead_of_hanging(sagemaker) -> None:
    event = _first_event(SageMakerEndpointTrigger("loans", "no-such-endpoint", region=REGION, poll_interval=0.1))
    assert event.payload["status"] == "error" and event.payload["endpoint"] == "no-such-endpoint"
    assert "Could not find endpoint" in event.payload["message"]


def test_trigger_times_out_while_the_endpoint_stays_updating(monkeypatch) -> None:
    """moto endpoints settle at once, so a client that keeps answering ``Updating`` stands in here."""

    class Updating:
        calls = 0

        def describe_endpoint(self, EndpointName: str) -> dict:
            Updating.calls += 1
            return {"EndpointName": EndpointName, "EndpointStatus": "Updating", "EndpointConfigName": "loans-v2"}

    trig = SageMakerEndpointTrigger("loans", "loans-prod", region=REGION, poll_interval=0.05, timeout=0.3)
    monkeypatch.setattr(trig, "_client", Updating)
    event = _first_event(trig, timeout=10)
    assert event.payload["status"] == "timeout" and event.payload["endpoint_status"] == "Updating"
    assert event.payload["config"] == "loans-v2" and event.payload["polls"] == Updating.calls >= 2


def test_the_deployment_hook_builds_the_sagemaker_target_from_the_aws_connection(sagemaker) -> None:
    """The operators' target talks to the endpoint named by ``aws_default`` (moto here), not to boto3's defaults."""
    from sluice.airflow.hooks import DeploymentHook
    from sluice.config import SageMakerTargetConfig, get_model_config

    cfg = get_model_config("loans")
    name = f"loans-{uuid.uuid4().hex[:10]}"
    sm = {
        "endpoint_name": name,
        "role_arn": "arn:aws:iam::123456789012:role/sluice",
        "image_uri": "serve:1",
        "artifact_uri": "s3://bucket/models",
        "region": REGION,
    }
    deploy = cfg.deploy.model_copy(update={"target": "sagemaker", "sagemaker": SageMakerTargetConfig(**sm)})
    target = DeploymentHook().get_target(cfg.model_copy(update={"deploy": deploy}))
    assert target.name == "sagemaker" and target.status()["status"] == "NotFound"
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn=sm["role_arn"],
        PrimaryContainer={"Image": "serve:1", "ModelDataUrl": "s3://b/loans/v1/model.tar.gz"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
        ],
    )
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    assert target.status()["status"] == "InService"
