-- API tokens may expire: api_tokens.expires_at, NULL for a token that never does (every token
-- issued before this migration). get_user_by_token refuses a token once now() reaches it, and
-- insert_token counts only unexpired, unrevoked tokens against APP_MAX_TOKENS_PER_USER.
-- Adding a nullable column without a default rewrites nothing; the CHECK reads the rows once
-- (they are all NULL).
-- depends: 20261123_03_k8t2w-create-threads-checkpoints

ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;

ALTER TABLE api_tokens
    ADD CONSTRAINT api_tokens_expires_at_check CHECK (expires_at > created_at);
