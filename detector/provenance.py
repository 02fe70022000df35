"""Provenance of an upload, read from its original bytes: Content Credentials and metadata traces.

CPU only, no TensorFlow, run on every job beside the model (never folded into P(fake)). The
markers it knows are in provenance_markers.json. Metadata is attacker-controlled: every reader
caps what it looks at, and anything it cannot read becomes an "unreadable" marker, never an
exception that fails the job. EXIF is read with Pillow's `Image.Exif`; the PNG chunks and JPEG
segments are walked here because Pillow inflates every text chunk up to 1 MB (64 MB a file)
before we could cap it, and raises on a larger one, which would lose the file's other markers.
"""

from __future__ import annotations

import json
import re
import struct
import warnings
import zlib
from functools import cache
from pathlib import Path
from xml.etree import ElementTree

from detector.credentials import read_c2pa
from shared import formats

MARKERS_FILE = Path(__file__).with_name("provenance_markers.json")
MAX_XMP = 256 * 1024  # bytes of an XMP packet we parse; real ones are a few kB
MAX_TEXT = 64 * 1024  # bytes of one PNG text value (inflated) we look at
MAX_CHUNKS = 4096  # PNG chunks / JPEG segments walked before giving up
VALUE_SHOWN = 200  # characters of a matched value kept in the result
NOTHING = ("No Content Credentials and no generator traces in the file. That proves nothing: "
           "most real photos carry none, and metadata is easily stripped.")
EXIF_TAGS = {0x0131: "Software", 0x010F: "Make", 0x0110: "Model"}
USER_COMMENT = 0x9286


@cache
def markers() -> dict:
    """The known markers (provenance_markers.json), read once per process."""
    return json.loads(MARKERS_FILE.read_text())


def _entry(source: str, field: str, known: dict, value: str) -> dict:
    return {"source": source, "field": field, "kind": known["kind"], "name": known["name"],
            "value": value[:VALUE_SHOWN]}


def _unreadable(source: str, detail: str) -> dict:
    return {"source": source, "field": source, "kind": "unreadable", "name": None,
            "value": detail[:VALUE_SHOWN]}


def software_markers(source: str, field: str, value: str) -> list[dict]:
    """A marker when a Software/Make/Model-like value names a known generator or editor."""
    low = value.lower()
    return [_entry(source, field, m, value) for m in markers()["software"] if m["match"] in low]


def png_chunks(data: bytes):
    """(type, payload) of each PNG chunk, stopping at IEND, a cut-off file or MAX_CHUNKS."""
    at = 8
    for _ in range(MAX_CHUNKS):
        if at + 8 > len(data):
            return
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        yield kind, data[at + 8:at + 8 + length]
        if kind == b"IEND":
            return
        at += 12 + length


def _inflate(blob: bytes, cap: int) -> str:
    # max_length caps a zlib bomb: we never inflate more than we look at.
    return zlib.decompressobj().decompress(blob, cap).decode("utf-8", "replace")


def png_texts(data: bytes) -> tuple[dict[str, str], bytes | None]:
    """PNG text chunks (tEXt, zTXt, iTXt) as key -> value, and the eXIf payload if any."""
    texts, exif = {}, None
    for kind, payload in png_chunks(data):
        if kind == b"eXIf":
            exif = payload
        if kind not in (b"tEXt", b"zTXt", b"iTXt"):
            continue
        key, _, rest = payload.partition(b"\0")
        name = key.decode("latin-1")[:80]
        # One byte over the XMP limit is enough to know a packet is too big to parse.
        cap = MAX_XMP + 1 if name == "XML:com.adobe.xmp" else MAX_TEXT
        if kind == b"tEXt":
            texts[name] = rest[:cap].decode("latin-1")
        elif kind == b"zTXt":
            texts[name] = _inflate(rest[1:], cap)
        else:
            compressed, rest = rest[:1] == b"\1", rest[2:]
            _, _, rest = rest.partition(b"\0")  # language tag
            _, _, rest = rest.partition(b"\0")  # translated keyword
            texts[name] = _inflate(rest, cap) if compressed else rest[:cap].decode(
                "utf-8", "replace")
    return texts, exif


def jpeg_segments(data: bytes) -> tuple[list[bytes], bytes | None]:
    """The APP1 XMP packets and the EXIF payload of a JPEG, read up to its image data."""
    xmp, exif, at = [], None, 2
    for _ in range(MAX_CHUNKS):
        if at + 4 > len(data) or data[at] != 0xFF:
            break
        marker = data[at + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            at += 2  # markers without a length
            continue
        if marker in (0xDA, 0xD9):  # start of scan or end: no metadata after this
            break
        length = struct.unpack(">H", data[at + 2:at + 4])[0]
        body = data[at + 4:at + 2 + length]
        if marker == 0xE1 and body.startswith(b"Exif\0\0"):
            exif = body[6:]
        elif marker == 0xE1 and body.startswith(b"http://ns.adobe.com/xap/1.0/\0"):
            xmp.append(body[29:])
        at += 2 + length
    return xmp, exif


def exif_markers(payload: bytes) -> list[dict]:
    """Markers from EXIF Software/Make/Model and a web UI's generation parameters."""
    from PIL import Image

    exif = Image.Exif()
    with warnings.catch_warnings():  # Pillow warns on corrupt EXIF; we report it ourselves
        warnings.simplefilter("error")
        exif.load(payload if payload.startswith(b"Exif") else b"Exif\0\0" + payload)
    found = []
    for tag, name in EXIF_TAGS.items():
        value = exif.get(tag)
        if isinstance(value, str) and value.strip():
            found += software_markers("exif", name, value.strip()[:MAX_TEXT])
    comment = exif.get_ifd(0x8769).get(USER_COMMENT)
    if isinstance(comment, bytes):
        comment = comment[8:].decode("utf-16-be" if comment.startswith(b"UNICODE") else
                                     "latin-1", "replace")
    if isinstance(comment, str):
        found += text_markers("exif", {"UserComment": comment})
    return found


def text_markers(source: str, texts: dict[str, str]) -> list[dict]:
    """Markers from key -> value text fields (PNG chunks, EXIF UserComment)."""
    found = []
    for key, value in texts.items():
        for m in markers()["png_text"]:
            if key == m["key"]:
                found.append(_entry(source, key, m, value))
        for m in markers().get("generation_text", []):
            if all(word in value for word in m["all"]):
                found.append(_entry(source, key, m, value))
        if key in ("Software", "Source", "Make", "Model"):
            found += software_markers(source, key, value)
    return found


def xmp_markers(packet: bytes) -> list[dict]:
    """Markers from an XMP packet: IPTC DigitalSourceType and xmp:CreatorTool."""
    if len(packet) > MAX_XMP:
        return [_unreadable("xmp", f"XMP packet over the {MAX_XMP // 1024} kB read limit; "
                                   "not read")]
    if re.search(rb"<!(DOCTYPE|ENTITY)", packet):
        # XMP never needs a DTD; refusing one rules out entity expansion bombs.
        return [_unreadable("xmp", "XMP packet declares a DTD or entities; not read")]
    try:
        root = ElementTree.fromstring(packet.strip(b"\0 \r\n\t"))
    except ElementTree.ParseError as exc:
        return [_unreadable("xmp", f"XMP is not well-formed XML ({exc})")]
    found = []
    for el in root.iter():
        values = [(el.tag, el.text or "")] + list(el.attrib.items())
        for name, value in values:
            local = str(name).rsplit("}", 1)[-1]
            value = value.strip()
            if local == "DigitalSourceType" and value:
                term = value.rstrip("/").rsplit("/", 1)[-1]
                found += [_entry("xmp", "DigitalSourceType", m, value)
                          for m in markers()["digital_source_types"] if m["value"] == term]
            elif local == "CreatorTool" and value:
                found += software_markers("xmp", "CreatorTool", value)
    return found


def _guarded(source: str, fn, *args) -> list[dict]:
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - hostile metadata must never fail the job
        return [_unreadable(source, f"{source} metadata cannot be read ({type(exc).__name__})")]


def metadata_markers(data: bytes) -> list[dict]:
    """Every known marker in a JPEG's or PNG's metadata, plus "unreadable" entries."""
    found: list[dict] = []
    claimed = formats.sniff(data)
    name = claimed.name if claimed is not None else ""
    if name == "PNG":
        try:
            texts, exif = png_texts(data)
        except Exception as exc:  # noqa: BLE001
            return [_unreadable("png_text", f"PNG chunks cannot be read ({type(exc).__name__})")]
        xmp = texts.pop("XML:com.adobe.xmp", None)
        found += _guarded("png_text", text_markers, "png_text", texts)
        packets = [xmp.encode("utf-8")] if xmp is not None else []
    elif name == "JPEG":
        try:
            packets, exif = jpeg_segments(data)
        except Exception as exc:  # noqa: BLE001
            return [_unreadable("jpeg", f"JPEG segments cannot be read ({type(exc).__name__})")]
    else:
        try:
            packets, exif = pillow_metadata(data, claimed)
        except Exception as exc:  # noqa: BLE001
            return [_unreadable("metadata", f"the metadata cannot be read ({type(exc).__name__})")]
    for packet in packets:
        found += _guarded("xmp", xmp_markers, packet)
    if exif:
        found += _guarded("exif", exif_markers, exif)
    return found


def pillow_metadata(data: bytes, claimed: formats.Format | None
                    ) -> tuple[list[bytes], bytes | None]:
    """The XMP packets and EXIF payload of another still (WebP, HEIC/HEIF, AVIF, GIF), as
    Pillow (and pillow-heif) read them from the header; nothing for videos and unknown files."""
    import io

    from PIL import Image

    if claimed is None or claimed.kind != "still":
        return [], None
    # Every still decoder, not only the claimed one: an AVIF may carry a HEIF brand (mif1).
    try:
        img = Image.open(io.BytesIO(data), formats=[f.decoder for f in formats.accepted("still")])
    except Exception:  # noqa: BLE001 - its header is not what it claims: no metadata
        return [], None
    with img:
        xmp = img.info.get("xmp")
        exif = img.info.get("exif")
    packets = [xmp.encode("utf-8") if isinstance(xmp, str) else xmp] if xmp else []
    return packets, exif if isinstance(exif, bytes) and exif else None


def summary(c2pa: dict, found: list[dict]) -> str:
    """One or two sentences a person reads first."""
    parts = []
    state = c2pa.get("state")
    if c2pa.get("present") and state != "unreadable":
        who = (c2pa.get("signer") or {}).get("common_name") or "an unknown signer"
        listed = "on this service's" if c2pa.get("signer_trusted") else "not on our"
        trust = f"{who}, a signer {listed} trust list"
        what = (f"say the image was made with generative AI ({c2pa['digital_source_type']})"
                if c2pa.get("ai_generated") else "are present")
        gen = f", written by {c2pa['claim_generator']}" if c2pa.get("claim_generator") else ""
        parts.append(f"Content Credentials {what}{gen}, signed by {trust}.")
        if state == "invalid":
            parts.append("They fail validation (the image changed after signing, or the "
                         "signature is broken): do not rely on them.")
    elif state == "unreadable":
        parts.append("The file carries Content Credentials that cannot be read.")
    named = {m["kind"]: m["name"] for m in reversed(found) if m["kind"] != "unreadable"}
    for kind, words in (("generator", "names an image generator: "),
                        ("ai_generated", "says the image was "),
                        ("ai_composite", "says the image is "),
                        ("editor", "names an editing app: ")):
        if kind in named:
            parts.append(f"The file's metadata {words}{named[kind]}.")
    if any(m["kind"] == "unreadable" for m in found):
        parts.append("Some metadata could not be read and was skipped.")
    if not parts or not c2pa.get("present"):
        parts.append(NOTHING if not named else "A missing credential proves nothing: most "
                     "real photos carry none, and metadata is easily stripped.")
    return " ".join(parts)


def mime_of(data: bytes) -> str:
    """The media type of an upload, from its first bytes (for the C2PA reader)."""
    claimed = formats.sniff(data)
    return claimed.mime if claimed is not None else "application/octet-stream"


def provenance(data: bytes) -> dict:
    """{"c2pa": {...}, "markers": [...], "summary": "..."} for the upload's original bytes."""
    c2pa = read_c2pa(data, mime_of(data))
    found = metadata_markers(data)
    return {"c2pa": c2pa, "markers": found, "summary": summary(c2pa, found)}

