/**
 * Offline Sigstore bundle verification: OMS model signatures (DSSE) and cosign
 * `sign-blob` bundles (message signatures), under one of three trust modes.
 *
 * `@sigstore/verify` does the Sigstore-specific work (certificate paths, SCTs,
 * Rekor inclusion promises and proofs, RFC 3161 timestamps); this module picks
 * the trust material and thresholds for each mode, supplies the signature check,
 * and translates every failure into an FtguardError. Nothing here touches the
 * network: the keyless trust root comes from the package (see trust-root.ts).
 *
 * Why the signature check is our own and not the library's: `@sigstore/verify`
 * verifies ECDSA with OpenSSL's default digest for EC keys, SHA-256, whatever the
 * curve. model_signing signs with the digest that matches the curve (P-384 with
 * SHA-384, as in its test vectors), like sigstore-go and sigstore-python. So the
 * library is handed a `SignatureContent` whose `verifySignature` picks the digest
 * from the key; everything else it does is unchanged.
 *
 * Signatures from model_signing before 1.0 (v0.2) are over a different
 * pre-authentication encoding; key and certificate modes retry with it exactly
 * where the reference verifier does (see `legacyPreAuthEncoding`).
 *
 * Order of checks: the signature is checked against the key the bundle claims
 * (or the user's key) before anything about trust, so that any change to the
 * payload or signature reads as SIGNATURE_INVALID, not as whatever log or
 * timestamp check happened to notice first.
 */
import {
	createHash,
	createPublicKey,
	createVerify,
	verify as cryptoVerify,
	type KeyObject,
	X509Certificate as NodeX509Certificate,
	timingSafeEqual,
} from "node:crypto";
import { createReadStream } from "node:fs";
import type { Bundle } from "@sigstore/bundle";
import { dsse, X509Certificate } from "@sigstore/core";
import { HashAlgorithm, TrustedRoot } from "@sigstore/protobuf-specs";
import {
	PolicyError,
	type SignedEntity,
	type Signer,
	type TrustMaterial,
	toSignedEntity,
	toTrustMaterial,
	VerificationError,
	Verifier,
	type VerifierOptions,
} from "@sigstore/verify";
// Not re-exported by the package index. It is the path builder the Verifier
// itself uses for Fulcio chains; the private-CA mode needs it called with a
// verification time because such bundles carry no timestamp (see below).
import { CertificateChainVerifier } from "@sigstore/verify/dist/key/certificate.js";
import { type CertAuthority, filterCertAuthorities } from "@sigstore/verify/dist/trust/index.js";
import { z } from "zod";
import { type ErrorCode, FtguardError, firstLine, toFtguardError } from "../errors";
import { zodMessage } from "../schema";
import { IN_TOTO_PAYLOAD_TYPE } from "./statement";
import { loadTrustedRoot, privateCaTrustedRoot } from "./trust-root";

export type { Bundle } from "@sigstore/bundle";
export { MAX_BUNDLE_BYTES, parseBundle } from "./bundle";
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
export {
	type LoadedTrustedRoot,
	loadTrustedRoot,
	publicGoodTrustedRootJSON,
} from "./trust-root";

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

export interface DsseVerification {
	payloadType: string;
	payload: Buffer;
	signer: SignerInfo;
}

export interface BlobVerification {
	signer: SignerInfo;
	/** Lower-case hex SHA-256 of the artefact. */
	digest: string;
}

/** Bundles are a few kB; anything this large is not one and is not parsed. */
// --- signature content ------------------------------------------------------

type SignatureContent = SignedEntity["signature"];
type VerificationKey = SignedEntity["key"];

function bufferEqual(a: Uint8Array, b: Uint8Array): boolean {
	return a.byteLength === b.byteLength && timingSafeEqual(a, b);
}

const CURVE_DIGEST: Readonly<Record<string, string>> = {
	prime256v1: "sha256",
	secp384r1: "sha384",
	secp521r1: "sha512",
};

/**
 * The digest a signature by `key` is made with when the bundle does not say:
 * by curve for ECDSA (as model_signing, sigstore-go and sigstore-python do),
 * SHA-256 for RSA PKCS#1 v1.5 (Sigstore's only RSA scheme), none for EdDSA.
 * `undefined` means the key cannot have made a signature we accept.
 */
function digestForKey(key: KeyObject): string | null | undefined {
	switch (key.asymmetricKeyType) {
		case "ec":
			return CURVE_DIGEST[key.asymmetricKeyDetails?.namedCurve ?? ""];
		case "rsa":
			return "sha256";
		case "ed25519":
			return null;
		default:
			return undefined;
	}
}

function verifyWithKey(data: Uint8Array, key: KeyObject, signature: Uint8Array): boolean {
	const digest = digestForKey(key);
	if (digest === undefined) return false;
	try {
		return cryptoVerify(digest, data, key, signature);
	} catch {
		return false;
	}
}

/**
 * Python's `repr()` of a `bytes` value, byte for byte (CPython's `bytes_repr`):
 * `b'…'`, or `b"…"` when the bytes hold a `'` and no `"`; backslash, the quote,
 * tab, newline and carriage return escaped; other bytes outside 0x20–0x7e as
 * `\xhh` in lower case. The result is ASCII.
 */
export function pythonBytesRepr(data: Uint8Array): Buffer {
	const SQ = 0x27;
	const DQ = 0x22;
	const BS = 0x5c;
	const hex = "0123456789abcdef";
	const quote = data.includes(SQ) && !data.includes(DQ) ? DQ : SQ;
	const out = Buffer.allocUnsafe(data.length * 4 + 3);
	let n = 0;
	out[n++] = 0x62; // b
	out[n++] = quote;
	for (const c of data) {
		if (c === quote || c === BS) {
			out[n++] = BS;
			out[n++] = c;
		} else if (c === 0x09 || c === 0x0a || c === 0x0d) {
			out[n++] = BS;
			out[n++] = c === 0x09 ? 0x74 : c === 0x0a ? 0x6e : 0x72; // t n r
		} else if (c < 0x20 || c >= 0x7f) {
			out[n++] = BS;
			out[n++] = 0x78; // x
			out[n++] = hex.charCodeAt(c >> 4);
			out[n++] = hex.charCodeAt(c & 0xf);
		} else {
			out[n++] = c;
		}
	}
	out[n++] = quote;
	return out.subarray(0, n);
}

/**
 * The pre-authentication encoding model_signing v0.2 signed: the payload bytes
 * formatted into a Python string, so "DSSEV1 28 application/vnd.in-toto+json
 * <length> b'{\n  \"_type\"…'" in UTF-8 (capital V, the payload as its repr,
 * its length that of the raw bytes). The reference verifier (`pae_compat` in
 * model_signing 1.0.1+, `_signing/sign_sigstore_pb.py`) rebuilds exactly this,
 * always with the in-toto payload type.
 *
 * It cannot be confused with the DSSE encoding: the two differ at byte 5
 * ("DSSEv1" / "DSSEV1"), so no signature is valid under both.
 */
export function legacyPreAuthEncoding(payload: Uint8Array): Buffer {
	return Buffer.concat([
		Buffer.from(`DSSEV1 ${IN_TOTO_PAYLOAD_TYPE.length} ${IN_TOTO_PAYLOAD_TYPE} ${payload.length} `, "ascii"),
		pythonBytesRepr(payload),
	]);
}

/**
 * When a DSSE signature that fails over the DSSE encoding is tried again over
 * model_signing v0.2's encoding, and with which digest — the reference
 * verifier's rule, no wider:
 * - "curve": EC key mode (`sign_ec_key.py`), the digest that matches the curve;
 * - "sha256": certificate mode (`sign_certificate.py`), SHA-256 whatever the
 *   curve, because v0.2 hard-coded it;
 * - keyless has no retry (sigstore-python's `verify_dsse` has none).
 */
export type LegacyRetry = "curve" | "sha256";

/** A DSSE envelope as `@sigstore/verify` sees it, with a curve-aware signature check. */
class DsseContent implements SignatureContent {
	readonly signature: Buffer;
	private readonly pae: Buffer;
	private readonly payload: Buffer;
	private readonly payloadDigest: Buffer;
	/** Set once the signature verified only over the legacy encoding. */
	legacyUsed = false;

	constructor(
		env: {
			payload: Buffer;
			payloadType: string;
			signatures: { sig: Buffer }[];
		},
		private readonly legacy: LegacyRetry | undefined,
	) {
		this.signature = env.signatures[0]?.sig ?? Buffer.alloc(0);
		this.payload = env.payload;
		this.pae = dsse.preAuthEncoding(env.payloadType, env.payload);
		this.payloadDigest = createHash("sha256").update(env.payload).digest();
	}

	compareSignature(signature: Buffer): boolean {
		return bufferEqual(signature, this.signature);
	}

	compareDigest(digest: Buffer): boolean {
		return bufferEqual(digest, this.payloadDigest);
	}

	verifySignature(key: KeyObject): boolean {
		if (verifyWithKey(this.pae, key, this.signature)) return true;
		if (this.legacy === undefined || !this.verifyLegacy(key, this.legacy)) return false;
		this.legacyUsed = true;
		return true;
	}

	private verifyLegacy(key: KeyObject, rule: LegacyRetry): boolean {
		// The reference only ever verifies EC keys on its three curves.
		const curveDigest = key.asymmetricKeyType === "ec" ? digestForKey(key) : undefined;
		if (typeof curveDigest !== "string") return false;
		try {
			return cryptoVerify(
				rule === "sha256" ? "sha256" : curveDigest,
				legacyPreAuthEncoding(this.payload),
				key,
				this.signature,
			);
		} catch {
			return false;
		}
	}
}

/**
 * A message signature whose artefact was streamed through the verifier
 * beforehand. `verifySignature` answers for the one key the stream was checked
 * with, and says no for any other: the library then refuses, as it must.
 */
class StreamedMessageContent implements SignatureContent {
	constructor(
		readonly signature: Buffer,
		private readonly messageDigest: Buffer,
		private readonly checkedKey: KeyObject,
		private readonly valid: boolean,
	) {}

	compareSignature(signature: Buffer): boolean {
		return bufferEqual(signature, this.signature);
	}

	compareDigest(digest: Buffer): boolean {
		return bufferEqual(digest, this.messageDigest);
	}

	verifySignature(key: KeyObject): boolean {
		return this.valid && key.equals(this.checkedKey);
	}
}

// --- trust modes ------------------------------------------------------------

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

interface PreparedTrust {
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

function fingerprint(data: Uint8Array): string {
	return createHash("sha256").update(data).digest("hex");
}

function keyFingerprint(key: KeyObject): string {
	return fingerprint(key.export({ type: "spki", format: "der" }));
}

const ACCEPTED_CURVES: ReadonlySet<string> = new Set(Object.keys(CURVE_DIGEST));

/**
 * The user's public key: exactly one `PUBLIC KEY` PEM block, EC on P-256/384/521.
 * A private key or certificate PEM is refused although Node would derive a
 * public key from it: a mixed-up file should be a usage error, not a guess.
 */
export function parseEcPublicKey(pem: string): KeyObject {
	const blocks = [...pem.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g)].map((m) => m[1]);
	if (blocks.length !== 1 || blocks[0] !== "PUBLIC KEY") {
		throw new FtguardError(
			"KEY_INVALID",
			`expected one PEM "PUBLIC KEY" block, found ${blocks.length === 0 ? "none" : blocks.join(", ")}`,
		);
	}
	let key: KeyObject;
	try {
		key = createPublicKey(pem);
	} catch (e) {
		throw new FtguardError("KEY_INVALID", "the public key PEM does not parse", {
			cause: e,
		});
	}
	if (key.asymmetricKeyType !== "ec") {
		throw new FtguardError("KEY_INVALID", `expected an EC public key, got ${key.asymmetricKeyType ?? "unknown"}`);
	}
	const curve = key.asymmetricKeyDetails?.namedCurve ?? "unknown";
	if (!ACCEPTED_CURVES.has(curve)) {
		throw new FtguardError("KEY_INVALID", `EC curve ${curve} is not accepted (P-256, P-384, P-521)`);
	}
	return key;
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

/**
 * Path validation to a private CA, as X.509 does it: the user's PEM holds the trust
 * anchors; intermediates the signer shipped in the bundle may be used to build the
 * path but are never anchors themselves (a path must reach a certificate from the
 * user's PEM). model_signing verifies its certificate vectors with the root CA
 * alone, the intermediate coming from the bundle — so must we.
 */
function verifyPrivateChain(
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

function prepareTrust(bundle: Bundle, policy: TrustPolicy, options: VerifyOptions): PreparedTrust {
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

// --- error translation --------------------------------------------------------

/** Every code `@sigstore/verify` 3.x throws, mapped explicitly; the compiler flags a new one. */
const VERIFICATION_ERRORS: Readonly<Record<VerificationError["code"], { code: ErrorCode; what: string }>> = {
	SIGNATURE_ERROR: {
		code: "SIGNATURE_INVALID",
		what: "signature does not verify",
	},
	PUBLIC_KEY_ERROR: {
		code: "SIGNATURE_INVALID",
		what: "signing key is not trusted",
	},
	CERTIFICATE_ERROR: {
		code: "CERTIFICATE_UNTRUSTED",
		what: "signing certificate is not trusted",
	},
	TLOG_ERROR: { code: "TLOG_INVALID", what: "transparency log" },
	TLOG_BODY_ERROR: {
		code: "TLOG_INVALID",
		what: "transparency log entry does not match the bundle",
	},
	TLOG_INCLUSION_PROMISE_ERROR: {
		code: "TLOG_INVALID",
		what: "transparency log inclusion promise does not verify",
	},
	TLOG_INCLUSION_PROOF_ERROR: {
		code: "TLOG_INVALID",
		what: "transparency log inclusion proof does not verify",
	},
	TLOG_MISSING_INCLUSION_ERROR: {
		code: "TLOG_INVALID",
		what: "transparency log entry has no inclusion proof",
	},
	TIMESTAMP_ERROR: { code: "TIMESTAMP_INVALID", what: "signed timestamp" },
	NOT_IMPLEMENTED_ERROR: {
		code: "INTERNAL",
		what: "unsupported bundle feature",
	},
};

const POLICY_ERRORS: Readonly<Record<PolicyError["code"], ErrorCode>> = {
	UNTRUSTED_SIGNER_ERROR: "IDENTITY_MISMATCH",
};

function causeText(e: unknown): string {
	const cause = (e as { cause?: unknown } | undefined)?.cause;
	const msg = cause instanceof Error ? cause.message : e instanceof Error ? e.message : undefined;
	return msg ? ` (${firstLine(msg)})` : "";
}

/** Any failure inside the library: a known code becomes its finding, anything else INTERNAL. */
function translate(e: unknown): FtguardError {
	if (e instanceof FtguardError) return e;
	if (e instanceof VerificationError) {
		const mapped = VERIFICATION_ERRORS[e.code] as
			| (typeof VERIFICATION_ERRORS)[keyof typeof VERIFICATION_ERRORS]
			| undefined;
		if (mapped !== undefined) {
			return new FtguardError(mapped.code, `${mapped.what}: ${firstLine(e.message)}${causeText(e.cause)}`, {
				cause: e,
				details: { sigstoreCode: e.code },
			});
		}
	}
	if (e instanceof PolicyError) {
		const code = POLICY_ERRORS[e.code] as ErrorCode | undefined;
		if (code !== undefined) {
			return new FtguardError(code, firstLine(e.message), {
				cause: e,
				details: { sigstoreCode: e.code },
			});
		}
	}
	return toFtguardError(e, "signature verification");
}

// --- verification -----------------------------------------------------------

function runVerifier(bundle: Bundle, trust: PreparedTrust, content: SignatureContent): SignerInfo {
	if (!content.verifySignature(trust.candidateKey)) {
		throw new FtguardError("SIGNATURE_INVALID", "signature does not verify with the signing key");
	}
	trust.before?.();
	const fromBundle = toSignedEntity(bundle);
	const entity: SignedEntity = {
		signature: content,
		key: trust.entityKey,
		tlogEntries: trust.transparency ? fromBundle.tlogEntries : [],
		timestamps: trust.transparency ? fromBundle.timestamps : [],
	};
	let signer: Signer;
	try {
		signer = new Verifier(trust.material, trust.options).verify(entity);
	} catch (e) {
		throw translate(e);
	}
	// The library verified with the key it resolved; make sure it is the key we
	// checked the signature with (it always should be; a difference is a bug).
	if (!signer.key.equals(trust.candidateKey)) {
		throw new FtguardError("INTERNAL", "verifier resolved a different signing key than the bundle's");
	}
	trust.after?.(signer);
	return trust.info(entity);
}

function guard<T>(fn: () => T): T {
	try {
		return fn();
	} catch (e) {
		throw translate(e);
	}
}

/**
 * Verifies an OMS model signature (`model.sig`, a DSSE bundle) under `policy`,
 * offline, and returns the authenticated payload.
 *
 * In key and certificate modes a signature over model_signing v0.2's encoding is
 * accepted as the reference verifier accepts it (see `LegacyRetry`), and the
 * signer is then marked `legacyEncoding`.
 *
 * @throws FtguardError SIGNATURE_INVALID, IDENTITY_MISMATCH, CERTIFICATE_UNTRUSTED,
 *   TLOG_INVALID, TIMESTAMP_INVALID, PAYLOAD_INVALID (not a DSSE bundle, or a
 *   payload type other than in-toto JSON); KEY_INVALID, TRUST_ROOT_INVALID, USAGE
 *   for unusable trust material; INTERNAL for anything unexpected. Never returns
 *   unless every check passed.
 */
export function verifyDsseBundle(bundle: Bundle, policy: TrustPolicy, options: VerifyOptions = {}): DsseVerification {
	return verifyDsse(bundle, policy, options, true);
}

/**
 * @param modelSigning the bundle is a model_signing signature: its pre-1.0
 *   encoding may be retried. Not for other DSSE bundles (`cosign attest-blob`),
 *   whose signers never had that encoding.
 */
function verifyDsse(
	bundle: Bundle,
	policy: TrustPolicy,
	options: VerifyOptions,
	modelSigning: boolean,
): DsseVerification {
	return guard(() => {
		if (bundle.content.$case !== "dsseEnvelope") {
			throw new FtguardError(
				"PAYLOAD_INVALID",
				"the bundle holds a message signature (cosign sign-blob), not a DSSE envelope",
			);
		}
		const env = bundle.content.dsseEnvelope;
		const trust = prepareTrust(bundle, policy, options);
		// v0.2 only signed in-toto payloads, and the reference refuses any other type
		// after its retry; retrying only for that type keeps the rule the same.
		const legacy = modelSigning && env.payloadType === IN_TOTO_PAYLOAD_TYPE ? trust.legacy : undefined;
		const content = new DsseContent(env, legacy);
		const signer = runVerifier(bundle, trust, content);
		// Checked after authenticity: an unsigned payload type says nothing useful.
		if (env.payloadType !== IN_TOTO_PAYLOAD_TYPE) {
			throw new FtguardError(
				"PAYLOAD_INVALID",
				`DSSE payload type is ${JSON.stringify(env.payloadType)}, expected ${IN_TOTO_PAYLOAD_TYPE}`,
			);
		}
		return {
			payloadType: env.payloadType,
			payload: Buffer.from(env.payload),
			signer: content.legacyUsed ? { ...signer, legacyEncoding: true } : signer,
		};
	});
}

const MESSAGE_DIGESTS: Readonly<Partial<Record<HashAlgorithm, string>>> = {
	[HashAlgorithm.SHA2_256]: "sha256",
	[HashAlgorithm.SHA2_384]: "sha384",
	[HashAlgorithm.SHA2_512]: "sha512",
};

/** Read size for artefacts: large enough that hashing, not syscalls, is the cost. */
const READ_CHUNK = 4 * 1024 * 1024;

/** Every chunk of the artefact, read once: a path is streamed, bytes are used as they are. */
async function* chunks(artifact: string | Uint8Array): AsyncGenerator<Uint8Array> {
	if (typeof artifact !== "string") {
		yield artifact;
		return;
	}
	try {
		for await (const chunk of createReadStream(artifact, {
			highWaterMark: READ_CHUNK,
		}))
			yield chunk as Buffer;
	} catch (e) {
		throw toFtguardError(e, `cannot read ${artifact}`);
	}
}

interface Streamed {
	sha256: string;
	messageDigest: Buffer;
	signatureValid: boolean;
}

/**
 * One pass over the artefact feeding three consumers: SHA-256 for the report, the
 * bundle's digest algorithm for `messageDigest`, and a streaming signature
 * verifier. Node cannot verify ECDSA over a precomputed digest (`crypto.verify`
 * with a null algorithm still hashes for EC keys), but `createVerify` hashes
 * incrementally, so memory stays flat whatever the artefact's size.
 */
async function streamArtifact(
	artifact: string | Uint8Array,
	digestName: string,
	key: KeyObject,
	signature: Uint8Array,
): Promise<Streamed> {
	// EdDSA has no streaming form; keys other than ECDSA/RSA cannot be checked in one pass.
	const streamable = key.asymmetricKeyType === "ec" || key.asymmetricKeyType === "rsa";
	const sha256 = createHash("sha256");
	const digest = digestName === "sha256" ? undefined : createHash(digestName);
	const verifier = streamable ? createVerify(digestName) : undefined;
	for await (const chunk of chunks(artifact)) {
		sha256.update(chunk);
		digest?.update(chunk);
		verifier?.update(chunk);
	}
	const shaBytes = sha256.digest();
	let signatureValid = false;
	try {
		signatureValid = verifier?.verify(key, signature) ?? false;
	} catch {
		signatureValid = false;
	}
	return {
		sha256: shaBytes.toString("hex"),
		messageDigest: digest?.digest() ?? shaBytes,
		signatureValid,
	};
}

const attestedStatement = z.object({
	_type: z.enum(["https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1"]),
	subject: z.array(z.object({ digest: z.record(z.string(), z.string()) }).loose()).min(1),
});

/**
 * Verifies an artefact against a cosign `sign-blob --bundle` bundle (message
 * signature), or against a DSSE in-toto bundle one of whose subjects has the
 * artefact's SHA-256 (`cosign attest-blob`).
 *
 * The artefact is read once, in 4 MiB chunks, never held in memory whole; pass
 * bytes instead of a path to verify exactly what you already read.
 *
 * @throws FtguardError DIGEST_MISMATCH (the artefact is not what was signed), and
 *   everything `verifyDsseBundle` throws; NOT_FOUND / IO_ERROR when the artefact
 *   cannot be read.
 */
export async function verifyBlobBundle(
	bundle: Bundle,
	policy: TrustPolicy,
	artifact: string | Uint8Array,
	options: VerifyOptions = {},
): Promise<BlobVerification> {
	const content = bundle.content;
	if (content.$case === "dsseEnvelope") {
		const { payload, signer } = verifyDsse(bundle, policy, options, false);
		const statement = guard(() => {
			let json: unknown;
			try {
				json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
			} catch (e) {
				throw new FtguardError("PAYLOAD_INVALID", "signed payload is not UTF-8 JSON", { cause: e });
			}
			const parsed = attestedStatement.safeParse(json);
			if (!parsed.success) {
				throw new FtguardError(
					"PAYLOAD_INVALID",
					`signed payload is not an in-toto statement: ${zodMessage(parsed.error)}`,
				);
			}
			return parsed.data;
		});
		const hash = createHash("sha256");
		for await (const chunk of chunks(artifact)) hash.update(chunk);
		const sha256 = hash.digest("hex");
		if (!statement.subject.some((s) => s.digest.sha256?.toLowerCase() === sha256)) {
			throw new FtguardError("DIGEST_MISMATCH", "the artefact's sha256 is not a subject of the signed statement", {
				details: { actual: sha256 },
			});
		}
		return { signer, digest: sha256 };
	}

	const ms = content.messageSignature;
	const digestName = ms.messageDigest ? MESSAGE_DIGESTS[ms.messageDigest.algorithm] : undefined;
	if (ms.messageDigest === undefined || digestName === undefined) {
		throw new FtguardError("BUNDLE_MALFORMED", "message signature has no SHA-2 message digest");
	}
	const expected = ms.messageDigest.digest;
	const trust = guard(() => prepareTrust(bundle, policy, options));
	const streamed = await streamArtifact(artifact, digestName, trust.candidateKey, ms.signature);
	if (!bufferEqual(streamed.messageDigest, expected)) {
		throw new FtguardError("DIGEST_MISMATCH", `the artefact's ${digestName} differs from the bundle's message digest`, {
			details: {
				expected: Buffer.from(expected).toString("hex"),
				actual: streamed.messageDigest.toString("hex"),
			},
		});
	}
	const signer = guard(() =>
		runVerifier(
			bundle,
			trust,
			new StreamedMessageContent(ms.signature, expected, trust.candidateKey, streamed.signatureValid),
		),
	);
	return { signer, digest: streamed.sha256 };
}
