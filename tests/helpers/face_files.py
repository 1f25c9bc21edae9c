"""Hostile face files (`.fcb`) for the fuzz tests of the `facecodec` command and the reconstructor's
POST /v1/decode: one seeded generator, so both see the same kinds of damage."""

from __future__ import annotations

import random

from facecodec.bitstream import CodedFace, EnhancementLayer, parse


def hostile_files(good: bytes, seed: int, count: int) -> list[bytes]:
    """Truncations, bit flips, random bytes with and without the magic, and CRC-valid containers whose
    payloads are mangled (so the codec's own decoders see them, not only the CRCs)."""
    rng = random.Random(seed)
    face = parse(good)
    out: list[bytes] = []
    for i in range(count):
        kind = i % 5
        if kind == 0:
            out.append(good[: rng.randrange(len(good))])
        elif kind == 1:
            data = bytearray(good)
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            out.append(bytes(data))
        elif kind == 2:
            out.append(rng.choice([b"", b"FC\x01"]) + rng.randbytes(rng.randrange(64 if i % 2 else 4000)))
        else:
            def mangle(payload: bytes) -> bytes:
                if not payload or rng.random() < 0.3:
                    return rng.randbytes(rng.randrange(300))
                data = bytearray(payload)
                for _ in range(rng.randint(1, 6)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
                return bytes(data[: rng.randrange(1, len(data) + 1)] if rng.random() < 0.3 else data)

            layers = tuple(EnhancementLayer(rng.choice([e.level, rng.randint(1, 255)]) if rng.random() < 0.2
                                            else e.level, mangle(e.payload) if rng.random() < 0.5 else e.payload)
                           for e in face.enhancements[: rng.randint(0, len(face.enhancements))])
            out.append(CodedFace(rng.choice([face.model_id] * 6 + [1, 2, 3, 4, 9]),
                                 rng.choice([face.rate_id] * 6 + [0, 6, 77]),
                                 rng.choice([112] * 8 + [1, 4096]),
                                 mangle(face.base) if kind == 3 else face.base, layers).to_bytes())
    return out
