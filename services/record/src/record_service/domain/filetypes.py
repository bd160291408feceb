"""A small magic-bytes check: what a file's first bytes say it is, and whether that contradicts its claim.

Not a full type detector: it knows the signatures of the common images, PDF,
ZIP-based office files, OLE office files, archives and executables, enough to
refuse the obvious lies (an .exe uploaded as image/png, a script as a PDF).
"""

from __future__ import annotations

import mimetypes

EXECUTABLE_TYPES = frozenset(
    {"application/x-msdownload", "application/x-executable", "application/x-mach-binary", "application/x-dosexec"}
)
# Claimed types a program may honestly have (these may be executables).
_EXECUTABLE_CLAIMS = EXECUTABLE_TYPES | {
    "application/octet-stream",
    "application/x-msdos-program",
    "application/vnd.microsoft.portable-executable",
}
_ZIP_CLAIMS = ("application/vnd.openxmlformats-officedocument.", "application/zip", "application/x-zip-compressed")
# Images without a reliable signature (text formats) are not checked.
_UNSNIFFED_IMAGES = frozenset({"image/svg+xml"})

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"BM", "image/bmp"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole-storage"),
    (b"\x1f\x8b", "application/gzip"),
    (b"Rar!\x1a\x07", "application/vnd.rar"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"MZ", "application/x-msdownload"),
    (b"\x7fELF", "application/x-executable"),
    (b"\xfe\xed\xfa\xce", "application/x-mach-binary"),
    (b"\xfe\xed\xfa\xcf", "application/x-mach-binary"),
    (b"\xcf\xfa\xed\xfe", "application/x-mach-binary"),
    (b"\xce\xfa\xed\xfe", "application/x-mach-binary"),
)
_HEIF_BRANDS = {b"heic": "image/heic", b"heix": "image/heic", b"mif1": "image/heif", b"avif": "image/avif"}


def sniff(content: bytes) -> str | None:
    """The type the first bytes announce, or None when they announce nothing known."""
    head = content[:16]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return _HEIF_BRANDS.get(head[8:12], "video/mp4")
    for signature, media_type in _SIGNATURES:
        if head.startswith(signature):
            return media_type
    return None


def normalise_type(content_type: str) -> str:
    """ "Image/PNG; charset=x" -> "image/png"."""
    return content_type.split(";", 1)[0].strip().lower()


def effective_type(claimed: str, filename: str, detected: str | None) -> str:
    """The content type to store: the claim, else a guess from the name, else the sniffed type."""
    media_type = normalise_type(claimed)
    if media_type and media_type != "application/octet-stream":
        return media_type
    guessed = mimetypes.guess_type(filename)[0]
    return normalise_type(guessed) if guessed else (detected or media_type or "application/octet-stream")


def contradicts(content_type: str, filename: str, detected: str | None) -> bool:
    """True when the bytes plainly are not what the type (or the name's extension) says."""
    claims = {content_type}
    guessed = mimetypes.guess_type(filename)[0]
    if guessed:
        claims.add(normalise_type(guessed))
    for claim in claims:
        if detected in EXECUTABLE_TYPES and claim not in _EXECUTABLE_CLAIMS:
            return True
        image_claim = claim.startswith("image/") and claim not in _UNSNIFFED_IMAGES
        if image_claim and not (detected or "").startswith("image/"):
            return True
        if claim == "application/pdf" and detected != "application/pdf":
            return True
        if claim.startswith(_ZIP_CLAIMS) and detected != "application/zip":
            return True
    return False


def accepts(accept: list[str], content_type: str, filename: str) -> bool:
    """A field's `accept` list against a file: "image/*", "application/pdf", ".pdf", "*/*"."""
    content_type = normalise_type(content_type)
    for pattern in accept:
        pattern = pattern.strip().lower()
        if pattern.startswith(".") and filename.lower().endswith(pattern):
            return True
        if pattern.endswith("/*") and content_type.startswith(pattern[:-1]):
            return True
        if pattern in (content_type, "*/*"):
            return True
    return False
