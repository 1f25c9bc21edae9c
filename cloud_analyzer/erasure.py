"""Erasure: a person, a face or a camera's time range forgotten in Redis and at every edge that holds
their pixels. The cloud part is done at once (`Eraser`); the edges' part is queued in Redis and sent by
`EdgeEraser` (cloud_analyzer/edge_eraser.py) until each edge confirms, across restarts. Keys:
`erasure_key`, `erasure_edge_key` and `ERASURES_PENDING` in service_common/redis_keys.py.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import redis

from cloud_analyzer.clusters import Clusters
from cloud_analyzer.corrections import Corrections
from cloud_analyzer.person_search import PersonSearch
from service_common import request_id
from service_common.pagination import zset_positions
from service_common.redis_keys import (
    ERASED_TRACK_TTL_S,
    ERASURES,
    ERASURES_COMPACT,
    ERASURES_PENDING,
    EVENTS_STREAM,
    FACE_INDEXES,
    camera_sightings_key,
    enrol_counts_of,
    erasure_edge_key,
    erasure_key,
    face_key,
    face_shard,
    faces_key,
    fusion_descriptor_key,
    gallery_of,
    gallery_version_of,
    identities_of,
    identity_key,
    identity_sightings_key,
    ingest_stream_of,
    mean_key,
    name_index_of,
    sightings_key,
    template_info_key,
    template_owners_of,
    templates_key,
    track_erased_key,
    track_info_key,
    track_key,
)
from service_common.redis_oom import atomic_writes, compare_and_set_field

CHUNK = 10_000  # face ids per Erase call (the edge's limit)
SCAN = 1_000  # stream entries read per round trip while looking for erased faces
FACE_FIELDS = ("camera_id", "identity_id", "track_id", "edge_id", "history_key")  # what names its other keys

# A face's own slot, first: its record (read and deleted at once, so what it names is what a decision
# wrote before), its shard's face and sighting index entries, its fusion descriptor. Allow-oom: an erasure
# must work when Redis is full. KEYS face, face index, sighting index, fusion; ARGV face_id, then the fields
# to read. Returns 1 if the record existed, then the fields.
_TAKE_FACE = """#!lua flags=allow-oom
local fields = redis.call('HMGET', KEYS[1], unpack(ARGV, 2))
local existed = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[4])
table.insert(fields, 1, existed)
return fields
"""


@dataclass
class EdgeStatus:
    faces: int
    status: str  # pending | confirmed
    erased: int = 0  # faces the edge held and erased
    not_held: int = 0  # faces it no longer held (evicted, expired or erased before)
    last_error: str = ""


@dataclass
class ErasureReport:
    erasure_id: str
    subject: str  # identity:{id} | face:{id} | camera:{id}:{since}..{until}
    requested_at_ms: int
    key_id: str
    identity_erased: bool
    templates: int
    faces: int
    events: int
    edges: dict[str, EdgeStatus] = field(default_factory=dict)
    # Identity erasures: the person's unnamed faces found by biometric search (person_search.py).
    matched_faces: int = 0  # erased: unknown / low-quality faces at the threshold, and matched clusters' members
    pending_faces: int = 0  # of matched_faces, those still pending in the ingest stream (not yet decided)
    clusters: int = 0  # unknown-face clusters matched, erased whole
    match_threshold: float | None = None  # the cosine one face had to reach (None: no search made)

    @property
    def complete(self) -> bool:
        return all(e.status == "confirmed" for e in self.edges.values())


class Eraser:
    """The cloud side of an erasure, done in the request; the edges' part queued for EdgeEraser."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self.clusters = Clusters(client)
        self.corrections = Corrections(client)
        self._take_face = client.register_script(_TAKE_FACE)

    def identity(self, identity_id: str, with_sightings: bool, key_id: str,
                 person: PersonSearch | None = None) -> ErasureReport | None:
        """Templates and metadata; with_sightings: every sighting of the person too, and, with `person`,
        their unnamed faces (decided, or still pending in the ingest stream: the entry is dropped, a worker
        holding it records nothing) and unknown-face clusters found by biometric search; else their sightings
        stay as unnamed faces. None if there is no such identity."""
        if not self.r.exists(identity_key(identity_id)):
            return None
        templates = int(self.r.llen(templates_key(identity_id)))
        model, enrol, name = self.r.hmget(identity_key(identity_id), "descriptor_model", "enrol_key", "name")
        sightings = identity_sightings_key(identity_id)
        face_ids = self.identity_faces(identity_id)
        # First out of the gallery, so no new face is named as this person; the identity itself goes last,
        # so an erasure that fails half way can be asked again and finishes the job.
        if model is not None and enrol is not None:
            model_name = model.decode()
            atomic_writes(self.r, [("VREM", gallery_of(model_name, identity_id), identity_id),
                                   ("HINCRBY", enrol_counts_of(model_name, identity_id), enrol.decode(), -1),
                                   ("HDEL", identity_key(identity_id), "enrol_key"),  # counted out once
                                   ("INCR", gallery_version_of(identity_id))])
        report = self._report(f"identity:{identity_id}", key_id, identity_erased=True, templates=templates)
        handled: set[str] = set()
        while face_ids:  # again if a decision made just before the gallery change named someone meanwhile
            if with_sightings:
                self._faces(report, face_ids)
            else:  # the name is the person's data too: what stays is an unknown face
                for start in range(0, len(face_ids), SCAN):
                    atomic_writes(self.r, [("HSET", face_key(f), "identity_id", "", "identity_name", "",
                                            "status", "unknown") for f in face_ids[start : start + SCAN]])
            handled.update(face_ids)
            face_ids = [f.decode() for f in self.r.zrange(sightings, 0, -1) if f.decode() not in handled]
        if with_sightings and person is not None:
            # After the gallery change: a face decided meanwhile is unknown now, and found here.
            matches = person.find()
            before = report.faces
            self._faces(report, [f for f in matches.face_ids() if f not in handled])
            report.matched_faces, report.clusters = report.faces - before, len(matches.clusters)
            report.pending_faces = len(matches.pending_ids() - handled)
            report.match_threshold = round(matches.threshold, 4)
        if not with_sightings:
            report.events = self._drop_stream_entries(EVENTS_STREAM, identity_ids={identity_id})
        # Its negatives, and the corrections naming it on faces that stay.
        self.corrections.forget_identity(identity_id, handled)
        by_name = [("SREM", name_index_of(name.decode(), identity_id), identity_id)] if name is not None else []
        template_ids = [json.loads(i)["template_id"] for i in self.r.lrange(template_info_key(identity_id), 0, -1)]
        # Only the entries still pointing here: a template moved to another identity keeps its owner.
        owners = self.r.hmget(template_owners_of(identity_id), template_ids) if template_ids else []
        owned = [t for t, o in zip(template_ids, owners) if o == identity_id.encode()]
        by_name += [("HDEL", template_owners_of(identity_id), *owned)] if owned else []
        # The identity's slot (its gallery shard's) first, then its sightings (their own slot).
        atomic_writes(self.r, [("DEL", identity_key(identity_id), templates_key(identity_id), mean_key(identity_id),
                                template_info_key(identity_id)), *by_name,
                               ("ZREM", identities_of(identity_id), identity_id),
                               ("INCR", gallery_version_of(identity_id)), ("DEL", sightings)])
        self.request_compaction()  # the templates were on disk too
        return self._save(report)

    def face(self, face_id: str, key_id: str) -> ErasureReport | None:
        if not self.r.exists(face_key(face_id)):
            return None
        report = self._report(f"face:{face_id}", key_id)
        self._faces(report, [face_id])
        return self._save(report)

    def camera(self, camera_id: str, since_ms: int, until_ms: int, key_id: str) -> ErasureReport:
        """Every face of the camera captured in the range, whatever its state: decided, still pending in
        the ingest stream (its entry is dropped; a worker holding it already finds no record and records
        nothing), in error."""
        face_ids = list(dict.fromkeys([*self.camera_faces(camera_id, since_ms, until_ms),
                                       *(f.decode() for f in self.r.zrangebyscore(camera_sightings_key(camera_id),
                                                                                 since_ms, until_ms))]))
        report = self._report(f"camera:{camera_id}:{since_ms}..{until_ms}", key_id)
        self._faces(report, face_ids)
        return self._save(report)

    def identity_faces(self, identity_id: str) -> list[str]:
        """The sightings named as this identity."""
        return [f.decode() for f in self.r.zrange(identity_sightings_key(identity_id), 0, -1)]

    def edges_of(self, face_ids: list[str]) -> dict[str, list[str]]:
        """edge_id -> the faces of `face_ids` whose pixels it holds."""
        by_edge: dict[str, list[str]] = defaultdict(list)
        pipe = self.r.pipeline(transaction=False)
        for face_id in face_ids:
            pipe.hget(face_key(face_id), "edge_id")
        for face_id, edge_id in zip(face_ids, pipe.execute()):
            if edge_id:
                by_edge[edge_id.decode()].append(face_id)
        return dict(by_edge)

    def camera_faces(self, camera_id: str, since_ms: int, until_ms: int) -> list[str]:
        """Stored faces of one camera captured in [since_ms, until_ms], in any state: every face is in
        its shard's face index by capture time from its ingest on (the sighting indexes hold decided faces
        only)."""
        found: list[str] = []
        for index in FACE_INDEXES:
            offset = 0
            while True:
                ids = [f.decode() for f in self.r.zrangebyscore(index, since_ms, until_ms, start=offset, num=SCAN)]
                if not ids:
                    break
                offset += len(ids)
                pipe = self.r.pipeline(transaction=False)
                for face_id in ids:
                    pipe.hget(face_key(face_id), "camera_id")
                found += [f for f, camera in zip(ids, pipe.execute()) if camera == camera_id.encode()]
        return found

    def get(self, erasure_id: str) -> ErasureReport | None:
        raw = self.r.hget(erasure_key(erasure_id), "report")
        return report_from_json(json.loads(raw)) if raw else None

    # --- internals ---------------------------------------------------------------------------------
    def _report(self, subject: str, key_id: str, identity_erased: bool = False, templates: int = 0) -> ErasureReport:
        return ErasureReport(uuid.uuid4().hex, subject, int(time.time() * 1000), key_id, identity_erased,
                             templates, 0, 0)

    def forget(self, face_ids: Iterable[str], erasure: bool = False) -> tuple[set[str], dict[str, list[str]]]:
        """Delete these faces' records and index entries; returns the ones that existed and, per edge,
        those it holds pixels of. (Stream entries are the caller's: erasure drops them one by one,
        retention trims by time.) `erasure`: also mark their tracks erased, so that a closing notice
        still on its way does not store the track's summary again (retention needs no mark: the summary
        it would store expires anyway)."""
        by_edge: dict[str, list[str]] = defaultdict(list)
        erased: set[str] = set()
        face_ids = list(face_ids)
        for face_id in face_ids:
            shard = face_shard(face_id)
            existed, *fields = self._take_face(keys=[face_key(face_id), faces_key(shard), sightings_key(shard),
                                                     fusion_descriptor_key(face_id)], args=[face_id, *FACE_FIELDS])
            camera_id, identity_id, track_id, edge_id, history = ((v or b"").decode() for v in fields)
            # Then what the record named, in other slots (a decision between the two steps takes back its
            # own writes when it finds the record gone: cloud_analyzer/store.py).
            commands: list[tuple] = []
            if camera_id:
                commands.append(("ZREM", camera_sightings_key(camera_id), face_id))
            if identity_id:
                commands.append(("ZREM", identity_sightings_key(identity_id), face_id))
            if track_id:  # the track is this person's stay in view: its summary goes with any of its faces
                commands += [("ZREM", track_key(track_id), face_id), ("DEL", track_info_key(track_id))]
                if erasure:
                    commands.append(("SET", track_erased_key(track_id), 1, "EX", ERASED_TRACK_TTL_S))
            if history:
                commands.append(("VREM", history, face_id))
            if commands:
                atomic_writes(self.r, commands)  # also when Redis is full
            if existed:
                erased.add(face_id)
                if edge_id:
                    by_edge[edge_id].append(face_id)
        # --- unknown-face clusters: after the records are gone (a face being assigned meanwhile is not added);
        # every requested face, not only those whose record was still there: a retry after a failure
        # between the two steps still takes the face out of its cluster.
        self.clusters.remove_faces(face_ids)
        # --- end unknown-face clusters
        self.corrections.forget_faces(face_ids)  # their corrections, and the negatives made of them
        return erased, by_edge

    def _faces(self, report: ErasureReport, face_ids: Iterable[str]) -> None:
        """Every trace of these faces in Redis; their edges' share queued first, so a failure half way
        (Redis gone, the process killed) can leave records to erase again but never pixels nobody asks
        an edge to erase."""
        face_ids = list(face_ids)
        by_edge = self.edges_of(face_ids)
        report.edges.update({edge_id: EdgeStatus(len(ids), "pending") for edge_id, ids in by_edge.items()})
        self._save(report)  # before the edges' work is queued: EdgeEraser records each edge's answer in it
        for edge_id, ids in by_edge.items():
            atomic_writes(self.r, [*(("SADD", erasure_edge_key(report.erasure_id, edge_id), *ids[start : start + SCAN])
                                     for start in range(0, len(ids), SCAN)),
                                   ("SADD", ERASURES_PENDING, f"{report.erasure_id}|{edge_id}")])
        erased, _ = self.forget(face_ids, erasure=True)
        report.faces += len(erased)
        self.request_compaction()
        report.events += self._drop_stream_entries(EVENTS_STREAM, face_ids=erased)
        for stream in sorted({ingest_stream_of(f) for f in erased}):  # still queued: a worker would find nothing
            self._drop_stream_entries(stream, face_ids=erased)

    def request_compaction(self) -> None:
        """Ask for Redis's files to be rewritten without what was just erased (cloud_analyzer/compaction.py:
        at most one rewrite per interval, whichever replica gets to it). Allow-oom: also when Redis is full."""
        atomic_writes(self.r, [("SET", ERASURES_COMPACT, int(time.time() * 1000))])

    def _drop_stream_entries(self, stream: str, face_ids: set[str] | None = None,
                             identity_ids: set[str] | None = None) -> int:
        """XDEL the entries naming these faces or identities; returns how many."""
        if not face_ids and not identity_ids:
            return 0
        dropped, start = 0, "-"
        while True:
            rows = self.r.xrange(stream, min=start, count=SCAN)
            if not rows:
                return dropped
            doomed = [entry_id for entry_id, f in rows
                      if (face_ids and f.get(b"face_id", b"").decode() in face_ids)
                      or (identity_ids and any(f.get(field, b"").decode() in identity_ids for field in
                                               (b"identity_id", b"previous_identity_id", b"rejected_identity_id")))]
            if doomed:
                dropped += int(self.r.xdel(stream, *doomed))
            start = "(" + rows[-1][0].decode()

    def listing(self, after: tuple[int, str] | None, limit: int) -> tuple[list[ErasureReport], tuple[int, str] | None]:
        """Erasures newest first, after `after` (the request time and id the last page ended on); and where
        the next page starts (None: this was the last)."""
        rows = list(islice(zset_positions(self.r, ERASURES, after, limit + 16, descending=True), limit + 1))
        reports = [r for r in (self.get(i) for _, i in rows[:limit]) if r is not None]
        return reports, rows[limit - 1] if len(rows) > limit else None

    def _save(self, report: ErasureReport) -> ErasureReport:
        """Write the report; an edge's status already recorded (EdgeEraser may confirm before the request
        ends) is kept, not overwritten with `pending`."""
        key = erasure_key(report.erasure_id)
        writes: list[tuple] = [("ZADD", ERASURES, "NX", report.requested_at_ms, report.erasure_id)]
        if rid := request_id.current():  # the erasing request's id, sent on to the edges with the erasure
            writes.append(("HSETNX", key, "request_id", rid))
        atomic_writes(self.r, writes)  # even when Redis is full: an erasure must never be refused
        while True:  # compare-and-set, not WATCH/MULTI: it must also work when Redis is full
            stored = self.r.hget(key, "report")
            if stored is not None:
                report.edges.update(report_from_json(json.loads(stored)).edges)
            if compare_and_set_field(self.r, key, "report", stored, json.dumps(report_to_json(report))):
                return report



def report_to_json(report: ErasureReport) -> dict[str, Any]:
    data = {k: v for k, v in report.__dict__.items() if k != "edges"}
    data["edges"] = {k: v.__dict__ for k, v in report.edges.items()}
    return data


def report_from_json(data: dict[str, Any]) -> ErasureReport:
    edges = {k: EdgeStatus(**v) for k, v in data.pop("edges").items()}
    return ErasureReport(**data, edges=edges)
