/**
 * What a caller asks of a Sigstore verification — the trust mode and its
 * knobs — and what it learns about the signer. Types only: the CLI, the policy
 * file and the pipeline name them without loading the verifier.
 */

/** Who must have signed: exactly this SAN, or a SAN matching this (always anchored) regular expression. */
export type IdentityMatcher = { exact: string } | { regexp: string };

/** What a signature must chain to. Exactly one mode; nothing is trusted by default. */
export type TrustPolicy =
	| {
			/** Sigstore keyless: a Fulcio certificate for `identity` issued on `issuer`'s word, logged in Rekor. */
			kind: "keyless";
			identity: IdentityMatcher;
			/** OIDC issuer URL, exact match. */
			issuer: string;
			/** A parsed `trusted_root.json`. @default the public-good root shipped in `@sigstore/tuf` */
			trustedRoot?: unknown;
	  }
	| {
			/** One EC public key (P-256/384/521, SPKI PEM); the bundle's key hint is ignored. */
			kind: "public-key";
			pem: string;
	  }
	| {
			/** A private CA: PEM with its root and intermediates; the bundle's leaf must chain to them. */
			kind: "certificate-chain";
			pem: string;
	  };

/** Who signed, as far as the trust mode can tell. */
export interface SignerInfo {
	kind: TrustPolicy["kind"];
	/** Keyless: the certificate's SAN (email or URI). */
	identity?: string;
	/** Keyless: the OIDC issuer recorded in the certificate. */
	issuer?: string;
	/** Lower-case hex SHA-256 of the signing key's SPKI DER. */
	keyFingerprint?: string;
	/** Certificate-chain: the leaf's subject DN. */
	certificateSubject?: string;
	/** Keyless and certificate-chain: lower-case hex SHA-256 of the leaf certificate's DER. */
	certificateFingerprint?: string;
	/** Keyless: the earliest verified signing time (Rekor integrated time or RFC 3161), ISO 8601. */
	signedAt?: string;
	/**
	 * Present when the signature verified only over model_signing's pre-1.0
	 * (v0.2) pre-authentication encoding, which its own verifier still accepts.
	 */
	legacyEncoding?: true;
}

/** Knobs that are not trust decisions. */
export interface VerifyOptions {
	/**
	 * The time at which a private CA's certificates must be valid (certificate-chain
	 * mode only; keyless uses the signed timestamps in the bundle).
	 * @default the current time
	 */
	now?: Date;
}
