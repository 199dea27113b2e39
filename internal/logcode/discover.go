// SPDX-License-Identifier: Apache-2.0

package logcode

// Discovery: the agent's zone transfers and the service's proposals.
const (
	// AgentZoneTransferred (AGT0030): a zone of discover.conf was transferred and turned into candidates.
	AgentZoneTransferred = "AGT0030"
	// AgentDiscoverPosted (AGT0031): one source's candidates were posted to the service.
	AgentDiscoverPosted = "AGT0031"
	// AgentLDAPNotBuilt (AGT0032): discover.conf has ldap sources, which this version does not read.
	AgentLDAPNotBuilt = "AGT0032"
	// AgentTransferRefused (AGT0430): the DNS server refused the zone transfer (REFUSED, NOTAUTH, a TSIG error).
	AgentTransferRefused = "AGT0430"
	// AgentTransferFailed (AGT0530): the zone transfer failed (unreachable server, timeout, bad answer).
	AgentTransferFailed = "AGT0530"
	// AgentBadDiscover (AGT0531): discover.conf does not parse: the agent refuses to start.
	AgentBadDiscover = "AGT0531"
	// DiscoveredStored (WEB0230): an agent's discovered endpoints were stored as proposals.
	DiscoveredStored = "WEB0230"
)
