"""The hostile-upload corpus: every case generated here from code, none copied from elsewhere.

Each Case is one HTTP request to POST /api/v1/jobs and what the service must answer:
- a refused case: a 4xx JSON error of the one shape, its code, and words its message must name
  (usually the client's filename); nothing may be stored or queued;
- an accepted case: 202, then the job ends `done` with the displayed size given here and the same
  verdict (same p_fake) as `reference`, a plain RGB PNG of the pixels the image should show.

Decisions recorded by the corpus (docs/RELIABILITY.md lists them):
- Type is decided by content, never by name: a PNG named .jpg is accepted and stored as .png.
  The name must still end in .jpg, .jpeg or .png, so a file named .gif or .exe is refused.
- A JPEG with a ZIP appended (a polyglot) is a valid JPEG: accepted. The trailing bytes are never
  decoded, and uploads are never served back, so the payload is inert.
- Transparent pixels are shown on white; 16-bit samples are scaled to 8 bits; EXIF orientation is
  applied before anything else, and an animated PNG is judged by its first frame.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

BOUNDARY = "dfd-hostile-boundary-7c1e"
MAX_UPLOAD_BYTES = 10_000_000  # DFD_MAX_UPLOAD_MB=10, the default the tests run with
MAX_FILES = 20  # DFD_MAX_FILES default
MAX_PARTS = MAX_FILES + 10  # web/__init__.py: MAX_FORM_PARTS


@dataclass(frozen=True)
class Part:
    """One multipart part; filename None leaves the filename parameter out entirely."""

    field: str
    filename: str | None
    data: bytes
    ctype: str = "application/octet-stream"


@dataclass
class Case:
    """One request and the answer it must get."""

    name: str
    what: str
    status: int
    code: str | None = None  # expected error.code for a refusal
    mention: tuple[str, ...] = ()  # substrings error.message must contain
    parts: list[Part] = field(default_factory=list)
    body: bytes | None = None  # a raw body instead of parts
    content_type: str | None = None  # with body
    chunked: bool = False  # send without Content-Length (Transfer-Encoding: chunked)
    size: tuple[int, int] | None = None  # accepted: displayed width, height in the result
    reference: bytes | None = None  # accepted: PNG of the pixels the service should see
    stored_suffix: str | None = None  # accepted: suffix the stored upload must have
    echo: str | None = None  # accepted: the filename the API must show back

    @property
    def accepted(self) -> bool:
        return self.status == 202

    def request(self) -> tuple[dict, bytes]:
        """Headers and body of the request, byte for byte as this case defines it."""
        if self.body is not None:
            return ({"Content-Type": self.content_type} if self.content_type else {}), self.body
        return ({"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
                multipart(self.parts))

    def nbytes(self) -> int:
        return len(self.request()[1])


def multipart(parts: list[Part]) -> bytes:
    """A multipart/form-data body built by hand, so filenames go out exactly as given (NUL,
    '../', raw UTF-8) rather than cleaned by an HTTP library."""
    out = bytearray()
    for p in parts:
        disp = f'form-data; name="{p.field}"'.encode()
        if p.filename is not None:
            disp += b'; filename="' + p.filename.replace('"', "%22").encode("utf-8") + b'"'
        out += f"--{BOUNDARY}\r\n".encode() + b"Content-Disposition: " + disp + b"\r\n"
        out += f"Content-Type: {p.ctype}\r\n\r\n".encode() + p.data + b"\r\n"
    out += f"--{BOUNDARY}--\r\n".encode()
    return bytes(out)


# Image makers ---------------------------------------------------------------------------------

def base_rgb(w: int = 320, h: int = 240, seed: int = 0) -> np.ndarray:
    """A seeded picture: gradients, a few blocks and noise (no two seeds alike)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1),
                    (x + y) * 255 // max(w + h - 2, 1)], axis=-1).astype(np.int32)
    for _ in range(4):
        x0, y0 = rng.integers(0, max(w - 8, 1)), rng.integers(0, max(h - 8, 1))
        arr[y0:y0 + h // 4, x0:x0 + w // 4] = rng.integers(0, 256, 3)
    arr += rng.integers(-24, 25, arr.shape)
    return np.clip(arr, 0, 255).astype(np.uint8)


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_of(img: Image.Image) -> bytes:
    """The reference: a plain 8-bit RGB PNG."""
    return encode(img.convert("RGB"), "PNG")


def decoded_rgb(data: bytes) -> Image.Image:
    """Pixels of an image with no EXIF tag, alpha or 16-bit samples, as Pillow decodes them."""
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB")


def on_white(img: Image.Image) -> Image.Image:
    """Composite an image with binary alpha onto white, computed here with numpy."""
    rgba = np.asarray(img.convert("RGBA"))
    out = np.where(rgba[..., 3:] >= 128, rgba[..., :3], 255).astype(np.uint8)
    return Image.fromarray(out, "RGB")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def raw_png(width: int, height: int, depth: int, colour: int, rows: bytes) -> bytes:
    """A PNG written by hand from unfiltered scanlines (each row prefixed by filter byte 0)."""
    return (b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
            + _chunk(b"IDAT", rows) + _chunk(b"IEND", b""))


def png_bomb(width: int, height: int) -> bytes:
    """A real decompression bomb: a 1-bit PNG of all-zero rows, deflated at ratio ~1000:1."""
    comp = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)
    data = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return raw_png(width, height, 1, 0, data)


def jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    """A JPEG whose frame header (SOF0) claims width x height: a tiny file, a vast image."""
    at = data.index(b"\xff\xc0")
    return data[:at + 5] + struct.pack(">HH", height, width) + data[at + 9:]


def png_rgb16(arr8: np.ndarray) -> bytes:
    """A 48-bit (16 bits per sample) RGB PNG whose high bytes are arr8."""
    h, w, _ = arr8.shape
    arr16 = arr8.astype(">u2") * 257
    rows = b"".join(b"\x00" + arr16[y].tobytes() for y in range(h))
    return raw_png(w, h, 16, 2, zlib.compress(rows, 9))


def exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def elf_binary() -> bytes:
    """A minimal x86-64 ELF executable (header, one program header, `exit(0)`)."""
    code = b"\x31\xff\xb8\x3c\x00\x00\x00\x0f\x05"  # xor edi,edi; mov eax,60; syscall
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, 0x400078, 64, 0, 0, 64, 56, 1,
                                 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, 0x400000, 0x400000, 120 + len(code),
                       120 + len(code), 0x1000)
    return header + phdr + code


def zip_archive() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("payload/run.sh", "#!/bin/sh\necho owned\n")
        zf.writestr("../../escape.txt", "zip slip")
    return buf.getvalue()


PDF = (b"%PDF-1.4\n1 0 obj <</Type /Catalog /Pages 2 0 R /OpenAction 3 0 R>> endobj\n"
       b"2 0 obj <</Type /Pages /Kids [] /Count 0>> endobj\n"
       b"3 0 obj <</S /JavaScript /JS (app.alert\\('x'\\))>> endobj\n"
       b"trailer <</Root 1 0 R>>\n%%EOF\n")
SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
       b'<script>alert(document.cookie)</script><rect width="100" height="100"/></svg>')
HTML = b"<!doctype html><html><body><script>alert(1)</script><img src=x onerror=alert(2)>"


def _jpeg_part(name: str, data: bytes, field_name: str = "image") -> Part:
    return Part(field_name, name, data, "image/jpeg")


def cases() -> list[Case]:
    """The whole corpus, in a stable order."""
    rgb = base_rgb()
    img = Image.fromarray(rgb)
    jpeg = encode(img, "JPEG", quality=90)
    png = encode(img, "PNG")
    grey8 = np.asarray(img.convert("L")).copy()
    grey8[0, 0] = 255  # full range, so 16-bit -> 8-bit scaling is the identity
    small = encode(Image.fromarray(base_rgb(64, 48, seed=5)), "JPEG")
    bad: list[Case] = []

    def refuse(name, what, status, code, data, filename, *mention, ctype="image/jpeg"):
        bad.append(Case(name, what, status, code, (filename.replace("\x00", ""), *mention),
                        parts=[Part("image", filename, data, ctype)]))

    # Damaged and empty images.
    refuse("empty_file", "zero bytes", 400, "empty_file", b"", "empty.jpg", "empty")
    refuse("truncated_jpeg", "JPEG cut at 60%", 400, "corrupt_image", jpeg[:len(jpeg) * 6 // 10],
           "cut.jpg", "truncated")
    refuse("truncated_png", "PNG cut at 60%", 400, "corrupt_image", png[:len(png) * 6 // 10],
           "cut.png", "truncated", ctype="image/png")
    refuse("jpeg_header_only", "the first 20 bytes of a JPEG", 400, "corrupt_image", jpeg[:20],
           "stub.jpg", "JPEG header")
    bad_crc = bytearray(png)
    bad_crc[29] ^= 0xFF  # the IHDR chunk's CRC
    refuse("png_bad_crc", "PNG whose header chunk fails its CRC", 400, "corrupt_image",
           bytes(bad_crc), "crc.png", "PNG header", ctype="image/png")
    # Decompression bombs: a small file that would decode to a vast image.
    refuse("png_bomb", "PNG bomb: 20000x20000 px (400 Mpx) of real zeros in ~50 kB", 400,
           "too_many_pixels", png_bomb(20000, 20000), "bomb.png", "pixels", ctype="image/png")
    refuse("png_over_cap", "PNG 8000x6000 (48 Mpx): over our 40 Mpx cap, under Pillow's", 400,
           "too_many_pixels", png_bomb(8000, 6000), "big.png", "8000x6000", ctype="image/png")
    refuse("jpeg_bomb", "JPEG whose frame header claims 65000x65000 px", 400, "too_many_pixels",
           jpeg_with_size(small, 65000, 65000), "bomb.jpg", "pixels")
    refuse("jpeg_over_cap", "JPEG whose frame header claims 8000x6000 px", 400, "too_many_pixels",
           jpeg_with_size(small, 8000, 6000), "big.jpg", "8000x6000")
    # Other kinds of file dressed up as an image.
    for name, what, data, fname in [
        ("text_as_jpg", "plain text named .jpg", b"hello, this is not a picture\n" * 20,
         "notes.jpg"),
        ("html_as_png", "HTML with script named .png", HTML, "page.png"),
        ("svg_as_png", "SVG with a script named .png", SVG, "vector.png"),
        ("pdf_as_jpg", "PDF with JavaScript named .jpg", PDF, "doc.jpg"),
        ("zip_as_jpg", "ZIP archive (zip-slip entry) named .jpg", zip_archive(), "archive.jpg"),
        ("elf_as_png", "ELF executable named .png", elf_binary(), "program.png"),
        ("bmp_as_png", "BMP named .png", encode(img, "BMP"), "photo.png"),
        ("tiff_as_jpg", "TIFF named .jpg", encode(img, "TIFF", compression="tiff_lzw"),
         "scan.jpg"),
    ]:
        refuse(name, what, 415, "unsupported_type", data, fname, "not an accepted image")
    refuse("jpeg_magic_then_html", "JPEG magic bytes followed by HTML", 400, "corrupt_image",
           b"\xff\xd8\xff" + HTML, "magic.jpg", "JPEG header")
    # Names.
    refuse("traversal_not_image", "name '../../etc/passwd', text inside", 415, "unsupported_type",
           b"root:x:0:0:root:/root:/bin/bash\n", "../../etc/passwd", "not an accepted image")
    # Malformed requests.
    bad.append(Case("no_filename", "part 'image' without a filename parameter", 400,
                    "bad_request", ("'image'",), parts=[Part("image", None, jpeg)]))
    bad.append(Case("empty_filename", "part 'image' with filename=\"\"", 400, "bad_request",
                    ("no filename",), parts=[Part("image", "", jpeg, "image/jpeg")]))
    bad.append(Case("other_field", "the image sent under field 'photo'", 400, "bad_request",
                    ("'image'", "'photo'"), parts=[_jpeg_part("a.jpg", jpeg, "photo")]))
    bad.append(Case("json_body", "a JSON body, not multipart", 400, "bad_request", ("'image'",),
                    body=b'{"image": "aGVsbG8="}', content_type="application/json"))
    bad.append(Case("no_boundary", "multipart without a boundary", 400, "bad_request",
                    ("'image'",), body=multipart([_jpeg_part("a.jpg", jpeg)]),
                    content_type="multipart/form-data"))
    bad.append(Case("wrong_boundary", "multipart whose parts use another boundary", 400,
                    "bad_request", ("'image'",), body=multipart([_jpeg_part("a.jpg", jpeg)]),
                    content_type="multipart/form-data; boundary=something-else"))
    over = b"\xff\xd8\xff\xe0" + bytes(MAX_UPLOAD_BYTES + 500_000)
    bad.append(Case("too_large", "a 10.5 MB body (limit 10 MB)", 413, "too_large", ("10 MB",),
                    parts=[_jpeg_part("huge.jpg", over)]))
    bad.append(Case("too_large_chunked", "10.5 MB sent chunked, no Content-Length", 413,
                    "too_large", ("10 MB",), parts=[_jpeg_part("huge.jpg", over)], chunked=True))
    bad.append(Case("too_many_parts", f"{MAX_PARTS * 4} small text fields", 413, "too_large",
                    ("parts",), parts=[Part(f"f{i}", None, b"x", "text/plain")
                                       for i in range(MAX_PARTS * 4)]))
    bad.append(Case("too_many_files", f"{MAX_FILES + 1} images in one request", 400,
                    "bad_request", (f"{MAX_FILES + 1} files", f"limit is {MAX_FILES}"),
                    parts=[_jpeg_part(f"{i}.jpg", small) for i in range(MAX_FILES + 1)]))
    bad.append(Case("one_bad_of_three", "two good JPEGs and one text file: all refused", 415,
                    "unsupported_type", ("second.jpg",),
                    parts=[_jpeg_part("first.jpg", jpeg), _jpeg_part("second.jpg", b"text"),
                           _jpeg_part("third.jpg", small)]))
    return bad + _accepted(img, rgb, grey8, jpeg, png)


def _accepted(img: Image.Image, rgb: np.ndarray, grey8: np.ndarray, jpeg: bytes,
              png: bytes) -> list[Case]:
    good: list[Case] = []
    w, h = img.size

    def accept(name, what, data, filename, reference, size=(w, h), **kw):
        good.append(Case(name, what, 202, parts=[Part("image", filename, data, "image/jpeg")],
                         size=size, reference=png_of(reference), **kw))

    # Every accepted case sends bytes of its own, so none is answered from an earlier result.
    qualities = iter(range(89, 60, -1))

    def fresh_jpeg() -> bytes:
        return encode(img, "JPEG", quality=next(qualities))

    # Names and types decided by content.
    accept("png_named_jpg", "a valid PNG named .jpg: accepted by content, stored as .png",
           encode(img, "PNG", compress_level=1), "really-a-png.jpg", img, stored_suffix=".png")
    data = fresh_jpeg()
    accept("jpeg_named_png", "a valid JPEG named .png: stored as .jpg", data, "really.png",
           decoded_rgb(data), stored_suffix=".jpg")
    # The name never decides (issue 20): other accepted formats, and JPEGs under any name.
    gif = encode(img.convert("P"), "GIF")
    accept("gif_as_jpg", "GIF named .jpg: stored as .gif", gif, "anim.jpg", decoded_rgb(gif),
           stored_suffix=".gif")
    webp = encode(img, "WEBP")
    accept("webp_as_jpg", "WebP named .jpg: stored as .webp", webp, "photo.jpg",
           decoded_rgb(webp), stored_suffix=".webp")
    data = fresh_jpeg()
    accept("jpeg_named_exe", "a valid JPEG named .exe: judged as the JPEG it is", data,
           "photo.exe", decoded_rgb(data), stored_suffix=".jpg")
    data = fresh_jpeg()
    accept("nul_hides_exe", "name 'photo.jpg<NUL>.exe': NUL dropped, judged by content", data,
           "photo.jpg\x00.exe", decoded_rgb(data), echo="photo.jpg.exe")
    data = fresh_jpeg()
    accept("upper_case_ext", "name IMG_0001.JPG", data, "IMG_0001.JPG", decoded_rgb(data))
    data = fresh_jpeg()
    poly = data + zip_archive()
    assert zipfile.is_zipfile(io.BytesIO(poly))  # a real polyglot: both readers accept it
    accept("jpeg_zip_polyglot", "JPEG with a ZIP appended (valid as both): judged as the JPEG",
           poly, "poly.jpg", decoded_rgb(data), stored_suffix=".jpg")
    data = fresh_jpeg()
    accept("traversal_name", "name '../../../tmp/evil.jpg': shown back, never a path", data,
           "../../../tmp/evil.jpg", decoded_rgb(data), echo="../../../tmp/evil.jpg")
    data = fresh_jpeg()
    accept("nul_in_name", "name 'ev<NUL>il.jpg': NUL dropped", data, "ev\x00il.jpg",
           decoded_rgb(data), echo="evil.jpg")
    long_name = "a" * 296 + ".jpg"
    data = fresh_jpeg()
    accept("long_name", "a 300-character name: the last 200 shown back", data, long_name,
           decoded_rgb(data), echo=long_name[-200:])
    data = fresh_jpeg()
    accept("unicode_name", "name 'фото 😀 日本.jpg'", data, "фото 😀 日本.jpg", decoded_rgb(data),
           echo="фото 😀 日本.jpg")
    # Pillow, like browsers, decodes a PNG whose deflate stream ends cleanly but early, leaving
    # the missing rows black; the pixel cap bounds what that can cost, so it is accepted.
    short = raw_png(1600, 1200, 8, 2, zlib.compress(b"".join(
        b"\x00" + np.tile(rgb[y % h], (5, 1))[:1600].tobytes() for y in range(40)), 9))
    accept("png_short_data", "PNG header says 1600x1200, its data ends after 40 rows", short,
           "short.png", decoded_rgb(short), size=(1600, 1200))
    # Every colour layout the two formats allow.
    grey = Image.fromarray(grey8, "L")
    accept("grey_jpeg", "8-bit greyscale JPEG", encode(grey, "JPEG"), "grey.jpg",
           decoded_rgb(encode(grey, "JPEG")))
    accept("grey_png", "8-bit greyscale PNG", encode(grey, "PNG"), "grey.png", grey)
    accept("grey16_png", "16-bit greyscale PNG (scaled to 8 bits)",
           encode(Image.fromarray(grey8.astype(np.uint16) * 257), "PNG"), "grey16.png", grey)
    accept("rgb48_png", "16-bit-per-sample RGB PNG", png_rgb16(rgb), "rgb48.png", img)
    cmyk = encode(img.convert("CMYK"), "JPEG")
    accept("cmyk_jpeg", "CMYK JPEG", cmyk, "cmyk.jpg", decoded_rgb(cmyk))
    accept("progressive_jpeg", "progressive JPEG", encode(img, "JPEG", progressive=True),
           "prog.jpg", decoded_rgb(encode(img, "JPEG", progressive=True)))
    mask = np.zeros(rgb.shape[:2], np.uint8)
    mask[:, w // 3:] = 255
    rgba = Image.fromarray(np.dstack([rgb, mask]), "RGBA")
    accept("rgba_png", "RGBA PNG, a third transparent (shown on white)", encode(rgba, "PNG"),
           "rgba.png", on_white(rgba))
    la = Image.fromarray(np.dstack([grey8, mask]), "LA")
    accept("la_png", "greyscale + alpha PNG", encode(la, "PNG"), "la.png", on_white(la))
    pal = img.quantize(64)
    accept("palette_png", "palette PNG", encode(pal, "PNG"), "pal.png", pal.convert("RGB"))
    pal_t = pal.copy()
    pal_t.info["transparency"] = 0
    pal_t_png = encode(pal_t, "PNG", transparency=0)
    accept("palette_trns_png", "palette PNG with a transparent index", pal_t_png, "pal-t.png",
           on_white(Image.open(io.BytesIO(pal_t_png)).convert("RGBA")))
    bilevel = grey.point(lambda v: 255 * (v > 127)).convert("1")
    accept("bilevel_png", "1-bit PNG", encode(bilevel, "PNG"), "bw.png", bilevel)
    # EXIF orientation: stored on its side, displayed upright; the result is in displayed pixels.
    side = img.transpose(Image.Transpose.ROTATE_90)  # 90 degrees anticlockwise
    side_jpeg = encode(side, "JPEG", exif=exif_orientation(6))  # 6: rotate 90 clockwise to show
    accept("exif_rotated_jpeg", "JPEG stored 240x320 with EXIF orientation 6", side_jpeg,
           "rotated.jpg", decoded_rgb(side_jpeg).transpose(Image.Transpose.ROTATE_270))
    accept("exif_rotated_png", "PNG stored 240x320 with EXIF orientation 8",
           encode(img.transpose(Image.Transpose.ROTATE_270), "PNG", exif=exif_orientation(8)),
           "rotated.png", img)
    mirrored = encode(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "PNG",
                      exif=exif_orientation(2))
    accept("exif_mirrored_png", "PNG with EXIF orientation 2 (mirrored)", mirrored,
           "mirror.png", img)
    frames = [img, Image.fromarray(255 - rgb), Image.fromarray(rgb[::-1].copy())]
    apng = encode(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(io.BytesIO(apng)) as check:
        assert getattr(check, "n_frames", 1) == 3
    accept("animated_png", "animated PNG, 3 frames: the first is judged", apng, "anim.png", img)
    # Odd shapes within the pixel cap.
    one = Image.fromarray(rgb[:1, :1].copy())
    accept("one_pixel_png", "1x1 PNG", encode(one, "PNG"), "dot.png", one, size=(1, 1))
    strip = Image.fromarray(np.tile(rgb[:1], (1, 13, 1))[:, :4000].copy())
    accept("wide_strip_png", "4000x1 PNG", encode(strip, "PNG"), "strip.png", strip,
           size=(4000, 1))
    return good
