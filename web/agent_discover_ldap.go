// SPDX-License-Identifier: Apache-2.0

package web

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/store"
)

// The bounds of one post of LDAP certificates.
const (
	maxLDAPCertsBody = 32 << 20
	maxLDAPCerts     = 20_000
)

// ldapAttributes are the attributes an LDAP certificate may come from.
var ldapAttributes = map[string]bool{"userCertificate": true, "cACertificate": true, "userSMIMECertificate": true}

// mountDiscoverLDAP adds POST /api/v1/agent/ldap-certs.
func mountDiscoverLDAP(mux *http.ServeMux, h *agentAPI) {
	mux.HandleFunc("POST "+agent.PathLDAPCerts, h.ldapCerts)
}

// ldapCerts stores one LDAP source's certificates from a claimed agent.
// The service parses each certificate itself: what the agent says of it
// beyond its DN, attribute and bytes is not trusted.
func (h *agentAPI) ldapCerts(w http.ResponseWriter, r *http.Request) {
	ip := clientAddr(r, h.proxies)
	ref, ok := h.bearer(w, r, ip)
	if !ok {
		return
	}
	b, skipped, err := readLDAPCerts(w, r)
	if err != nil {
		h.refuse(w, ref.Prefix, ip, http.StatusBadRequest, err.Error())
		return
	}
	b.AgentKey = ref
	ctx, cancel := context.WithTimeout(r.Context(), agentTimeout)
	defer cancel()
	c, err := h.st.StoreDiscoveredCerts(ctx, b)
	if err != nil {
		h.storeFailed(w, ref.Prefix, ip, err)
		return
	}
	h.log.Info().Str("code", logcode.DiscoveredCertsStored).Time("event_time", time.Now()).Str("subject", ref.Prefix).
		Str("remote", ip.String()).Str("source", b.Source).Int("certificates", len(b.Certs)).Int("skipped", skipped).
		Int("new", c.New).Int("seen", c.Seen).Int("gone", c.Gone).Msg("LDAP certificates stored")
	if h.watch != nil && c.New+c.Gone > 0 {
		h.watch()
	}
	writeJSON(w, agent.LDAPCertsReply{New: c.New, Seen: c.Seen, Gone: c.Gone, Skipped: skipped})
}

// readLDAPCerts reads and checks a post; a value that is no certificate,
// or with a bad DN or attribute, is skipped (and counted).
func readLDAPCerts(w http.ResponseWriter, r *http.Request) (store.CertBatch, int, error) {
	var p agent.LDAPCertsPost
	var b store.CertBatch
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxLDAPCertsBody)).Decode(&p); err != nil {
		return b, 0, fmt.Errorf("want {\"source\",\"certs\":[{\"dn\",\"attribute\",\"der\"}]} of at most %d bytes", maxLDAPCertsBody)
	}
	if !strings.HasPrefix(p.Source, "ldap:") || len(p.Source) > 600 || cleanText(p.Source, 600) != p.Source {
		return b, 0, fmt.Errorf("source %q: want ldap:URL BASE", cleanText(p.Source, 80))
	}
	if len(p.Certs) > maxLDAPCerts {
		return b, 0, fmt.Errorf("at most %d certificates a source", maxLDAPCerts)
	}
	b.Source = p.Source
	skipped := 0
	for _, c := range p.Certs {
		x, err := x509.ParseCertificate(c.DER)
		if err != nil || !ldapAttributes[c.Attribute] || c.DN == "" || len(c.DN) > 1024 || cleanText(c.DN, 1024) != c.DN {
			skipped++
			continue
		}
		sum := sha256.Sum256(c.DER)
		b.Certs = append(b.Certs, store.DiscoveredCert{DN: c.DN, Attribute: c.Attribute, Fingerprint: sum[:],
			Subject: cleanText(x.Subject.CommonName, 256), Issuer: cleanText(x.Issuer.CommonName, 256),
			NotBefore: x.NotBefore, NotAfter: x.NotAfter})
	}
	return b, skipped, nil
}
