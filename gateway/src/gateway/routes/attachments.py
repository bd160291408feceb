"""Attachments: multipart upload (up to 50 MiB) and streamed download, proxied to RecordService."""

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


def _disposition(filename: str) -> str:
    ascii_name = filename.encode("ascii", "replace").decode("ascii").replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


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

    resp = Response(stream_with_context(body()), mimetype=meta.get("content_type") or "application/octet-stream")
    filename = meta.get("filename") or meta.get("name") or attachment_id
    resp.headers["Content-Disposition"] = _disposition(str(filename))
    if isinstance(meta.get("size"), int):
        resp.headers["Content-Length"] = str(meta["size"])
    return resp
