"""Runtime profiles (README "Runtime profiles"): a user's own under /v1/profiles, the
system's (user_id null, the admin token) under /v1/admin/profiles, the same operations on
each: create, list, get, update, delete, activate, duplicate, and what a kind resolves to
(``/{kind}/effective``). Secrets are never answered: each shows a masked hint."""

from __future__ import annotations

from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response

from app.auth import caller
from app.endpoints import (
    LOCATION,
    Auth,
    Endpoints,
    Json,
    Param,
    PathParam,
    body_of,
    limit_param,
)
from app.responses import no_content, record_response
from app.state import AppState
from dal.errors import InvalidInput
from dal.gateways import profiles
from dal.records.profiles import (
    KINDS,
    MAX_SECRET_CHARS,
    Effective,
    Profile,
    ProfileCopy,
    ProfileDraft,
    ProfileKind,
    ProfileList,
    ProfilePatch,
)
from dal.settings import Settings

endpoints = Endpoints()
_LIMIT = limit_param(100, profiles.MAX_PROFILES_LISTED)
# The registered kinds (dal.records.profiles.KINDS) when the module is imported.
_KIND = Param(
    "kind",
    "only profiles of this kind; absent or empty: every kind",
    {"type": "string", "enum": ["", *sorted(KINDS)]},
)
_KIND_PATH = PathParam("kind", {"type": "string", "enum": sorted(KINDS)}, errors=(422,))


def _kind_variant(kind: ProfileKind) -> Json:
    """A draft of one kind: its settings as its model has them, its secrets by name."""
    settings = kind.settings.model_json_schema()
    secret = {"type": "string", "minLength": 1, "maxLength": MAX_SECRET_CHARS}
    secret["pattern"] = "^[^\\u0000]*$"
    return {
        "properties": {
            "kind": {"const": kind.name},
            "settings": settings,
            "secrets": {
                "type": "object",
                "properties": {name: dict(secret) for name in kind.secrets},
                "additionalProperties": False,
            },
        },
        "required": ["kind", "settings"] if settings.get("required") else ["kind"],
    }


def _draft_schema(schema: Json, settings: Settings) -> None:
    """A draft's settings and secrets are those of its kind (one variant per kind)."""
    schema["properties"]["kind"] = {"type": "string", "enum": sorted(KINDS)}
    schema["oneOf"] = [_kind_variant(kind) for kind in KINDS.values()]


def _owner(request: Request[AppState], auth: Auth) -> UUID | None:
    """The scope of the request: the caller's id, or None (the system's) with the admin token."""
    return caller(request).id if auth == "user" else None


def _changed(request: Request[AppState], auth: Auth) -> None:
    """This process forgets what the scope resolved to at once (the others on the NOTIFY)."""
    request.state["resolver"].forget_scope(_owner(request, auth))


def _kind_of(value: str) -> str:
    if value not in KINDS:
        raise InvalidInput(f"kind: no profile kind {value!r} (kinds: {', '.join(sorted(KINDS))})")
    return value


def _declare(base: str, auth: Auth, whose: str, id_name: str) -> None:
    one = base + "/{" + id_name + ":uuid}"

    @endpoints.post(
        base,
        f"Create {whose} profile (inactive); secrets are stored encrypted, shown masked",
        auth=auth,
        body=ProfileDraft,
        body_schema=_draft_schema,
        response=Profile,
        status=201,
        headers=(LOCATION,),
        errors=(409,),
    )
    async def create(request: Request[AppState]) -> Response:
        draft = await body_of(request, ProfileDraft)
        made = await profiles.insert_profile(
            request.state["pool"],
            request.state["vault"],
            user_id=_owner(request, auth),
            draft=draft,
        )
        _changed(request, auth)
        return record_response(made, 201, {"Location": f"{base}/{made.id}"})

    @endpoints.get(
        base,
        f"{whose.capitalize()} profiles by kind, then name (one kind with ?kind=)",
        auth=auth,
        response=ProfileList,
        params=(_LIMIT, _KIND),
    )
    async def list_(request: Request[AppState]) -> Response:
        limit = _LIMIT.integer(request)
        assert limit is not None
        given = request.query_params.get("kind") or None
        found = await profiles.list_profiles(
            request.state["pool"],
            user_id=_owner(request, auth),
            kind=None if given is None else _kind_of(given),
            limit=limit,
        )
        return record_response(found)

    @endpoints.get(one, f"One of {whose} profiles", auth=auth, response=Profile)
    async def get(request: Request[AppState]) -> Response:
        found = await profiles.get_profile(
            request.state["pool"],
            user_id=_owner(request, auth),
            profile_id=request.path_params[id_name],
        )
        return record_response(found)

    @endpoints.patch(
        one,
        "Update a profile: a secret left out is kept, one given as null removed",
        auth=auth,
        body=ProfilePatch,
        response=Profile,
        errors=(409,),
    )
    async def update(request: Request[AppState]) -> Response:
        patch = await body_of(request, ProfilePatch)
        changed = await profiles.update_profile(
            request.state["pool"],
            request.state["vault"],
            user_id=_owner(request, auth),
            profile_id=request.path_params[id_name],
            patch=patch,
        )
        _changed(request, auth)
        return record_response(changed)

    @endpoints.delete(one, "Delete a profile", auth=auth, status=204)
    async def delete(request: Request[AppState]) -> Response:
        await profiles.delete_profile(
            request.state["pool"],
            user_id=_owner(request, auth),
            profile_id=request.path_params[id_name],
        )
        _changed(request, auth)
        return no_content()

    @endpoints.post(
        one + "/activate",
        "Make a profile the active one of its kind (the one active before is no longer)",
        auth=auth,
        response=Profile,
    )
    async def activate(request: Request[AppState]) -> Response:
        active = await profiles.activate_profile(
            request.state["pool"],
            user_id=_owner(request, auth),
            profile_id=request.path_params[id_name],
        )
        _changed(request, auth)
        return record_response(active)

    @endpoints.post(
        one + "/duplicate",
        'Copy a profile, secrets included, inactive (named "<name> (copy)" by default)',
        auth=auth,
        body=ProfileCopy,
        body_optional=True,
        response=Profile,
        status=201,
        headers=(LOCATION,),
        errors=(409,),
    )
    async def duplicate(request: Request[AppState]) -> Response:
        copy = await body_of(request, ProfileCopy)
        made = await profiles.copy_profile(
            request.state["pool"],
            user_id=_owner(request, auth),
            profile_id=request.path_params[id_name],
            copy=copy,
        )
        _changed(request, auth)
        return record_response(made, 201, {"Location": f"{base}/{made.id}"})

    @endpoints.get(
        base + "/{kind:str}/effective",
        f"What a kind resolves to for {whose} scope (user, system or environment), masked",
        auth=auth,
        response=Effective,
        path_params=(_KIND_PATH,),
    )
    async def effective(request: Request[AppState]) -> Response:
        resolved = await request.state["resolver"].resolve(
            kind=_kind_of(request.path_params["kind"]), user_id=_owner(request, auth)
        )
        return record_response(resolved.effective())


_declare("/v1/profiles", "user", "the caller's", "profile_id")
# Named apart from a user's profile_id: the ids of one scope are never found in the other.
_declare("/v1/admin/profiles", "admin", "the system's", "system_profile_id")
