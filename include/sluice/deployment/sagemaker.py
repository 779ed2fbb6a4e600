"""The ``sagemaker`` target: a SageMaker real-time endpoint, switched between releases with UpdateEndpoint.

    <artifact_uri>/<model>/v<version>/model.tar.gz     the release's MLflow model files, packed deterministically
    model + endpoint config  <model>-v<version>-<sha8>-<spec6>   one pair per release and endpoint settings,
                                                       tagged sluice:model / sluice:version / sluice:sha256
    endpoint  <deploy.sagemaker.endpoint_name>         the stable address; UpdateEndpoint moves it to a new config

A deploy is a few steps, usable one by one so an Airflow operator can defer while SageMaker works:
``start`` (upload, create what is missing, create or update the endpoint) returns a JSON-safe handle;
``wait`` (or the triggerer's ``SageMakerEndpointTrigger``) polls until the endpoint settles; ``finish``
turns the settled status into the new :class:`Endpoint`, or rolls back and raises :class:`DeploymentError`.
``deploy`` runs the three in a row for the CLI.

Every step is safe to re-run: resources that exist are reused (the name includes the release's sha256 and
a hash of the endpoint settings, so "exists" means "is the same"), and an endpoint already on the new
config is left alone. The config to roll back to is recorded on the new config (tag
``sluice:previous-config``), so a re-run of ``start`` after a crash still knows it.

How SageMaker reports a failed update: usually the endpoint goes back to ``InService`` on the *previous*
config with a ``FailureReason``; sometimes it ends ``Failed``, where deleting is the only call SageMaker
accepts. ``finish`` treats anything but "InService on the new config" as a failure, and ``rollback``
handles each case (nothing to undo, UpdateEndpoint back, or delete and re-create on the previous config).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import re
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sluice.config import ModelConfig, SageMakerTargetConfig
from sluice.deployment.targets import DeploymentError, Endpoint, Release

log = logging.getLogger(__name__)

#: Endpoint statuses SageMaker is still working in; anything else is where it settled.
TRANSITIONAL = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})
MODEL_TAG, VERSION_TAG, SHA_TAG, PREVIOUS_TAG = (
    "sluice:model",
    "sluice:version",
    "sluice:sha256",
    "sluice:previous-config",
)
VARIANT = "AllTraffic"
NOT_FOUND = "NotFound"  # status() of an endpoint that does not exist


def pack_model_dir(model_dir: Path) -> bytes:
    """``model.tar.gz`` of a model directory, byte-identical for identical files (sorted, no times or owners).

    Entries are relative to the directory, so SageMaker extracts the MLmodel file to ``/opt/ml/model/MLmodel``.
    """
    buf = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for path in sorted(model_dir.rglob("*"), key=lambda p: p.relative_to(model_dir).as_posix()):
            info = tarfile.TarInfo(path.relative_to(model_dir).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                data = path.read_bytes()
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


def _error_code(exc: BaseException) -> tuple[str, str]:
    err = getattr(exc, "response", {}).get("Error", {})
    return str(err.get("Code", "")), str(err.get("Message", ""))


def _is_missing(exc: BaseException) -> bool:
    code, message = _error_code(exc)
    return code in ("404", "NoSuchKey", "NotFound") or (code == "ValidationException" and "Could not find" in message)


def _is_duplicate(exc: BaseException) -> bool:
    code, message = _error_code(exc)
    return code == "ValidationException" and "already exist" in message


class SageMakerTarget:
    """Deploys releases of one model to the SageMaker endpoint named in ``deploy.sagemaker``."""

    name = "sagemaker"

    def __init__(
        self,
        cfg: ModelConfig,
        *,
        fetch: Callable[[Release], Path] | None = None,
        session: Any | None = None,
        client_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if cfg.deploy.sagemaker is None:
            raise DeploymentError(
                f"model {cfg.name!r} has no deploy.sagemaker section (endpoint_name, role_arn, image_uri, artifact_uri)"
            )
        self.cfg = cfg
        self.sm: SageMakerTargetConfig = cfg.deploy.sagemaker
        self.endpoint_name = self.sm.endpoint_name
        self._fetch = fetch
        self._session = session
        self._client_kwargs = dict(client_kwargs or {})  # e.g. endpoint_url from an Airflow AWS connection
        self._clients: dict[str, Any] = {}

    # ---- AWS plumbing -------------------------------------------------------------------------------------

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            if self._session is None:
                import boto3

                self._session = boto3.Session()
            self._clients[service] = self._session.client(service, region_name=self.sm.region, **self._client_kwargs)
        return self._clients[service]

    def _aws(self, service: str, method: str, resource: str, *, missing_ok: bool = False, **kwargs: Any) -> Any:
        """One AWS call; a failure becomes a DeploymentError naming the call, the resource and AWS's message.

        With ``missing_ok`` a "does not exist" answer returns None instead.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        client = self._client(service)
        call = client.meta.method_to_api_mapping.get(method, method)
        try:
            return getattr(client, method)(**kwargs)
        except ClientError as exc:
            if missing_ok and _is_missing(exc):
                return None
            code, message = _error_code(exc)
            raise DeploymentError(
                f"{service} {call} on {resource} failed ({self.sm.region}): {code or 'error'}: {message or exc}"
            ) from exc
        except BotoCoreError as exc:
            raise DeploymentError(f"{service} {call} on {resource} failed ({self.sm.region}): {exc}") from exc

    def _create_once(self, method: str, resource: str, **kwargs: Any) -> None:
        """Create a SageMaker resource; "already exists" (a concurrent or earlier run) counts as done."""
        try:
            self._aws("sagemaker", method, resource, **kwargs)
        except DeploymentError as exc:
            if not _is_duplicate(exc.__cause__ or exc):
                raise
            log.info("%s already exists; reusing it", resource)

    def _describe_endpoint(self) -> dict[str, Any] | None:
        desc: dict[str, Any] | None = self._aws(
            "sagemaker",
            "describe_endpoint",
            f"endpoint {self.endpoint_name}",
            missing_ok=True,
            EndpointName=self.endpoint_name,
        )
        return desc

    def _config_tags(self, config: str) -> dict[str, str]:
        desc = self._aws(
            "sagemaker",
            "describe_endpoint_config",
            f"endpoint config {config}",
            missing_ok=True,
            EndpointConfigName=config,
        )
        if desc is None:
            return {}
        out = self._aws(
            "sagemaker", "list_tags", f"endpoint config {config}", ResourceArn=desc["EndpointConfigArn"], MaxResults=100
        )
        return {t["Key"]: t["Value"] for t in out.get("Tags", [])}

    def _set_previous(self, config: str, previous: str | None) -> None:
        arn = self._aws(
            "sagemaker", "describe_endpoint_config", f"endpoint config {config}", EndpointConfigName=config
        )["EndpointConfigArn"]
        self._aws("sagemaker", "delete_tags", f"endpoint config {config}", ResourceArn=arn, TagKeys=[PREVIOUS_TAG])
        if previous:
            self._aws(
                "sagemaker",
                "add_tags",
                f"endpoint config {config}",
                ResourceArn=arn,
                Tags=[{"Key": PREVIOUS_TAG, "Value": previous}],
            )

    # ---- naming and artifact ------------------------------------------------------------------------------

    def resource_name(self, release: Release) -> str:
        """Model and endpoint-config name: model, version, sha prefix and a hash of the endpoint settings.

        SageMaker models and configs are immutable, so a changed image, role or instance setting must give a
        new name rather than silently reuse the old resource.
        """
        spec = {
            k: getattr(self.sm, k)
            for k in ("endpoint_name", "role_arn", "image_uri", "artifact_uri", "instance_type", "instance_count")
        }
        spec_hash = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:6]
        version = re.sub(r"[^a-zA-Z0-9]+", "-", release.version).strip("-")
        suffix = f"-v{version}-{release.sha256[:8]}-{spec_hash}"
        base = re.sub(r"[^a-zA-Z0-9]+", "-", release.model).strip("-")[: 63 - len(suffix)].rstrip("-")
        return f"{base}{suffix}"

    def artifact_url(self, release: Release) -> str:
        bucket, prefix = _split_s3(self.sm.artifact_uri)
        key = "/".join(p for p in (prefix, release.model, f"v{release.version}", "model.tar.gz") if p)
        return f"s3://{bucket}/{key}"

    def _model_dir(self, release: Release) -> Path:
        from sluice.registry.artifact import model_dir_sha256

        if self._fetch is None:
            from sluice.registry.artifact import fetch_release

            self._fetch = fetch_release
        model_dir = Path(self._fetch(release))
        name, sha = model_dir_sha256(model_dir)
        if sha != release.sha256:
            raise DeploymentError(
                f"{release.model} v{release.version}: {model_dir / name} has sha256 {sha[:16]}..., but the release "
                f"says {release.sha256[:16]}...; refusing to upload it to SageMaker"
            )
        return model_dir

    def _upload(self, release: Release, model_dir: Path) -> str:
        url = self.artifact_url(release)
        bucket, key = _split_s3(url)
        blob = pack_model_dir(model_dir)
        tar_sha = hashlib.sha256(blob).hexdigest()
        head = self._aws("s3", "head_object", url, missing_ok=True, Bucket=bucket, Key=key)
        if head is not None:
            meta = head.get("Metadata", {})
            if meta.get("release-sha256") not in (None, release.sha256):
                raise DeploymentError(
                    f"{url} already holds {release.model} v{release.version} with model sha256 "
                    f"{meta['release-sha256'][:16]}..., not {release.sha256[:16]}...; refusing to overwrite an "
                    "artifact a SageMaker model may be serving"
                )
            if meta.get("tar-sha256") == tar_sha:
                log.info("%s already holds these bytes (sha256 %s); not uploading again", url, tar_sha[:16])
                return url
        log.info("uploading %s (%.1f kB, sha256 %s)", url, len(blob) / 1024, tar_sha[:16])
        self._aws(
            "s3",
            "put_object",
            url,
            Bucket=bucket,
            Key=key,
            Body=blob,
            ContentType="application/gzip",
            Metadata={"release-sha256": release.sha256, "tar-sha256": tar_sha},
        )
        return url

    # ---- the steps ----------------------------------------------------------------------------------------

    def start(self, release: Release) -> dict[str, Any]:
        """Upload, create the model and config if missing, create or update the endpoint; returns the handle.

        The handle (JSON-safe) names the endpoint, the new config, the config to roll back to (None if the
        endpoint is new) and the release. Re-running for the same release creates nothing twice.
        """
        if release.model != self.cfg.name:
            raise DeploymentError(f"release of model {release.model!r} given to the target of model {self.cfg.name!r}")
        name = self.resource_name(release)
        model_dir = self._model_dir(release)
        data_url = self._upload(release, model_dir)
        tags = [
            {"Key": MODEL_TAG, "Value": release.model},
            {"Key": VERSION_TAG, "Value": release.version},
            {"Key": SHA_TAG, "Value": release.sha256},
        ]
        if self._aws("sagemaker", "describe_model", f"model {name}", missing_ok=True, ModelName=name) is None:
            log.info("creating SageMaker model %s (image %s)", name, self.sm.image_uri)
            self._create_once(
                "create_model",
                f"model {name}",
                ModelName=name,
                ExecutionRoleArn=self.sm.role_arn,
                PrimaryContainer={
                    "Image": self.sm.image_uri,
                    "ModelDataUrl": data_url,
                    "Environment": {
                        "SLUICE_MODEL": release.model,
                        "SLUICE_MODEL_VERSION": release.version,
                        "SLUICE_MODEL_SHA256": release.sha256,
                    },
                },
                Tags=tags,
            )
        else:
            log.info("SageMaker model %s exists; reusing it", name)
        resource = f"endpoint config {name}"
        if (
            self._aws("sagemaker", "describe_endpoint_config", resource, missing_ok=True, EndpointConfigName=name)
            is None
        ):
            log.info("creating endpoint config %s (%s x %s)", name, self.sm.instance_count, self.sm.instance_type)
            self._create_once(
                "create_endpoint_config",
                resource,
                EndpointConfigName=name,
                ProductionVariants=[
                    {
                        "VariantName": VARIANT,
                        "ModelName": name,
                        "InitialInstanceCount": self.sm.instance_count,
                        "InstanceType": self.sm.instance_type,
                        "InitialVariantWeight": 1.0,
                    }
                ],
                Tags=tags,
            )
        else:
            log.info("endpoint config %s exists; reusing it", name)

        desc = self._describe_endpoint()
        endpoint = self.endpoint_name
        if desc is None:
            previous, action = None, "created"
            self._set_previous(name, None)
            log.info("creating endpoint %s on config %s", endpoint, name)
            self._create_once(
                "create_endpoint",
                f"endpoint {endpoint}",
                EndpointName=endpoint,
                EndpointConfigName=name,
                Tags=[{"Key": MODEL_TAG, "Value": release.model}],
            )
        elif desc["EndpointConfigName"] == name:
            previous, action = self._config_tags(name).get(PREVIOUS_TAG) or None, "unchanged"
            log.info(
                "endpoint %s is already on config %s (%s); nothing to start", endpoint, name, desc["EndpointStatus"]
            )
        elif desc["EndpointStatus"] in TRANSITIONAL:
            raise DeploymentError(
                f"endpoint {endpoint} is {desc['EndpointStatus']} on config {desc['EndpointConfigName']}; SageMaker "
                f"accepts no update until it settles. Retry the deploy of {release.model} v{release.version} later"
            )
        elif desc["EndpointStatus"] == "Failed":
            previous, action = None, "recreated"
            self._set_previous(name, None)
            log.info("endpoint %s is Failed (nothing serves); re-creating it on config %s", endpoint, name)
            self._recreate(name)
        else:
            previous, action = desc["EndpointConfigName"], "updated"
            self._set_previous(name, previous)
            log.info("updating endpoint %s from config %s to %s", endpoint, previous, name)
            self._aws(
                "sagemaker", "update_endpoint", f"endpoint {endpoint}", EndpointName=endpoint, EndpointConfigName=name
            )
        return {
            "endpoint": endpoint,
            "region": self.sm.region,
            "config": name,
            "previous_config": previous,
            "action": action,
            "model_data_url": data_url,
            "release": release.to_dict(),
        }

    def status(self) -> dict[str, Any]:
        """``{"status", "failure_reason", "config"}`` of the endpoint; status ``NotFound`` if it does not exist."""
        desc = self._describe_endpoint()
        if desc is None:
            return {"endpoint": self.endpoint_name, "status": NOT_FOUND, "failure_reason": None, "config": None}
        return {
            "endpoint": self.endpoint_name,
            "status": desc["EndpointStatus"],
            "failure_reason": desc.get("FailureReason"),
            "config": desc.get("EndpointConfigName"),
        }

    def wait(self, handle: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Poll until the endpoint leaves Creating/Updating/...; the settled status. Raises on timeout."""
        limit = self.sm.wait_timeout_s if timeout is None else timeout
        t0, polls = time.monotonic(), 0
        while True:
            st = self.status()
            polls += 1
            elapsed = time.monotonic() - t0
            if st["status"] not in TRANSITIONAL:
                log.info(
                    "endpoint %s settled: %s on config %s after %.1fs",
                    self.endpoint_name,
                    st["status"],
                    st["config"],
                    elapsed,
                )
                return {**st, "polls": polls, "elapsed_s": round(elapsed, 1)}
            if elapsed >= limit:
                prev = handle.get("previous_config")
                raise DeploymentError(
                    f"endpoint {self.endpoint_name} is still {st['status']} {elapsed:.0f}s after the switch to config "
                    f"{handle.get('config')} (limit deploy.sagemaker.wait_timeout_s={limit:g}s); nothing was rolled "
                    "back: "
                    + (
                        f"SageMaker keeps config {prev} serving until the update completes or fails"
                        if prev
                        else "nothing serves until SageMaker finishes creating the endpoint"
                    )
                )
            log.info(
                "endpoint %s is %s; next check in %.0fs", self.endpoint_name, st["status"], self.sm.poll_interval_s
            )
            time.sleep(min(self.sm.poll_interval_s, max(0.0, limit - elapsed)))

    def _wait_gone(self) -> None:
        deadline = time.monotonic() + self.sm.wait_timeout_s
        while self._describe_endpoint() is not None:
            if time.monotonic() >= deadline:
                raise DeploymentError(
                    f"endpoint {self.endpoint_name} still exists {self.sm.wait_timeout_s:g}s after DeleteEndpoint"
                )
            time.sleep(self.sm.poll_interval_s)

    def _recreate(self, config: str) -> None:
        """Delete the endpoint (the only call SageMaker accepts on a Failed one) and create it on ``config``."""
        self._aws("sagemaker", "delete_endpoint", f"endpoint {self.endpoint_name}", EndpointName=self.endpoint_name)
        self._wait_gone()
        self._aws(
            "sagemaker",
            "create_endpoint",
            f"endpoint {self.endpoint_name}",
            EndpointName=self.endpoint_name,
            EndpointConfigName=config,
        )

    def rollback(self, handle: dict[str, Any]) -> dict[str, Any]:
        """Put the endpoint back on the handle's previous config, or delete it if there was none.

        ``action`` says what was done: ``unchanged`` (SageMaker already kept the previous config), ``updated``
        (UpdateEndpoint back), ``recreated`` (the endpoint was Failed: deleted and created on the previous
        config), ``deleted`` (no previous config) or ``none`` (no endpoint and nothing to go back to).
        """
        endpoint, prev, failed = self.endpoint_name, handle.get("previous_config"), handle.get("config")
        desc = self._describe_endpoint()
        if prev is None:
            if desc is None:
                action, message = "none", f"there was no previous config and endpoint {endpoint} does not exist"
            else:
                self._aws("sagemaker", "delete_endpoint", f"endpoint {endpoint}", EndpointName=endpoint)
                action, message = "deleted", f"there was no previous config, so endpoint {endpoint} was deleted"
        elif desc is None:
            self._aws(
                "sagemaker", "create_endpoint", f"endpoint {endpoint}", EndpointName=endpoint, EndpointConfigName=prev
            )
            action, message = (
                "recreated",
                f"endpoint {endpoint} was gone; created it again on the previous config {prev}",
            )
        elif desc["EndpointConfigName"] == prev and desc["EndpointStatus"] != "Failed":
            action, message = "unchanged", f"SageMaker kept endpoint {endpoint} on the previous config {prev}"
        elif desc["EndpointStatus"] == "Failed":
            self._recreate(prev)
            action = "recreated"
            message = (
                f"endpoint {endpoint} was Failed (SageMaker only allows deleting a failed endpoint), so it was "
                f"deleted and created again on the previous config {prev}"
            )
        else:
            self._aws(
                "sagemaker", "update_endpoint", f"endpoint {endpoint}", EndpointName=endpoint, EndpointConfigName=prev
            )
            action, message = "updated", f"endpoint {endpoint} was updated back to the previous config {prev}"
        log.info("rollback from config %s: %s", failed, message)
        return {"endpoint": endpoint, "action": action, "config": prev, "failed_config": failed, "message": message}

    def finish(self, handle: dict[str, Any], final: dict[str, Any]) -> Endpoint:
        """The new Endpoint if ``final`` (from :meth:`wait` or the trigger) is InService on the new config.

        Otherwise roll back, wait for the rollback, and raise a DeploymentError saying what failed and what
        serves now. A ``timeout`` or ``error`` status raises without touching the endpoint.
        """
        rel = handle["release"]
        what = f"{rel['model']} v{rel['version']} on endpoint {self.endpoint_name} (config {handle['config']})"
        status = final.get("status")
        if status == "InService" and final.get("config") == handle["config"]:
            log.info("%s is InService", what)
            return self.current()  # type: ignore[return-value]
        if status in ("timeout", "error") or status in TRANSITIONAL:
            raise DeploymentError(
                f"{what} did not settle: {status}: {final.get('message') or final.get('failure_reason') or ''}; "
                "nothing was rolled back"
            )
        reason = final.get("failure_reason") or "SageMaker gave no FailureReason"
        failed = f"{what} failed: the endpoint is {status} on config {final.get('config')}: {reason}"
        try:
            rb = self.rollback(handle)
            if rb["action"] in ("updated", "recreated"):
                still = handle["config"] if rb["action"] == "updated" else None
                self.wait({"config": rb["config"], "previous_config": still})
            now = self.current()
        except DeploymentError as exc:
            raise DeploymentError(f"{failed}. The rollback failed too: {exc}") from exc
        if now is None or rb["action"] in ("deleted", "none"):
            serving = "nothing (the endpoint is deleted)"
        else:
            serving = f"{now.model} v{now.version} (config {now.detail['config']}, {now.detail['status']})"
        raise DeploymentError(f"{failed}. Rollback: {rb['message']}. Now serving: {serving}")

    # ---- the DeploymentTarget protocol --------------------------------------------------------------------

    def deploy(self, release: Release) -> Endpoint:
        handle = self.start(release)
        return self.finish(handle, self.wait(handle))

    def health(self) -> bool:
        return bool(self.status()["status"] == "InService")

    def current(self) -> Endpoint | None:
        desc = self._describe_endpoint()
        if desc is None:
            return None
        config = desc.get("EndpointConfigName") or ""
        tags = self._config_tags(config) if config else {}
        return Endpoint(
            target=self.name,
            model=self.cfg.name,
            version=tags.get(VERSION_TAG),
            address=self.endpoint_name,
            detail={
                "status": desc["EndpointStatus"],
                "config": config,
                "sha256": tags.get(SHA_TAG),
                "previous_config": tags.get(PREVIOUS_TAG),
                "failure_reason": desc.get("FailureReason"),
                "region": self.sm.region,
            },
        )

    def undeploy(self) -> None:
        """Delete the endpoint (models and configs stay: they are the rollback history)."""
        if self._describe_endpoint() is None:
            log.info("endpoint %s does not exist; nothing to undeploy", self.endpoint_name)
            return
        log.info("deleting endpoint %s", self.endpoint_name)
        self._aws("sagemaker", "delete_endpoint", f"endpoint {self.endpoint_name}", EndpointName=self.endpoint_name)

    # ---- scoring ------------------------------------------------------------------------------------------

    def invoke(self, records: list[dict[str, Any]]) -> list[float]:
        """Score records on the endpoint: JSON ``{"records": [...]}`` in, ``{"predictions": [...]}`` out."""
        if not records:
            return []
        endpoint = self.endpoint_name
        resp = self._aws(
            "sagemaker-runtime",
            "invoke_endpoint",
            f"endpoint {endpoint}",
            EndpointName=endpoint,
            ContentType="application/json",
            Accept="application/json",
            Body=json.dumps({"records": records}, default=str).encode(),
        )
        raw = resp["Body"].read()
        code = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
        try:
            predictions = json.loads(raw)["predictions"]
            if not isinstance(predictions, list):
                raise TypeError(f"predictions is a {type(predictions).__name__}, not a list")
            values = [float(p) for p in predictions]
        except (ValueError, TypeError, KeyError) as exc:
            raise DeploymentError(
                f"endpoint {endpoint} answered HTTP {code} ({resp.get('ContentType')}) with a body that is not "
                f'{{"predictions": [numbers]}} ({type(exc).__name__}: {exc}): {raw[:300]!r}'
            ) from None
        if len(values) != len(records):
            raise DeploymentError(
                f"endpoint {endpoint} answered HTTP {code} with {len(values)} predictions for {len(records)} records: "
                f"{raw[:300]!r}"
            )
        return values
