"""Settings from the environment (and an optional ``.env`` file); defaults need none."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    # PostgreSQL URL (postgresql://user:pass@host:port/db). Unset: the embedded server
    # under DATA_DIR, started on demand.
    database_url: str | None = None
    db_min_connections: int = Field(default=2, ge=0)
    db_max_connections: int = Field(default=10, ge=1)
    # Seconds to wait for a connection (connect, or a free one from the pool).
    db_connection_timeout: float = Field(default=5.0, gt=0)
    # statement_timeout of every session, in seconds; 0 disables it.
    db_query_timeout: float = Field(default=30.0, ge=0)
    # Seconds the client waits beyond DB_QUERY_TIMEOUT for an answer before it drops the
    # connection (503): a frozen server cannot enforce its statement_timeout.
    db_answer_margin: float = Field(default=2.0, gt=0)
    # asyncpg's prepared-statement cache per connection; 0 behind PgBouncer (transaction mode).
    db_statement_cache_size: int = Field(default=100, ge=0)

    # Unrevoked, unexpired tokens a user may hold (409 too_many_tokens on POST /v1/tokens);
    # GET /v1/tokens lists up to this many in one answer, hence the upper bound.
    app_max_tokens_per_user: int = Field(default=100, ge=1, le=10_000)
    # Longest expires_in a token may ask for, in seconds (422 above); 10 years by default, at
    # most dal.records.users.MAX_TOKEN_EXPIRES_IN (100 years). A token given no expires_in never
    # expires (it works until revoked).
    app_max_token_expires_in: int = Field(default=10 * 365 * 24 * 3600, ge=1, le=3_153_600_000)
    app_host: str = "127.0.0.1"
    app_port: int = Field(default=8000, ge=0, le=65535)
    # Bearer token for admin routes (creating users). Unset (or blank): `mnemo serve` makes
    # one in DATA_DIR/admin-token.
    app_admin_token: SecretStr | None = None
    app_max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    # The body of an import (POST /v1/conversations/import; 413 above), read whole before a
    # row is written: the app holds it, and its parsed messages, while it imports.
    app_max_import_bytes: int = Field(default=256 * 1024 * 1024, ge=1, le=2**40)
    # Seconds an import's statements (its COPY of messages) may run, instead of
    # DB_QUERY_TIMEOUT: a large import is one long statement, several thousand messages a
    # second (README "Export and import").
    app_import_timeout: float = Field(default=600.0, gt=0, le=86_400)
    # How deeply a JSON value (metadata, a message part, a thread's values, a metadata filter)
    # may nest objects and arrays (422 above). 64 is far beyond real documents (AI SDK parts and
    # LangChain messages are under 10 deep) and well inside what the parser (200) and the
    # encoders (orjson, msgpack: about 255, with a response's wrapping) can take, hence le=128.
    app_max_json_depth: int = Field(default=64, ge=1, le=128)
    # A message's parts, bytes (their JSON text) and count, whether stored at once or grown by
    # appends, and its metadata's bytes (413 message_too_large); twice a body, so every body
    # fits and a stream can grow.
    app_max_message_bytes: int = Field(default=2 * 1024 * 1024, ge=1, le=2**62)
    app_max_message_parts: int = Field(default=1000, ge=1, le=2**31 - 1)
    # Seconds without a message after which the next one starts a new chat session (README
    # "Chat sessions").
    app_session_timeout_seconds: float = Field(default=900.0, gt=0, le=10**9)
    # Messages a conversation may hold, and a user may write over all conversations (429
    # limit_reached above; README "Limits"); 0: no limit.
    app_max_messages_per_conversation: int = Field(default=0, ge=0, le=2**62)
    app_max_messages_per_user: int = Field(default=0, ge=0, le=2**62)
    # Bytes of one page of messages (parts, text, metadata) or conversations (title, metadata,
    # tags): the page ends early rather than exceed it, but always holds at least one row.
    app_max_page_bytes: int = Field(default=4 * 1024 * 1024, ge=1, le=2**62)
    # Seconds after it was written during which a message's sender may edit its parts or retract
    # it (409 edit_window_closed after); 0: never. README "Edits and retraction".
    app_edit_window_seconds: int = Field(default=300, ge=0, le=3_153_600_000)
    # Characters of a feedback comment (422 above).
    app_max_feedback_comment_chars: int = Field(default=4000, ge=1, le=1_000_000)
    # Bytes of a workspace snapshot's panels, as compact JSON (413 snapshot_too_large above).
    app_max_snapshot_bytes: int = Field(default=1024 * 1024, ge=1, le=2**30)
    # Bytes of one event's payload in an event log, as compact JSON (413 event_too_large above).
    app_max_event_bytes: int = Field(default=64 * 1024, ge=1, le=2**30)
    # Members a conversation may have (POST .../members answers 429 limit_reached at it); 0: no
    # limit. A direct conversation has two at most, whatever this says.
    app_max_members: int = Field(default=1000, ge=0, le=2**31 - 1)
    # Attachments (README "Attachments"): bytes of one file (413 attachment_too_large as soon
    # as an upload passes it, nothing kept); bytes a user's files may take in all (413
    # quota_exceeded; 0: no quota); seconds an uploaded file no message references is kept
    # (``mnemo attachments gc`` deletes it after); pixels of an image a thumbnail is made of
    # (422 image_refused above: a decompression bomb).
    app_max_attachment_bytes: int = Field(default=50 * 1024 * 1024, ge=1, le=2**46)
    app_attachment_quota_bytes: int = Field(default=0, ge=0, le=2**62)
    app_attachment_grace_seconds: int = Field(default=24 * 3600, ge=0, le=3_153_600_000)
    # Rows one statement of an erasure (DELETE /v1/users/{id}, `mnemo users erase`) deletes or
    # anonymizes at most: each batch is its own short transaction.
    app_erasure_batch: int = Field(default=500, ge=1, le=100_000)
    # Seconds each statement of the storage stats (GET /v1/admin/stats, `mnemo stats`) may
    # run (a statement_timeout of their own: some scan whole tables).
    app_stats_timeout: float = Field(default=10.0, gt=0, le=3600)
    app_max_image_pixels: int = Field(default=40_000_000, ge=1, le=1_000_000_000)
    # Uploads a process serves at once (503 too_many_uploads above, with Retry-After): each
    # holds up to two 1 MiB chunks, so this bounds the memory uploads take (~3 MiB each).
    app_max_concurrent_uploads: int = Field(default=32, ge=1, le=100_000)
    # Seconds GET /health waits for the database before answering 503.
    app_health_timeout: float = Field(default=1.0, gt=0)
    # What a client may hold (app/server.py): seconds an idle keep-alive connection stays
    # open, seconds to send a request's headers, seconds to send its body (408), and
    # connections served at once (503 above).
    app_keep_alive_timeout: float = Field(default=5.0, gt=0)
    app_header_timeout: float = Field(default=10.0, gt=0)
    app_body_timeout: float = Field(default=60.0, gt=0)
    # The body's deadline, APP_BODY_TIMEOUT after the headers, moves 1 s later for each
    # APP_MIN_BODY_RATE bytes received, but never past APP_BODY_TIMEOUT after the last bytes: a
    # body that keeps this average rate may take as long as its size needs (a 50 MiB upload at
    # 5 Mbit/s takes 84 s), one that stalls is cut. 32 KiB/s (256 kbit/s) is below any mobile
    # uplink but 2G, and holding the 500 connections of APP_MAX_CONNECTIONS that way costs a
    # client 16 MiB/s. 0: the whole body within APP_BODY_TIMEOUT.
    app_min_body_rate: int = Field(default=32 * 1024, ge=0, le=2**40)
    app_max_connections: int = Field(default=500, ge=1)
    # Seconds a client may leave its answer unread (the send buffer full) before the
    # connection is dropped.
    app_send_timeout: float = Field(default=60.0, gt=0)
    # The HTTP parser (app/server.py): httptools (C, the default) or h11 (pure Python); the
    # limits above hold on either.
    app_http: Literal["httptools", "h11"] = "httptools"
    # Seconds a process may reuse a token's authentication without asking the database
    # (app/token_cache.py); revocation, deactivation and expiry end it at once. 0: ask every time.
    app_auth_cache_seconds: float = Field(default=30.0, ge=0, le=3600)
    # Seconds a process may reuse what a profile kind resolves to (dal/usecases/profiles.py
    # Resolver, README "Runtime profiles"); any change to a profile ends it at once (NOTIFY
    # mnemo_profiles). 0: ask the database on every resolve.
    app_profile_cache_seconds: float = Field(default=5.0, ge=0, le=3600)
    # Live event streams (app/event_hub.py, README "Live events"): events held for one stream
    # that its client has not read yet (past it the stream ends and the client resumes from
    # the log with Last-Event-ID); seconds between heartbeat comments (each re-checks the
    # caller's token and access); streams one process serves at once (503 above, with
    # Retry-After); seconds a stream lasts before it ends for the client to resume (0: no end).
    app_event_stream_buffer: int = Field(default=1000, ge=1, le=1_000_000)
    app_event_stream_heartbeat_seconds: float = Field(default=15.0, gt=0, le=3600)
    app_max_event_streams: int = Field(default=1000, ge=1, le=1_000_000)
    app_event_stream_max_seconds: float = Field(default=3600.0, ge=0, le=86_400 * 7)
    # Backups (README "Backups"): how many of its own backups in DATA_DIR/backups Mnemo keeps
    # after each automatic one (mnemo migrate; 0: all), and seconds pg_dump or pg_restore may
    # take (waiting for locks included) before it is stopped.
    app_backups_keep: int = Field(default=10, ge=0, le=100_000)
    app_backup_timeout: float = Field(default=3600.0, gt=0, le=7 * 86_400)

    # Retention (README "Retention"), every policy off (0) by default: delete a thread (its
    # checkpoints, blobs and writes) with no activity for N days; keep at most N checkpoints
    # per thread and namespace (the newest, and what they need); delete a conversation (its
    # messages, members, events) with no activity for N days. Per thread, conversation or user
    # a metadata "retention" object lengthens or exempts. RETENTION_INTERVAL_SECONDS: run them
    # that often while the app serves (one process runs; 0: only `mnemo retention run`), in
    # batches of RETENTION_BATCH rows per table and statement, resting after each batch
    # RETENTION_PAUSE_RATIO times as long as it took (1: busy at most half the time; 0: none).
    retention_thread_days: int = Field(default=0, ge=0, le=1_000_000)
    retention_keep_checkpoints: int = Field(default=0, ge=0, le=2**31 - 1)
    retention_conversation_days: int = Field(default=0, ge=0, le=1_000_000)
    retention_interval_seconds: float = Field(default=0.0, ge=0, le=365 * 86_400)
    retention_batch: int = Field(default=1000, ge=1, le=100_000)
    retention_pause_ratio: float = Field(default=1.0, ge=0, le=100)
    # Whose word counts: "metadata" honours the "retention" objects of rows' and users'
    # metadata (their owners may exempt or lengthen); "none" ignores them.
    retention_overrides: Literal["metadata", "none"] = "metadata"

    # The key encrypting profiles' secrets at rest (README "Runtime profiles"): a Fernet key,
    # or several comma-separated (the first encrypts, any decrypts). Unset: DATA_DIR/
    # encryption-key, made once (mode 0600). Losing the key loses the secrets stored with it.
    mnemo_encryption_key: SecretStr | None = None

    # Identity (README "Identity"): password sign-in, access tokens (JWTs) and refresh tokens.
    # The key signing access tokens (HS256), at least 32 characters; unset: DATA_DIR/jwt-key,
    # made once (mode 0600). Changing it signs every access token out (not the sessions: their
    # refresh tokens still get new ones). Every process of one deployment needs the same key.
    app_jwt_secret: SecretStr | None = None
    # Seconds an access token (JWT) is valid, and a session (its refresh token) unused: each
    # refresh moves the session's end this far again.
    app_access_token_seconds: int = Field(default=900, ge=1, le=86_400)
    app_refresh_token_seconds: int = Field(default=30 * 86_400, ge=60, le=3650 * 86_400)
    # Whether POST /v1/auth/signup creates users (open) or answers 403 (closed).
    app_signup: Literal["closed", "open"] = "closed"
    # Argon2id's parameters for new password hashes (a hash made with others is redone at its
    # next sign-in). The defaults are RFC 9106's second recommended option, argon2-cffi's own:
    # 3 passes over 64 MiB with 4 lanes (~50 ms and 64 MiB per hash on a current core).
    app_argon2_time_cost: int = Field(default=3, ge=1, le=100)
    app_argon2_memory_kib: int = Field(default=64 * 1024, ge=8, le=4 * 1024 * 1024)
    app_argon2_parallelism: int = Field(default=4, ge=1, le=64)
    # Password hashes computed at once per process (each in a thread; 0: one per CPU), and
    # seconds a sign-in waits for a free slot before 503 busy (with Retry-After).
    app_max_concurrent_hashes: int = Field(default=0, ge=0, le=1024)
    app_hash_wait_seconds: float = Field(default=5.0, gt=0, le=600)
    # The lockout (README "Identity"): per (username, client address), the first
    # APP_LOGIN_FREE_FAILURES failed sign-ins are free; each one after locks the pair for
    # APP_LOGIN_LOCK_SECONDS, doubled for each further failure, at most
    # APP_LOGIN_MAX_LOCK_SECONDS (429 login_locked meanwhile, the password not checked). A
    # pair's count is forgotten APP_LOGIN_FAILURE_WINDOW_SECONDS after its last failure.
    app_login_free_failures: int = Field(default=5, ge=0, le=1000)
    app_login_lock_seconds: float = Field(default=1.0, gt=0, le=86_400)
    app_login_max_lock_seconds: float = Field(default=900.0, gt=0, le=7 * 86_400)
    app_login_failure_window_seconds: int = Field(default=86_400, ge=1, le=365 * 86_400)

    # Where the embedded PostgreSQL keeps its data and the generated admin token live.
    data_dir: Path = PROJECT_DIR / ".data"

    @field_validator(
        "database_url", "app_admin_token", "mnemo_encryption_key", "app_jwt_secret", mode="before"
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """``VAR=`` (as docker compose passes an unset ``${VAR:-}``) means unset, not ``""``."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("app_jwt_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 32:
            raise ValueError("APP_JWT_SECRET must hold at least 32 bytes")
        return value

    @model_validator(mode="after")
    def _argon2_memory(self) -> Self:
        if self.app_argon2_memory_kib < 8 * self.app_argon2_parallelism:
            raise ValueError("APP_ARGON2_MEMORY_KIB must be at least 8 x APP_ARGON2_PARALLELISM")
        return self
