// SPDX-License-Identifier: Apache-2.0

package logcode

// Codes of keychest-agent's log (docs/agent.md).
const (
	// AgentStarted (AGT0001): the agent started.
	AgentStarted = "AGT0001"
	// AgentRegistered (AGT0002): the agent registered and saved its identity.
	AgentRegistered = "AGT0002"
	// AgentClaimed (AGT0003): the server says an account claimed the agent.
	AgentClaimed = "AGT0003"
	// AgentClaimCode (AGT0004): a claim code was made (the code itself is not logged).
	AgentClaimCode = "AGT0004"
	// AgentClaimMail (AGT0005): the server took the request (--email) to
	// mail the owner the link that claims the agent.
	AgentClaimMail = "AGT0005"
	// AgentStopping (AGT0010): a signal asked the agent to stop.
	AgentStopping = "AGT0010"
	// AgentOnceDone (AGT0011): "once" finished its pass.
	AgentOnceDone = "AGT0011"
	// AgentServerBack (AGT0201): the server is reachable again.
	AgentServerBack = "AGT0201"
	// AgentDialRefused (AGT0403): a connection was refused by allow.conf; no packet was sent.
	AgentDialRefused = "AGT0403"
	// AgentInsecureFiles (AGT0501): DIR, allow.conf, discover.conf or a file it names is loose: the agent refuses to start.
	AgentInsecureFiles = "AGT0501"
	// AgentBadAllow (AGT0502): allow.conf does not parse: the agent refuses to start.
	AgentBadAllow = "AGT0502"
	// AgentServerDown (AGT0503): the server could not be reached or failed; retried with back-off.
	AgentServerDown = "AGT0503"
	// AgentCannotRun (AGT0504): bad settings or identity file: the agent exits 1.
	AgentCannotRun = "AGT0504"
	// AgentRejected (AGT0505): the server refused the agent's key (unknown or revoked).
	AgentRejected = "AGT0505"
	// AgentSpoolFull (AGT0507): the log spool was full: entries were not kept for the server.
	AgentSpoolFull = "AGT0507"
	// AgentClaimMailRefused (AGT0508): the server refused to mail the
	// claim link (--email): a bad address, a limit; the agent runs on.
	AgentClaimMailRefused = "AGT0508"
	// AgentClaimMailHeld (AGT0509): --email: no claim mail is asked any
	// more for this address, as its links expired unanswered.
	AgentClaimMailHeld = "AGT0509"
)

// Codes of keychest-lined's agent API (/api/v1/agent/).
const (
	// AgentAPIRegistered (WEB0210): an agent registered.
	AgentAPIRegistered = "WEB0210"
	// AgentAPILogs (WEB0211): a batch of an agent's log entries was stored.
	AgentAPILogs = "WEB0211"
	// AgentAPIClaimMail (WEB0212): an agent asked to be claimed by e-mail
	// (run --email), and its mail was queued.
	AgentAPIClaimMail = "WEB0212"
	// AgentAPIRefused (WEB0410): a call of the agent API was refused.
	AgentAPIRefused = "WEB0410"
)
