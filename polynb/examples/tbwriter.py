"""A minimal TensorBoard scalar writer: event files without TensorFlow, protobuf or any import beyond the
standard library, so a training script starts fast and works in any environment.

An event file is a sequence of TFRecords (length, masked CRC-32C of the length, data, masked CRC-32C of the
data) whose data are ``Event`` protocol buffers. Only the few fields scalars need are encoded, by hand:
``Event{wall_time=1: double, step=2: int64, file_version=3: string, summary=5: Summary}``,
``Summary{value=1: repeated Value}``, ``Value{tag=1: string, simple_value=2: float}``.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # Castagnoli polynomial, reflected
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC: rotated and offset so a CRC of data holding CRCs stays well distributed."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1  # int64 as protobuf encodes it (two's complement for negatives)
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _field(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _field(number, 2) + _varint(len(payload)) + payload


def scalar_event(tag: str, value: float, step: int, wall_time: float) -> bytes:
    """An encoded ``Event`` holding one scalar."""
    summary_value = _length_delimited(1, tag.encode()) + _field(2, 5) + struct.pack("<f", value)
    summary = _length_delimited(1, summary_value)
    return _field(1, 1) + struct.pack("<d", wall_time) + _field(2, 0) + _varint(step) + _length_delimited(5, summary)


def version_event(wall_time: float) -> bytes:
    return _field(1, 1) + struct.pack("<d", wall_time) + _length_delimited(3, b"brain.Event:2")


def record(data: bytes) -> bytes:
    """One TFRecord."""
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc(header)) + data + struct.pack("<I", masked_crc(data))


class ScalarWriter:
    """Appends scalars to a new event file in ``logdir``; each :meth:`flush` makes them visible to a running
    TensorBoard (which re-reads the folder every ``--reload_interval`` seconds)."""

    def __init__(self, logdir: str | os.PathLike[str]) -> None:
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        name = f"events.out.tfevents.{int(now)}.{socket.gethostname()}.{os.getpid()}.polynb"
        self.path = self.logdir / name
        self._file: BinaryIO = open(self.path, "ab")  # noqa: SIM115 -- closed by close()/__exit__
        self._file.write(record(version_event(now)))
        self._file.flush()

    def add_scalar(self, tag: str, value: float, step: int, *, wall_time: float | None = None) -> None:
        self._file.write(record(scalar_event(tag, float(value), step, time.time() if wall_time is None else wall_time)))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
