"""Real and disguised files for the type-detection tests, all made here (none shipped).

Each `Sample` is bytes under a name and a declared type that may lie about them:
an HTML page named `.png`, an ELF program named `photo.jpg` and sent as
`image/jpeg`, a plain ZIP named `.docx` beside a real DOCX. Images come from
Pillow (a dependency of matplotlib, in the dev extra), archives from the standard
library; the rest is written byte by byte.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import random
import sqlite3
import struct
import tarfile
import tempfile
import wave
import zipfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    data: bytes
    declared: str
    """What an uploader claims the file is (a lie for the disguised ones)."""


def image(format: str, *, mode: str = "RGB", size: tuple[int, int] = (16, 16)) -> bytes:
    picture = Image.new(mode, size, color=(200, 30, 30) if mode == "RGB" else 128)
    out = io.BytesIO()
    picture.save(out, format=format)
    return out.getvalue()


def png() -> bytes:
    return image("PNG")


def jpeg() -> bytes:
    return image("JPEG")


def elf_head() -> bytes:
    """The first 4 KiB of a real program of this machine."""
    return Path("/bin/true").read_bytes()[:4096]


def pe() -> bytes:
    """A minimal Windows executable header: MZ, the offset of `PE\\0\\0`, a COFF header."""
    dos = bytearray(128)
    dos[0:2] = b"MZ"
    dos[0x3C:0x40] = struct.pack("<I", 0x80)
    coff = struct.pack("<HHIIIHH", 0x14C, 1, 0, 0, 0, 0xE0, 0x0102)
    optional = struct.pack("<H", 0x10B) + bytes(0xE0 - 2)
    return bytes(dos) + b"PE\0\0" + coff + optional + bytes(512)


def _zip(entries: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in entries.items():
            archive.writestr(name, text)
    return out.getvalue()


_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/'
    'vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="word/document.xml"/></Relationships>'
)
_DOCUMENT = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
    "<w:body><w:p><w:r><w:t>Hello</w:t></w:r></w:p></w:body></w:document>"
)


def docx() -> bytes:
    """A real (minimal) Word document: the three parts Word needs, in Word's order."""
    return _zip(
        {
            "[Content_Types].xml": _CONTENT_TYPES,
            "_rels/.rels": _RELS,
            "word/document.xml": _DOCUMENT,
        }
    )


def mp4() -> bytes:
    """An ISO base media file: `ftyp` (isom), then an empty `mdat`."""
    ftyp = b"ftyp" + b"isom" + struct.pack(">I", 0x200) + b"isomiso2avc1mp41"
    return struct.pack(">I", 8 + len(ftyp) - 4 + 4) + ftyp + struct.pack(">I", 8) + b"mdat"


def wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(bytes(1600))
    return out.getvalue()


def tar() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        body = b"inside the archive\n"
        info = tarfile.TarInfo("notes.txt")
        info.size = len(body)
        archive.addfile(info, io.BytesIO(body))
    return out.getvalue()


def sqlite_db() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "db.sqlite"
        connection = sqlite3.connect(path)
        connection.execute("CREATE TABLE t (x)")
        connection.commit()
        connection.close()
        return path.read_bytes()


DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
HTML = (
    b"<!DOCTYPE html>\n<html><head><title>x</title></head>"
    b"<body><script>alert(1)</script></body></html>\n"
)
SVG = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<script>alert(document.domain)</script><rect width='10' height='10'/></svg>\n"
)
XML = b'<?xml version="1.0" encoding="UTF-8"?>\n<note><to>you</to><body>hi</body></note>\n'


def samples() -> list[Sample]:
    """The corpus: at least 30 files, real ones and disguised ones."""
    text = b"A plain note.\nIt has two lines.\n"
    return [
        Sample("empty.txt", b"", "text/plain"),
        Sample("note.txt", text, "text/plain"),
        Sample("accents.txt", "Déjà vu, naïve café: ça marche.\n".encode(), "text/plain"),
        Sample(
            "data.json", json.dumps({"a": [1, 2, 3], "b": {"c": None}}).encode(), "application/json"
        ),
        Sample("table.csv", b"name,size\na,1\nb,2\nc,3\n", "text/csv"),
        Sample("page.html", HTML, "text/html"),
        Sample("page.png", HTML, "image/png"),
        Sample("drawing.svg", SVG, "image/svg+xml"),
        Sample("drawing.png", SVG, "image/png"),
        Sample("note.xml", XML, "application/xml"),
        Sample("note.jpg", XML, "image/jpeg"),
        Sample(
            "report.pdf",
            b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n",
            "application/pdf",
        ),
        Sample("picture.png", png(), "image/png"),
        Sample("camera.jpg", jpeg(), "image/jpeg"),
        Sample("photo.png", jpeg(), "image/png"),
        Sample("anim.gif", image("GIF", mode="L"), "image/gif"),
        Sample("picture.webp", image("WEBP"), "image/webp"),
        Sample("picture.bmp", image("BMP"), "image/bmp"),
        Sample("scan.tiff", image("TIFF"), "image/tiff"),
        Sample("favicon.ico", image("ICO"), "image/vnd.microsoft.icon"),
        Sample("clip.mp4", mp4(), "video/mp4"),
        Sample("sound.wav", wav(), "audio/wav"),
        Sample("archive.zip", _zip({"a.txt": "a", "b.txt": "b"}), "application/zip"),
        Sample("fake.docx", _zip({"a.txt": "a", "b.txt": "b"}), DOCX),
        Sample("letter.docx", docx(), DOCX),
        Sample("photo.jpg", elf_head(), "image/jpeg"),
        Sample("holiday.jpg", pe(), "image/jpeg"),
        Sample("setup.exe", pe(), "application/vnd.microsoft.portable-executable"),
        Sample("notes.txt.gz", gzip.compress(text * 10, mtime=0), "application/gzip"),
        Sample("notes.txt.bz2", bz2.compress(text * 10), "application/x-bzip2"),
        Sample("notes.txt.xz", lzma.compress(text * 10), "application/x-xz"),
        Sample("bundle.tar", tar(), "application/x-tar"),
        Sample("run.sh", b"#!/bin/sh\necho hello\n", "text/plain"),
        Sample(
            "tool.py", b"#!/usr/bin/env python3\nimport sys\nprint(sys.argv)\n", "text/x-python"
        ),
        Sample("index.php", b"<?php echo 'hi'; ?>\n", "image/png"),
        Sample("letter.rtf", b"{\\rtf1\\ansi Hello}\n", "application/rtf"),
        Sample("print.ps", b"%!PS-Adobe-3.0\n%%Title: x\nshowpage\n", "application/postscript"),
        Sample("store.db", sqlite_db(), "application/octet-stream"),
        Sample("noise.bin", random.Random(14).randbytes(4096), "image/png"),
    ]
