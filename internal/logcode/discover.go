// SPDX-License-Identifier: Apache-2.0

package logcode

// Discovery: the agent's zone transfers and the service's proposals.
const (
	// AgentZoneTransferred (AGT0030): a zone of discover.conf was transferred and turned into candidates.
	AgentZoneTransferred = "AGT0030"
	// AgentDiscoverPosted (AGT0031): one source's candidates were posted to the service.
	AgentDiscoverPosted = "AGT0031"
	// AgentAutoAddLeft (AGT0433): auto_add left some of a source's proposals as proposals (the key's cap, the account's limit).
	AgentAutoAddLeft = "AGT0433"
	// AgentLDAPRead (AGT0032): an LDAP source of discover.conf was read and its certificates posted.
	AgentLDAPRead = "AGT0032"
	// AgentLDAPFailed (AGT0532): reading an LDAP source failed (unreachable, bind refused, search failed).
	AgentLDAPFailed = "AGT0532"
	// AgentTransferRefused (AGT0430): the DNS server refused the zone transfer (REFUSED, NOTAUTH, a TSIG error).
	AgentTransferRefused = "AGT0430"
	// AgentTransferFailed (AGT0530): the zone transfer failed (unreachable server, timeout, bad answer).
	AgentTransferFailed = "AGT0530"
	// AgentBadDiscover (AGT0531): discover.conf does not parse: the agent refuses to start.
	AgentBadDiscover = "AGT0531"
	// DiscoveredStored (WEB0230): an agent's discovered endpoints were stored as proposals.
	DiscoveredStored = "WEB0230"
	// DiscoveredCertsStored (WEB0231): certificates an agent read from an LDAP store were stored.
	DiscoveredCertsStored = "WEB0231"
)
