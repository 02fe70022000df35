"""The file formats the service takes, one row each, and the questions every reader asks of them.

A row says what a file is (a still or a video), how its first bytes say so (magic bytes, or the
brand of an ISO base media file), the suffix it is stored under and the other suffixes it goes
by, its MIME type, the decoder that reads it, and whether it is accepted. Upload validation
(shared/images, shared/media), storage names, provenance's MIME type, the page's accept list and
words, the OpenAPI content types and `dfd submit`'s folder search all read this table, at call
time: a new format is one row here (and a decoder that reads it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["still", "video"]
# The brand of an ISO base media file (MP4 family) that no other row names.
ANY_BRAND = b"*"


@dataclass(frozen=True)
class Format:
    """One format: see the module docstring."""

    name: str  # the upload's "format" (for a still, Pillow's name for it)
    kind: Kind
    words: str  # what people read on the page and in errors
    suffix: str  # the stored upload's suffix
    mime: str
    decoder: str  # Pillow's format name (stills), PyAV's demuxer name (videos)
    magic: tuple[bytes, ...] = ()  # regular expressions over the first bytes, any one matches
    brands: tuple[bytes, ...] = ()  # ISO base media: the ftyp box's major brand
    boxes: tuple[bytes, ...] = ()  # ISO base media without ftyp (QuickTime): the first box
    also: tuple[str, ...] = ()  # other suffixes and MIME types files of it go by
    accept: bool = True  # taken by the API and offered by the page

    def names(self) -> tuple[str, ...]:
        """The suffixes a file of this format may be called by, the stored one first."""
        return (self.suffix, *(a for a in self.also if a.startswith(".")))

    def mimes(self) -> tuple[str, ...]:
        """Its MIME types, the one we name it by first."""
        return (self.mime, *(a for a in self.also if "/" in a))


_MP4 = "mov,mp4,m4a,3gp,3g2,mj2"  # PyAV's demuxer for the ISO base media family
_MKV = "matroska,webm"
_EBML = rb"\x1a\x45\xdf\xa3"
TABLE: tuple[Format, ...] = (
    Format("JPEG", "still", "JPEG", ".jpg", "image/jpeg", "JPEG", magic=(rb"\xff\xd8\xff",),
           also=(".jpeg",)),
    Format("PNG", "still", "PNG", ".png", "image/png", "PNG", magic=(rb"\x89PNG\r\n\x1a\n",)),
    Format("WEBP", "still", "WebP", ".webp", "image/webp", "WEBP", magic=(rb"RIFF.{4}WEBP",)),
    Format("GIF", "still", "GIF", ".gif", "image/gif", "GIF", magic=(rb"GIF8",)),
    Format("HEIF", "still", "HEIC/HEIF", ".heic", "image/heic", "HEIF",
           brands=(b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1"),
           also=(".heif", "image/heif")),
    Format("AVIF", "still", "AVIF", ".avif", "image/avif", "AVIF", brands=(b"avif", b"avis")),
    Format("MP4", "video", "MP4", ".mp4", "video/mp4", _MP4, brands=(ANY_BRAND,),
           also=(".m4v",)),
    # QuickTime: its own brand, or no ftyp box at all (older files start with their movie box).
    Format("MOV", "video", "MOV", ".mov", "video/quicktime", _MP4, brands=(b"qt  ",),
           boxes=(b"moov", b"mdat", b"wide", b"free")),
    # Both are Matroska; a WebM file names its doctype in the EBML header, in the first bytes.
    Format("WEBM", "video", "WebM", ".webm", "video/webm", _MKV, magic=(_EBML + rb".{0,56}webm",)),
    Format("MKV", "video", "MKV", ".mkv", "video/x-matroska", _MKV, magic=(_EBML,)),
)


def accepted(kind: Kind | None = None) -> list[Format]:
    """The accepted rows (of one kind), in table order."""
    return [f for f in TABLE if f.accept and kind in (None, f.kind)]


def named(name: str) -> Format:
    """The accepted row of an upload's format name; KeyError if none."""
    for f in accepted():
        if f.name == name:
            return f
    raise KeyError(name)


def _matches(f: Format, data: bytes, brand: bytes | None) -> bool:
    if any(re.match(m, data, re.DOTALL) for m in f.magic):
        return True
    return brand in f.brands if brand is not None else data[4:8] in f.boxes


def sniff(data: bytes) -> Format | None:
    """The accepted format the first bytes claim, or None; a claim, not a check (the decoder
    decides whether the file is whole)."""
    head = data[:64]
    brand = head[8:12] if head[4:8] == b"ftyp" else None
    for f in accepted():
        if _matches(f, head, brand):
            return f
    if brand is not None:
        return next((f for f in accepted() if ANY_BRAND in f.brands), None)
    return None


def kind_of_stored(name: str) -> Kind | None:
    """Still or video, from a stored upload's name (its suffix was chosen by content)."""
    return next((f.kind for f in TABLE if name.endswith(f.suffix)), None)


def stored_suffixes() -> list[str]:
    """Every suffix an upload may be stored under (any row: a switched-off format's files are
    still the service's own)."""
    return [f.suffix for f in TABLE]


def listed(kind: Kind, last: str = " or ") -> str:
    """The words of the accepted formats of a kind: 'MP4, MOV, WebM or MKV'."""
    words = [f.words for f in accepted(kind)]
    return last.join([", ".join(words[:-1]), words[-1]]) if len(words) > 1 else "".join(words)


def file_names() -> list[str]:
    """Every suffix an accepted file may be called by (the page's picker, `dfd submit`)."""
    return [n for f in accepted() for n in f.names()]


def media_types() -> list[str]:
    """Every MIME type of the accepted formats."""
    return [m for f in accepted() for m in f.mimes()]


def page_accept() -> str:
    """The page's file picker accept list: the suffixes, then any image or video (a phone
    offers its photo library for image/*)."""
    wild = {"still": "image/*", "video": "video/*"}
    kinds = dict.fromkeys(f.kind for f in accepted())
    return ",".join([*file_names(), *(wild[k] for k in kinds)])


def for_page() -> list[dict]:
    """The accepted formats as the page's script reads them (kind, words, suffixes)."""
    return [{"name": f.name, "kind": f.kind, "words": f.words, "names": list(f.names())}
            for f in accepted()]
