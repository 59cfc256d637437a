"""Whether a written file is whole, and why a write failed, for encoders that do not say.

ffmpeg writing onto a full disk (or past a file-size limit) can leave an MP4 cut short and still
exit cleanly, or die with its own lines on the terminal and a "Broken pipe" for the process that
fed it frames. An MP4 is whole when its top-level boxes fill the file exactly and one of them is
``moov`` (the index, written last); why a write failed is asked of the OS by a probe write of
about the same size in the same folder.
"""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path


def mp4_problem(path: Path) -> str | None:
    """Why the MP4 at ``path`` is not whole (cut short, no index), or None."""
    try:
        size = path.stat().st_size
        boxes: list[bytes] = []
        with path.open("rb") as f:
            at = 0
            while at < size:
                f.seek(at)
                header = f.read(16)
                if len(header) < 8:
                    return f"{path.name} is cut short ({size:,} bytes)"
                length, kind = struct.unpack(">I4s", header[:8])
                if length == 1 and len(header) == 16:  # a 64-bit box size
                    length = struct.unpack(">Q", header[8:16])[0]
                elif length == 0:  # the box runs to the end of the file
                    length = size - at
                if length < 8 or at + length > size:
                    return f"{path.name} is cut short ({size:,} bytes)"
                boxes.append(kind)
                at += length
    except OSError as exc:
        return f"{path.name} cannot be read ({exc.strerror or exc})"
    return None if b"moov" in boxes else f"{path.name} has no index (moov): its write did not finish"


def write_problem(folder: Path, nbytes: int) -> str | None:
    """The OS error a write of ``nbytes`` in ``folder`` meets now (``No space left on device
    (errno 28)``), or None if it succeeds; the probe file is removed either way."""
    try:
        fd, name = tempfile.mkstemp(prefix=".mtgc-write-probe-", dir=folder)
    except OSError as exc:
        return f"{exc.strerror or exc} (errno {exc.errno})"
    try:
        with os.fdopen(fd, "wb") as f:
            chunk = b"\0" * 65536
            left = nbytes
            while left > 0:
                f.write(chunk[: min(left, len(chunk))])
                left -= len(chunk)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        return f"{exc.strerror or exc} (errno {exc.errno})"
    finally:
        os.unlink(name)
    return None
