"""Provenance read from an upload's bytes: C2PA signed in the test, each known metadata marker,
plain files with none, and hostile metadata that must give "unreadable", never an exception."""

from __future__ import annotations

import struct
import zlib

import pytest

from detector.provenance import MAX_XMP, NOTHING, markers, provenance
from tests.provenance_files import (
    IPTC,
    broken_manifest,
    jpeg_with_exif,
    jpeg_with_xmp,
    plain_image,
    png_with_text,
    signed_jpeg,
    signed_jpeg_and_ca,
    tampered,
    xmp_packet,
)


@pytest.fixture(scope="module")
def signed() -> bytes:
    return signed_jpeg()


def test_signed_c2pa_is_read_and_its_signer_is_untrusted(signed):
    got = provenance(signed)["c2pa"]
    assert got["present"] and got["state"] == "valid", got
    assert got["signature_valid"] and got["hash_valid"] is True
    # Our test CA is on no trust list: valid signature, but the signer is reported untrusted.
    assert got["signer_trusted"] is False and "signingCredential.untrusted" in got["failures"]
    assert got["signer"]["common_name"] == "dfd test signer"
    assert got["claim_generator"] == "dfd-tests 1"
    assert got["actions"] == [{"action": "c2pa.created",
                               "digital_source_type": "trainedAlgorithmicMedia",
                               "software_agent": "Test Generator"}]
    assert got["ai_generated"] and got["digital_source_type"] == "trainedAlgorithmicMedia"
    assert "not on our trust list" in provenance(signed)["summary"]


def test_a_signer_under_a_configured_trust_anchor_is_trusted(tmp_path):
    from detector.credentials import read_trust_anchors, set_trust_anchors

    data, ca_pem = signed_jpeg_and_ca()
    anchors = tmp_path / "anchors.pem"
    anchors.write_text(ca_pem)
    try:
        set_trust_anchors(read_trust_anchors(str(anchors)))
        got = provenance(data)
        assert got["c2pa"]["state"] == "trusted" and got["c2pa"]["signer_trusted"] is True
        assert got["c2pa"]["failures"] == []
        assert "dfd test signer, a signer on this service's trust list" in got["summary"]
        # Another CA's signer stays untrusted under the same anchors.
        assert provenance(signed_jpeg())["c2pa"]["state"] == "valid"
    finally:
        set_trust_anchors(None)
    assert provenance(data)["c2pa"]["state"] == "valid"
    (tmp_path / "empty.pem").write_text("not a certificate")
    for bad in (tmp_path / "empty.pem", tmp_path / "missing.pem"):
        with pytest.raises(ValueError, match="no PEM certificate|cannot read"):
            read_trust_anchors(str(bad))


def test_composite_source_type_is_named():
    got = provenance(signed_jpeg("compositeWithTrainedAlgorithmicMedia"))["c2pa"]
    assert got["digital_source_type"] == "compositeWithTrainedAlgorithmicMedia"


def test_tampered_image_fails_its_hash(signed):
    got = provenance(tampered(signed))
    assert got["c2pa"]["state"] == "invalid" and got["c2pa"]["hash_valid"] is False
    assert "assertion.dataHash.mismatch" in got["c2pa"]["failures"]
    assert "do not rely on them" in got["summary"]


def test_manifest_that_does_not_parse_is_unreadable(signed):
    got = provenance(broken_manifest(signed))
    assert got["c2pa"]["present"] and got["c2pa"]["state"] == "unreadable", got
    assert "cannot be read" in got["summary"]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_plain_image_has_nothing_and_says_it_proves_nothing(fmt):
    got = provenance(plain_image(fmt))
    assert got == {"c2pa": {"present": False, "state": "absent"}, "markers": [],
                   "summary": NOTHING}


@pytest.mark.parametrize("m", markers()["png_text"], ids=lambda m: m["key"])
def test_each_png_text_marker(m):
    found = provenance(png_with_text({m["key"]: "a portrait, masterpiece"}))["markers"]
    assert [(f["source"], f["field"], f["kind"], f["name"]) for f in found] == [
        ("png_text", m["key"], "generator", m["name"])]


def test_png_text_markers_in_compressed_and_international_chunks():
    found = provenance(png_with_text({}, itxt={"workflow": "{}"}, ztxt={"prompt": "{}"}))
    assert sorted(f["field"] for f in found["markers"]) == ["prompt", "workflow"]
    assert "ComfyUI" in found["summary"]


@pytest.mark.parametrize("m", markers()["digital_source_types"], ids=lambda m: m["value"])
def test_each_xmp_digital_source_type(m):
    body = f"<Iptc4xmpExt:DigitalSourceType>{IPTC}{m['value']}</Iptc4xmpExt:DigitalSourceType>"
    found = provenance(jpeg_with_xmp(xmp_packet(body)))["markers"]
    assert [(f["source"], f["kind"], f["name"]) for f in found] == [("xmp", m["kind"], m["name"])]


def test_xmp_digital_source_type_as_attribute_and_creator_tool():
    packet = xmp_packet("").replace(b'rdf:about=""', (
        f'rdf:about="" Iptc4xmpExt:DigitalSourceType="{IPTC}trainedAlgorithmicMedia" '
        'xmp:CreatorTool="Adobe Firefly 3"').encode())
    found = provenance(jpeg_with_xmp(packet))["markers"]
    assert {(f["field"], f["kind"]) for f in found} == {("DigitalSourceType", "ai_generated"),
                                                       ("CreatorTool", "generator")}


@pytest.mark.parametrize("m", markers()["software"], ids=lambda m: m["match"])
def test_each_software_marker_in_exif_and_png(m):
    value = f"{m['match'].title()} 2.1"
    for tag, field in ((0x0131, "Software"), (0x010F, "Make"), (0x0110, "Model")):
        found = provenance(jpeg_with_exif({tag: value}))["markers"]
        assert [(f["source"], f["field"], f["kind"], f["name"]) for f in found] == [
            ("exif", field, m["kind"], m["name"])], (field, found)
    found = provenance(png_with_text({"Software": value}))["markers"]
    assert [(f["field"], f["name"]) for f in found] == [("Software", m["name"])]


@pytest.mark.parametrize("m", markers()["generation_text"], ids=lambda m: m["name"])
def test_each_generation_text_marker_in_exif_user_comment(m):
    comment = "a portrait\n" + ", ".join(f"{w}1" for w in m["all"])
    found = provenance(jpeg_with_exif({}, user_comment=comment))["markers"]
    assert [(f["source"], f["field"], f["name"]) for f in found] == [
        ("exif", "UserComment", m["name"])]


def test_an_ordinary_camera_is_not_a_marker():
    assert provenance(jpeg_with_exif({0x010F: "Canon", 0x0110: "EOS R5"}))["markers"] == []


# ------------------------------------------------------------------ hostile metadata


def _unreadable(data: bytes) -> list[dict]:
    return [f for f in provenance(data)["markers"] if f["kind"] == "unreadable"]


def test_huge_xmp_is_not_parsed():
    body = "<xmp:Label>" + "x" * (MAX_XMP + 10) + "</xmp:Label>"
    found = _unreadable(png_with_text({}, itxt={"XML:com.adobe.xmp": xmp_packet(body).decode()}))
    assert len(found) == 1 and "read limit" in found[0]["value"]


@pytest.mark.parametrize("packet", [
    b"<x:xmpmeta><rdf:RDF><unclosed",
    b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    b"<x>&b;</x>",
    b"\xff\xfe not xml at all \x00\x01"])
def test_malformed_xmp_is_unreadable(packet):
    data = jpeg_with_xmp(packet)
    found = _unreadable(data)
    assert len(found) == 1 and found[0]["source"] == "xmp", found
    assert "could not be read" in provenance(data)["summary"]


def test_zlib_bomb_in_a_png_text_chunk_is_capped():
    bomb = png_with_text({}, ztxt={"parameters": "\0" * 50_000_000})
    assert len(bomb) < 200_000
    found = provenance(bomb)["markers"]
    assert found[0]["field"] == "parameters" and len(found[0]["value"]) <= 200


def test_png_chunk_lengths_past_the_end_and_bad_exif_are_survived():
    data = bytearray(png_with_text({"parameters": "x"}))
    at = data.index(b"tEXt") - 4
    data[at:at + 4] = struct.pack(">I", 2**31)  # a length far past the end of the file
    provenance(bytes(data))
    exif = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 12) + b"eXIf" + b"MM\x00*garbage!" + \
        struct.pack(">I", zlib.crc32(b"eXIf"))
    found = provenance(exif)["markers"]
    assert all(f["kind"] == "unreadable" for f in found)
