// SPDX-License-Identifier: Apache-2.0

package logcode

// Codes of keychest-amp's operational log.
const (
	// AMPServing (AMP0001): keychest-amp is serving.
	AMPServing = "AMP0001"
	// AMPNewRoot (AMP0002): a new root CA was created.
	AMPNewRoot = "AMP0002"
	// AMPCannotRun (AMP0003): bad root, folder, listener or --upstream-ca; exits 1.
	AMPCannotRun = "AMP0003"
	// AMPDraining (AMP0010): SIGTERM or SIGINT: draining.
	AMPDraining = "AMP0010"
	// AMPStopped (AMP0011): keychest-amp stopped.
	AMPStopped = "AMP0011"
	// AMPDrainTimedOut (AMP0012): the drain timed out; open connections were closed.
	AMPDrainTimedOut = "AMP0012"
	// AMPFlushFailed (AMP0013): the journal could not be flushed at exit.
	AMPFlushFailed = "AMP0013"
	// AMPMessage (AMP0100): an ACME message was journaled.
	AMPMessage = "AMP0100"
	// AMPReportRecovered (AMP0201): keychest-lined is reachable again.
	AMPReportRecovered = "AMP0201"
	// AMPNotJWS (AMP0400): a POST to an ACME host was not a JWS; the client got 400.
	AMPNotJWS = "AMP0400"
	// AMPProxyTLSFailed (AMP0401): the TLS handshake of an https:// proxy URL failed.
	AMPProxyTLSFailed = "AMP0401"
	// AMPInterceptFailed (AMP0402): an intercepted connection failed.
	AMPInterceptFailed = "AMP0402"
	// AMPOutsideAllow (AMP0403): a client outside --allow was refused.
	AMPOutsideAllow = "AMP0403"
	// AMPPortRefused (AMP0405): a CONNECT to an unlisted port of an ACME host was refused.
	AMPPortRefused = "AMP0405"
	// AMPTunnelRefused (AMP0406): a tunnel was refused: its port is not in --tunnel-ports, or its address is not public and not in --tunnel-nets.
	AMPTunnelRefused = "AMP0406"
	// AMPACMEAddress (AMP0407): a CONNECT to an address of an ACME host, not its name, was refused.
	AMPACMEAddress = "AMP0407"
	// AMPNameOutOfScope (AMP0408): the TLS of an https:// proxy URL asked for a name the proxy does not answer to.
	AMPNameOutOfScope = "AMP0408"
	// AMPMintFailed (AMP0500): a leaf could not be minted.
	AMPMintFailed = "AMP0500"
	// AMPJournalFailed (AMP0501): a journal line could not be written.
	AMPJournalFailed = "AMP0501"
	// AMPUpstreamFailed (AMP0502): the ACME server could not be reached or failed.
	AMPUpstreamFailed = "AMP0502"
	// AMPReportFailed (AMP0503): reporting to keychest-lined failed; events wait in the disk queue.
	AMPReportFailed = "AMP0503"
	// AMPNoKey (AMP0504): no API key from keychest-lined yet.
	AMPNoKey = "AMP0504"
	// AMPClaimFailed (AMP0505): claiming the API key for --email failed.
	AMPClaimFailed = "AMP0505"
	// AMPQueueFull (AMP0507): the disk queue was full: the oldest events were dropped.
	AMPQueueFull = "AMP0507"
	// AMPEventTooLarge (AMP0513): keychest-lined refused an event, sent alone, as too large (413): it was dropped.
	AMPEventTooLarge = "AMP0513"
	// AMPEventRefused (AMP0514): keychest-lined refused an event, sent alone, as bad input (400): it was dropped.
	AMPEventRefused = "AMP0514"
)
