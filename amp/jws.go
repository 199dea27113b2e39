// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// JWS is a decoded JWS in flattened JSON form, as ACME clients POST them.
// The proxy only reads it; the signature is the server's to check.
type JWS struct {
	Protected struct {
		Alg   string          `json:"alg"`
		KID   string          `json:"kid"`
		URL   string          `json:"url"`
		Nonce string          `json:"nonce"`
		JWK   json.RawMessage `json:"jwk"`
	}
	Payload []byte // empty for POST-as-GET
}

// DecodeJWS decodes an ACME request body.
func DecodeJWS(body []byte) (*JWS, error) {
	var raw struct {
		Protected *string `json:"protected"`
		Payload   *string `json:"payload"`
		Signature *string `json:"signature"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if raw.Protected == nil || raw.Payload == nil || raw.Signature == nil {
		return nil, errors.New("protected, payload and signature are required")
	}
	var j JWS
	prot, err := base64.RawURLEncoding.DecodeString(*raw.Protected)
	if err != nil {
		return nil, fmt.Errorf("protected: %w", err)
	}
	if err := json.Unmarshal(prot, &j.Protected); err != nil {
		return nil, fmt.Errorf("protected header: %w", err)
	}
	if j.Payload, err = base64.RawURLEncoding.DecodeString(*raw.Payload); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	if _, err := base64.RawURLEncoding.DecodeString(*raw.Signature); err != nil || *raw.Signature == "" {
		return nil, errors.New("signature: not base64url")
	}
	if len(j.Payload) > 0 && !json.Valid(j.Payload) {
		return nil, errors.New("payload: not JSON")
	}
	return &j, nil
}
