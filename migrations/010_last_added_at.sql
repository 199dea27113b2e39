-- SPDX-License-Identifier: Apache-2.0
-- api_keys.last_seen_at was only ever set when the key added a domain, and
-- nothing read it: it now says what it holds.

ALTER TABLE api_keys RENAME COLUMN last_seen_at TO last_added_at;
COMMENT ON COLUMN api_keys.last_added_at IS 'when the key last added a domain';

---- create above / drop below ----

ALTER TABLE api_keys RENAME COLUMN last_added_at TO last_seen_at;
