"""Attachments: multipart upload (up to 50 MiB) and streamed download, proxied to RecordService.

User files are served so that a browser never runs them (docs/security.md): every
download is `Content-Disposition: attachment`, `X-Content-Type-Options: nosniff`
and `Content-Security-Policy: default-src 'none'; sandbox`; only passive content
types (images that cannot script, PDF, plain text, audio, video, archives and
office documents) keep their type, anything else (text/html, image/svg+xml,
XML, JavaScript, unknown types) goes out as application/octet-stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from apiflask import APIBlueprint
from flask import Response, stream_with_context

from crm.record.v1 import record_pb2
from gateway.auth import auth as token_auth
from gateway.auth import current_principal
from gateway.context import gateway
from gateway.errors import ApiError
from gateway.responses import json_response, parse
from gateway.routes._proxy import record_call
from gateway.schemas import FreeObject, UploadIn

bp = APIBlueprint("attachments", __name__, tag={"name": "Attachments", "description": "File upload and download"})


@bp.post("/attachments")
@bp.auth_required(token_auth)
@bp.input(UploadIn, location="form_and_files", arg_name="body")
@bp.output(FreeObject, status_code=201)
@bp.doc(
    summary="Upload a file",
    description="multipart/form-data with `file`; with `form_id` and `field_key` the field's limits apply. Max 50 MiB.",
    responses=[201, 401, 413, 422],
)
def upload(body: dict[str, Any]) -> Response:
    """Store a file; returns the attachment (id, name, size, content type)."""
    file = body.get("file")
    if file is None or not file.filename:
        raise ApiError(422, "file_required", errors=[{"field": "file", "rule": "required", "message": ""}])
    content = file.read()
    req = record_pb2.UploadAttachmentRequest(
        filename=file.filename,
        content_type=file.mimetype or "application/octet-stream",
        content=content,
        form_id=body.get("form_id", ""),
        field_key=body.get("field_key", ""),
    )
    return json_response(parse(record_call("UploadAttachment", req).attachment_json), 201)


OCTET_STREAM = "application/octet-stream"
DOWNLOAD_CSP = "default-src 'none'; sandbox"

# Content types a download keeps; every other type is sent as application/octet-stream.
PASSIVE_TYPES = frozenset(
    {
        "application/pdf",
        "application/zip",
        "application/gzip",
        "application/x-7z-compressed",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/bmp",
        "image/avif",
        "text/plain",
        "text/csv",
    }
)
PASSIVE_PREFIXES = ("audio/", "video/", "application/vnd.openxmlformats-officedocument.")


def safe_content_type(content_type: str) -> str:
    """The type a download is sent with: the stored type if passive, else application/octet-stream."""
    base = content_type.split(";", 1)[0].strip().lower()
    if base in PASSIVE_TYPES or base.startswith(PASSIVE_PREFIXES):
        return base
    return OCTET_STREAM


def _disposition(filename: str) -> str:
    """Always an attachment; the name percent-encoded (RFC 6266/5987), so no quote, CR or LF gets through."""
    return f"attachment; filename*=UTF-8''{quote(filename, safe='')}"


@bp.get("/attachments/<attachment_id>")
@bp.auth_required(token_auth)
@bp.doc(
    summary="Download a file (streamed)",
    responses={200: "The file bytes (Content-Type of the file)", 404: "Not found"},
)
def download(attachment_id: str) -> Response:
    """Stream the file's bytes as the service sends them."""
    stream = gateway().services.record.stream(
        "DownloadAttachment", record_pb2.DownloadAttachmentRequest(attachment_id=attachment_id), current_principal()
    )
    # The first message carries the metadata; reading it here lets a missing file become a 404 problem.
    first = next(iter(stream), None)
    meta: dict[str, Any] = parse(first.attachment_json) if first is not None and first.attachment_json else {}

    def body() -> Iterator[bytes]:
        if first is not None and first.chunk:
            yield first.chunk
        for message in stream:
            if message.chunk:
                yield message.chunk

    resp = Response(stream_with_context(body()), mimetype=safe_content_type(str(meta.get("content_type") or "")))
    filename = meta.get("filename") or meta.get("name") or attachment_id
    resp.headers["Content-Disposition"] = _disposition(str(filename))
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = DOWNLOAD_CSP
    if isinstance(meta.get("size"), int):
        resp.headers["Content-Length"] = str(meta["size"])
    return resp
