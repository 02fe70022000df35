"""Image validation and decoding: the stills people send (the still rows of shared/formats),
checked by content whatever the file is called, pixel count capped."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from shared import formats
from shared.errors import InputError

# Pillow reads WebP and AVIF itself (libwebp, libavif in its wheels); HEIC/HEIF through the
# pillow-heif plugin. GIF: the first frame is judged.
register_heif_opener()
DEFAULT_MAX_PIXELS = 40_000_000


class ImageError(InputError):
    """An upload (still or video) we refuse."""


def decoders() -> list[str]:
    """Pillow's names of the accepted still formats (the only decoders an upload may reach)."""
    return [f.decoder for f in formats.accepted("still")]


def _open(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise ImageError("empty_file", "the file is empty")
    with warnings.catch_warnings():
        # Pillow's own bomb check warns at half its limit; we apply our cap ourselves below.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=decoders())
        except UnidentifiedImageError:
            claimed = formats.sniff(data)
            if claimed is not None and claimed.kind == "still":
                # It says it is one of ours by its magic bytes, but its header is broken.
                raise ImageError("corrupt_image", f"the {claimed.words} header is damaged or "
                                 "truncated") from None
            raise ImageError("unsupported_type", f"not an accepted image "
                             f"({formats.listed('still')}) or video "
                             f"({formats.listed('video', ', ')})", 415) from None
        except Image.DecompressionBombError:
            raise ImageError("too_many_pixels", "the image has too many pixels") from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageError("corrupt_image", f"the image cannot be read ({exc})") from None
    w, h = img.size
    if w < 1 or h < 1:
        raise ImageError("corrupt_image", "the image has no pixels")
    if w * h > max_pixels:
        raise ImageError(
            "too_many_pixels", f"the image is {w}x{h} pixels; the limit is {max_pixels:,} pixels"
        )
    return img


def inspect_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> dict:
    """Check bytes are a whole accepted still within the pixel cap; returns format, width,
    height."""
    img = _open(data, max_pixels)
    # A phone's multi-picture JPEG (MPO) is opened by Pillow's JPEG decoder under another name:
    # it is the JPEG it starts with (its row in shared/formats, stored as .jpg).
    name = "JPEG" if img.format == "MPO" else img.format
    info = {"format": name, "width": img.width, "height": img.height}
    try:
        if img.format == "JPEG":
            # At 1/8 scale libjpeg still reads every entropy-coded block (so truncation and
            # broken streams still fail here) but skips the inverse DCT: 0.7 ms, not 1.6 ms.
            img.draft(None, (max(1, img.width // 8), max(1, img.height // 8)))
        img.load()  # a decode is the only reliable check for truncation
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError("corrupt_image", f"the image data is damaged or truncated ({exc})"
                         ) from None
    return info


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                 reduce_to: int | None = None) -> np.ndarray:
    """RGB uint8 array (EXIF orientation applied); reduce_to lets JPEG decode at a smaller scale."""
    return np.asarray(decode_pil(data, max_pixels, reduce_to), dtype=np.uint8)


def decode_pil(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
               reduce_to: int | None = None) -> Image.Image:
    """decode_image() as a PIL RGB image, for callers that only resize and crop it."""
    # The worker stays in PIL: turning a 640x480 image into an array costs about 1 ms (a copy
    # through tobytes), more than the crops it needs from it.
    img = _open(data, max_pixels)
    try:
        if reduce_to and img.format == "JPEG":
            # draft() decodes at 1/2, 1/4 or 1/8 scale in libjpeg: far cheaper than a full decode.
            img.draft("RGB", (reduce_to, reduce_to))
        img.load()
        img = ImageOps.exif_transpose(img) if _rotated(img) else img  # no copy when upright
        return img if img.mode == "RGB" else _to_rgb(img)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError("corrupt_image", f"the image data is damaged or truncated ({exc})"
                         ) from None


def _rotated(img: Image.Image) -> bool:
    return img.getexif().get(0x0112, 1) not in (0, 1)  # the EXIF Orientation tag


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits rather than clip, or bright images turn white.
        arr = np.asarray(img, dtype=np.uint32)
        peak = max(int(arr.max()), 1)
        img = Image.fromarray((arr * 255 // peak).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        canvas = Image.new("RGB", img.size, (255, 255, 255))
        canvas.paste(img, mask=img.getchannel("A"))
        return canvas
    return img.convert("RGB")
