-- SPDX-License-Identifier: Apache-2.0
-- A claimed key waits for the owner's approval: the link of the mail its
-- claim sent (confirm for an unconfirmed account, approve for a confirmed
-- one), or the operator's "keychest-lined approve --key-prefix P" (or
-- "confirm --email E", which approves every key of the account). Until
-- then its domains are pending and appear in none of the account's mails
-- or pages, even once someone else confirmed the account. Keys of
-- confirmed accounts stay active; keys of unconfirmed accounts now wait
-- for their own confirm link (their tokens name them).

ALTER TABLE api_keys ADD COLUMN pending_at timestamptz;
ALTER TABLE api_keys ADD COLUMN approved_at timestamptz;
COMMENT ON COLUMN api_keys.pending_at IS 'set while the claimed key waits for its owner''s approval (its mail''s confirm or approve link)';
COMMENT ON COLUMN api_keys.approved_at IS 'when a pending key was approved';

UPDATE api_keys k SET pending_at = coalesce(k.claimed_at, k.created_at)
FROM accounts a WHERE a.id = k.account_id AND a.confirmed_at IS NULL AND k.revoked_at IS NULL;

ALTER TABLE tokens DROP CONSTRAINT tokens_action_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_action_check
    CHECK (action IN ('confirm', 'block', 'revoke', 'alerts_off', 'digest_off', 'approve'));

---- create above / drop below ----

DELETE FROM tokens WHERE action = 'approve';
ALTER TABLE tokens DROP CONSTRAINT tokens_action_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_action_check
    CHECK (action IN ('confirm', 'block', 'revoke', 'alerts_off', 'digest_off'));
ALTER TABLE api_keys DROP COLUMN approved_at;
ALTER TABLE api_keys DROP COLUMN pending_at;
