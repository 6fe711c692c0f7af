"""Streaming objects in and out of a bucket with bounded memory.

`upload_stream` turns an async byte iterator into a multipart upload, hashing (sha256) and
counting on the way; at most `concurrency` parts are in flight, so memory stays near
`(concurrency + 1) * part_size` whatever the object's size. A failure aborts the upload, so no
half object is ever visible. `download_stream` yields an object's bytes in chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from app.s3.client import S3Storage

# S3 wants parts of at least 5 MiB (but the last); 10,000 parts of 16 MiB = 156 GiB objects.
PART_SIZE = 16 * 1024 * 1024
CONCURRENCY = 3
CHUNK_SIZE = 1024 * 1024


@dataclass(frozen=True)
class Uploaded:
    size_bytes: int
    sha256: str


async def upload_stream(
    storage: S3Storage,
    organization_id: uuid.UUID,
    key: str,
    chunks: AsyncIterable[bytes],
    *,
    part_size: int = PART_SIZE,
    concurrency: int = CONCURRENCY,
) -> Uploaded:
    client = await storage.client()
    bucket = storage.bucket_for(organization_id)
    created = await client.create_multipart_upload(Bucket=bucket, Key=key)
    upload_id = created["UploadId"]
    digest = hashlib.sha256()
    size = 0
    etags: dict[int, str] = {}
    slots = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()

    async def send(number: int, data: bytes) -> None:
        try:
            answer = await client.upload_part(
                Bucket=bucket, Key=key, PartNumber=number, UploadId=upload_id, Body=data
            )
            etags[number] = answer["ETag"]
        finally:
            slots.release()

    async def start(number: int, data: bytes) -> None:
        await slots.acquire()
        for task in [t for t in tasks if t.done()]:
            tasks.discard(task)
            task.result()  # a failed part stops the upload now, not at the end
        tasks.add(asyncio.create_task(send(number, data)))

    try:
        pending: list[bytes] = []
        pending_size = 0
        number = 0
        async for chunk in chunks:
            if not chunk:
                continue
            digest.update(chunk)
            size += len(chunk)
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= part_size:
                data = b"".join(pending)
                pending.clear()
                while len(data) >= part_size:
                    number += 1
                    await start(number, data[:part_size])
                    data = data[part_size:]
                pending_size = len(data)
                if data:
                    pending.append(data)
        if pending or number == 0:
            number += 1
            await start(number, b"".join(pending))
            pending.clear()
        await asyncio.gather(*tasks)
        await client.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]},
        )
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.shield(
                client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            )
        raise
    return Uploaded(size_bytes=size, sha256=digest.hexdigest())


async def download_stream(
    storage: S3Storage,
    organization_id: uuid.UUID,
    key: str,
    *,
    chunk_size: int = CHUNK_SIZE,
) -> AsyncIterator[bytes]:
    client = await storage.client()
    answer = await client.get_object(Bucket=storage.bucket_for(organization_id), Key=key)
    async with answer["Body"] as body:
        while True:
            chunk = await body.read(chunk_size)
            if not chunk:
                return
            yield chunk
