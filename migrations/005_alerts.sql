-- SPDX-License-Identifier: Apache-2.0
-- Telling the owners (issue 11): alert mails batched per account through
-- the outbox, the weekly digest, the account page's links, and the
-- switches that turn alerts or the digest off.

-- An outbox row may stand for a batch of alerts or a digest of one
-- account; its dedup_key keeps one open batch (or one digest a week) per
-- account whatever number of monitors share the database. Its text is
-- written when it is sent, from its items.
ALTER TABLE outbox ADD COLUMN account_id bigint REFERENCES accounts (id);
ALTER TABLE outbox ADD COLUMN dedup_key text UNIQUE;
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN ('confirm', 'new_key', 'alert', 'digest'));

-- What an alert mail lists: a finding that opened, rose, or was resolved.
CREATE TABLE alert_items (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id  bigint NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    target     text NOT NULL,                -- name:port
    kind       text NOT NULL,                -- the finding's kind
    change     text NOT NULL CHECK (change IN ('opened', 'raised', 'resolved')),
    severity   text NOT NULL,
    detail     text NOT NULL,
    since      timestamptz NOT NULL,         -- when the finding opened
    at         timestamptz NOT NULL
);
CREATE INDEX alert_items_outbox ON alert_items (outbox_id);

-- The severity the owners were last told of; NULL: never mailed (a
-- finding nobody heard of closes without a "resolved" mail).
ALTER TABLE mon_findings ADD COLUMN mailed_severity text;

-- Owners' switches, and the week of the last digest.
ALTER TABLE accounts ADD COLUMN alerts_off_at timestamptz;
ALTER TABLE accounts ADD COLUMN digest_off_at timestamptz;

-- Links to the account page: long-lived, random, stored hashed. Each mail
-- carries a fresh one; the operator's rotation revokes them all.
CREATE TABLE account_links (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hash       bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
    account_id bigint NOT NULL REFERENCES accounts (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX account_links_account ON account_links (account_id);

ALTER TABLE tokens DROP CONSTRAINT tokens_action_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_action_check
    CHECK (action IN ('confirm', 'block', 'revoke', 'alerts_off', 'digest_off'));

---- create above / drop below ----

ALTER TABLE tokens DROP CONSTRAINT tokens_action_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_action_check CHECK (action IN ('confirm', 'block', 'revoke'));
DROP TABLE account_links;
ALTER TABLE accounts DROP COLUMN digest_off_at;
ALTER TABLE accounts DROP COLUMN alerts_off_at;
ALTER TABLE mon_findings DROP COLUMN mailed_severity;
DROP TABLE alert_items;
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN ('confirm', 'new_key'));
ALTER TABLE outbox DROP COLUMN dedup_key;
ALTER TABLE outbox DROP COLUMN account_id;
