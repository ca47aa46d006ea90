"""Runtime profiles (README "Runtime profiles"): named settings of a kind (``llm``,
``rsshub``...) with secrets, per user or system-wide, one active per kind and scope.

A kind is registered by name in ``KINDS`` (``register_kind``): the pydantic model of its
non-secret settings, the names of its secrets, and the environment variables ``resolve`` falls
back to. Secrets are never output: a profile shows each one's masked ``hint`` and ``set_at``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from dal.records.base import INPUT, NOT_NULL, JsonObject, ListPage, Patch, Row, not_null

MAX_NAME_CHARS = 100
MAX_SECRET_CHARS = 4096
# A profile's name: 1-100 characters, no NUL (the table's CHECK holds the length too).
ProfileName = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS, pattern="^[^\\x00]*$")
]
SecretValue = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_SECRET_CHARS, pattern="^[^\\x00]*$")
]
# An http(s) URL: no control character, space or NUL.
Url = Annotated[str, StringConstraints(max_length=2000, pattern="^https?://[^\\x00-\\x20\\x7f]+$")]
# A short setting: 1-n characters, no NUL (jsonb cannot hold one).
Provider = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern="^[^\\x00]+$")]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern="^[^\\x00]+$")]
Source = Literal["user", "system", "environment"]

_SETTINGS = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class LlmSettings(BaseModel):
    """An LLM endpoint: ``provider`` (openai, anthropic, ollama...), ``base_url`` (none: the
    provider's own), ``model``, ``temperature`` (0-2) and ``max_tokens``; secret ``api_key``."""

    model_config = _SETTINGS
    provider: Provider
    base_url: Url | None = None
    model: ModelName
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=10_000_000)


class RsshubSettings(BaseModel):
    """An RSSHub instance: ``base_url``; secret ``access_key``."""

    model_config = _SETTINGS
    base_url: Url


@dataclass(frozen=True, slots=True)
class ProfileKind:
    """A kind of profile: its settings model, its secrets' names, and the environment
    variables of each setting and secret (``resolve``'s last resort)."""

    name: str
    settings: type[BaseModel]
    secrets: tuple[str, ...]
    environment: Mapping[str, str] = field(default_factory=dict)

    def check_settings(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The settings as the kind's model reads them (defaults filled in, JSON-ready);
        ValueError naming each problem otherwise."""
        try:
            model = self.settings.model_validate(dict(values))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'settings'}: {error['msg']}"
                for error in exc.errors(include_url=False, include_input=False)
            )
            raise ValueError(f"settings of a {self.name} profile: {problems}") from None
        return model.model_dump(mode="json")

    def check_secret_names(self, names: Any) -> None:
        unknown = sorted(set(names) - set(self.secrets))
        if unknown:
            allowed = ", ".join(self.secrets) or "none"
            raise ValueError(f"a {self.name} profile has no secret {unknown} (allowed: {allowed})")


KINDS: dict[str, ProfileKind] = {}


def register_kind(kind: ProfileKind) -> ProfileKind:
    """Add a kind to the registry (a name is registered once)."""
    if kind.name in KINDS:
        raise ValueError(f"profile kind {kind.name!r} is already registered")
    KINDS[kind.name] = kind
    return kind


register_kind(
    ProfileKind(
        "llm",
        LlmSettings,
        ("api_key",),
        {
            "provider": "LLM_PROVIDER",
            "base_url": "LLM_BASE_URL",
            "model": "LLM_MODEL",
            "temperature": "LLM_TEMPERATURE",
            "max_tokens": "LLM_MAX_TOKENS",
            "api_key": "LLM_API_KEY",
        },
    )
)
register_kind(
    ProfileKind(
        "rsshub",
        RsshubSettings,
        ("access_key",),
        {"base_url": "RSSHUB_BASE_URL", "access_key": "RSSHUB_ACCESS_KEY"},
    )
)


def kind_of(name: str) -> ProfileKind:
    """The registered kind of this name; ValueError (naming the kinds) otherwise."""
    kind = KINDS.get(name)
    if kind is None:
        raise ValueError(f"no profile kind {name!r} (kinds: {', '.join(sorted(KINDS))})")
    return kind


class ProfileDraft(BaseModel):
    """A new profile: its ``kind``, ``name`` (unique per kind for its owner), ``settings``
    (checked against the kind's model) and ``secrets`` (by name, the kind's only)."""

    model_config = INPUT
    kind: Annotated[str, StringConstraints(pattern="^[a-z][a-z0-9_]{0,31}$")]
    name: ProfileName
    settings: JsonObject = Field(default_factory=dict)
    secrets: dict[str, SecretValue] = Field(default_factory=dict)


class ProfilePatch(Patch):
    """Changes to a profile: ``name``; ``settings`` (replaces them whole, checked against the
    kind); ``secrets``: a secret given is set, one given as null removed, one left out kept."""

    model_config = INPUT
    name: ProfileName | None = NOT_NULL
    settings: JsonObject | None = NOT_NULL
    secrets: dict[str, SecretValue | None] | None = NOT_NULL

    _not_null = field_validator("name", "settings", "secrets")(not_null)


class ProfileCopy(BaseModel):
    """The copy's name (absent: the original's with " (copy)")."""

    model_config = INPUT
    name: ProfileName | None = None


class SecretHint(Row):
    """What shows of a secret: its ``name``, a masked ``hint`` (``sk-…a1b2``) and when it
    was set."""

    name: str
    hint: str
    set_at: datetime


class Profile(Row):
    """A profile (``user_id`` null: a system profile). ``secrets``: each secret set, by name,
    as a hint, never its value."""

    id: UUID
    user_id: UUID | None
    kind: str
    name: str
    settings: dict[str, Any]
    secrets: list[SecretHint]
    active: bool
    created_at: datetime
    updated_at: datetime


class ProfileList(ListPage[Profile]):
    """Profiles by kind, then name; ``has_more`` when more follow than were asked for."""


class Effective(Row):
    """What a kind resolves to for the caller: the ``source`` (the user's active profile, the
    system's, or the environment), that profile's id and name (none from the environment),
    the settings, and each secret's hint (never its value)."""

    kind: str
    source: Source
    profile_id: UUID | None
    name: str | None
    settings: dict[str, Any]
    secrets: dict[str, str]


def mask(secret: str) -> str:
    """A secret's hint: its first 3 and last 4 characters around an ellipsis when it is long
    enough (16+ characters) for that to leave most of it hidden; all masked otherwise."""
    if len(secret) >= 16:
        return f"{secret[:3]}…{secret[-4:]}"
    return "…" * 3
