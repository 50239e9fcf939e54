"""Where Delta tables live and how to reach their files: a local path or `s3://bucket/key`.

delta-rs takes object_store options (`AWS_ENDPOINT_URL`, keys, region) and Spark's executors
take a pyarrow filesystem built from the same options, so one dict describes the storage of a
table everywhere. That dict travels to executors inside a data source's options under
`STORAGE_OPTIONS_KEY`, whose name contains "secret" so Spark redacts it in plans and logs.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import pyarrow.fs as pafs

from iotlake.config import Settings

if TYPE_CHECKING:
    from deltalake import DeltaTable

STORAGE_OPTIONS_KEY = "secret.storageOptions"
VOLUMES = "/Volumes/"


def table_uri(settings: Settings, *parts: str) -> str:
    """The URI of a table under the target's lake root; local roots become absolute paths.

    Executors may run with another working directory, so a relative local root is resolved
    here, once, on the driver.
    """
    root = settings.lake_root
    if not is_local(root):
        return "/".join([root.rstrip("/"), *parts])
    return str(Path(local_path(root)).resolve().joinpath(*parts))


def landing_uri(settings: Settings, relative: str) -> str:
    """Where producers drop files for Auto Loader: beside the tables for a local lake, in the
    landing bucket for an S3 lake (as the originals keep landing zones apart from tables).
    A `/Volumes/...` path is the volume's folder (`volume_uri`)."""
    if relative.startswith(VOLUMES):
        return volume_uri(settings, relative)
    if is_local(settings.lake_root):
        return table_uri(settings, "landing", relative)
    return f"s3://{settings.lake.landing_bucket}/{relative.strip('/')}"


def volume_uri(settings: Settings, path: str) -> str:
    """A Unity Catalog volume path `/Volumes/<catalog>/<schema>/<volume>/...` as a folder:
    `<lake root>/<target>/Volumes/...` for a local lake, the landing bucket for an S3 one.
    Other paths are returned as they are."""
    if not path.startswith(VOLUMES):
        return path
    relative = path.removeprefix("/")
    if is_local(settings.lake_root):
        return table_uri(settings, *relative.split("/"))
    return f"s3://{settings.lake.landing_bucket}/{relative}"


def schema_location(settings: Settings, system: str, name: str) -> str:
    """A local directory for an Auto Loader source's inferred schemas.

    The source writes it from the driver, so it stays on local disk even for an S3 lake:
    beside the tables for a local lake, under the state directory otherwise.
    """
    if is_local(settings.lake_root):
        return table_uri(settings, system, "_schemas", name)
    root = settings.state_dir / "schemas" / settings.target / system / name
    return str(root.resolve())


def is_local(uri: str) -> bool:
    """True for a plain path or a `file:` URI; False for object stores such as `s3://`."""
    scheme = urlparse(uri).scheme
    return scheme in ("", "file") or len(scheme) == 1  # one letter: a Windows drive


def local_path(uri: str) -> str:
    """The filesystem path of a local URI (`file:///x` and `/x` both give `/x`)."""
    return urlparse(uri).path if uri.startswith("file:") else uri


def storage_options(settings: Settings, uri: str) -> dict[str, str]:
    """delta-rs storage options for `uri`: the configured S3 endpoint for `s3://`, else none."""
    if urlparse(uri).scheme in ("s3", "s3a"):
        return settings.aws.object_store_options()
    return {}


def open_table(settings: Settings, *parts: str) -> DeltaTable | None:
    """The Delta table at `table_uri(settings, *parts)` opened with delta-rs (no JVM), or
    None while nothing has created it: the one way the dashboard, alerts and CLI open one."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    uri = table_uri(settings, *parts)
    try:
        return DeltaTable(uri, storage_options=storage_options(settings, uri) or None)
    except TableNotFoundError:
        return None


def encode_options(options: dict[str, str]) -> str:
    """Storage options as one data source option value (options are flat strings)."""
    return json.dumps(options, sort_keys=True)


def decode_options(options: Mapping[str, str]) -> dict[str, str]:
    """The storage options carried in a data source's options, or none for local tables."""
    raw = options.get(STORAGE_OPTIONS_KEY)
    decoded: dict[str, str] = json.loads(raw) if raw else {}
    return decoded


def arrow_filesystem(uri: str, options: dict[str, str]) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem reaching `uri` and the path of `uri` inside it.

    Native pyarrow filesystems are used for local disk and S3 (fast, multipart uploads);
    other object stores go through delta-rs's own handler, which takes the same options.
    """
    parsed = urlparse(uri)
    if is_local(uri):
        return pafs.LocalFileSystem(), local_path(uri).rstrip("/") or "/"
    if parsed.scheme in ("s3", "s3a"):
        return _s3_filesystem(options), f"{parsed.netloc}{parsed.path}".rstrip("/")
    from deltalake.fs import DeltaStorageHandler

    return pafs.PyFileSystem(DeltaStorageHandler(uri, options)), ""


def _s3_filesystem(options: dict[str, str]) -> pafs.S3FileSystem:
    """An S3 filesystem for the endpoint and credentials named by object_store options."""
    upper = {key.upper(): value for key, value in options.items()}
    endpoint = upper.get("AWS_ENDPOINT_URL") or upper.get("AWS_ENDPOINT")
    kwargs: dict[str, object] = {
        "access_key": upper.get("AWS_ACCESS_KEY_ID"),
        "secret_key": upper.get("AWS_SECRET_ACCESS_KEY"),
        "session_token": upper.get("AWS_SESSION_TOKEN"),
        "region": upper.get("AWS_REGION") or upper.get("AWS_DEFAULT_REGION") or "us-east-1",
    }
    if endpoint:
        parsed = urlparse(endpoint)
        kwargs["endpoint_override"] = parsed.netloc or parsed.path
        kwargs["scheme"] = parsed.scheme or "https"
    return pafs.S3FileSystem(**{key: value for key, value in kwargs.items() if value})


def join(root: str, relative: str) -> str:
    """A file's path in the filesystem from the table root and its table-relative path."""
    return posixpath.join(root, relative) if root else relative
