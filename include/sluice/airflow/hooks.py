"""Hooks: the lake (local or S3 through ``aws_default``), MLflow, alert mail via ``smtp_default``, and the
deployment target of a model (SageMaker through ``aws_default``)."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Sequence

from airflow.sdk import BaseHook

from sluice.alerts.email import Alert
from sluice.config import ModelConfig
from sluice.deployment.factory import target_for
from sluice.deployment.targets import DeploymentTarget
from sluice.lake import Lake, lake_root, open_lake

log = logging.getLogger(__name__)


class LakeHook(BaseHook):
    """Opens the lake named by ``SLUICE_LAKE``; an ``s3://`` lake gets its boto3 client from the AWS connection."""

    def __init__(self, lake_root: str | None = None, aws_conn_id: str = "aws_default") -> None:
        super().__init__()
        self.lake_root = lake_root
        self.aws_conn_id = aws_conn_id

    def get_conn(self) -> Lake:
        root = lake_root(self.lake_root)
        client = None
        if root.startswith("s3://"):
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            client = S3Hook(aws_conn_id=self.aws_conn_id).get_conn()
        return open_lake(root, s3_client=client)


class MlflowHook(BaseHook):
    """The MLflow tracking server and registry named by the ``mlflow_default`` connection."""

    def __init__(self, mlflow_conn_id: str = "mlflow_default") -> None:
        super().__init__()
        self.mlflow_conn_id = mlflow_conn_id

    def tracking_uri(self) -> str:
        conn = self.get_connection(self.mlflow_conn_id)
        scheme = conn.schema if conn.schema in ("http", "https") else "http"
        port = f":{conn.port}" if conn.port else ""
        return f"{scheme}://{conn.host}{port}"

    def get_conn(self):
        from sluice.registry.mlflow_registry import Registry

        return Registry(self.tracking_uri())


class AlertHook(BaseHook):
    """Sends an :class:`~sluice.alerts.email.Alert` (plain text + HTML) through an SMTP connection."""

    def __init__(self, smtp_conn_id: str = "smtp_default") -> None:
        super().__init__()
        self.smtp_conn_id = smtp_conn_id

    def send(self, alert: Alert, to: Sequence[str]) -> None:
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        try:
            with SmtpHook(smtp_conn_id=self.smtp_conn_id) as hook:
                sender = hook.from_email or "sluice@localhost"
                # The hook's own send_email_smtp only builds HTML mails; we want a plain-text part too.
                client = hook._smtp_client
                if client is None:  # entering the hook connects; None would be a provider change
                    raise RuntimeError(f"SMTP connection {self.smtp_conn_id!r}: the hook opened no client")
                client.send_message(alert.message(to, sender))
        except (OSError, smtplib.SMTPException) as exc:  # a bare "[Errno 111] Connection refused" names nothing
            conn = self.get_connection(self.smtp_conn_id)
            raise ConnectionError(
                f"alert {alert.subject!r} was NOT sent: SMTP server {conn.host}:{conn.port} of connection "
                f"{self.smtp_conn_id!r} failed ({type(exc).__name__}: {exc}); start it or fix "
                f"AIRFLOW_CONN_{self.smtp_conn_id.upper()}, then retry the task"
            ) from exc
        log.info("alert sent to %s: %s", ", ".join(to), alert.subject)


class DeploymentHook(BaseHook):
    """The deployment target a model's config chooses; SageMaker's boto3 session comes from the AWS connection."""

    def __init__(self, aws_conn_id: str = "aws_default") -> None:
        super().__init__()
        self.aws_conn_id = aws_conn_id

    def get_target(self, cfg: ModelConfig) -> DeploymentTarget:
        if cfg.deploy.target != "sagemaker" or cfg.deploy.sagemaker is None:
            return target_for(cfg)
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        from sluice.deployment.sagemaker import SageMakerTarget

        aws = AwsBaseHook(aws_conn_id=self.aws_conn_id, client_type="sagemaker")
        endpoint = aws.conn_config.endpoint_url
        return SageMakerTarget(
            cfg,
            session=aws.get_session(region_name=cfg.deploy.sagemaker.region),
            client_kwargs={"endpoint_url": endpoint} if endpoint else None,
        )
