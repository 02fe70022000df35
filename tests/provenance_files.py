"""Test images carrying provenance: a C2PA-signed JPEG (a certificate chain made here, never
trusted anywhere), generator text chunks, XMP and EXIF; and hostile variants of each."""

from __future__ import annotations

import datetime
import io

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


def plain_image(fmt: str = "JPEG", size=(96, 72), seed: int = 0, **save) -> bytes:
    """A small noise image with no metadata at all."""
    arr = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **save)
    return buf.getvalue()


def png_with_text(texts: dict[str, str], itxt: dict[str, str] | None = None,
                  ztxt: dict[str, str] | None = None) -> bytes:
    """A PNG with tEXt (and optional iTXt / compressed zTXt) chunks."""
    info = PngInfo()
    for k, v in texts.items():
        info.add_text(k, v)
    for k, v in (itxt or {}).items():
        info.add_itxt(k, v)
    for k, v in (ztxt or {}).items():
        info.add_text(k, v, zip=True)
    return plain_image("PNG", pnginfo=info)


def xmp_packet(body: str) -> bytes:
    """An XMP packet around an rdf:Description body."""
    return ('<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
            'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description rdf:about="" '
            'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
            'xmlns:xmp="http://ns.adobe.com/xap/1.0/">' + body +
            '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>').encode()


def jpeg_with_xmp(packet: bytes) -> bytes:
    """A JPEG whose APP1 XMP segment holds `packet` (at most 64 kB: the JPEG segment limit)."""
    return plain_image("JPEG", xmp=packet)


def jpeg_with_exif(tags: dict[int, str], user_comment: str | None = None) -> bytes:
    """A JPEG with EXIF IFD0 tags (e.g. 0x0131 Software) and an optional UserComment."""
    exif = Image.Exif()
    for tag, value in tags.items():
        exif[tag] = value
    if user_comment is not None:
        exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + user_comment.encode("utf-16-be")
    return plain_image("JPEG", exif=exif.tobytes())


def _name(cn: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dfd tests")])


def _cert(subject, issuer, key, sign_key, ca: bool):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = datetime.datetime.now(datetime.UTC)
    usage = dict(content_commitment=False, key_encipherment=False, data_encipherment=False,
                 key_agreement=False, encipher_only=False, decipher_only=False)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=ca, crl_sign=ca,
                                      **usage), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                        critical=False))
    if not ca:
        # C2PA requires an end-entity certificate with a signing EKU, issued by a CA.
        b = (b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                             critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 sign_key.public_key()), critical=False))
    return b.sign(sign_key, hashes.SHA256())


def signed_jpeg(source_type: str = "trainedAlgorithmicMedia", image: bytes | None = None) -> bytes:
    """A JPEG with a C2PA manifest (c2pa.created by 'Test Generator'), signed in this process
    with a fresh ES256 CA and signer certificate: valid, but its signer is trusted by no one."""
    return signed_jpeg_and_ca(source_type, image)[0]


def signed_jpeg_and_ca(source_type: str = "trainedAlgorithmicMedia",
                       image: bytes | None = None) -> tuple[bytes, str]:
    """signed_jpeg's file and the PEM of the CA that issued its signer (a trust anchor)."""
    import c2pa
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _cert(_name("dfd test CA"), _name("dfd test CA"), ca_key, ca_key, ca=True)
    leaf = _cert(_name("dfd test signer"), ca.subject, key, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    chain = leaf.public_bytes(pem) + ca.public_bytes(pem)
    private = key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain,
                                                       private, None))
    manifest = {"claim_generator_info": [{"name": "dfd-tests", "version": "1"}],
                "title": "made.jpg",
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                    {"action": "c2pa.created", "digitalSourceType": IPTC + source_type,
                     "softwareAgent": {"name": "Test Generator"}}]}}]}
    src, dst = io.BytesIO(image or plain_image("JPEG", size=(128, 96))), io.BytesIO()
    with c2pa.Builder(manifest) as builder:
        builder.sign(signer, "image/jpeg", src, dst)
    return dst.getvalue(), ca.public_bytes(pem).decode()


def tampered(data: bytes) -> bytes:
    """The signed JPEG with one byte of its image data changed (the manifest left whole)."""
    out = bytearray(data)
    out[-200] ^= 0xFF
    return bytes(out)


def broken_manifest(data: bytes) -> bytes:
    """The signed JPEG with the inside of its C2PA JUMBF boxes overwritten: does not parse."""
    out = bytearray(data)
    at = data.index(b"c2pa") + 40
    out[at:at + 400] = b"\xee" * 400
    return bytes(out)
