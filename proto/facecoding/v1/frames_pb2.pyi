import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Frame(_message.Message):
    __slots__ = ("camera_id", "captured_at", "image")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    captured_at: _timestamp_pb2.Timestamp
    image: bytes
    def __init__(self, camera_id: _Optional[str] = ..., captured_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., image: _Optional[bytes] = ...) -> None: ...

class FrameAck(_message.Message):
    __slots__ = ("camera_id", "status", "error", "faces_detected", "face_ids")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[FrameAck.Status]
        ACCEPTED: _ClassVar[FrameAck.Status]
        INVALID: _ClassVar[FrameAck.Status]
        FORBIDDEN: _ClassVar[FrameAck.Status]
        DROPPED: _ClassVar[FrameAck.Status]
        BUSY: _ClassVar[FrameAck.Status]
    STATUS_UNSPECIFIED: FrameAck.Status
    ACCEPTED: FrameAck.Status
    INVALID: FrameAck.Status
    FORBIDDEN: FrameAck.Status
    DROPPED: FrameAck.Status
    BUSY: FrameAck.Status
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FACES_DETECTED_FIELD_NUMBER: _ClassVar[int]
    FACE_IDS_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    status: FrameAck.Status
    error: str
    faces_detected: int
    face_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, camera_id: _Optional[str] = ..., status: _Optional[_Union[FrameAck.Status, str]] = ..., error: _Optional[str] = ..., faces_detected: _Optional[int] = ..., face_ids: _Optional[_Iterable[str]] = ...) -> None: ...
