-- SPDX-License-Identifier: Apache-2.0
-- Events reported by keychest-amp proxies: one row per journal line, kept
-- once per (proxy, id) so a resent batch is not doubled. Findings for
-- failed challenges, rate limits and nonce storms are derived from these
-- rows later (msg, params->>'status', params->'error', params->'problem').

CREATE TABLE acme_events (
    proxy       text NOT NULL CHECK (length(proxy) <= 254),
    id          bigint NOT NULL,
    api_key_id  bigint NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    msg         text NOT NULL CHECK (length(msg) <= 32),
    event_time  timestamptz,
    params      jsonb NOT NULL,
    envelope    jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    received_ip inet,
    PRIMARY KEY (proxy, id)
);
CREATE INDEX acme_events_key_time ON acme_events (api_key_id, event_time);
CREATE INDEX acme_events_msg_status ON acme_events (msg, (params->>'status'), event_time);

---- create above / drop below ----

DROP TABLE acme_events;
