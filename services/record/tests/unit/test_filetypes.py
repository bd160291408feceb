"""The magic-bytes check and the accept patterns of attachment fields."""

from __future__ import annotations

import pytest

from record_service.domain.filetypes import accepts, contradicts, effective_type, normalise_type, sniff

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 8
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 8
WEBP = b"RIFF\0\0\0\0WEBPVP8 "
HEIC = b"\0\0\0\x18ftypheic\0\0"
PDF = b"%PDF-1.4\n"
EXE = b"MZ\x90\0\x03\0\0\0"
ELF = b"\x7fELF\x02\x01"
DOCX = b"PK\x03\x04\x14\0"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (WEBP, "image/webp"),
        (HEIC, "image/heic"),
        (PDF, "application/pdf"),
        (EXE, "application/x-msdownload"),
        (ELF, "application/x-executable"),
        (DOCX, "application/zip"),
        (b"hello, world", None),
        (b"", None),
    ],
)
def test_sniff(content: bytes, expected: str | None) -> None:
    assert sniff(content) == expected


def test_lies_are_caught() -> None:
    assert contradicts("image/png", "cat.png", sniff(EXE))
    assert contradicts("image/png", "cat.png", sniff(b"plain text"))
    assert contradicts("application/pdf", "x.pdf", sniff(b"#!/bin/sh"))
    assert contradicts("text/plain", "notes.txt", sniff(ELF))
    assert contradicts("application/octet-stream", "cat.jpg", sniff(EXE))  # the name claims an image
    assert contradicts("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "a.docx", sniff(PDF))


def test_honest_files_pass() -> None:
    assert not contradicts("image/jpeg", "photo.png", sniff(PNG))  # a mislabelled image is still an image
    assert not contradicts("application/pdf", "a.pdf", sniff(PDF))
    assert not contradicts("application/x-msdos-program", "setup.exe", sniff(EXE))
    assert not contradicts("application/octet-stream", "blob", sniff(EXE))
    assert not contradicts("text/csv", "rows.csv", sniff(b"a,b\n1,2\n"))
    assert not contradicts("image/svg+xml", "logo.svg", sniff(b"<svg/>"))
    assert not contradicts("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "a.xlsx", sniff(DOCX))


def test_effective_type_prefers_the_claim_then_the_name_then_the_bytes() -> None:
    assert effective_type("Image/PNG; charset=binary", "x", "image/png") == "image/png"
    assert effective_type("", "report.pdf", None) == "application/pdf"
    assert effective_type("application/octet-stream", "blob", "image/png") == "image/png"
    assert effective_type("", "blob", None) == "application/octet-stream"
    assert normalise_type(" TEXT/Plain ;q=1") == "text/plain"


def test_accepts_patterns() -> None:
    assert accepts(["image/*"], "image/png", "a.png")
    assert not accepts(["image/*"], "application/pdf", "a.pdf")
    assert accepts([".PDF"], "application/octet-stream", "Scan.pdf")
    assert accepts(["application/pdf", "image/*"], "application/pdf", "x")
    assert accepts(["*/*"], "text/plain", "a.txt")
    assert not accepts([".pdf"], "application/pdf", "a.doc")
