-- SPDX-License-Identifier: Apache-2.0
-- Confirmation mail: an outbox written in the claim's transaction, and
-- single-use tokens for the links in the mails. Indexes for the audit's
-- and the operator's queries.

CREATE TABLE outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('confirm', 'new_key')),
    to_email    text NOT NULL,
    subject     text NOT NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    next_try_at timestamptz NOT NULL DEFAULT now(),
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text,
    sent_at     timestamptz
);
CREATE INDEX outbox_due ON outbox (next_try_at) WHERE sent_at IS NULL;
CREATE INDEX outbox_to_email ON outbox (to_email, created_at);

CREATE TABLE tokens (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hash       bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
    action     text NOT NULL CHECK (action IN ('confirm', 'block', 'revoke')),
    account_id bigint NOT NULL REFERENCES accounts (id),
    api_key_id bigint REFERENCES api_keys (id),  -- the key a revoke link revokes
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);

CREATE INDEX api_keys_key_prefix ON api_keys (key_prefix);
CREATE INDEX audit_key_prefix ON audit (key_prefix, at);

---- create above / drop below ----

DROP INDEX audit_key_prefix;
DROP INDEX api_keys_key_prefix;
DROP TABLE tokens;
DROP TABLE outbox;
