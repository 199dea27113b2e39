-- SPDX-License-Identifier: Apache-2.0
-- Agent discovery (docs/agent.md): endpoints an account's agents found in
-- their DNS zones, proposed to the owner. One row per account, site and
-- name:port; source is the last source that reported it ("axfr:ZONE").
-- A row its source no longer reports is marked gone (gone_at), never
-- deleted; "ignore domain" hides it for good (ignored_at).

CREATE TABLE discovered (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    site        text NOT NULL CHECK (site ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    name        text NOT NULL CHECK (length(name) <= 253),
    port        integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    source      text NOT NULL CHECK (length(source) <= 300),
    addresses   integer NOT NULL DEFAULT 0 CHECK (addresses >= 0),
    agent_id    bigint REFERENCES agents (id) ON DELETE SET NULL,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    gone_at     timestamptz,
    ignored_at  timestamptz,
    UNIQUE (account_id, site, name, port)
);
CREATE INDEX discovered_source ON discovered (account_id, site, source) WHERE gone_at IS NULL;
COMMENT ON COLUMN discovered.addresses IS 'how many of its addresses in the zone the reporting agent''s allow.conf permits';

-- Certificates agents read from LDAP certificate stores ("ldap" lines of
-- discover.conf), by fingerprint, labelled with their entry's DN. Like
-- proposals, a certificate its source no longer has is marked gone.
CREATE TABLE discovered_certs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    site        text NOT NULL CHECK (site ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    source      text NOT NULL CHECK (length(source) <= 600),
    dn          text NOT NULL CHECK (length(dn) <= 1024),
    attribute   text NOT NULL CHECK (attribute IN ('userCertificate', 'cACertificate', 'userSMIMECertificate')),
    fingerprint bytea NOT NULL CHECK (length(fingerprint) = 32),
    subject     text NOT NULL DEFAULT '' CHECK (length(subject) <= 256),
    issuer      text NOT NULL DEFAULT '' CHECK (length(issuer) <= 256),
    not_before  timestamptz NOT NULL,
    not_after   timestamptz NOT NULL,
    agent_id    bigint REFERENCES agents (id) ON DELETE SET NULL,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    gone_at     timestamptz,
    UNIQUE (account_id, site, source, dn, attribute, fingerprint)
);
CREATE INDEX discovered_certs_not_after ON discovered_certs (not_after) WHERE gone_at IS NULL;

---- create above / drop below ----

DROP TABLE discovered_certs;
DROP TABLE discovered;
