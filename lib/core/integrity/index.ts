/**
 * The Sigstore verification API the other layers import: offline verification
 * of OMS model signatures (DSSE) and cosign blob bundles under one of three
 * trust modes, bundle parsing, the signed statement and the trust root.
 *
 * `@sigstore/verify` does the Sigstore-specific work (certificate paths, SCTs,
 * Rekor inclusion promises and proofs, RFC 3161 timestamps); the modules behind
 * this barrel pick the trust material and thresholds for each mode
 * (sigstore-trust.ts), supply the signature check (sigstore-content.ts) and
 * translate every failure into an FtguardError (sigstore-errors.ts). Nothing
 * here touches the network: the keyless trust root comes from the package.
 *
 * Hashing (manifest.ts, types.ts), the verify sequence (verify-model.ts) and the
 * base-model registry (registry.ts) are imported by their own paths, not from
 * here: commands load them lazily, and going through this barrel would make
 * `ftguard hash` and `ftguard files` load the Sigstore stack too.
 */
export { type Bundle, MAX_BUNDLE_BYTES, parseBundle } from "./bundle";
export { type BlobVerification, verifyBlobBundle } from "./sigstore-blob";
export { type DsseVerification, verifyDsseBundle } from "./sigstore-dsse";
export {
	checkRootDigest,
	IN_TOTO_PAYLOAD_TYPE,
	LEGACY_SUBJECT_NAME,
	MODEL_SIGNING_PREDICATE_LEGACY,
	MODEL_SIGNING_PREDICATE_V1,
	type ModelSigningStatement,
	parseModelSigningStatement,
	type SignedSerialization,
} from "./statement";
export type { IdentityMatcher, SignerInfo, TrustPolicy, VerifyOptions } from "./trust-policy";
export { type LoadedTrustedRoot, loadTrustedRoot, publicGoodTrustedRootJSON } from "./trust-root";
