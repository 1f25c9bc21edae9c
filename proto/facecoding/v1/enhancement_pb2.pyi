from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class FetchRequest(_message.Message):
    __slots__ = ("face_id", "max_level")
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_LEVEL_FIELD_NUMBER: _ClassVar[int]
    face_id: str
    max_level: int
    def __init__(self, face_id: _Optional[str] = ..., max_level: _Optional[int] = ...) -> None: ...

class FetchResponse(_message.Message):
    __slots__ = ("face_id", "container", "levels")
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    face_id: str
    container: bytes
    levels: int
    def __init__(self, face_id: _Optional[str] = ..., container: _Optional[bytes] = ..., levels: _Optional[int] = ...) -> None: ...

class EraseRequest(_message.Message):
    __slots__ = ("face_ids", "erasure_id")
    FACE_IDS_FIELD_NUMBER: _ClassVar[int]
    ERASURE_ID_FIELD_NUMBER: _ClassVar[int]
    face_ids: _containers.RepeatedScalarFieldContainer[str]
    erasure_id: str
    def __init__(self, face_ids: _Optional[_Iterable[str]] = ..., erasure_id: _Optional[str] = ...) -> None: ...

class EraseResponse(_message.Message):
    __slots__ = ("erased", "not_held")
    ERASED_FIELD_NUMBER: _ClassVar[int]
    NOT_HELD_FIELD_NUMBER: _ClassVar[int]
    erased: int
    not_held: int
    def __init__(self, erased: _Optional[int] = ..., not_held: _Optional[int] = ...) -> None: ...

class SnapshotRequest(_message.Message):
    __slots__ = ("face_id",)
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    face_id: str
    def __init__(self, face_id: _Optional[str] = ...) -> None: ...

class SnapshotResponse(_message.Message):
    __slots__ = ("face_id", "jpeg", "width", "height")
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    JPEG_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    face_id: str
    jpeg: bytes
    width: int
    height: int
    def __init__(self, face_id: _Optional[str] = ..., jpeg: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...
