"""Where the lakehouse lives: each run's local workdir by default, object storage when configured.

Why: "the same pipeline on any cloud" means the same code with another root. A pipeline whose
tables, checkpoints and logs all derive from one root URI (see `expert.lakehouse.MedallionLayout`)
moves from a laptop to S3, ADLS or GCS by changing that root, plus the filesystem connector the
engine needs for its scheme. Locally the S3 case is proven for real: an S3-compatible server on
loopback (moto's server mode) behind hadoop-aws's `s3a://` filesystem.

Settings (`.env` or the environment; both optional):
- `LAKEHOUSE_ROOT`: a URI such as `s3a://my-bucket/lakehouse`. Each pattern run gets
  `<LAKEHOUSE_ROOT>/<track>/<NN_slug>/<name>`. Unset: `<the run's workdir>/<name>`.
- `LAKEHOUSE_S3_ENDPOINT`: an S3-compatible endpoint (MinIO, Ceph, moto, …), e.g.
  `http://127.0.0.1:9000`: path-style requests, region from `AWS_REGION` (default us-east-1),
  credentials only from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (never the EC2 metadata
  service). Unset: AWS itself, with hadoop-aws's default credential chain.

Local Spark gets the connector for `s3a://` roots (hadoop-aws matching pyspark's bundled Hadoop).
For `abfss://` and `gs://` roots a local session needs connectors this project does not pin;
against a remote Spark (`SPARK_REMOTE`, Databricks) the cluster already has them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from expert.runtime.errors import ExpertError
from expert.runtime.redact import carries_credential, redact_url

ROOT_KEY = "LAKEHOUSE_ROOT"
S3_ENDPOINT_KEY = "LAKEHOUSE_S3_ENDPOINT"
KEYS = (ROOT_KEY, S3_ENDPOINT_KEY)
OBJECT_STORE_SCHEMES = ("s3a", "s3", "abfss", "abfs", "gs", "wasbs", "dbfs")


@dataclass(frozen=True)
class StorageSettings:
    """The lakehouse root (None: local workdirs) and an optional S3-compatible endpoint."""

    root: str | None = None
    s3_endpoint: str | None = None

    @property
    def scheme(self) -> str:
        """`s3a`, `abfss`, `gs`, … for a URI root; empty for a local root."""
        return self.root.split("://", 1)[0].lower() if self.root and "://" in self.root else ""

    @property
    def is_object_store(self) -> bool:
        return self.scheme in OBJECT_STORE_SCHEMES

    def spark_features(self) -> frozenset[str]:
        """Optional Spark connectors a session this process builds needs for the root."""
        if self.scheme == "s3a":
            return frozenset({"s3a"})
        if self.scheme in ("s3", "abfss", "abfs", "gs", "wasbs"):
            raise ExpertError(
                f"{ROOT_KEY}={self.root}: a local Spark session here only wires s3a:// object storage",
                "use s3a://bucket/prefix (hadoop-aws's S3 filesystem), or run against a Spark that "
                "already has the connector (SPARK_REMOTE, e.g. Databricks); see the README's "
                "'Running on a cluster' section for the abfss:// and gs:// connector settings",
            )
        return frozenset()

    def spark_conf(self) -> dict[str, str]:
        """Hadoop filesystem settings for the root's scheme (`spark.hadoop.*`)."""
        if self.scheme != "s3a" or not self.s3_endpoint:
            return {}
        return {
            "spark.hadoop.fs.s3a.endpoint": self.s3_endpoint,
            "spark.hadoop.fs.s3a.endpoint.region": os.environ.get("AWS_REGION", "us-east-1"),
            "spark.hadoop.fs.s3a.path.style.access": "true",
            "spark.hadoop.fs.s3a.connection.ssl.enabled": str(self.s3_endpoint.startswith("https://")).lower(),
            # A custom endpoint takes credentials from the environment only: hadoop-aws's default
            # chain would otherwise end by asking the cloud instance metadata service.
            "spark.hadoop.fs.s3a.aws.credentials.provider": (
                "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider"
            ),
        }


def storage_settings(environ: Mapping[str, str] | None = None, env_file: Path | None = None) -> StorageSettings:
    """Read the storage settings from `.env` and the environment (the environment wins)."""
    from expert.runtime.config import default_env_file, read_env_file, register_url_credentials

    env_file = env_file or default_env_file()
    merged = {k: v for k, v in read_env_file(env_file).items() if k in KEYS}
    merged.update({k: v for k, v in (os.environ if environ is None else environ).items() if k in KEYS})
    values = {k: v.strip() for k, v in merged.items() if v.strip()}
    for value in values.values():
        if carries_credential(value):
            register_url_credentials(value)
    if (endpoint := values.get(S3_ENDPOINT_KEY)) and not _is_http_url(endpoint):
        raise ExpertError(
            f"{S3_ENDPOINT_KEY}={redact_url(endpoint)} is not an http(s) URL with a port from 1 to 65535",
            f"write it as http://HOST:PORT (or https://…), or remove {S3_ENDPOINT_KEY} to use AWS itself",
        )
    return StorageSettings(root=values.get(ROOT_KEY), s3_endpoint=values.get(S3_ENDPOINT_KEY))


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port != 0


def lakehouse_root(track: str, stem: str, local_default: Path, settings: StorageSettings | None = None) -> str:
    """Where one pattern run keeps its tables: under `LAKEHOUSE_ROOT` when set, else `local_default`."""
    settings = settings or storage_settings()
    if not settings.root:
        return str(local_default.resolve())
    return "/".join([settings.root.rstrip("/"), track, stem, local_default.name])


def clear_root(root: str, settings: StorageSettings | None = None) -> None:
    """Delete everything under `root`, so a rerun starts from nothing (as a workdir does).

    Local paths and `s3a://` prefixes are cleared here (S3 through boto3, with the same endpoint
    and credentials Spark uses); other schemes are left to the cloud's own tooling.
    """
    settings = settings or storage_settings()
    if "://" not in root:
        shutil.rmtree(root, ignore_errors=True)
        return
    scheme, _, rest = root.partition("://")
    if scheme.lower() != "s3a":
        raise ExpertError(
            f"cannot clear {root}: only local paths and s3a:// prefixes are cleared by this project",
            "delete the prefix with your cloud's tooling, or point LAKEHOUSE_ROOT at a fresh prefix",
        )
    import boto3

    bucket, _, prefix = rest.partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    client = boto3.client(
        "s3", endpoint_url=settings.s3_endpoint or None, region_name=os.environ.get("AWS_REGION", "us-east-1")
    )
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for page in pages:
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
