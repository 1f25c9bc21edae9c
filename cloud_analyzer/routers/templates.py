"""An identity's templates, each with an id: list, add (images, base layers, or stored faces the user
confirms are this person), remove one. An added template far from the identity's others is kept but
warned about (likely another person: `face_ops.TEMPLATE_WARN_FAR`)."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, HTTPException, Path, Request, UploadFile
from fastapi.responses import JSONResponse

from cloud_analyzer.deps import AnalyzerDep
from cloud_analyzer.idempotency import Idempotency, IdempotencyHeader, fingerprint
from cloud_analyzer.routers.identities import (
    MAX_IMAGES,
    Identity,
    IdentityId,
    Template,
    _identity,
    _upload_print,
    child_flags,
    outliers,
    template_out,
)
from cloud_analyzer.routers.inputs import FaceSources, is_json, json_body, template_faces
from service_common.guard import Caller, require
from service_common.ids import HEX32_PATTERN
from service_common.pagination import Page

router = APIRouter(prefix="/v1/identities/{identity_id}/templates", tags=["identities"])


@router.get("", response_model=Page[Template], dependencies=[require("identities:read", "identity.templates")])
def list_templates(analyzer: AnalyzerDep, identity_id: IdentityId) -> Page[Template]:
    """Every template of the identity (at most 32), in the order added: one page."""
    found = analyzer.store.templates(identity_id)
    if found is None:
        raise HTTPException(404, f"identity {identity_id} not found")
    return Page[Template](items=[template_out(info) for info, _ in found[1]], next_cursor=None)


@router.post("", response_model=Identity)
async def add_templates(
    request: Request,
    analyzer: AnalyzerDep,
    identity_id: IdentityId,
    caller: Annotated[Caller, require("identities:write", "identity.add_photos")],
    idempotency_key: IdempotencyHeader = None,
    images: Annotated[list[UploadFile] | None, File(description="one or more face images of this person")] = None,
) -> Identity | JSONResponse:
    """More templates of an enrolled person: multipart `images`, or JSON `base_layer` / `base_layers` /
    `face_ids` (sightings the user confirms are this person; the decoded base layer is the template).
    Templates of another recogniser are replaced, not mixed; the newest 32 are kept."""
    sources = await json_body(request, FaceSources) if is_json(request) else None
    if analyzer.store.identity(identity_id) is None:
        raise HTTPException(404, f"identity {identity_id} not found")
    idem = Idempotency(analyzer.store.r, caller.key.key_id, f"identity.add_photos:{identity_id}", idempotency_key,
                       fingerprint(await _upload_print(images), sources.model_dump() if sources else None))

    async def work() -> Identity:
        faces = await template_faces(analyzer, images, sources)
        flags = child_flags(analyzer, faces)
        before = analyzer.store.templates(identity_id)
        model = analyzer.codec.spec.descriptor_model
        others = [v for _, v in before[1]] if before and before[0] == model else []
        added = [(info, face.template) for face, info in faces]
        if not analyzer.store.add_templates(identity_id, np.stack([v for _, v in added]), model, MAX_IMAGES,
                                            [info for info, _ in added]):
            raise HTTPException(404, f"identity {identity_id} not found")
        out = _identity(analyzer.store.identity(identity_id))
        out.added = [template_out(info) for info, _ in added]
        out.warnings = outliers(analyzer, others, added)
        out.child_flags = flags
        caller.audit["detail"] = f"{len(added)} templates added, {len(out.warnings)} far from the others"
        return out

    return await idem.answer(caller.audit, 200, work)


@router.delete("/{template_id}", status_code=204)
def remove_template(analyzer: AnalyzerDep, identity_id: IdentityId,
                    template_id: Annotated[str, Path(pattern=HEX32_PATTERN)],
                    caller: Annotated[Caller, require("identities:write", "identity.remove_template")]) -> None:
    """Remove one template (the identity's template is recomputed from the rest at once). The last one
    cannot go: delete the identity instead."""
    outcome = analyzer.store.remove_template(identity_id, template_id)
    if outcome == "no_identity":
        raise HTTPException(404, f"identity {identity_id} not found")
    if outcome == "no_template":
        raise HTTPException(404, f"identity {identity_id} has no template {template_id}")
    if outcome == "last":
        raise HTTPException(409, "an identity keeps at least one template; delete the identity instead")
    caller.audit["detail"] = f"template {template_id} removed"
