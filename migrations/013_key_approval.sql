-- A key claimed onto an account that is already confirmed waits for the
-- owner's approval (the "new_key" mail's approve link, or the operator's
-- "keychest-lined approve --key-prefix P"): until then its domains are
-- pending, like those of an unconfirmed account, and appear in none of the
-- account's mails or pages. Keys claimed before this migration stay active.

ALTER TABLE api_keys ADD COLUMN pending_at timestamptz;
ALTER TABLE api_keys ADD COLUMN approved_at timestamptz;
COMMENT ON COLUMN api_keys.pending_at IS 'set while the key waits for its owner''s approval (claimed onto a confirmed account)';
COMMENT ON COLUMN api_keys.approved_at IS 'when a pending key was approved';

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
