"""The SageMaker target against moto's server over HTTP.

SageMaker cannot run here (no AWS account, no inference containers), so moto's server stands in for it:
S3, SageMaker and SageMaker Runtime answer real HTTP requests built and parsed by the same botocore code
that talks to AWS. Two things moto 5.2 does not do are simulated, only on the boto3 Session handed to the
target (botocore event hooks, so the target's own code runs unchanged), and each test says when it uses them:

* UpdateEndpoint is not implemented (moto answers HTTP 500). ``SimulatedSageMaker`` answers it by moving
  the moto endpoint to the new config (DeleteEndpoint + CreateEndpoint on the moto server), which is what a
  successful update ends in; SageMaker itself shifts traffic without downtime.
* Endpoints are InService at once and never fail. ``SimulatedSageMaker.fail`` makes DescribeEndpoint report
  what SageMaker reports when an update fails: either ``Failed`` with a FailureReason (where SageMaker then
  accepts only DeleteEndpoint, so UpdateEndpoint is refused too), or ``InService`` still on the previous
  config with a FailureReason (SageMaker reverted by itself).

Everything else -- the uploaded tarball, models, configs, tags, the endpoint's config, Runtime answers
(configured through moto's own ``/moto-api/static/sagemaker/endpoint-results``) -- is moto's real state.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import urllib.request
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from sluice.config import MODELS_DIR, ModelConfig, parse_model_config
from sluice.deployment.sagemaker import SageMakerTarget, pack_model_dir
from sluice.deployment.targets import DeploymentError, DeploymentTarget, Release

pytestmark = pytest.mark.integration

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/sluice-sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sluice-serve:1"


class SimulatedSageMaker:
    """A boto3 Session whose clients talk to moto, plus what moto cannot do (see the module docstring)."""

    def __init__(self) -> None:
        import boto3

        self.raw = boto3.client("sagemaker", region_name=REGION)  # no hooks: moto's state as it is
        self.session = boto3.Session(region_name=REGION)
        self.failing: dict[str, tuple[str, str]] = {}  # config -> (mode, FailureReason)
        self.stuck: set[str] = set()  # configs an endpoint stays Updating on
        self.reverted: dict[str, str] = {}  # endpoint -> FailureReason of the update SageMaker reverted
        self.updates: list[tuple[str, str]] = []
        self.session.events.register("before-call.sagemaker.UpdateEndpoint", self._update_endpoint)
        self.session.events.register("after-call.sagemaker.DescribeEndpoint", self._describe_endpoint)

    def fail(self, config: str, reason: str, mode: str = "failed") -> None:
        """Updates to ``config`` fail: ``failed`` (endpoint Failed) or ``reverted`` (InService on the old config)."""
        self.failing[config] = (mode, reason)

    @staticmethod
    def _answer(status: int, parsed: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        from botocore.awsrequest import AWSResponse

        return AWSResponse("", status, {}, None), {**parsed, "ResponseMetadata": {"HTTPStatusCode": status}}

    def _update_endpoint(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        body = json.loads(params["body"])
        name, config = body["EndpointName"], body["EndpointConfigName"]
        self.updates.append((name, config))
        try:
            current = self.raw.describe_endpoint(EndpointName=name)
            self.raw.describe_endpoint_config(EndpointConfigName=config)
        except Exception as exc:  # the same refusal SageMaker gives, as moto words it
            return self._answer(400, {"Error": getattr(exc, "response", {}).get("Error", {})})
        if self.failing.get(current["EndpointConfigName"], ("",))[0] == "failed":
            message = f"Cannot update endpoint {name} in status Failed; delete it"
            return self._answer(400, {"Error": {"Code": "ValidationException", "Message": message}})
        mode, reason = self.failing.get(config, ("", ""))
        if mode == "reverted":
            self.reverted[name] = reason
        else:
            self.reverted.pop(name, None)
            self.raw.delete_endpoint(EndpointName=name)
            self.raw.create_endpoint(EndpointName=name, EndpointConfigName=config)
        return self._answer(200, {"EndpointArn": current["EndpointArn"]})

    def _describe_endpoint(self, parsed: dict[str, Any], **_: Any) -> None:
        config = parsed.get("EndpointConfigName")
        if config is None:
            return
        mode, reason = self.failing.get(config, ("", ""))
        if mode == "failed":
            parsed.update(EndpointStatus="Failed", FailureReason=reason)
        elif config in self.stuck:
            parsed["EndpointStatus"] = "Updating"
        elif parsed["EndpointName"] in self.reverted:
            parsed["FailureReason"] = self.reverted[parsed["EndpointName"]]


class FakeRegistry:
    """Releases of ``loans`` with a tiny MLflow model directory each; ``fetch`` is what the target downloads."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fetched: list[str] = []

    def release(self, version: str) -> Release:
        model_dir = self.root / f"v{version}"
        model_dir.mkdir(parents=True, exist_ok=True)
        blob = f"loans model v{version}".encode()
        (model_dir / "model.skops").write_bytes(blob)
        (model_dir / "MLmodel").write_text(
            yaml.safe_dump(
                {
                    "flavors": {
                        "python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.skops"},
                        "sklearn": {"pickled_model": "model.skops", "serialization_format": "skops"},
                    }
                }
            )
        )
        sha = hashlib.sha256(blob).hexdigest()
        return Release("loans", version, f"models:/loans/{version}", sha, run_id=f"run{version}")

    def fetch(self, release: Release) -> Path:
        self.fetched.append(release.version)
        return self.root / f"v{release.version}"


def loans_config(**sagemaker: Any) -> ModelConfig:
    """include/models/loans.yaml with its deploy section pointing at a SageMaker endpoint."""
    data = yaml.safe_load((MODELS_DIR / "loans.yaml").read_text())
    data["deploy"] = {
        "target": "sagemaker",
        "sagemaker": {"role_arn": ROLE, "image_uri": IMAGE, "region": REGION, **sagemaker},
    }
    return parse_model_config(data, "loans.yaml with a sagemaker deploy section")


@pytest.fixture
def aws(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SimpleNamespace:
    import boto3

    for k, v in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(k, v)
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    endpoint = f"loans-{uuid.uuid4().hex[:10]}"  # every test its own endpoint, models and configs
    sim = SimulatedSageMaker()
    registry = FakeRegistry(tmp_path / "registry")
    cfg = loans_config(
        endpoint_name=endpoint, artifact_uri=f"s3://{bucket}/sagemaker", wait_timeout_s=5, poll_interval_s=0.05
    )
    target = SageMakerTarget(cfg, fetch=registry.fetch, session=sim.session)
    return SimpleNamespace(
        url=s3_endpoint, bucket=bucket, endpoint=endpoint, sim=sim, registry=registry, cfg=cfg, target=target
    )


def ours(aws: SimpleNamespace, kind: str) -> list[str]:
    """Names of this test's models or endpoint configs on the moto server (the listing is the proof)."""
    spec_hash = aws.target.resource_name(Release("loans", "0", "", "0" * 64)).rsplit("-", 1)[1]
    if kind == "models":
        names = [m["ModelName"] for m in aws.sim.raw.list_models(MaxResults=100)["Models"]]
    else:
        names = [c["EndpointConfigName"] for c in aws.sim.raw.list_endpoint_configs(MaxResults=100)["EndpointConfigs"]]
    return sorted(n for n in names if n.endswith(spec_hash))


def tags_of(aws: SimpleNamespace, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in aws.sim.raw.list_tags(ResourceArn=arn)["Tags"]}


def test_first_deploy_creates_model_config_and_endpoint_with_tags_and_tarball(aws) -> None:
    target, sm = aws.target, aws.sim.raw
    assert isinstance(target, DeploymentTarget) and target.name == "sagemaker"
    assert target.current() is None and target.health() is False
    r1 = aws.registry.release("1")

    ep = target.deploy(r1)

    name = target.resource_name(r1)
    assert name.startswith(f"loans-v1-{r1.sha256[:8]}-")
    assert (ep.target, ep.model, ep.version, ep.address) == ("sagemaker", "loans", "1", aws.endpoint)
    assert ep.detail["status"] == "InService" and ep.detail["config"] == name and ep.detail["sha256"] == r1.sha256
    assert target.health() is True and target.current() == ep

    url = f"s3://{aws.bucket}/sagemaker/loans/v1/model.tar.gz"
    model = sm.describe_model(ModelName=name)
    assert model["ExecutionRoleArn"] == ROLE
    assert model["PrimaryContainer"]["Image"] == IMAGE and model["PrimaryContainer"]["ModelDataUrl"] == url
    assert model["PrimaryContainer"]["Environment"]["SLUICE_MODEL_VERSION"] == "1"
    config = sm.describe_endpoint_config(EndpointConfigName=name)
    assert config["ProductionVariants"][0]["ModelName"] == name
    assert sm.describe_endpoint(EndpointName=aws.endpoint)["EndpointConfigName"] == name
    wanted = {"sluice:model": "loans", "sluice:version": "1", "sluice:sha256": r1.sha256}
    for arn in (model["ModelArn"], config["EndpointConfigArn"]):
        assert wanted.items() <= tags_of(aws, arn).items()

    import boto3

    blob = boto3.client("s3").get_object(Bucket=aws.bucket, Key="sagemaker/loans/v1/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == ["MLmodel", "model.skops"]
        assert tar.extractfile("model.skops").read() == b"loans model v1"  # type: ignore[union-attr]
        assert {m.mtime for m in tar.getmembers()} == {0}
    assert blob == pack_model_dir(aws.registry.fetch(r1)), "the tarball is byte-for-byte reproducible"


def test_second_deploy_updates_the_endpoint_and_redeploying_creates_nothing_twice(aws) -> None:
    target, sm = aws.target, aws.sim.raw
    r1, r2 = aws.registry.release("1"), aws.registry.release("2")
    n1, n2 = target.resource_name(r1), target.resource_name(r2)
    target.deploy(r1)

    ep = target.deploy(r2)  # UpdateEndpoint: simulated, moto has none

    assert aws.sim.updates == [(aws.endpoint, n2)]
    assert ep.version == "2" and ep.detail["config"] == n2 and ep.detail["previous_config"] == n1
    assert target.current().version == "2"  # type: ignore[union-attr]
    assert ours(aws, "models") == sorted([n1, n2]) and ours(aws, "configs") == sorted([n1, n2])

    key = {"Bucket": aws.bucket, "Key": "sagemaker/loans/v2/model.tar.gz"}
    import boto3

    before = boto3.client("s3").head_object(**key)
    handle = target.start(r2)  # a retried task re-runs start for the same release
    assert handle["action"] == "unchanged" and handle["config"] == n2
    assert handle["previous_config"] == n1, "the config to roll back to survives a re-run"
    assert json.loads(json.dumps(handle)) == handle
    assert target.deploy(r2).version == "2"
    assert aws.sim.updates == [(aws.endpoint, n2)], "no second UpdateEndpoint"
    assert ours(aws, "models") == sorted([n1, n2]) and ours(aws, "configs") == sorted([n1, n2])
    after = boto3.client("s3").head_object(**key)
    assert after["LastModified"] == before["LastModified"] and after["ETag"] == before["ETag"], "no second upload"
    assert sm.describe_endpoint(EndpointName=aws.endpoint)["EndpointConfigName"] == n2


@pytest.mark.parametrize("mode", ["failed", "reverted"])
def test_a_failed_update_rolls_back_and_the_previous_version_keeps_serving(aws, mode: str) -> None:
    """The failure is simulated (moto endpoints never fail): SageMaker reports a failed update either as
    ``Failed`` on the new config or as ``InService`` on the previous config with a FailureReason."""
    target = aws.target
    r1, r2 = aws.registry.release("1"), aws.registry.release("2")
    n1, n2 = target.resource_name(r1), target.resource_name(r2)
    target.deploy(r1)
    reason = "The primary container for production variant AllTraffic did not pass the ping health check."
    aws.sim.fail(n2, reason, mode)

    with pytest.raises(DeploymentError) as err:
        target.deploy(r2)

    msg = str(err.value)
    assert f"loans v2 on endpoint {aws.endpoint} (config {n2}) failed" in msg and reason in msg
    assert f"Now serving: loans v1 (config {n1}, InService)" in msg
    if mode == "failed":
        assert "deleted and created again on the previous config" in msg
    else:
        assert f"SageMaker kept endpoint {aws.endpoint} on the previous config {n1}" in msg
    now = target.current()
    assert now is not None and now.version == "1" and now.detail["config"] == n1 and now.detail["status"] == "InService"
    assert target.health() is True
    assert aws.sim.raw.describe_endpoint(EndpointName=aws.endpoint)["EndpointConfigName"] == n1


def test_a_failed_first_deploy_deletes_the_endpoint(aws) -> None:
    """The failure is simulated (moto endpoints never fail); with no previous config nothing can serve."""
    r1 = aws.registry.release("1")
    aws.sim.fail(aws.target.resource_name(r1), "CannotStartContainerError", "failed")
    with pytest.raises(DeploymentError) as err:
        aws.target.deploy(r1)
    assert "CannotStartContainerError" in str(err.value) and "no previous config" in str(err.value)
    assert str(err.value).endswith("Now serving: nothing (the endpoint is deleted)")
    assert aws.target.current() is None


def test_rollback_step_updates_back_or_deletes_a_first_endpoint(aws) -> None:
    target = aws.target
    r1, r2 = aws.registry.release("1"), aws.registry.release("2")
    first = target.start(r1)
    assert first["previous_config"] is None and first["action"] == "created"
    target.wait(first)
    second = target.start(r2)
    assert target.wait(second)["config"] == target.resource_name(r2)

    back = target.rollback(second)

    assert back["action"] == "updated" and back["config"] == target.resource_name(r1)
    assert target.current().version == "1"  # type: ignore[union-attr]
    gone = target.rollback(first)
    assert gone["action"] == "deleted" and "no previous config" in gone["message"]
    assert target.current() is None and target.status()["status"] == "NotFound"
    assert target.rollback(first)["action"] == "none"


def test_wait_gives_up_after_its_timeout_with_a_clear_error(aws) -> None:
    """The endpoint staying ``Updating`` is simulated (moto endpoints settle at once)."""
    target = aws.target
    r1, r2 = aws.registry.release("1"), aws.registry.release("2")
    target.deploy(r1)
    aws.sim.stuck.add(target.resource_name(r2))
    handle = target.start(r2)
    with pytest.raises(DeploymentError, match=r"still Updating .* keeps config loans-v1-\S+ serving"):
        target.wait(handle, timeout=0.3)


def _queue_runtime_results(url: str, *bodies: str) -> None:
    """moto's documented way to set what SageMaker Runtime's InvokeEndpoint answers, in order."""
    results = [{"Body": b, "ContentType": "application/json"} for b in bodies]
    req = urllib.request.Request(
        f"{url}/moto-api/static/sagemaker/endpoint-results",
        data=json.dumps({"region": REGION, "results": results}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 201


def test_invoke_scores_records_and_rejects_a_bad_answer(aws) -> None:
    target = aws.target
    target.deploy(aws.registry.release("1"))
    _queue_runtime_results(aws.url, json.dumps({"predictions": [0.25, 0.75]}), "<html>upstream timed out</html>")

    assert target.invoke([{"age": 30, "loan_amount": 1000}, {"age": 51, "loan_amount": 25000}]) == [0.25, 0.75]
    with pytest.raises(DeploymentError) as err:
        target.invoke([{"age": 40}])
    assert aws.endpoint in str(err.value) and "HTTP 200" in str(err.value) and "upstream timed out" in str(err.value)
    assert target.invoke([]) == []


def test_aws_errors_name_the_call_the_resource_and_the_message(aws) -> None:
    cfg = loans_config(endpoint_name=aws.endpoint, artifact_uri="s3://no-such-bucket-for-sluice/models")
    target = SageMakerTarget(cfg, fetch=aws.registry.fetch, session=aws.sim.session)
    with pytest.raises(DeploymentError) as err:
        target.start(aws.registry.release("1"))
    msg = str(err.value)
    assert "PutObject" in msg and "s3://no-such-bucket-for-sluice/models/loans/v1/model.tar.gz" in msg
    assert "NoSuchBucket" in msg

    with pytest.raises(DeploymentError) as err:
        aws.target.rollback({"config": "x", "previous_config": "no-such-config"})
    msg = str(err.value)
    assert f"CreateEndpoint on endpoint {aws.endpoint}" in msg and "Could not find endpoint configuration" in msg


def test_a_release_whose_bytes_differ_is_refused_before_upload(aws) -> None:
    r1 = aws.registry.release("1")
    forged = Release(r1.model, r1.version, r1.model_uri, "0" * 64)
    with pytest.raises(DeploymentError, match="refusing to upload"):
        aws.target.start(forged)


def test_undeploy_deletes_the_endpoint_and_keeps_the_history(aws) -> None:
    target = aws.target
    target.deploy(aws.registry.release("1"))
    target.undeploy()
    assert target.current() is None and target.health() is False
    assert len(ours(aws, "models")) == 1 and len(ours(aws, "configs")) == 1
    target.undeploy()  # nothing left: a no-op
