"""Per-organization buckets on the S3 API (AWS S3, MinIO, moto's server, ...), over aiobotocore.

One bucket per organization, `<S3_BUCKET_PREFIX>-<organization uuid hex>`. Every call is safe to
repeat: creating a bucket that exists, deleting one that is gone or an object that is missing
all succeed. The client is opened lazily inside the running event loop and closed by `close()`;
the streaming helpers (multipart upload, chunked download) are in `app.s3.streams`.
"""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from app.settings import Settings

MARKER_KEY = ".warehouse-storage-check"
SNAPSHOT_PREFIX = "snapshots/"
MISSING_CODES = frozenset({"404", "NoSuchBucket", "NoSuchKey", "NotFound", "NoSuchUpload"})


class StorageCheckFailed(RuntimeError):
    """The bucket answered, but the marker object did not come back as written."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime | None = None


def is_missing(exc: BaseException) -> bool:
    """Is this the S3 API saying 'no such bucket/key'?"""
    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error", {})
    return str(error.get("Code", "")) in MISSING_CODES


def bucket_name(prefix: str, organization_id: uuid.UUID) -> str:
    return f"{prefix}-{organization_id.hex}"


class S3Storage:
    def __init__(
        self,
        *,
        endpoint_url: str | None,
        region: str,
        access_key_id: str | None,
        secret_access_key: str | None,
        bucket_prefix: str,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.bucket_prefix = bucket_prefix
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        self._config = AioConfig(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": 2, "mode": "standard"},
            # Path-style URLs work on every S3-compatible server; AWS picks its own default.
            s3={"addressing_style": "path"} if endpoint_url else None,
            max_pool_connections=20,
        )
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        secret = settings.s3_secret_access_key
        return cls(
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret is not None else None,
            bucket_prefix=settings.s3_bucket_prefix,
        )

    async def client(self) -> Any:
        if self._client is None:
            stack = contextlib.AsyncExitStack()
            self._client = await stack.enter_async_context(
                get_session().create_client(
                    "s3",
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                    aws_access_key_id=self._access_key_id,
                    aws_secret_access_key=self._secret_access_key,
                    config=self._config,
                )
            )
            self._stack = stack
        return self._client

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    def bucket_for(self, organization_id: uuid.UUID) -> str:
        return bucket_name(self.bucket_prefix, organization_id)

    # -- buckets ----------------------------------------------------------------------------

    async def bucket_exists(self, organization_id: uuid.UUID) -> bool:
        client = await self.client()
        try:
            await client.head_bucket(Bucket=self.bucket_for(organization_id))
        except ClientError as exc:
            if is_missing(exc):
                return False
            raise
        return True

    async def ensure_bucket(self, organization_id: uuid.UUID) -> str:
        """Create the organization's bucket if missing and prove it works: a marker object is
        written, read back and deleted. Returns the bucket name."""
        client = await self.client()
        bucket = self.bucket_for(organization_id)
        if not await self.bucket_exists(organization_id):
            kwargs: dict[str, Any] = {"Bucket": bucket}
            if self.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            try:
                await client.create_bucket(**kwargs)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code != "BucketAlreadyOwnedByYou":
                    raise
        token = secrets.token_hex(16).encode()
        await client.put_object(Bucket=bucket, Key=MARKER_KEY, Body=token)
        answer = await client.get_object(Bucket=bucket, Key=MARKER_KEY)
        async with answer["Body"] as body:
            read_back = await body.read()
        if read_back != token:
            raise StorageCheckFailed("the storage check object did not read back as written")
        await client.delete_object(Bucket=bucket, Key=MARKER_KEY)
        return bucket

    async def empty_bucket(self, organization_id: uuid.UUID, *, keep_prefix: str | None) -> int:
        """Delete every object (but those under `keep_prefix`) and every unfinished multipart
        upload; returns how many objects went. A missing bucket is already empty."""
        client = await self.client()
        bucket = self.bucket_for(organization_id)
        doomed = [
            o.key
            async for o in self.iter_objects(organization_id)
            if keep_prefix is None or not o.key.startswith(keep_prefix)
        ]
        for start in range(0, len(doomed), 1000):
            batch = doomed[start : start + 1000]
            try:
                await client.delete_objects(
                    Bucket=bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
            except ClientError as exc:
                if not is_missing(exc):
                    raise
        await self._abort_uploads(bucket, keep_prefix)
        return len(doomed)

    async def delete_bucket(self, organization_id: uuid.UUID) -> bool:
        """Delete every object, then the bucket; False when it was already gone."""
        if not await self.bucket_exists(organization_id):
            return False
        await self.empty_bucket(organization_id, keep_prefix=None)
        client = await self.client()
        try:
            await client.delete_bucket(Bucket=self.bucket_for(organization_id))
        except ClientError as exc:
            if is_missing(exc):
                return False
            raise
        return True

    async def _abort_uploads(self, bucket: str, keep_prefix: str | None) -> None:
        client = await self.client()
        try:
            answer = await client.list_multipart_uploads(Bucket=bucket)
        except ClientError as exc:
            if is_missing(exc):
                return
            raise
        for upload in answer.get("Uploads", []):
            key = upload["Key"]
            if keep_prefix is not None and key.startswith(keep_prefix):
                continue
            with contextlib.suppress(ClientError):
                await client.abort_multipart_upload(
                    Bucket=bucket, Key=key, UploadId=upload["UploadId"]
                )

    # -- objects ----------------------------------------------------------------------------

    async def iter_objects(
        self, organization_id: uuid.UUID, prefix: str = ""
    ) -> AsyncIterator[ObjectInfo]:
        client = await self.client()
        paginator = client.get_paginator("list_objects_v2")
        try:
            async for page in paginator.paginate(
                Bucket=self.bucket_for(organization_id), Prefix=prefix
            ):
                for item in page.get("Contents", []):
                    yield ObjectInfo(item["Key"], int(item["Size"]), item.get("LastModified"))
        except ClientError as exc:
            if not is_missing(exc):
                raise

    async def list_objects(self, organization_id: uuid.UUID, prefix: str = "") -> list[ObjectInfo]:
        return [o async for o in self.iter_objects(organization_id, prefix)]

    async def head(self, organization_id: uuid.UUID, key: str) -> ObjectInfo | None:
        client = await self.client()
        try:
            answer = await client.head_object(Bucket=self.bucket_for(organization_id), Key=key)
        except ClientError as exc:
            if is_missing(exc):
                return None
            raise
        return ObjectInfo(key, int(answer["ContentLength"]), answer.get("LastModified"))

    async def exists(self, organization_id: uuid.UUID, key: str) -> bool:
        return await self.head(organization_id, key) is not None

    async def delete_object(self, organization_id: uuid.UUID, key: str) -> None:
        client = await self.client()
        try:
            await client.delete_object(Bucket=self.bucket_for(organization_id), Key=key)
        except ClientError as exc:
            if not is_missing(exc):
                raise
