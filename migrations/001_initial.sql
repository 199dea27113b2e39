-- SPDX-License-Identifier: Apache-2.0
-- Accounts, API keys, the domains they watch, and an audit trail.
-- Keys are stored only as a SHA-256 hash and a short prefix for display.

CREATE TABLE accounts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email        text NOT NULL UNIQUE CHECK (length(email) <= 254),
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_ip   inet,
    confirmed_at timestamptz,         -- null: dormant, waiting for the owner to confirm
    blocked_at   timestamptz
);

CREATE TABLE api_keys (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_hash     bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    key_prefix   text NOT NULL,
    origin       text NOT NULL CHECK (origin IN ('server', 'client')),
    account_id   bigint REFERENCES accounts (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_ip   inet,
    claimed_at   timestamptz,         -- when and from where the key was bound to its account:
    claimed_ip   inet,                -- what the confirmation mail reports
    last_seen_at timestamptz,
    revoked_at   timestamptz,
    domain_count integer NOT NULL DEFAULT 0
);
CREATE INDEX api_keys_account_id ON api_keys (account_id);

CREATE TABLE domains (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    api_key_id bigint NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    name       text NOT NULL CHECK (length(name) <= 253),
    port       integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    wildcard   boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_ip inet,
    UNIQUE (api_key_id, name, port)
);

CREATE TABLE audit (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    remote_ip  inet,
    action     text NOT NULL,
    key_prefix text,
    detail     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_at ON audit (at);

---- create above / drop below ----

DROP TABLE audit;
DROP TABLE domains;
DROP TABLE api_keys;
DROP TABLE accounts;
