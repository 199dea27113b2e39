-- SPDX-License-Identifier: Apache-2.0
-- ACME ingestion per account (issue 20, defects 1 to 3).
--
-- Findings from keychest-amp's events belong to the account whose key
-- posted them, not to the shared target: mon_findings.account_id is set
-- on the ACME kinds and on them only. Only that account is mailed about
-- them and sees them; another account's events cannot open or close them.
-- The ACME findings written before this migration belonged to no account
-- (anyone's key could have written them): they are deleted; the events
-- they came from are kept.
DELETE FROM mon_findings WHERE kind LIKE 'acme\_%';
ALTER TABLE mon_findings ADD COLUMN account_id bigint REFERENCES accounts (id) ON DELETE CASCADE;
ALTER TABLE mon_findings ADD CONSTRAINT mon_findings_acme_account
    CHECK ((kind LIKE 'acme\_%') = (account_id IS NOT NULL));
DROP INDEX mon_findings_open;
CREATE UNIQUE INDEX mon_findings_open ON mon_findings (target_id, kind) WHERE closed_at IS NULL AND account_id IS NULL;
CREATE UNIQUE INDEX mon_findings_open_account ON mon_findings (target_id, kind, account_id)
    WHERE closed_at IS NULL AND account_id IS NOT NULL;

-- Events are kept once per posting key, proxy and id: another key that
-- posts a proxy's ids first no longer makes the real events duplicates.
ALTER TABLE acme_events DROP CONSTRAINT acme_events_pkey;
ALTER TABLE acme_events ADD PRIMARY KEY (api_key_id, proxy, id);
DROP INDEX acme_events_proxy_time;
CREATE INDEX acme_events_proxy_time ON acme_events (api_key_id, proxy, event_time);

-- The activity per domain is kept per posting key, and only for names its
-- account holds: a row is no longer taken over by whoever posts last.
DELETE FROM acme_domains ad WHERE NOT EXISTS (
    SELECT 1 FROM api_keys p JOIN api_keys k ON k.account_id = p.account_id JOIN domains d ON d.api_key_id = k.id
    WHERE p.id = ad.api_key_id AND (d.name = ad.name OR d.name = '*.' || ad.name));
ALTER TABLE acme_domains DROP CONSTRAINT acme_domains_pkey;
ALTER TABLE acme_domains ADD PRIMARY KEY (api_key_id, proxy, name);
DROP INDEX acme_domains_account;
CREATE INDEX acme_domains_account ON acme_domains (api_key_id, proxy, account);
CREATE INDEX acme_domains_name ON acme_domains (name);

-- Per-key token buckets, like rate_buckets' per-address ones: the rows a
-- key's ACME events may write per hour (KEYCHEST_LIMIT_ACME_ROWS_PER_KEY_HOUR).
-- A row whose last take is over an hour old is a full bucket.
CREATE TABLE key_buckets (
    kind       text NOT NULL CHECK (kind IN ('acme_rows')),
    api_key_id bigint NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    tokens     double precision NOT NULL,  -- left after the last take (below 0: in debt)
    at         timestamptz NOT NULL,       -- when the last take ran
    PRIMARY KEY (kind, api_key_id)
);

---- create above / drop below ----

DROP TABLE key_buckets;
DROP INDEX acme_domains_name;
DROP INDEX acme_domains_account;
DELETE FROM acme_domains a USING acme_domains b
    WHERE a.name = b.name AND a.proxy = b.proxy AND a.updated_at < b.updated_at;
DELETE FROM acme_domains a USING acme_domains b
    WHERE a.name = b.name AND a.proxy = b.proxy AND a.api_key_id < b.api_key_id;
ALTER TABLE acme_domains DROP CONSTRAINT acme_domains_pkey;
ALTER TABLE acme_domains ADD PRIMARY KEY (name, proxy);
CREATE INDEX acme_domains_account ON acme_domains (proxy, account);
DROP INDEX acme_events_proxy_time;
CREATE INDEX acme_events_proxy_time ON acme_events (proxy, event_time);
DELETE FROM acme_events a USING acme_events b
    WHERE a.proxy = b.proxy AND a.id = b.id AND a.api_key_id > b.api_key_id;
ALTER TABLE acme_events DROP CONSTRAINT acme_events_pkey;
ALTER TABLE acme_events ADD PRIMARY KEY (proxy, id);
DELETE FROM mon_findings WHERE kind LIKE 'acme\_%';
DROP INDEX mon_findings_open_account;
DROP INDEX mon_findings_open;
CREATE UNIQUE INDEX mon_findings_open ON mon_findings (target_id, kind) WHERE closed_at IS NULL;
ALTER TABLE mon_findings DROP CONSTRAINT mon_findings_acme_account;
ALTER TABLE mon_findings DROP COLUMN account_id;
