"""The committed gRPC stubs match their .proto files (regenerated with scripts/gen_protos.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from google.protobuf.timestamp_pb2 import Timestamp

ROOT = Path(__file__).resolve().parent.parent
STUBS = ROOT / "proto" / "facecoding" / "v1"
GENERATED = ("*_pb2.py", "*_pb2_grpc.py", "*_pb2.pyi")
HINT = "the committed gRPC stubs are stale: run `python scripts/gen_protos.py` and commit the result"


def load_gen_protos() -> ModuleType:
    # scripts/ is not a package: load the script by path, exactly the code a developer runs.
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stub_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for pattern in GENERATED for p in folder.glob(pattern)}


def test_committed_stubs_are_up_to_date(tmp_path: Path) -> None:
    load_gen_protos().generate(tmp_path)
    fresh = stub_files(tmp_path / "facecoding" / "v1")
    committed = stub_files(STUBS)
    assert fresh, "gen_protos.generate produced no stubs"
    assert sorted(committed) == sorted(fresh), f"{HINT} (missing or extra stub files)"
    stale = sorted(name for name in fresh if committed[name] != fresh[name])
    assert not stale, f"{HINT}; differing: {', '.join(stale)}"


def test_face_record_round_trips() -> None:
    from facecoding.v1 import ingest_pb2

    record = ingest_pb2.FaceRecord(
        face_id="edge-1/cam-1/000001",
        camera_id="cam-1",
        captured_at=Timestamp(seconds=1_700_000_000, nanos=5),
        bbox=ingest_pb2.BoundingBox(x1=1.5, y1=2.0, x2=100.25, y2=120.0),
        detection_score=0.75,
        model_id=1,
        rate_id=0,
        codec_version="0.1.0",
        base_layer=b"FC\x01\x01\x00p\x00\xff\x00",  # bytes fields carry any octet, NULs included
        edge_id="edge-1",
        edge_address="edge_encoder:50052",
        enhancement_levels=4,
    )
    wire = record.SerializeToString()
    decoded = ingest_pb2.FaceRecord.FromString(wire)
    assert decoded == record
    assert decoded.base_layer == b"FC\x01\x01\x00p\x00\xff\x00"
    assert decoded.captured_at.nanos == 5
