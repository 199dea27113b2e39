// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"time"

	"github.com/keychest/keychest-lined/internal/logcode"
)

// PathLDAPCerts is where the agent posts one LDAP source's certificates.
const PathLDAPCerts = "/api/v1/agent/ldap-certs"

// LDAPCertsPost is one LDAP source's complete list of certificates: what
// the service has from that source and site but is not in it is gone.
type LDAPCertsPost struct {
	Source string     `json:"source"` // "ldap:URL BASE"
	Certs  []LDAPCert `json:"certs"`
}

// LDAPCertsReply says what the service did with a post.
type LDAPCertsReply struct {
	New     int `json:"new"`
	Seen    int `json:"seen"`
	Gone    int `json:"gone"`
	Skipped int `json:"skipped"`
}

// LDAPSourceName is how an LDAP source is called at the service.
func LDAPSourceName(l LDAPSource) string { return "ldap:" + l.URL + " " + l.Base }

// ldapOne reads one LDAP source and posts its certificates through c. A
// source that cannot be read is logged (AGT0532), posts nothing and gives
// false; the error returned is the post's, or ctx's when it ended.
func (a *Agent) ldapOne(ctx context.Context, c *Client, l LDAPSource) (bool, error) {
	start := time.Now()
	certs, bad, err := ReadLDAP(ctx, l, a.cfg.Dir, a.cfg.UID, transferTimeout)
	if err != nil && ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		a.event(a.Log.Warn(), logcode.AgentLDAPFailed).Str("url", l.URL).Str("base", l.Base).Int("line", l.Line).Err(err).
			Msg("reading the LDAP source failed: nothing read from it")
		return false, nil
	}
	var ans LDAPCertsReply
	post := LDAPCertsPost{Source: LDAPSourceName(l), Certs: certs}
	if err := c.postJSON(ctx, PathLDAPCerts, post, &ans); err != nil {
		return true, rejected(err)
	}
	a.event(a.Log.Info(), logcode.AgentLDAPRead).Str("url", l.URL).Str("base", l.Base).Int("certificates", len(certs)).
		Int("not_certificates", bad).Int("new", ans.New).Int("gone", ans.Gone).Dur("took", time.Since(start)).
		Msg("LDAP certificates read and posted")
	return true, nil
}
