"""``File``: something to attach to a message, from a path on disk or bytes in memory.

A path is read only when the message is posted (off the event loop), so making a
``File`` costs nothing and a file changed in between is sent as it is then.
"""

from __future__ import annotations

from pathlib import Path

SPOILER_PREFIX = "SPOILER_"


class File:
    """A file to send with ``Client.post_message``.

    ``source`` is a path (``str`` or ``Path``) or the file's bytes; bytes need a
    ``filename``, a path defaults to its own name. ``spoiler`` hides the file behind a
    click in clients that show it (Discord's ``SPOILER_`` filename prefix is added);
    ``description`` is alt text for screen readers.
    """

    __slots__ = ("_data", "_path", "description", "filename", "spoiler")

    def __init__(
        self,
        source: str | Path | bytes,
        filename: str | None = None,
        *,
        spoiler: bool = False,
        description: str | None = None,
    ) -> None:
        if isinstance(source, bytes | bytearray | memoryview):
            if not filename:
                raise ValueError("filename is required when source is bytes")
            self._data: bytes | None = bytes(source)
            self._path: Path | None = None
        elif isinstance(source, str | Path):
            self._path = Path(source)
            self._data = None
            filename = filename or self._path.name
        else:
            raise TypeError(f"source must be a path or bytes, not {type(source).__name__}")
        spoiler = spoiler or filename.startswith(SPOILER_PREFIX)
        if spoiler and not filename.startswith(SPOILER_PREFIX):
            filename = SPOILER_PREFIX + filename
        self.filename: str = filename
        self.spoiler: bool = spoiler
        self.description: str | None = description

    def read(self) -> bytes:
        """The file's bytes (reads the path each time; blocking)."""
        if self._data is not None:
            return self._data
        assert self._path is not None
        return self._path.read_bytes()

    def __repr__(self) -> str:
        return f"File(filename={self.filename!r}, spoiler={self.spoiler})"
