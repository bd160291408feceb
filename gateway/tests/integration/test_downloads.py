"""User files are served so that a browser never runs them (hole 6), and no response is content-sniffed."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from crm.record.v1 import record_pb2

pytestmark = pytest.mark.integration

HTML = b"<!doctype html><script>fetch('/api/v1/users').then(r => r.text()).then(alert)</script>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'


@pytest.fixture()
def files(record_service: Any) -> dict[str, dict[str, Any]]:
    """A fake record service that keeps uploads and streams them back in two chunks."""
    stored: dict[str, dict[str, Any]] = {}

    def upload(req: Any, principal: Any) -> Any:
        att_id = f"att{len(stored) + 1}"
        stored[att_id] = {"filename": req.filename, "content_type": req.content_type, "content": req.content}
        meta = {"id": att_id, "filename": req.filename, "content_type": req.content_type, "size": len(req.content)}
        return record_pb2.UploadAttachmentResponse(attachment_json=json.dumps(meta))

    def download(req: Any, principal: Any) -> Any:
        f = stored[req.attachment_id]
        meta = {"id": req.attachment_id, "filename": f["filename"], "content_type": f["content_type"]}
        meta["size"] = len(f["content"])
        yield record_pb2.DownloadAttachmentResponse(attachment_json=json.dumps(meta))
        half = len(f["content"]) // 2
        yield record_pb2.DownloadAttachmentResponse(chunk=f["content"][:half])
        yield record_pb2.DownloadAttachmentResponse(chunk=f["content"][half:])

    record_service.handlers["UploadAttachment"] = upload
    record_service.handlers["DownloadAttachment"] = download
    return stored


def _upload(client: Any, headers: dict[str, str], content: bytes, name: str, content_type: str) -> str:
    resp = client.post(
        "/api/v1/attachments",
        data={"file": (io.BytesIO(content), name, content_type)},
        content_type="multipart/form-data",
        headers=headers,
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return str(resp.get_json()["id"])


def _assert_never_rendered(resp: Any, quoted_name: str) -> None:
    assert resp.headers["Content-Disposition"] == f"attachment; filename*=UTF-8''{quoted_name}"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"


@pytest.mark.parametrize(
    ("content", "name", "content_type", "quoted"),
    [
        (HTML, "报价.html", "text/html", "%E6%8A%A5%E4%BB%B7.html"),
        (HTML, "page.htm", "text/html; charset=utf-8", "page.htm"),
        (HTML, "x.xhtml", "application/xhtml+xml", "x.xhtml"),
        (SVG, "logo.svg", "image/svg+xml", "logo.svg"),
        (HTML, "a.js", "text/javascript", "a.js"),
        (HTML, "a.xml", "text/xml", "a.xml"),
        (HTML, "noext", "TEXT/HTML", "noext"),
    ],
)
def test_an_uploaded_active_file_is_downloaded_as_octet_stream_attachment(
    client: Any,
    helpers: Any,
    admin_token: str,
    files: dict[str, Any],
    content: bytes,
    name: str,
    content_type: str,
    quoted: str,
) -> None:
    headers = helpers.bearer(admin_token)
    att_id = _upload(client, headers, content, name, content_type)
    assert files[att_id]["content_type"].lower().startswith(content_type.split(";")[0].lower())
    got = client.get(f"/api/v1/attachments/{att_id}", headers=headers)
    assert got.status_code == 200
    assert got.data == content
    assert got.headers["Content-Type"] == "application/octet-stream"
    _assert_never_rendered(got, quoted)


def test_passive_files_keep_their_type_but_are_still_attachments(
    client: Any, helpers: Any, admin_token: str, files: dict[str, Any]
) -> None:
    headers = helpers.bearer(admin_token)
    for content, name, content_type in [
        (b"%PDF-1.7 ...", "合同.pdf", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n....", "a.png", "image/png"),
        (b"PK\x03\x04....", "b.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ]:
        got = client.get(
            f"/api/v1/attachments/{_upload(client, headers, content, name, content_type)}", headers=headers
        )
        assert got.status_code == 200 and got.data == content
        assert got.mimetype == content_type
        assert got.headers["Content-Disposition"].startswith("attachment; ")
        assert got.headers["X-Content-Type-Options"] == "nosniff"
        assert got.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"


def test_a_file_name_cannot_inject_header_parameters_or_lines(
    client: Any, helpers: Any, admin_token: str, files: dict[str, Any]
) -> None:
    # a stored name as hostile as the record service could hold (the multipart parser already tames uploads)
    name = 'a"; filename=evil.html;\r\nSet-Cookie: x=1 /../b.html'
    files["att-evil"] = {"filename": name, "content_type": "text/plain", "content": b"x"}
    got = client.get("/api/v1/attachments/att-evil", headers=helpers.bearer(admin_token))
    assert got.status_code == 200
    disposition = got.headers["Content-Disposition"]
    assert disposition.startswith("attachment; filename*=UTF-8''a%22%3B%20filename%3Devil.html%3B")
    assert '"' not in disposition and "\r" not in disposition and "\n" not in disposition and "/" not in disposition
    assert "Set-Cookie" not in got.headers


def test_every_gateway_response_says_nosniff(client: Any, helpers: Any, admin_token: str) -> None:
    responses = [
        client.get("/api/v1/openapi.json"),
        client.get("/api/v1/no-such-route"),
        client.get("/api/v1/records/customer"),  # 401 problem
        client.get("/api/v1/auth/me", headers=helpers.bearer(admin_token)),
        client.get("/healthz"),
    ]
    for resp in responses:
        assert resp.headers.get("X-Content-Type-Options") == "nosniff", (resp.request.path, resp.status_code)
    assert {r.status_code for r in responses} >= {200, 401, 404}
