-- SPDX-License-Identifier: Apache-2.0
-- The certificate monitor (package monitor): what it watches, what it has
-- seen, and what it found. History grows only when something changes: a
-- probe that sees what the previous one saw rewrites one row (its target).

-- One target per distinct name and port of an active domain, however many
-- keys or accounts registered it. Wildcards have no host to dial and get
-- no target.
CREATE TABLE mon_targets (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL,
    port            integer NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    active          boolean NOT NULL DEFAULT true,  -- false once no active domain names it
    removed_at      timestamptz,                    -- when it became inactive (history is kept for a while)
    next_due        timestamptz NOT NULL DEFAULT now(),
    lease_owner     text,                           -- the monitor probing it now
    lease_until     timestamptz,
    last_checked_at timestamptz,                    -- the last probe; also the current observations' and open findings' "last seen"
    check_asked_at  timestamptz,                    -- the last "command check"
    state           text NOT NULL DEFAULT 'unknown'
                    CHECK (state IN ('unknown', 'ok', 'warning', 'critical')),
    failures        integer NOT NULL DEFAULT 0,     -- consecutive probes with a problem not yet confirmed
    suspects        text[] NOT NULL DEFAULT '{}',   -- finding kinds seen once, waiting for a second probe
    probes          bigint NOT NULL DEFAULT 0,      -- probes made, the one counter that grows per probe
    UNIQUE (name, port)
);
CREATE INDEX mon_targets_due ON mon_targets (next_due) WHERE active;
CREATE INDEX mon_targets_removed ON mon_targets (removed_at) WHERE NOT active;

-- Every certificate seen, once, by its SHA-256 fingerprint.
CREATE TABLE mon_certs (
    fingerprint bytea PRIMARY KEY CHECK (length(fingerprint) = 32),
    subject     text NOT NULL,
    issuer      text NOT NULL,
    issuer_cn   text NOT NULL,
    serial      text NOT NULL,
    sans        text[] NOT NULL,
    not_before  timestamptz NOT NULL,
    not_after   timestamptz NOT NULL,
    key_type    text NOT NULL,
    key_bits    integer NOT NULL,
    sig_alg     text NOT NULL,
    first_seen  timestamptz NOT NULL
);
CREATE INDEX mon_certs_sans ON mon_certs USING gin (sans);

-- What one address of a target served, from first_seen_at until it served
-- something else (ended_at). Rows with ended_at NULL are current; their
-- last check is the target's last_checked_at.
CREATE TABLE mon_observations (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target_id       bigint NOT NULL REFERENCES mon_targets (id) ON DELETE CASCADE,
    address         inet NOT NULL,
    fingerprint     bytea REFERENCES mon_certs (fingerprint),  -- the leaf; NULL when the probe failed
    chain           bytea[] NOT NULL DEFAULT '{}',             -- fingerprints of the certificates after the leaf
    tls_version     text,
    error_class     text,                                      -- NULL when the address served a valid certificate
    error_detail    text,
    first_seen_at   timestamptz NOT NULL,
    last_checked_at timestamptz,                               -- set when the row stops being current
    ended_at        timestamptz
);
CREATE UNIQUE INDEX mon_observations_current ON mon_observations (target_id, address) WHERE ended_at IS NULL;
CREATE INDEX mon_observations_history ON mon_observations (target_id, first_seen_at);
CREATE INDEX mon_observations_fingerprint ON mon_observations (fingerprint);
CREATE INDEX mon_observations_chain ON mon_observations USING gin (chain);

-- Findings: opened once a problem is confirmed, raised when it worsens,
-- closed when it is gone. Closed rows are history. An open finding's last
-- sighting is its target's last_checked_at.
CREATE TABLE mon_findings (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target_id    bigint NOT NULL REFERENCES mon_targets (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('expiry', 'untrusted', 'name_mismatch', 'revoked',
                                                'unreachable', 'stale_endpoint', 'weak')),
    severity     text NOT NULL CHECK (severity IN ('warning', 'critical', 'expired')),
    detail       text NOT NULL,
    opened_at    timestamptz NOT NULL,
    raised_at    timestamptz NOT NULL,                -- when it reached its current severity
    last_seen_at timestamptz,                         -- set when it closes
    closed_at    timestamptz
);
CREATE UNIQUE INDEX mon_findings_open ON mon_findings (target_id, kind) WHERE closed_at IS NULL;
CREATE INDEX mon_findings_history ON mon_findings (target_id, opened_at);

-- Events worth a line in a digest: a renewal, a target that started or
-- stopped being watched.
CREATE TABLE mon_events (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target_id bigint NOT NULL REFERENCES mon_targets (id) ON DELETE CASCADE,
    at        timestamptz NOT NULL,
    kind      text NOT NULL CHECK (kind IN ('renewed')),
    detail    text NOT NULL
);
CREATE INDEX mon_events_target ON mon_events (target_id, at);

-- Lookups of the target sync and of "command cert": domains by name, new
-- domains and newly confirmed accounts.
CREATE INDEX domains_name_port ON domains (name, port);
CREATE INDEX domains_created_at ON domains (created_at);
CREATE INDEX accounts_confirmed_at ON accounts (confirmed_at);

---- create above / drop below ----

DROP INDEX accounts_confirmed_at;
DROP INDEX domains_created_at;
DROP INDEX domains_name_port;
DROP TABLE mon_events;
DROP TABLE mon_findings;
DROP TABLE mon_observations;
DROP TABLE mon_certs;
DROP TABLE mon_targets;
