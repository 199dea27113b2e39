-- SPDX-License-Identifier: Apache-2.0
-- Findings from keychest-amp's events (issue 13): mon_findings takes the
-- ACME kinds, and acme_domains keeps, per domain and proxy, the latest
-- ACME activity seen for it (what "keychest-lined acme" lists and what
-- the renewal check compares with the certificate's warning window).

ALTER TABLE mon_findings DROP CONSTRAINT mon_findings_kind_check;
ALTER TABLE mon_findings ADD CONSTRAINT mon_findings_kind_check CHECK (kind IN ('expiry', 'untrusted',
    'name_mismatch', 'revoked', 'unreachable', 'stale_endpoint', 'weak',
    'acme_invalid', 'acme_rate_limited', 'acme_bad_nonce', 'acme_account_failing', 'acme_not_renewing'));

CREATE TABLE acme_domains (
    name         text NOT NULL,                 -- lowercased, "*." of a wildcard removed
    proxy        text NOT NULL,
    api_key_id   bigint NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    account      text NOT NULL DEFAULT '',      -- the ACME account (server and account URL path) that last ordered it
    order_path   text NOT NULL DEFAULT '',      -- the last order naming it
    order_status text NOT NULL DEFAULT '',
    order_at     timestamptz,                   -- when an order last named it
    valid_at     timestamptz,                   -- when an order naming it last reached valid
    error        text NOT NULL DEFAULT '',      -- the last error about it
    error_at     timestamptz,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (name, proxy)
);
CREATE INDEX acme_domains_account ON acme_domains (proxy, account);
CREATE INDEX acme_events_proxy_time ON acme_events (proxy, event_time);

---- create above / drop below ----

DROP INDEX acme_events_proxy_time;
DROP TABLE acme_domains;
DELETE FROM mon_findings WHERE kind LIKE 'acme\_%';
ALTER TABLE mon_findings DROP CONSTRAINT mon_findings_kind_check;
ALTER TABLE mon_findings ADD CONSTRAINT mon_findings_kind_check CHECK (kind IN ('expiry', 'untrusted',
    'name_mismatch', 'revoked', 'unreachable', 'stale_endpoint', 'weak'));
