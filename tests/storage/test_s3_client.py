"""The S3 client against the real embedded S3 server: buckets, streamed objects, digests."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from app.s3 import S3Storage, download_stream, upload_stream
from app.s3.client import MARKER_KEY
from app.settings import Settings

MIB = 1024 * 1024


@pytest.fixture
async def storage(settings: Settings) -> AsyncIterator[S3Storage]:
    s3 = S3Storage.from_settings(settings)
    try:
        yield s3
    finally:
        await s3.close()


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_bucket_is_created_once_proved_and_deleted(
    storage: S3Storage, settings: Settings
) -> None:
    org = uuid.uuid4()
    assert storage.bucket_for(org) == f"{settings.s3_bucket_prefix}-{org.hex}"
    assert not await storage.bucket_exists(org)
    assert await storage.ensure_bucket(org) == storage.bucket_for(org)
    assert await storage.ensure_bucket(org) == storage.bucket_for(org)  # again: harmless
    assert await storage.bucket_exists(org)
    # The marker object proved the bucket and is gone again.
    assert await storage.list_objects(org) == []
    assert not await storage.exists(org, MARKER_KEY)
    assert await storage.delete_bucket(org)
    assert not await storage.bucket_exists(org)
    assert not await storage.delete_bucket(org)


async def test_multipart_upload_streams_and_hashes(storage: S3Storage) -> None:
    org = uuid.uuid4()
    await storage.ensure_bucket(org)
    data = os.urandom(11 * MIB + 12345)
    uploaded = await upload_stream(
        storage, org, "snapshots/x.dump", chunks_of(data, 64 * 1024), part_size=5 * MIB
    )
    assert uploaded.size_bytes == len(data)
    assert uploaded.sha256 == hashlib.sha256(data).hexdigest()
    head = await storage.head(org, "snapshots/x.dump")
    assert head is not None and head.size == len(data)
    back = b"".join([c async for c in download_stream(storage, org, "snapshots/x.dump")])
    assert back == data
    await storage.delete_bucket(org)


async def test_empty_and_small_objects(storage: S3Storage) -> None:
    org = uuid.uuid4()
    await storage.ensure_bucket(org)
    for key, data in (("a/empty", b""), ("a/small", b"hello")):
        uploaded = await upload_stream(storage, org, key, chunks_of(data, 2))
        assert uploaded.sha256 == hashlib.sha256(data).hexdigest()
        assert b"".join([c async for c in download_stream(storage, org, key)]) == data
    await storage.delete_bucket(org)


async def test_failed_upload_leaves_no_object(storage: S3Storage) -> None:
    org = uuid.uuid4()
    await storage.ensure_bucket(org)

    async def breaks() -> AsyncIterator[bytes]:
        yield os.urandom(6 * MIB)
        raise RuntimeError("the dump died")

    with pytest.raises(RuntimeError):
        await upload_stream(storage, org, "snapshots/broken.dump", breaks(), part_size=5 * MIB)
    assert not await storage.exists(org, "snapshots/broken.dump")
    client = await storage.client()
    uploads = await client.list_multipart_uploads(Bucket=storage.bucket_for(org))
    assert uploads.get("Uploads", []) == []
    await storage.delete_bucket(org)


async def test_empty_bucket_keeps_snapshots(storage: S3Storage) -> None:
    org = uuid.uuid4()
    await storage.ensure_bucket(org)
    for key in ("snapshots/1.dump", "exports/a.parquet", "tmp/b"):
        await upload_stream(storage, org, key, chunks_of(b"data", 4))
    assert await storage.empty_bucket(org, keep_prefix="snapshots/") == 2
    assert [o.key for o in await storage.list_objects(org)] == ["snapshots/1.dump"]
    await storage.delete_bucket(org)
    assert not await storage.bucket_exists(org)
