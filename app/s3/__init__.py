"""The S3 client: per-organization buckets and streamed objects (API.md §9)."""

from app.s3.client import SNAPSHOT_PREFIX, ObjectInfo, S3Storage, bucket_name, is_missing
from app.s3.streams import Uploaded, download_stream, upload_stream

__all__ = [
    "SNAPSHOT_PREFIX",
    "ObjectInfo",
    "S3Storage",
    "Uploaded",
    "bucket_name",
    "download_stream",
    "is_missing",
    "upload_stream",
]
