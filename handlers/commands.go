package handlers

import (
	"context"
	"fmt"

	"github.com/keychest/keychest-lined/lineproto"
	"github.com/keychest/keychest-lined/store"
)

// helpText lists the verbs on one data line.
const helpText = "apikey | claim apikey K email E | add domain D apikey K | ping | version | help | quit"

// apikey issues a new random key and stores its hash.
func (m *Mux) apikey(ctx context.Context, req *lineproto.Request) (lineproto.Reply, error) {
	key := NewAPIKey()
	ref := keyRef(key)
	if err := m.store.CreateKey(ctx, store.NewKey{Key: ref, IP: req.Remote}); err != nil {
		return lineproto.Reply{Subject: ref.Prefix}, err
	}
	return lineproto.Reply{Data: key, Code: lineproto.CodeOK, Text: "new api key", Subject: ref.Prefix}, nil
}

// claim binds a key to the account of an email address.
func (m *Mux) claim(ctx context.Context, req *lineproto.Request) (lineproto.Reply, error) {
	rawKey, _ := req.Get("apikey")
	ref, err := parseAPIKey(rawKey)
	if err != nil {
		return lineproto.Reply{}, err
	}
	rawEmail, _ := req.Get("email")
	email, err := ParseEmail(rawEmail)
	if err != nil {
		return lineproto.Reply{Subject: ref.Prefix}, err
	}
	out, serr := m.store.ClaimKey(ctx, store.Claim{Key: ref, Email: email, IP: req.Remote})
	if serr != nil {
		return lineproto.Reply{Subject: ref.Prefix}, serr
	}
	text := map[store.ClaimOutcome]string{
		store.ClaimNewAccount:      "claimed; new account " + email + " waits for confirmation",
		store.ClaimExistingAccount: "claimed for account " + email,
		store.ClaimUnchanged:       "already claimed by " + email,
	}[out]
	return lineproto.Reply{Code: lineproto.CodeOK, Text: text, Subject: ref.Prefix}, nil
}

// add records a domain to watch for a known key.
func (m *Mux) add(ctx context.Context, req *lineproto.Request) (lineproto.Reply, error) {
	rawKey, _ := req.Get("apikey")
	ref, err := parseAPIKey(rawKey)
	if err != nil {
		return lineproto.Reply{}, err
	}
	rawDomain, _ := req.Get("domain")
	d, err := ParseDomain(rawDomain)
	if err != nil {
		return lineproto.Reply{Subject: ref.Prefix}, err
	}
	out, serr := m.store.AddDomain(ctx, store.NewDomain{Key: ref, Name: d.Name, Port: d.Port,
		Wildcard: d.Wildcard, IP: req.Remote, MaxPerKey: m.cfg.MaxDomainsPerKey})
	if serr != nil {
		return lineproto.Reply{Subject: ref.Prefix}, serr
	}
	text := fmt.Sprintf("domain %s:%d added", d.Name, d.Port)
	if out == store.DomainExists {
		text = fmt.Sprintf("domain %s:%d already registered", d.Name, d.Port)
	}
	return lineproto.Reply{Code: lineproto.CodeOK, Text: text, Subject: ref.Prefix}, nil
}

func (m *Mux) ping(context.Context, *lineproto.Request) (lineproto.Reply, error) {
	return lineproto.OK("pong"), nil
}

func (m *Mux) version(context.Context, *lineproto.Request) (lineproto.Reply, error) {
	return lineproto.Reply{Data: "keychest-lined " + m.cfg.Version, Code: lineproto.CodeOK, Text: "version"}, nil
}

func (m *Mux) help(context.Context, *lineproto.Request) (lineproto.Reply, error) {
	return lineproto.Reply{Data: helpText, Code: lineproto.CodeOK, Text: "one command per line: name value pairs in any order"}, nil
}

func (m *Mux) quit(context.Context, *lineproto.Request) (lineproto.Reply, error) {
	return lineproto.Reply{Code: lineproto.CodeOK, Text: "bye", Close: true}, nil
}
