"""Mnemo's benchmarked routes written the usual FastAPI + SQLModel way, as their tutorials
teach: SQLModel table models on Mnemo's tables, a synchronous engine and ``Session`` handed out
by a dependency, ``def`` path operations (FastAPI runs them in its thread pool), the caller
found by a bearer-token dependency, and ``response_model`` validating what goes out.

The token lookup is Mnemo's: the SHA-256 of the secret against ``api_tokens.token_hash``,
unrevoked, unexpired, of an active user (queries/users.sql ``get_user_by_token``), here one
joined ``select``. An append locks the conversation (``with_for_update``), so concurrent appends
to one conversation get consecutive seqs, as Mnemo's do; then the tutorial's add, commit,
refresh.

Only for the benchmark (bench/http): FastAPI and SQLModel are not dependencies of Mnemo.
"""

# No "from __future__ import annotations": FastAPI reads the annotations of the path
# operations, which name dependencies local to create_app.
import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AliasChoices, BaseModel
from pydantic import Field as PydanticField
from sqlalchemy import Column, Engine, LargeBinary, or_
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, Session, SQLModel, create_engine, select

Role = Literal["user", "assistant", "system", "tool"]
Status = Literal["complete", "streaming"]

# --- table models (Mnemo's tables; only the columns these routes use) -------------------------


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: uuid.UUID = Field(primary_key=True)
    username: str
    display_name: str | None = None
    avatar_url: str | None = None
    # "metadata" is SQLAlchemy's own attribute on a model: the column gets another name here.
    user_metadata: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", JSONB, nullable=False)
    )
    created_at: datetime
    updated_at: datetime
    deactivated_at: datetime | None = None


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_tokens"

    id: uuid.UUID = Field(primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id")
    token_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False, unique=True))
    name: str | None = None
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"

    id: uuid.UUID = Field(primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id")
    title: str
    message_count: int
    last_seq: int
    last_message_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class Message(SQLModel, table=True):
    __tablename__ = "messages"

    conversation_id: uuid.UUID = Field(primary_key=True, foreign_key="conversations.id")
    seq: int = Field(primary_key=True)
    id: uuid.UUID
    role: str
    parts: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))
    content: str
    message_metadata: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", JSONB, nullable=False)
    )
    status: str
    parts_bytes: int
    parts_count: int
    metadata_bytes: int
    created_at: datetime
    updated_at: datetime


# --- request and response models ----------------------------------------------------------


class UserPublic(BaseModel):
    id: uuid.UUID
    username: str
    display_name: str | None
    avatar_url: str | None
    metadata: dict[str, Any] = PydanticField(
        validation_alias=AliasChoices("user_metadata", "metadata")
    )
    created_at: datetime
    updated_at: datetime
    deactivated_at: datetime | None


class MessagePublic(BaseModel):
    id: uuid.UUID
    conversation_id: uuid.UUID
    seq: int
    role: Role
    parts: list[dict[str, Any]]
    content: str
    metadata: dict[str, Any] = PydanticField(
        validation_alias=AliasChoices("message_metadata", "metadata")
    )
    status: Status
    created_at: datetime
    updated_at: datetime


class MessagePage(BaseModel):
    items: list[MessagePublic]
    has_more: bool


class MessageCreate(BaseModel):
    id: uuid.UUID | None = None
    role: Role
    parts: list[dict[str, Any]]
    metadata: dict[str, Any] = {}
    status: Status = "complete"


# --- the app ----------------------------------------------------------------------------------


def create_app(database_url: str, pool_size: int = 10) -> FastAPI:
    """The app on the database at ``database_url`` (a libpq URL; psycopg 3 is the driver)."""
    url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url, pool_size=pool_size, max_overflow=0)

    def get_session() -> Any:
        with Session(engine) as session:
            yield session

    SessionDep = Annotated[Session, Depends(get_session)]
    bearer = HTTPBearer()

    def get_current_user(
        credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)],
        session: SessionDep,
    ) -> User:
        token_hash = hashlib.sha256(credentials.credentials.encode()).digest()
        statement = (
            select(User)
            .join(ApiToken, ApiToken.user_id == User.id)  # type: ignore[arg-type]
            .where(
                ApiToken.token_hash == token_hash,
                ApiToken.revoked_at == None,  # noqa: E711
                or_(ApiToken.expires_at == None, ApiToken.expires_at > datetime.now(UTC)),  # type: ignore[arg-type, operator]  # noqa: E711
                User.deactivated_at == None,  # noqa: E711
            )
        )
        user = session.exec(statement).first()
        if user is None:
            raise HTTPException(status_code=401, detail="Invalid token")
        return user

    CurrentUser = Annotated[User, Depends(get_current_user)]
    app = FastAPI()
    app.state.engine = engine

    @app.get("/v1/me", response_model=UserPublic)
    def read_me(current_user: CurrentUser) -> Any:
        return current_user

    @app.get("/v1/conversations/{conversation_id}/messages", response_model=MessagePage)
    def read_messages(
        conversation_id: uuid.UUID,
        session: SessionDep,
        current_user: CurrentUser,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> Any:
        conversation = session.exec(
            select(Conversation).where(
                Conversation.id == conversation_id, Conversation.user_id == current_user.id
            )
        ).first()
        if conversation is None:
            raise HTTPException(status_code=404, detail="Conversation not found")
        messages = session.exec(
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.seq.desc())  # type: ignore[attr-defined]
            .limit(limit + 1)
        ).all()
        return {"items": list(reversed(messages[:limit])), "has_more": len(messages) > limit}

    @app.post(
        "/v1/conversations/{conversation_id}/messages",
        response_model=MessagePublic,
        status_code=201,
    )
    def create_message(
        conversation_id: uuid.UUID,
        message_in: MessageCreate,
        session: SessionDep,
        current_user: CurrentUser,
    ) -> Any:
        conversation = session.exec(
            select(Conversation)
            .where(Conversation.id == conversation_id, Conversation.user_id == current_user.id)
            .with_for_update()
        ).first()
        if conversation is None:
            raise HTTPException(status_code=404, detail="Conversation not found")
        now = datetime.now(UTC)
        texts = [p["text"] for p in message_in.parts if p.get("type") == "text"]
        message = Message(
            conversation_id=conversation_id,
            seq=conversation.last_seq + 1,
            id=message_in.id or uuid.uuid4(),
            role=message_in.role,
            parts=message_in.parts,
            content="\n".join(t for t in texts if isinstance(t, str)),
            message_metadata=message_in.metadata,
            status=message_in.status,
            parts_bytes=len(json.dumps(message_in.parts).encode()),
            parts_count=len(message_in.parts),
            metadata_bytes=len(json.dumps(message_in.metadata).encode()),
            created_at=now,
            updated_at=now,
        )
        conversation.last_seq = message.seq
        conversation.message_count += 1
        conversation.last_message_at = now
        conversation.updated_at = now
        session.add(message)
        session.add(conversation)
        session.commit()
        session.refresh(message)
        return message

    return app


def engine_of(app: FastAPI) -> Engine:
    engine: Engine = app.state.engine
    return engine
