/**
 * Everything ftguard uses of `@sigstore/verify` that is not its public API,
 * kept in this one module. The package has no exports map, so these deep
 * `dist/` paths (and the private field below) can move in any release: the
 * dependency is pinned to an exact version in package.json, and an upgrade
 * means checking this file against the new release.
 */
import type { X509Certificate } from "@sigstore/core";
// The path builder the Verifier itself uses for Fulcio chains; the private-CA
// mode needs it called with a verification time because such bundles carry no
// timestamp.
import { CertificateChainVerifier } from "@sigstore/verify/dist/key/certificate.js";
import { type CertAuthority, filterCertAuthorities } from "@sigstore/verify/dist/trust/index.js";

/**
 * Path validation to a private CA, as X.509 does it: the user's PEM holds the trust
 * anchors; intermediates the signer shipped in the bundle may be used to build the
 * path but are never anchors themselves (a path must reach a certificate from the
 * user's PEM). model_signing verifies its certificate vectors with the root CA
 * alone, the intermediate coming from the bundle — so must we.
 */
export function verifyPrivateChain(
	at: Date,
	leaf: X509Certificate,
	authorities: CertAuthority[],
	intermediates: X509Certificate[],
): void {
	let last: unknown = new Error("no certificate authority valid at that time");
	for (const ca of filterCertAuthorities(authorities, at)) {
		try {
			const verifier = new CertificateChainVerifier({ trustedCerts: ca.certChain, untrustedCert: leaf, timestamp: at });
			// The library only builds paths through trusted certificates and the leaf;
			// its candidate list is extended with the bundle's intermediates, while the
			// "path contains a trusted certificate" rule still uses the user's list.
			const local = (verifier as unknown as { localCerts: X509Certificate[] }).localCerts;
			for (const c of intermediates) if (!local.some((l) => l.equals(c))) local.push(c);
			verifier.verify();
			return;
		} catch (e) {
			last = e;
		}
	}
	throw last;
}
