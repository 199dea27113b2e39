package agent

import "time"

// The agent's API on keychest-lined's web listener, under /api/v1/agent/.
// Every call but register carries the agent's key as a bearer token.
const (
	PathRegister  = "/api/v1/agent/register"
	PathHeartbeat = "/api/v1/agent/heartbeat"
	PathClaimCode = "/api/v1/agent/claim-code"
	PathLogs      = "/api/v1/agent/logs"
)

// Summary is the configuration an agent pushes at registration and with
// every heartbeat. It carries no secrets.
type Summary struct {
	Host      string   `json:"host"`
	Addresses []string `json:"addresses"`
	Version   string   `json:"version"`
	OS        string   `json:"os"`
	Arch      string   `json:"arch"`
	Site      string   `json:"site,omitempty"`
	Allow     []string `json:"allow"`               // allow.conf's rules, normalised
	Discovery []string `json:"discovery,omitempty"` // discovery sources, without secrets (none built yet)
	SiteCAs   []string `json:"site_cas,omitempty"`  // PEM certificates to trust for the site's targets
	// Refusing: allow.conf refused a connection since the last heartbeat.
	Refusing bool `json:"refusing"`
}

// Registered is the server's answer to register: the agent's identity.
type Registered struct {
	ID     string `json:"id"`
	APIKey string `json:"api_key"`
}

// Beat is the server's answer to a heartbeat.
type Beat struct {
	ID               string `json:"id"`
	Claimed          bool   `json:"claimed"`
	Site             string `json:"site,omitempty"`
	HeartbeatSeconds int    `json:"heartbeat_seconds,omitempty"`
}

// ClaimCodeRequest posts a claim code the agent made; the server keeps
// only its hash.
type ClaimCodeRequest struct {
	Code string `json:"code"`
}

// ClaimCodeReply says until when the code works.
type ClaimCodeReply struct {
	Expires time.Time `json:"expires"`
}

// LogsReply says how many posted log entries the server stored.
type LogsReply struct {
	Stored int `json:"stored"`
}
