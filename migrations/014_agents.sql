-- SPDX-License-Identifier: Apache-2.0
-- keychest-agent (docs/agent.md): agents that register themselves, wait to
-- be claimed by an account, heartbeat, and post their logs. An agent's API
-- key is its own (agents.key_hash), not a row of api_keys: it works on the
-- agent API only, never on the line protocol. A claim code is stored only
-- as its SHA-256 hash, works once, and expires.

CREATE TABLE agents (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id     text NOT NULL UNIQUE CHECK (length(agent_id) <= 254 AND agent_id LIKE '%@%'),
    key_hash     bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    key_prefix   text NOT NULL CHECK (length(key_prefix) <= 16),
    account_id   bigint REFERENCES accounts (id),
    site         text NOT NULL CHECK (site ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    host         text NOT NULL DEFAULT '' CHECK (length(host) <= 253),
    version      text NOT NULL DEFAULT '' CHECK (length(version) <= 64),
    summary      jsonb NOT NULL DEFAULT '{}',
    refusing     boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_ip   inet,
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    last_ip      inet,
    claimed_at   timestamptz,
    claimed_ip   inet,
    CHECK ((account_id IS NULL) = (claimed_at IS NULL))
);
CREATE INDEX agents_account_id ON agents (account_id);
COMMENT ON COLUMN agents.agent_id IS 'the agent''s id, in the form of an e-mail address, given at registration';
COMMENT ON COLUMN agents.summary IS 'the configuration summary the agent last pushed (no secrets)';
COMMENT ON COLUMN agents.refusing IS 'the agent''s last heartbeat said allow.conf refused a connection since the one before';

CREATE TABLE agent_claim_codes (
    agent_id   bigint PRIMARY KEY REFERENCES agents (id) ON DELETE CASCADE,
    code_hash  bytea NOT NULL UNIQUE CHECK (length(code_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE TABLE agent_logs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id    bigint NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    received_at timestamptz NOT NULL DEFAULT now(),
    event_time  timestamptz,
    code        text NOT NULL CHECK (length(code) <= 16),
    level       text NOT NULL DEFAULT '' CHECK (length(level) <= 16),
    entry       jsonb NOT NULL
);
CREATE INDEX agent_logs_agent ON agent_logs (agent_id, id);
CREATE INDEX agent_logs_received_at ON agent_logs (received_at);

-- Targets behind a site ("add domain D apikey K site S"): never in
-- domains or mon_targets, so the central monitor never dials them. A job
-- is queued for a due target when an agent of its site asks for jobs.
CREATE TABLE agent_targets (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    api_key_id bigint NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    site       text NOT NULL CHECK (site ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    name       text NOT NULL CHECK (length(name) <= 253),
    port       integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    created_at timestamptz NOT NULL DEFAULT now(),
    created_ip inet,
    next_due   timestamptz NOT NULL DEFAULT now(),
    checked_at timestamptz,
    state      text NOT NULL DEFAULT 'pending' CHECK (state IN ('ok', 'warning', 'critical', 'pending', 'unknown')),
    class      text,
    detail     text,
    not_after  timestamptz,
    issuer     text,
    addresses  integer NOT NULL DEFAULT 0,
    UNIQUE (api_key_id, name, port)
);
CREATE INDEX agent_targets_due ON agent_targets (account_id, site, next_due);

-- Audit jobs for a site's agents: queued for (account, site), taken by one
-- agent of that site (bound to its key from then on), relayed once per
-- address with the job's token, finished once, and void after expires_at
-- (KEYCHEST_AGENT_JOB_TTL). The token is stored as its hash.
CREATE TABLE agent_jobs (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    site       text NOT NULL,
    name       text NOT NULL CHECK (length(name) <= 253),
    port       integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    taken_by   bigint REFERENCES agents (id) ON DELETE SET NULL,
    taken_at   timestamptz,
    token_hash bytea UNIQUE CHECK (length(token_hash) = 32),
    done_at    timestamptz,
    outcome    text CHECK (outcome IN ('ok', 'refused', 'unavailable', 'timeout', 'error')),
    result     jsonb,
    target_id  bigint REFERENCES agent_targets (id) ON DELETE CASCADE,
    CHECK ((taken_at IS NULL) = (token_hash IS NULL))
);
CREATE INDEX agent_jobs_waiting ON agent_jobs (account_id, site, id) WHERE taken_at IS NULL;

CREATE TABLE agent_job_relays (
    job_id     bigint NOT NULL REFERENCES agent_jobs (id) ON DELETE CASCADE,
    address    inet NOT NULL,
    opened_at  timestamptz NOT NULL DEFAULT now(),
    result     jsonb,                  -- what the monitor's probe through the relay saw
    PRIMARY KEY (job_id, address)
);

-- Registrations and claim attempts per client address are limited like
-- new keys and claims.
ALTER TABLE rate_buckets DROP CONSTRAINT rate_buckets_kind_check;
ALTER TABLE rate_buckets ADD CONSTRAINT rate_buckets_kind_check
    CHECK (kind IN ('apikey', 'claim', 'agent', 'agent_claim'));

---- create above / drop below ----

DELETE FROM rate_buckets WHERE kind IN ('agent', 'agent_claim');
ALTER TABLE rate_buckets DROP CONSTRAINT rate_buckets_kind_check;
ALTER TABLE rate_buckets ADD CONSTRAINT rate_buckets_kind_check CHECK (kind IN ('apikey', 'claim'));
DROP TABLE agent_job_relays;
DROP TABLE agent_jobs;
DROP TABLE agent_targets;
DROP TABLE agent_logs;
DROP TABLE agent_claim_codes;
DROP TABLE agents;
