-- Users of Mnemo and their API tokens (only a SHA-256 hash of each token is stored).
-- depends:

CREATE TABLE users (
    id             uuid        PRIMARY KEY,
    username       text        NOT NULL,
    display_name   text,
    avatar_url     text,
    metadata       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deactivated_at timestamptz,
    CONSTRAINT users_username_key UNIQUE (username),
    CONSTRAINT users_username_check CHECK (username ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    CONSTRAINT users_metadata_check CHECK (jsonb_typeof(metadata) = 'object')
);

CREATE TABLE api_tokens (
    id         uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash bytea       NOT NULL,
    name       text,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CONSTRAINT api_tokens_token_hash_key UNIQUE (token_hash)
);
