"""The main job: the whole pipeline on the committed sample set, no docker, no shared data.

    python -m devstack.demo [--out out/demo] [--profile baseline]

Starts Redis + the three services as processes, enrols 4 people from 2 photos each, posts camera
frames built from their *other* photos (with the launcher's camera token), prints the sightings the
analyzer recognised, writes a base-only and a full reconstruction of every face to `--out` with a
narrow `faces:view` key (every view audited), and finally erases one person everywhere.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from devstack.stack import Stack

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "lfw"


def compose_frame(paths: list[Path]) -> bytes:
    """A 'camera frame': the photos side by side on one canvas, as one JPEG."""
    tiles = [Image.open(p).convert("RGB") for p in paths]
    canvas = Image.new("RGB", (sum(t.width for t in tiles) + 40 * len(tiles), max(t.height for t in tiles) + 80),
                       (40, 40, 40))
    x = 20
    for tile in tiles:
        canvas.paste(tile, (x, 40))
        x += tile.width + 40
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def wait_for_sightings(client: httpx.Client, analyzer: str, expected: int, timeout_s: float = 60) -> list[dict]:
    deadline = time.time() + timeout_s
    while True:
        items = client.get(f"{analyzer}/v1/sightings", params={"limit": 500}).json()["items"]
        if len(items) >= expected or time.time() > deadline:
            return items
        time.sleep(0.3)


def run(out: Path, profile: str, samples: Path = SAMPLES) -> dict:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with Stack(out / "stack", profile) as stack, stack.client() as client:
        edge, analyzer, recon = (stack.url(n) for n in ("edge_encoder", "cloud_analyzer", "cloud_reconstructor"))
        print(f"stack up: edge {edge}, analyzer {analyzer}, reconstructor {recon}")
        print(f"admin API key in {stack.secrets_dir / 'admin_key'}; camera token in "
              f"{stack.secrets_dir / 'camera_token'}")
        return flow(client, edge, analyzer, recon, stack.camera_token, out, samples)


def flow(client: httpx.Client, edge: str, analyzer: str, recon: str, camera_token: str, out: Path,
         samples: Path = SAMPLES) -> dict:
    """The demo against running services (the launcher's processes or docker-compose.yml's containers):
    `client` sends the admin key, `camera_token` may post frames for the cameras lobby and gate."""
    people = sorted(p for p in samples.iterdir() if p.is_dir())
    out.mkdir(parents=True, exist_ok=True)
    camera = {"authorization": f"Bearer {camera_token}"}
    names: dict[str, str] = {}
    for person in people:
        photos = sorted(person.glob("*.jpg"))[:2]
        files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
        r = client.post(f"{analyzer}/v1/identities", data={"name": person.name}, files=files)
        r.raise_for_status()
        names[r.json()["identity_id"]] = person.name
        print(f"enrolled {person.name:<20} from {len(photos)} photos")

    truth: dict[str, str] = {}
    posted = []
    probes = [sorted(p.glob("*.jpg"))[2:] for p in people]
    for camera_id, index in (("lobby", 0), ("gate", 1)):
        frame_paths = [photos[index] for photos in probes]
        r = client.post(f"{edge}/v1/cameras/{camera_id}/frames", content=compose_frame(frame_paths),
                        headers={"content-type": "image/jpeg", **camera})
        r.raise_for_status()
        faces = sorted(r.json()["faces"], key=lambda f: f["bbox"][0])  # left to right, as composed
        for face, path in zip(faces, frame_paths):
            truth[face["face_id"]] = path.parent.name
        posted += faces
        coded_now = np.mean([f["enhancement_bytes"] for f in faces]) if faces else 0.0
        levels = max((f["enhancement_levels"] for f in faces), default=0)
        kept = (f"{levels} enhancement levels, {coded_now:.0f} B/face coded at capture" if coded_now else
                f"{levels} enhancement levels, each coded when first viewed (the crop stays at the edge)")
        print(f"camera {camera_id}: {len(faces)} faces coded, base layer "
              f"{np.mean([f['base_layer_bytes'] for f in faces]):.0f} B/face sent; {kept}")

    sightings = wait_for_sightings(client, analyzer, len(posted))
    correct = 0
    print(f"\n{'camera':<8}{'face':<14}{'recognised as':<20}{'similarity':>10}{'threshold':>10}  truth")
    for s in sorted(sightings, key=lambda s: (s["camera_id"], s["face_id"])):
        who = s["identity_name"] or f"({s['status']})"
        correct += who == truth.get(s["face_id"])
        sim = "" if s["similarity"] is None else f"{s['similarity']:.3f}"
        threshold = "" if s["threshold"] is None else f"{s['threshold']:.3f}"
        print(f"{s['camera_id']:<8}{s['face_id'][:12]:<14}{who:<20}{sim:>10}{threshold:>10}  "
              f"{truth.get(s['face_id'], '?')}")
    print(f"{correct}/{len(posted)} faces recognised correctly; each decision was made at "
          f"FPIR {max(s['fpir'] or 0 for s in sightings):.2%} (the share of never-enrolled "
          f"people this gallery would name as someone)")
    print_calibration(client, analyzer, sightings, people[0])

    # Viewing faces takes a key with the faces:view scope, and every view is audited.
    viewer = client.post(f"{analyzer}/v1/keys", json={"name": "demo viewer", "scopes": ["faces:view"]})
    viewer.raise_for_status()
    with httpx.Client(headers={"authorization": f"Bearer {viewer.json()['token']}"}, timeout=60) as as_viewer:
        for face in posted:
            for layers in ("base", "full"):
                r = as_viewer.get(f"{recon}/v1/faces/{face['face_id']}/image", params={"layers": layers})
                r.raise_for_status()
                (out / f"{truth[face['face_id']]}_{face['face_id'][:8]}_{layers}.png").write_bytes(r.content)
        denied = as_viewer.get(f"{analyzer}/v1/sightings").status_code  # not in this key's scopes
    audit = client.get(f"{analyzer}/v1/audit", params={"key_id": viewer.json()["key_id"], "limit": 1000}).json()
    print(f"wrote base-only and full reconstructions of {len(posted)} faces to {out}/ with a faces:view key; "
          f"the same key got {denied} on /v1/sightings; audit trail holds {len(audit['items'])} entries for it")
    # Erase one person everywhere: templates, sightings in Redis, pixels at the edge.
    erased_id, erased_name = next(iter(names.items()))
    report = client.post(f"{analyzer}/v1/identities/{erased_id}/erase", json={"sightings": True}).json()
    deadline = time.time() + 30
    while not report["complete"] and time.time() < deadline:
        time.sleep(0.3)
        report = client.get(f"{analyzer}/v1/erasures/{report['erasure_id']}").json()
    edges = ", ".join(f"{e}: {v['status']} ({v['erased']} erased)" for e, v in report["edges"].items())
    print(f"erased {erased_name}: {report['templates']} templates, {report['faces']} faces, "
          f"{report['events']} events in the cloud; edges {edges}")
    summary = {"faces": len(posted), "correct": correct, "erasure_complete": report["complete"],
               "base_layer_bytes": float(np.mean([f["base_layer_bytes"] for f in posted])),
               "enhancement_bytes": float(np.mean([f["enhancement_bytes"] for f in posted]))}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def print_calibration(client: httpx.Client, analyzer: str, sightings: list[dict], person: Path) -> None:
    """Where the stated FPIR comes from: its upper bound, what it was calibrated on, and what held-out
    people showed at the nearest gallery size (one search answers with the analyzer's own figures)."""
    decided = [s for s in sightings if s.get("fpir") is not None]
    if not decided:
        return
    worst = max(decided, key=lambda s: s["fpir"])
    print(f"FPIR {worst['fpir']:.2%} stated, up to {worst.get('fpir_upper') or worst['fpir']:.2%} (95% interval "
          f"of the calibration's check); calibrated on {worst.get('calibrated_on') or 'unknown'}")
    if worst.get("calibration_caveats"):
        print(f"outside what calibration covered: {', '.join(worst['calibration_caveats'])}")
    photo = next(p for p in sorted(person.iterdir()) if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    answer = client.post(f"{analyzer}/v1/search", files={"image": (photo.name, photo.read_bytes())})
    calibration = answer.json().get("calibration") if answer.status_code == 200 else None
    for point in (calibration or {}).get("held_out", []):
        print(f"  measured on held-out {point['dataset']:<15} (gallery {point['gallery']}, {point['enrol_images']} "
              f"photo(s), {point['probe_frames']} frame(s)): FPIR {point['fpir']:.2%} at target "
              f"{calibration['target_fpir']:.2%}, FNIR {point['fnir']:.1%}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--profile", default="scalable")
    args = parser.parse_args(argv)
    summary = run(args.out, args.profile)
    if summary["correct"] != summary["faces"]:
        raise SystemExit(f"only {summary['correct']}/{summary['faces']} faces recognised correctly")
    if not summary["erasure_complete"]:
        raise SystemExit("the erasure was not confirmed by every edge")


if __name__ == "__main__":
    main()
