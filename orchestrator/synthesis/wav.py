"""Container formats for streamed PCM."""

from __future__ import annotations

import struct

# Sizes set to the maximum: the length is unknown while streaming, and players read to EOF.
_STREAMING_SIZE = 0xFFFFFFFF


def wav_header(sample_rate: int, channels: int = 1, bits: int = 16) -> bytes:
    """A 44-byte RIFF/WAVE header for a PCM stream of unknown length."""
    block_align = channels * bits // 8
    return b"".join(
        [
            b"RIFF",
            struct.pack("<I", _STREAMING_SIZE),
            b"WAVEfmt ",
            struct.pack(
                "<IHHIIHH",
                16,
                1,
                channels,
                sample_rate,
                sample_rate * block_align,
                block_align,
                bits,
            ),
            b"data",
            struct.pack("<I", _STREAMING_SIZE),
        ]
    )
