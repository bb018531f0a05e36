"""Reading image files safely: the container is checked before decoding (known format, complete
file, decoded size under a cap), and a decoder failure is an error, never a warning.

OpenCV decodes a truncated JPEG into a grey-padded picture with only a warning on stderr, and
decodes a 1 MB PNG of 32000x32000 pixels into 3 GB; both are refused here before decoding.
A JPEG carries no checksum: libjpeg's "Corrupt JPEG data" warnings (a damaged entropy-coded
segment) are the only sign, so they are captured from the decoder and refuse the image. PNG
chunks are checked by their CRCs before decoding.
"""
import os
import struct
import sys
import tempfile
import threading
import zlib
from pathlib import Path

import numpy as np

from .errors import InputError

MAX_IMAGE_PIXELS = 1 << 25        # 33.5 Mpx (100 MB as BGR): far above any camera frame we classify
MAX_FILE_BYTES = 64 << 20
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_DAMAGE = ("Corrupt JPEG data", "Premature end of JPEG file")   # libjpeg's warnings on damage
_stderr_lock = threading.Lock()


def image_size(data, name="image"):
    """(width, height) from the file's header; InputError for an unknown, truncated or broken file."""
    if data.startswith(PNG_MAGIC):
        return _png_size(data, name)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data, name)
    if data[:2] == b"BM":
        return _bmp_size(data, name)
    raise InputError("cannot read image {}: not a PNG, JPEG or BMP file".format(name))


def _png_size(data, name):
    pos, size, ended = 8, None, False
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if end > len(data):
            break
        if zlib.crc32(data[pos + 4:end - 4]) & 0xFFFFFFFF != struct.unpack(">I", data[end - 4:end])[0]:
            raise InputError("cannot read image {}: PNG chunk {!r} at byte {} is corrupt (CRC mismatch)".format(
                name, kind, pos))
        if kind == b"IHDR":
            size = struct.unpack(">II", data[pos + 8:pos + 16])
        if kind == b"IEND":
            ended = True
            break
        pos = end
    if size is None or not ended:
        raise InputError("cannot read image {}: truncated PNG (no {} chunk)".format(
            name, "IHDR" if size is None else "IEND"))
    return size


def _jpeg_size(data, name):
    if data.rstrip(b"\x00")[-2:] != b"\xff\xd9":
        raise InputError("cannot read image {}: truncated JPEG (no end-of-image marker)".format(name))
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise InputError("cannot read image {}: corrupt JPEG (no marker at byte {})".format(name, pos))
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if pos + 9 > len(data):
                break
            h, w = struct.unpack(">HH", data[pos + 5:pos + 9])
            return w, h
        pos += 2 + length
    raise InputError("cannot read image {}: corrupt JPEG (no frame header)".format(name))


def _bmp_size(data, name):
    if len(data) < 30:
        raise InputError("cannot read image {}: truncated BMP header".format(name))
    offset = struct.unpack("<I", data[10:14])[0]
    w, h = struct.unpack("<ii", data[18:26])
    bits = struct.unpack("<H", data[28:30])[0]
    need = offset + ((abs(w) * bits + 31) // 32) * 4 * abs(h)
    if w <= 0 or h == 0 or len(data) < need:
        raise InputError("cannot read image {}: truncated or corrupt BMP ({} bytes, the header needs {})".format(
            name, len(data), need))
    return w, abs(h)


def read_image(path, flags=None, max_pixels=MAX_IMAGE_PIXELS):
    """Decode an image file with OpenCV (default flags: unchanged) after checking its header."""
    import cv2
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InputError("cannot read image {}: file of {} bytes exceeds {} MB".format(
                path, path.stat().st_size, MAX_FILE_BYTES >> 20))
        data = path.read_bytes()
    except OSError as e:
        raise InputError("cannot read image {}: {}".format(path, e.strerror or e)) from None
    w, h = image_size(data, str(path))
    if w < 1 or h < 1 or w * h > max_pixels:
        raise InputError("cannot read image {}: {}x{} pixels; images up to {} pixels are accepted "
                         "(downscale it first)".format(
            path, w, h, max_pixels))
    img, messages = _decode(data, cv2.IMREAD_UNCHANGED if flags is None else flags)
    if img is None or img.shape[0] != h or img.shape[1] != w:
        raise InputError("cannot read image {}: the image data cannot be decoded".format(path))
    damage = [m for m in messages.splitlines() if m.startswith(JPEG_DAMAGE)]
    if damage:
        raise InputError("cannot read image {}: damaged JPEG data (the decoder reports: {})".format(path, damage[0]))
    return img


def _decode(data, flags):
    """cv2.imdecode, with what the decoder writes to the C stderr (fd 2) captured and returned."""
    import cv2
    with _stderr_lock, tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(capture.fileno(), 2)
            img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        return img, capture.read().decode("utf-8", "replace")
