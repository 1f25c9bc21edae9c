import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BoundingBox(_message.Message):
    __slots__ = ("x1", "y1", "x2", "y2")
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    X2_FIELD_NUMBER: _ClassVar[int]
    Y2_FIELD_NUMBER: _ClassVar[int]
    x1: float
    y1: float
    x2: float
    y2: float
    def __init__(self, x1: _Optional[float] = ..., y1: _Optional[float] = ..., x2: _Optional[float] = ..., y2: _Optional[float] = ...) -> None: ...

class FaceRecord(_message.Message):
    __slots__ = ("face_id", "camera_id", "captured_at", "bbox", "detection_score", "model_id", "rate_id", "codec_version", "base_layer", "edge_id", "edge_address", "enhancement_levels", "quality", "track_id", "track_closed", "request_id")
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_FIELD_NUMBER: _ClassVar[int]
    BBOX_FIELD_NUMBER: _ClassVar[int]
    DETECTION_SCORE_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    RATE_ID_FIELD_NUMBER: _ClassVar[int]
    CODEC_VERSION_FIELD_NUMBER: _ClassVar[int]
    BASE_LAYER_FIELD_NUMBER: _ClassVar[int]
    EDGE_ID_FIELD_NUMBER: _ClassVar[int]
    EDGE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ENHANCEMENT_LEVELS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    TRACK_CLOSED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    face_id: str
    camera_id: str
    captured_at: _timestamp_pb2.Timestamp
    bbox: BoundingBox
    detection_score: float
    model_id: int
    rate_id: int
    codec_version: str
    base_layer: bytes
    edge_id: str
    edge_address: str
    enhancement_levels: int
    quality: FaceQuality
    track_id: str
    track_closed: TrackClosed
    request_id: str
    def __init__(self, face_id: _Optional[str] = ..., camera_id: _Optional[str] = ..., captured_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., bbox: _Optional[_Union[BoundingBox, _Mapping]] = ..., detection_score: _Optional[float] = ..., model_id: _Optional[int] = ..., rate_id: _Optional[int] = ..., codec_version: _Optional[str] = ..., base_layer: _Optional[bytes] = ..., edge_id: _Optional[str] = ..., edge_address: _Optional[str] = ..., enhancement_levels: _Optional[int] = ..., quality: _Optional[_Union[FaceQuality, _Mapping]] = ..., track_id: _Optional[str] = ..., track_closed: _Optional[_Union[TrackClosed, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class TrackClosed(_message.Message):
    __slots__ = ("first_seen", "last_seen", "faces_seen", "faces_uplinked")
    FIRST_SEEN_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    FACES_SEEN_FIELD_NUMBER: _ClassVar[int]
    FACES_UPLINKED_FIELD_NUMBER: _ClassVar[int]
    first_seen: _timestamp_pb2.Timestamp
    last_seen: _timestamp_pb2.Timestamp
    faces_seen: int
    faces_uplinked: int
    def __init__(self, first_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., faces_seen: _Optional[int] = ..., faces_uplinked: _Optional[int] = ...) -> None: ...

class FaceQuality(_message.Message):
    __slots__ = ("face_width_px", "sharpness", "yaw", "issues", "score")
    FACE_WIDTH_PX_FIELD_NUMBER: _ClassVar[int]
    SHARPNESS_FIELD_NUMBER: _ClassVar[int]
    YAW_FIELD_NUMBER: _ClassVar[int]
    ISSUES_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    face_width_px: float
    sharpness: float
    yaw: float
    issues: _containers.RepeatedScalarFieldContainer[str]
    score: float
    def __init__(self, face_width_px: _Optional[float] = ..., sharpness: _Optional[float] = ..., yaw: _Optional[float] = ..., issues: _Optional[_Iterable[str]] = ..., score: _Optional[float] = ...) -> None: ...

class IngestAck(_message.Message):
    __slots__ = ("face_id", "status", "error")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[IngestAck.Status]
        ACCEPTED: _ClassVar[IngestAck.Status]
        DUPLICATE: _ClassVar[IngestAck.Status]
        REJECTED: _ClassVar[IngestAck.Status]
        CONFLICT: _ClassVar[IngestAck.Status]
    STATUS_UNSPECIFIED: IngestAck.Status
    ACCEPTED: IngestAck.Status
    DUPLICATE: IngestAck.Status
    REJECTED: IngestAck.Status
    CONFLICT: IngestAck.Status
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    face_id: str
    status: IngestAck.Status
    error: str
    def __init__(self, face_id: _Optional[str] = ..., status: _Optional[_Union[IngestAck.Status, str]] = ..., error: _Optional[str] = ...) -> None: ...
