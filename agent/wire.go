// SPDX-License-Identifier: Apache-2.0

package agent

import "time"

// The agent's API on keychest-lined's web listener, under /api/v1/agent/.
// Every call but register carries the agent's key as a bearer token.
const (
	PathRegister  = "/api/v1/agent/register"
	PathHeartbeat = "/api/v1/agent/heartbeat"
	PathClaimCode = "/api/v1/agent/claim-code"
	PathLogs      = "/api/v1/agent/logs"
	// PathClaimEmail asks the service to mail an address a link that gives
	// the agent to its account (run --email).
	PathClaimEmail = "/api/v1/agent/claim-email"
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
	Discovery []string `json:"discovery,omitempty"` // discovery sources, without secrets
	SiteCAs   []string `json:"site_cas,omitempty"`  // PEM certificates to trust for the site's targets
	// Refusing: allow.conf refused a connection since the last heartbeat.
	Refusing bool `json:"refusing"`
	// DiscoveryFailed: how many discover.conf sources the last discovery
	// pass could not read (a refused or failed transfer, an LDAP error).
	DiscoveryFailed int `json:"discovery_failed,omitempty"`
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

// The job and relay calls (jobs: long-poll; relay: an HTTP/1.1 upgrade to
// "keychest-relay", after which the connection carries the target's bytes).
const (
	PathJobs      = "/api/v1/agent/jobs"
	PathJobResult = "/api/v1/agent/jobs/result"
	PathRelay     = "/api/v1/agent/relay"
	// RelayProtocol is the Upgrade token of a relay.
	RelayProtocol = "keychest-relay"
	// HeaderJobToken carries a job's token on a relay.
	HeaderJobToken = "X-Keychest-Job-Token"
)

// JobsRequest asks for waiting jobs, waiting at most WaitSeconds for one,
// and reports the results of jobs run since the last request (recorded
// before any job is taken). Max 0 with results takes none.
type JobsRequest struct {
	Max         int         `json:"max"`
	WaitSeconds int         `json:"wait_seconds"`
	Results     []JobResult `json:"results,omitempty"`
}

// Job is one audit job: probe every address of Name:Port that allow.conf
// permits, each through a relay. Token proves the job on its relays and
// result; the job is void after Expires.
type Job struct {
	ID      int64     `json:"id"`
	Token   string    `json:"token"`
	Name    string    `json:"name"`
	Port    int       `json:"port"`
	Expires time.Time `json:"expires"`
}

// JobsReply carries the jobs taken (none when the wait ended without
// one), and the ids of the results it refused (not a live job of this
// agent and token: expired, finished before, or another's).
type JobsReply struct {
	Jobs    []Job   `json:"jobs"`
	Refused []int64 `json:"refused,omitempty"`
}

// Outcomes of an address and of a job.
const (
	OutcomeRelayed     = "relayed"     // an address: dialled and relayed
	OutcomeRefused     = "refused"     // allow.conf refused it: no packet sent
	OutcomeUnreachable = "unreachable" // the dial or the relay failed
	OutcomeOK          = "ok"          // a job: at least one address relayed
	OutcomeUnavailable = "unavailable" // a job: no address could be probed
)

// AddressOutcome is what the agent did with one address of a job.
type AddressOutcome struct {
	Address string `json:"address"`
	Outcome string `json:"outcome"`
	Detail  string `json:"detail,omitempty"`
}

// JobResult reports a job's end.
type JobResult struct {
	ID        int64            `json:"id"`
	Token     string           `json:"token"`
	Outcome   string           `json:"outcome"` // ok, refused or unavailable
	Addresses []AddressOutcome `json:"addresses"`
}

// ClaimEmailRequest asks that the agent be claimed for Email.
type ClaimEmailRequest struct {
	Email string `json:"email"`
}

// ClaimEmailReply says whether a mail was queued now (false: a mail sent
// before still has a live link).
type ClaimEmailReply struct {
	Queued bool `json:"queued"`
}
