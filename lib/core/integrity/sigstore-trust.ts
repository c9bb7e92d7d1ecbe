/**
 * The three trust modes (EC public key, private CA, Sigstore keyless): for a
 * bundle and a TrustPolicy, the key that must have signed, the trust material
 * and thresholds `@sigstore/verify` is run with, and the checks the library
 * does not do itself (identity, private-CA path, key usage).
 */
import { type KeyObject, X509Certificate as NodeX509Certificate } from "node:crypto";
import type { Bundle } from "@sigstore/bundle";
import { X509Certificate } from "@sigstore/core";
import { TrustedRoot } from "@sigstore/protobuf-specs";
import {
	type SignedEntity,
	type Signer,
	type TrustMaterial,
	toTrustMaterial,
	type VerifierOptions,
} from "@sigstore/verify";
import { FtguardError } from "../errors";
import type { LegacyRetry } from "./legacy-encoding";
import { fingerprint, keyFingerprint, parseEcPublicKey } from "./signing-key";
import type { VerificationKey } from "./sigstore-content";
import { causeText } from "./sigstore-errors";
import { verifyPrivateChain } from "./sigstore-internals";
import type { IdentityMatcher, SignerInfo, TrustPolicy, VerifyOptions } from "./trust-policy";
import { loadTrustedRoot, privateCaTrustedRoot } from "./trust-root";

/** Keyed modes check a signature against one key; no logs or timestamps are required or read. */
const KEYED_OPTIONS: VerifierOptions = {
	tlogThreshold: 0,
	ctlogThreshold: 0,
	timestampThreshold: 0,
};

/**
 * Keyless: the thresholds sigstore-js applies to the public-good instance — at
 * least one Rekor entry, one SCT and one verified timestamp (Rekor integrated
 * time with a signed promise, or RFC 3161).
 */
const KEYLESS_OPTIONS: VerifierOptions = {
	tlogThreshold: 1,
	ctlogThreshold: 1,
	timestampThreshold: 1,
};

const EMPTY_ROOT = TrustedRoot.fromJSON({
	mediaType: "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
	certificateAuthorities: [],
	tlogs: [],
	ctlogs: [],
	timestampAuthorities: [],
});

const OID_EKU_CODE_SIGNING = "1.3.6.1.5.5.7.3.3";

export interface PreparedTrust {
	/** The key that must have made the signature (the user's, or the bundle's leaf). */
	candidateKey: KeyObject;
	material: TrustMaterial;
	options: VerifierOptions;
	entityKey: VerificationKey;
	/** Keyless only: hand the bundle's log entries and timestamps to the verifier. */
	transparency: boolean;
	/** Model signatures only: the pre-1.0 retry this mode allows (none for keyless). */
	legacy?: LegacyRetry;
	/** Runs after the signature check and before the library's checks. */
	before?: () => void;
	/** Runs after the library accepted the bundle. */
	after?: (signer: Signer) => void;
	info: (entity: SignedEntity) => SignerInfo;
}

interface Leaf {
	der: Buffer;
	cert: X509Certificate;
	node: NodeX509Certificate;
	key: KeyObject;
}

function leafCertificate(bundle: Bundle, mode: string): Leaf {
	const vm = bundle.verificationMaterial.content;
	const der =
		vm.$case === "certificate"
			? vm.certificate.rawBytes
			: vm.$case === "x509CertificateChain"
				? vm.x509CertificateChain.certificates[0]?.rawBytes
				: undefined;
	if (der === undefined) {
		throw new FtguardError(
			"CERTIFICATE_UNTRUSTED",
			`the bundle is signed with a bare public key, not a certificate; ${mode} verification needs a certificate`,
		);
	}
	try {
		const node = new NodeX509Certificate(der);
		return {
			der,
			cert: X509Certificate.parse(Buffer.from(der)),
			node,
			key: node.publicKey,
		};
	} catch (e) {
		throw new FtguardError("BUNDLE_MALFORMED", "the bundle's signing certificate does not parse", { cause: e });
	}
}

interface SanMatcher {
	/** For messages (quoted, one line). */
	describe: string;
	/** For `details`: the exact identity, or the anchored pattern. */
	expected: string;
	test: (san: string) => boolean;
}

function identityMatcher(identity: IdentityMatcher): SanMatcher {
	if ("exact" in identity && typeof identity.exact === "string" && identity.exact !== "") {
		const exact = identity.exact;
		// A string comparison, not a regular expression: the library's own SAN check
		// is an unanchored regex, which would let "a@b.com" match "xa@b.com.evil".
		return { describe: JSON.stringify(exact), expected: exact, test: (san) => san === exact };
	}
	if ("regexp" in identity && typeof identity.regexp === "string" && identity.regexp !== "") {
		let re: RegExp;
		try {
			// Anchored around a group so that "a|b" cannot become "^a" or "b$".
			re = new RegExp(`^(?:${identity.regexp})$`);
		} catch (e) {
			throw new FtguardError("USAGE", `identity regexp does not compile: ${identity.regexp}`, { cause: e });
		}
		return { describe: `/${re.source}/`, expected: re.source, test: (san) => re.test(san) };
	}
	throw new FtguardError("USAGE", "keyless identity needs a non-empty exact identity or regexp");
}

function signedAt(entity: SignedEntity): string | undefined {
	const times: number[] = [];
	for (const t of entity.timestamps) {
		if (t.$case === "timestamp-authority") times.push(t.timestamp.signingTime.getTime());
		// Only entries with a promise count as timestamps for the library, too.
		else if (t.tlogEntry.inclusionPromise) times.push(Number(t.tlogEntry.integratedTime) * 1000);
	}
	return times.length > 0 ? new Date(Math.min(...times)).toISOString() : undefined;
}

/** Certificates after the leaf in an `x509CertificateChain`: untrusted path-building material. */
function bundleIntermediates(bundle: Bundle): X509Certificate[] {
	const vm = bundle.verificationMaterial.content;
	if (vm.$case !== "x509CertificateChain") return [];
	const out: X509Certificate[] = [];
	for (const c of vm.x509CertificateChain.certificates.slice(1)) {
		try {
			out.push(X509Certificate.parse(Buffer.from(c.rawBytes)));
		} catch (e) {
			throw new FtguardError("BUNDLE_MALFORMED", "a certificate in the bundle's chain does not parse", { cause: e });
		}
	}
	return out;
}

export function prepareTrust(bundle: Bundle, policy: TrustPolicy, options: VerifyOptions): PreparedTrust {
	switch (policy.kind) {
		case "public-key": {
			const key = parseEcPublicKey(policy.pem);
			return {
				candidateKey: key,
				// The bundle's key hint (v1.1 a hex hint, v1.0 the raw PEM) names a key;
				// the user already chose one, so every hint resolves to it.
				material: toTrustMaterial(EMPTY_ROOT, () => ({
					publicKey: key,
					validFor: () => true,
				})),
				options: KEYED_OPTIONS,
				entityKey: { $case: "public-key", hint: "" },
				transparency: false,
				legacy: "curve",
				info: () => ({
					kind: "public-key",
					keyFingerprint: keyFingerprint(key),
				}),
			};
		}
		case "certificate-chain": {
			const ca = privateCaTrustedRoot(policy.pem);
			const leaf = leafCertificate(bundle, "certificate-chain");
			// These bundles carry no signed timestamp, so the Verifier would verify the
			// certificate at no time at all (it checks the path once per timestamp).
			// The path is therefore checked here, at `now`: a certificate that has
			// expired or is not yet valid is refused, as openssl verify would.
			const at = options.now ?? new Date();
			return {
				candidateKey: leaf.key,
				material: toTrustMaterial(EMPTY_ROOT, () => ({
					publicKey: leaf.key,
					validFor: () => true,
				})),
				options: KEYED_OPTIONS,
				entityKey: { $case: "public-key", hint: "" },
				transparency: false,
				legacy: "sha256",
				before: () => {
					try {
						verifyPrivateChain(at, leaf.cert, ca.material.certificateAuthorities, bundleIntermediates(bundle));
					} catch (e) {
						throw new FtguardError(
							"CERTIFICATE_UNTRUSTED",
							`signing certificate does not chain to the given CA at ${at.toISOString()}${causeText(e)}`,
							{
								cause: e,
								details: { subject: leaf.node.subject, at: at.toISOString() },
							},
						);
					}
					// Same rule as model_signing: digitalSignature key usage, or the
					// code-signing extended key usage.
					const eku = leaf.node.keyUsage ?? [];
					if (leaf.cert.extKeyUsage?.digitalSignature !== true && !eku.includes(OID_EKU_CODE_SIGNING)) {
						throw new FtguardError("CERTIFICATE_UNTRUSTED", "signing certificate is not allowed to sign (key usage)", {
							details: { subject: leaf.node.subject },
						});
					}
				},
				info: () => ({
					kind: "certificate-chain",
					certificateSubject: leaf.node.subject.split("\n").join(", "),
					certificateFingerprint: fingerprint(leaf.der),
					keyFingerprint: keyFingerprint(leaf.key),
				}),
			};
		}
		case "keyless": {
			const matcher = identityMatcher(policy.identity);
			if (typeof policy.issuer !== "string" || policy.issuer === "") {
				throw new FtguardError("USAGE", "keyless verification needs the OIDC issuer");
			}
			const issuer = policy.issuer;
			const root = loadTrustedRoot(policy.trustedRoot);
			const leaf = leafCertificate(bundle, "keyless");
			let identity: string | undefined;
			let certIssuer: string | undefined;
			return {
				candidateKey: leaf.key,
				material: root.material,
				options: KEYLESS_OPTIONS,
				entityKey: { $case: "certificate", certificate: leaf.cert },
				transparency: true,
				after: (signer) => {
					identity = signer.identity?.subjectAlternativeName;
					certIssuer = signer.identity?.extensions?.issuer;
					if (identity === undefined || !matcher.test(identity)) {
						throw new FtguardError(
							"IDENTITY_MISMATCH",
							`signed by ${identity === undefined ? "(no identity)" : JSON.stringify(identity)}, expected ${matcher.describe}`,
							{
								details: {
									expected: matcher.expected,
									actual: identity ?? null,
								},
							},
						);
					}
					if (certIssuer !== issuer) {
						throw new FtguardError(
							"IDENTITY_MISMATCH",
							`identity vouched for by ${certIssuer === undefined ? "(no issuer)" : JSON.stringify(certIssuer)}, expected ${issuer}`,
							{
								details: {
									expectedIssuer: issuer,
									actualIssuer: certIssuer ?? null,
								},
							},
						);
					}
				},
				info: (entity) => {
					const at = signedAt(entity);
					return {
						kind: "keyless",
						...(identity !== undefined ? { identity } : {}),
						...(certIssuer !== undefined ? { issuer: certIssuer } : {}),
						keyFingerprint: keyFingerprint(leaf.key),
						certificateFingerprint: fingerprint(leaf.der),
						...(at !== undefined ? { signedAt: at } : {}),
					};
				},
			};
		}
		default: {
			const kind: unknown = (policy as { kind?: unknown }).kind;
			throw new FtguardError("USAGE", `unknown trust policy kind ${String(kind)}`);
		}
	}
}
