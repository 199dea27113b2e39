-- SPDX-License-Identifier: Apache-2.0
-- Per-address limits (new keys, claims per client address per hour),
-- counted in the database so that every server shares them: one token
-- bucket per (kind, client). A client is an IPv4 address, or the /64 of
-- an IPv6 address. The bucket is taken in the statement the limited
-- command already runs; a row whose last take is over an hour old is a
-- full bucket, so such rows may be deleted at any time.

CREATE TABLE rate_buckets (
    kind   text NOT NULL CHECK (kind IN ('apikey', 'claim')),
    client cidr NOT NULL,
    tokens double precision NOT NULL,  -- left after the last take
    took   boolean NOT NULL,           -- whether the last take got one
    at     timestamptz NOT NULL,       -- when the last take ran
    PRIMARY KEY (kind, client)
);

---- create above / drop below ----

DROP TABLE rate_buckets;
