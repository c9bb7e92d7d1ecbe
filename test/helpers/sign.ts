/**
 * Test signing utilities: produce Sigstore bundles that ftguard must accept, fully
 * offline, for every trust mode it supports.
 *
 * - keyed: an EC key pair signs a DSSE envelope (PAE) or a message digest into a
 *   v0.3 bundle with a `publicKey.hint`, as model_signing and cosign do;
 * - keyless: `@sigstore/mock` supplies a private Fulcio CA (with a CT log for
 *   SCTs), a Rekor log (inclusion promise + proof) and an RFC 3161 TSA; the bundle
 *   comes with the `trusted_root.json` that trusts exactly that instance;
 * - certificate chain: a private root → intermediate → leaf hierarchy built with
 *   `@peculiar/x509`, the bundle carrying `x509CertificateChain` like
 *   model_signing's certificate mode.
 *
 * Everything returned is plain JSON (what would be written to disk), so tests go
 * through the same `parseBundle` as real files. The code here is deliberately
 * independent of lib/: PAE, root digests and bundle layout are written out again
 * so that a bug in ftguard is not mirrored by its own test data.
 */
import "reflect-metadata";
import { createHash, generateKeyPairSync, type KeyObject, randomInt, sign, webcrypto } from "node:crypto";
import { readFileSync } from "node:fs";
import * as x509 from "@peculiar/x509";
import { type CA, initializeCA } from "@sigstore/mock/dist/fulcio/ca.js";
import { initializeCTLog } from "@sigstore/mock/dist/fulcio/ctlog.js";
import { initializeTLog, type TLog } from "@sigstore/mock/dist/rekor/tlog.js";
import { initializeTSA, type TSA } from "@sigstore/mock/dist/timestamp/tsa.js";

/** A bundle or trusted root as it would be written to disk. */
export type Json = { [key: string]: unknown };

export const BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json";
export const IN_TOTO = "application/vnd.in-toto+json";
const TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1";
const OID_FULCIO_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1";
const OID_FULCIO_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8";
const OID_SHA256 = "2.16.840.1.101.3.4.2.1";

/** Bytes of any view, without copying (the mock returns plain ArrayBufferViews). */
const bytes = (view: ArrayBufferView): Buffer => Buffer.from(view.buffer, view.byteOffset, view.byteLength);
const b64 = (data: ArrayBufferView): string => bytes(data).toString("base64");
const sha256 = (data: Uint8Array | string): Buffer => createHash("sha256").update(data).digest();

/** Bytes of the artefact: given directly, or read from a path. */
function artefactBytes(artifact: Uint8Array | string): Buffer {
	return typeof artifact === "string" ? readFileSync(artifact) : Buffer.from(artifact);
}

// --- keys ---------------------------------------------------------------------

export type Curve = "P-256" | "P-384" | "P-521";

const CURVE_HASH: Record<Curve, string> = {
	"P-256": "sha256",
	"P-384": "sha384",
	"P-521": "sha512",
};

export interface KeyPair {
	curve: Curve;
	privateKey: KeyObject;
	publicKey: KeyObject;
	/** SPKI PEM, what a user passes as `--public-key`. */
	publicKeyPem: string;
}

export function generateEcKeyPair(curve: Curve = "P-256"): KeyPair {
	const { privateKey, publicKey } = generateKeyPairSync("ec", {
		namedCurve: curve,
	});
	return {
		curve,
		privateKey,
		publicKey,
		publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
	};
}

/** model_signing's v1.1 hint: hex SHA-256 of the public key (here: its SPKI DER). */
export function keyHint(publicKey: KeyObject): string {
	return sha256(publicKey.export({ type: "spki", format: "der" })).toString("hex");
}

// --- statements ---------------------------------------------------------------

export interface ManifestLike {
	modelName: string;
	method?: "files" | "shards";
	resources: { name: string; digest: string; algorithm?: string }[];
	/** Extra or overriding `predicate.serialization` fields. */
	serialization?: Json;
	/** Overrides the computed subject digest (to build inconsistent statements). */
	root?: string;
}

/** A Python sort key: ints, and tuples/lists of keys compared lexicographically. */
type Key = number | Key[];

function compareKeys(a: Key, b: Key): number {
	if (typeof a === "number" && typeof b === "number") return a - b;
	const x = a as Key[];
	const y = b as Key[];
	for (let i = 0; i < Math.min(x.length, y.length); i++) {
		const c = compareKeys(x[i] as Key, y[i] as Key);
		if (c !== 0) return c;
	}
	return x.length - y.length;
}

/** Python's key for a `str`: its code points. */
const codePoints = (s: string): Key => Array.from(s, (c) => c.codePointAt(0) as number);

/** `sorted()` over PurePosixPath (a list of components) or Shard (path, start, end). */
function referenceKey(name: string, method: "files" | "shards"): Key {
	if (method === "files") return name.split("/").map(codePoints);
	const m = /^(.*):(\d+):(\d+)$/.exec(name);
	if (!m) throw new Error(`not a shard name: ${name}`);
	return [(m[1] as string).split("/").map(codePoints), Number(m[2]), Number(m[3])];
}

/** The OMS root digest, computed the reference tool's way (independently of lib/). */
export function referenceRootDigest(
	resources: { name: string; digest: string }[],
	method: "files" | "shards" = "files",
): string {
	const sorted = [...resources].sort((a, b) => compareKeys(referenceKey(a.name, method), referenceKey(b.name, method)));
	const h = createHash("sha256");
	for (const r of sorted) h.update(Buffer.from(r.digest, "hex"));
	return h.digest("hex");
}

/** A model_signing v1.0 in-toto statement for a manifest (resources listed in canonical order). */
export function makeModelSigningStatement(m: ManifestLike): Json {
	const method = m.method ?? "files";
	const resources = [...m.resources]
		.sort((a, b) => compareKeys(referenceKey(a.name, method), referenceKey(b.name, method)))
		.map((r) => ({
			name: r.name,
			algorithm: r.algorithm ?? "sha256",
			digest: r.digest,
		}));
	return {
		_type: "https://in-toto.io/Statement/v1",
		subject: [
			{
				name: m.modelName,
				digest: { sha256: m.root ?? referenceRootDigest(resources, method) },
			},
		],
		predicateType: "https://model_signing/signature/v1.0",
		predicate: {
			serialization: {
				method,
				hash_type: "sha256",
				allow_symlinks: false,
				ignore_paths: [".git", ".gitattributes", ".github", ".gitignore", "model.sig"],
				...(method === "shards" ? { shard_size: 1_000_000_000 } : {}),
				...m.serialization,
			},
			resources,
		},
	};
}

/** A statement (object) as payload bytes; bytes pass through untouched. */
export function payloadBytes(statement: Json | Uint8Array): Buffer {
	return statement instanceof Uint8Array ? Buffer.from(statement) : Buffer.from(JSON.stringify(statement, null, 2));
}

/** DSSE v1 pre-authentication encoding. */
export function pae(payloadType: string, payload: Uint8Array): Buffer {
	const type = Buffer.from(payloadType, "utf8");
	return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload]);
}

function envelope(payload: Buffer, payloadType: string, sig: Buffer): Json {
	return {
		payload: b64(payload),
		payloadType,
		signatures: [{ sig: b64(sig), keyid: "" }],
	};
}

// --- keyed --------------------------------------------------------------------

export interface KeyedOptions {
	/** @default a fresh P-256 pair (or `curve`) */
	keyPair?: KeyPair;
	curve?: Curve;
	/** @default application/vnd.in-toto+json */
	payloadType?: string;
	/**
	 * How the bundle names the key: a hex hint (model_signing 1.1, cosign), or the
	 * PEM itself in `rawBytes` (model_signing 1.0). @default "hint"
	 */
	keyMaterial?: "hint" | "rawBytes";
}

export interface KeyedResult {
	bundle: Json;
	keyPair: KeyPair;
}

function keyMaterial(kp: KeyPair, how: "hint" | "rawBytes"): Json {
	return how === "hint"
		? { hint: keyHint(kp.publicKey) }
		: {
				rawBytes: b64(Buffer.from(kp.publicKeyPem)),
				keyDetails: `PKIX_ECDSA_${kp.curve.replace("-", "")}_SHA_${CURVE_HASH[kp.curve].slice(3)}`,
			};
}

/** A model_signing-style keyed bundle: DSSE over the statement, signed with the curve's hash. */
export function signStatementKeyed(statement: Json | Uint8Array, opts: KeyedOptions = {}): KeyedResult {
	const keyPair = opts.keyPair ?? generateEcKeyPair(opts.curve);
	const payloadType = opts.payloadType ?? IN_TOTO;
	const payload = payloadBytes(statement);
	const sig = sign(CURVE_HASH[keyPair.curve], pae(payloadType, payload), keyPair.privateKey);
	return {
		keyPair,
		bundle: {
			mediaType: BUNDLE_V03,
			verificationMaterial: {
				publicKey: keyMaterial(keyPair, opts.keyMaterial ?? "hint"),
				tlogEntries: [],
			},
			dsseEnvelope: envelope(payload, payloadType, sig),
		},
	};
}

/** A `cosign sign-blob --key --bundle` style bundle (message signature, SHA-256). */
export function signBlobKeyed(
	artifact: Uint8Array | string,
	opts: Pick<KeyedOptions, "keyPair" | "curve" | "keyMaterial"> = {},
): KeyedResult {
	const keyPair = opts.keyPair ?? generateEcKeyPair(opts.curve);
	const data = artefactBytes(artifact);
	const sig = sign("sha256", data, keyPair.privateKey);
	return {
		keyPair,
		bundle: {
			mediaType: BUNDLE_V03,
			verificationMaterial: {
				publicKey: keyMaterial(keyPair, opts.keyMaterial ?? "hint"),
				tlogEntries: [],
			},
			messageSignature: {
				messageDigest: { algorithm: "SHA2_256", digest: b64(sha256(data)) },
				signature: b64(sig),
			},
		},
	};
}

// --- keyless (mock Sigstore) ------------------------------------------------------

export interface KeylessOptions {
	/** Certificate SAN (encoded as a URI by the mock CA). */
	identity: string;
	/** OIDC issuer recorded in the certificate. */
	issuer: string;
	/** Add an RFC 3161 timestamp besides the Rekor entry. @default true */
	tsa?: boolean;
	/** Add the Rekor entry. @default true */
	tlog?: boolean;
	/** @default the shared instance (see `mockSigstore`) */
	instance?: MockSigstore;
}

export interface KeylessResult {
	bundle: Json;
	/** The trusted_root.json that trusts exactly the instance that signed. */
	trustedRoot: Json;
}

/** One private Sigstore deployment: CA + CT log, Rekor, TSA, and their trust root. */
export interface MockSigstore {
	ca: CA;
	tlog: TLog;
	tsa: TSA;
	trustedRoot: Json;
}

const REKOR_URL = "https://rekor.ftguard.test";

/**
 * Creates a private Sigstore instance. All services run in-process; nothing
 * listens or connects.
 */
export async function createMockSigstore(): Promise<MockSigstore> {
	// Every service runs on one frozen clock, in whole seconds: Rekor times are
	// whole seconds anyway, @sigstore/core refuses the fractional RFC 3161 times
	// the mock TSA would otherwise write (".5Z"), and bundles signed minutes apart
	// stay inside the 10-minute certificates. The clock is set a few seconds
	// ahead because the mock's CA and TSA root certificates are valid from the
	// real time they are created, which must not fall after the signing times.
	const now = Math.floor(Date.now() / 1000) * 1000 + 5_000;
	const clock = new Date(now);
	const keys = () => generateKeyPairSync("ec", { namedCurve: "P-256" });
	const ctlog = await initializeCTLog(keys(), clock);
	// Certificates start a minute before the log and TSA times, as a real Fulcio
	// certificate precedes its Rekor entry.
	const ca = await initializeCA(keys(), ctlog, new Date(now - 60_000));
	const tlog = await initializeTLog(REKOR_URL, keys(), clock);
	const tsa = await initializeTSA(keys(), clock);
	const start = new Date(now - 86_400_000).toISOString();
	const trustedRoot: Json = {
		mediaType: TRUSTED_ROOT_MEDIA_TYPE,
		tlogs: [
			{
				baseUrl: REKOR_URL,
				hashAlgorithm: "SHA2_256",
				publicKey: {
					rawBytes: b64(tlog.publicKey),
					keyDetails: "PKIX_ECDSA_P256_SHA_256",
					validFor: { start },
				},
				logId: { keyId: b64(sha256(tlog.publicKey)) },
			},
		],
		certificateAuthorities: [
			{
				subject: { organization: "sigstore.mock", commonName: "sigstore" },
				uri: "https://fulcio.ftguard.test",
				certChain: { certificates: [{ rawBytes: b64(ca.rootCertificate) }] },
				validFor: { start },
			},
		],
		ctlogs: [
			{
				baseUrl: "https://ctfe.ftguard.test",
				hashAlgorithm: "SHA2_256",
				publicKey: {
					rawBytes: b64(ctlog.publicKey),
					keyDetails: "PKIX_ECDSA_P256_SHA_256",
					validFor: { start },
				},
				logId: { keyId: b64(ctlog.logID) },
			},
		],
		timestampAuthorities: [
			{
				subject: { organization: "sigstore.mock", commonName: "tsa" },
				uri: "https://tsa.ftguard.test",
				certChain: {
					certificates: [{ rawBytes: b64(tsa.intCertificate) }, { rawBytes: b64(tsa.rootCertificate) }],
				},
				validFor: { start },
			},
		],
	};
	return { ca, tlog, tsa, trustedRoot };
}

let shared: Promise<MockSigstore> | undefined;

/** The process-wide mock instance (created once; a few ms per signature after that). */
export function mockSigstore(): Promise<MockSigstore> {
	shared ??= createMockSigstore();
	return shared;
}

interface Ephemeral {
	keyPair: KeyPair;
	certDer: Buffer;
	certPem: string;
}

async function fulcioCertificate(instance: MockSigstore, identity: string, issuer: string): Promise<Ephemeral> {
	const keyPair = generateEcKeyPair("P-256");
	const certDer = bytes(
		await instance.ca.issueCertificate({
			publicKey: keyPair.publicKey.export({ type: "spki", format: "der" }),
			subjectAltName: identity,
			extensions: [
				{ oid: OID_FULCIO_ISSUER_V2, value: issuer },
				{ oid: OID_FULCIO_ISSUER_V1, value: issuer, legacy: true },
			],
		}),
	);
	const certPem = `-----BEGIN CERTIFICATE-----\n${b64(certDer)
		.match(/.{1,64}/g)
		?.join("\n")}\n-----END CERTIFICATE-----\n`;
	return { keyPair, certDer, certPem };
}

/** Logs a Rekor v1 entry body and returns it as a bundle `TransparencyLogEntry`. */
async function rekorEntry(tlog: TLog, body: Json): Promise<Json> {
	const response = (await tlog.log(body)) as Record<
		string,
		{
			body: string;
			integratedTime: number;
			logID: string;
			logIndex: number;
			verification: {
				signedEntryTimestamp: string;
				inclusionProof: {
					logIndex: number;
					treeSize: number;
					rootHash: string;
					hashes: string[];
					checkpoint: string;
				};
			};
		}
	>;
	const entry = Object.values(response)[0];
	if (!entry) throw new Error("mock Rekor returned no entry");
	const proof = entry.verification.inclusionProof;
	return {
		logIndex: String(entry.logIndex),
		logId: { keyId: b64(Buffer.from(entry.logID, "hex")) },
		kindVersion: { kind: body.kind, version: body.apiVersion },
		integratedTime: String(entry.integratedTime),
		inclusionPromise: {
			signedEntryTimestamp: entry.verification.signedEntryTimestamp,
		},
		inclusionProof: {
			logIndex: String(proof.logIndex),
			rootHash: b64(Buffer.from(proof.rootHash, "hex")),
			treeSize: String(proof.treeSize),
			hashes: proof.hashes.map((h) => b64(Buffer.from(h, "hex"))),
			checkpoint: { envelope: proof.checkpoint },
		},
		canonicalizedBody: entry.body,
	};
}

async function rfc3161(tsa: TSA, signature: Buffer): Promise<Json> {
	const response = await tsa.timestamp({
		artifactHash: sha256(signature),
		hashAlgorithmOID: OID_SHA256,
		nonce: randomInt(1, 2 ** 31),
		policyOID: "1.3.6.1.4.1.57264.2",
		certReq: false,
	});
	return { signedTimestamp: b64(response) };
}

async function keylessMaterial(
	instance: MockSigstore,
	opts: KeylessOptions,
	eph: Ephemeral,
	signature: Buffer,
	body: Json,
): Promise<Json> {
	return {
		certificate: { rawBytes: b64(eph.certDer) },
		tlogEntries: opts.tlog === false ? [] : [await rekorEntry(instance.tlog, body)],
		timestampVerificationData: {
			rfc3161Timestamps: opts.tsa === false ? [] : [await rfc3161(instance.tsa, signature)],
		},
	};
}

/** A keyless DSSE bundle (like `model_signing sign sigstore`), logged as Rekor `dsse` 0.0.1. */
export async function signStatementKeyless(
	statement: Json | Uint8Array,
	opts: KeylessOptions & {
		payloadType?: string;
		/** Sign model_signing v0.2's encoding instead of DSSE (which no keyless verifier accepts). */
		encoding?: "dsse" | "legacy";
	},
): Promise<KeylessResult> {
	const instance = opts.instance ?? (await mockSigstore());
	const eph = await fulcioCertificate(instance, opts.identity, opts.issuer);
	const payloadType = opts.payloadType ?? IN_TOTO;
	const payload = payloadBytes(statement);
	const signed = opts.encoding === "legacy" ? legacyPae(payload) : pae(payloadType, payload);
	const sig = sign("sha256", signed, eph.keyPair.privateKey);
	const env = envelope(payload, payloadType, sig);
	const body: Json = {
		apiVersion: "0.0.1",
		kind: "dsse",
		spec: {
			envelopeHash: {
				algorithm: "sha256",
				value: sha256(JSON.stringify(env)).toString("hex"),
			},
			payloadHash: {
				algorithm: "sha256",
				value: sha256(payload).toString("hex"),
			},
			signatures: [{ signature: b64(sig), verifier: b64(Buffer.from(eph.certPem)) }],
		},
	};
	return {
		trustedRoot: instance.trustedRoot,
		bundle: {
			mediaType: BUNDLE_V03,
			verificationMaterial: await keylessMaterial(instance, opts, eph, sig, body),
			dsseEnvelope: env,
		},
	};
}

/** A keyless `cosign sign-blob --bundle` style bundle, logged as Rekor `hashedrekord` 0.0.1. */
export async function signBlobKeyless(artifact: Uint8Array | string, opts: KeylessOptions): Promise<KeylessResult> {
	const instance = opts.instance ?? (await mockSigstore());
	const eph = await fulcioCertificate(instance, opts.identity, opts.issuer);
	const data = artefactBytes(artifact);
	const digest = sha256(data);
	const sig = sign("sha256", data, eph.keyPair.privateKey);
	const body: Json = {
		apiVersion: "0.0.1",
		kind: "hashedrekord",
		spec: {
			data: { hash: { algorithm: "sha256", value: digest.toString("hex") } },
			signature: {
				content: b64(sig),
				publicKey: { content: b64(Buffer.from(eph.certPem)) },
			},
		},
	};
	return {
		trustedRoot: instance.trustedRoot,
		bundle: {
			mediaType: BUNDLE_V03,
			verificationMaterial: await keylessMaterial(instance, opts, eph, sig, body),
			messageSignature: {
				messageDigest: { algorithm: "SHA2_256", digest: b64(digest) },
				signature: b64(sig),
			},
		},
	};
}

// --- private CA (certificate-chain mode) ------------------------------------------

// Node's WebCrypto; the cast only bridges Node's and the DOM's type declarations.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const CA_ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };

export interface LeafOptions {
	/** @default P-384 (like model_signing's own test certificate) */
	curve?: Curve;
	/** @default true */
	digitalSignature?: boolean;
	/** @default true */
	codeSigning?: boolean;
	/** @default one hour ago */
	notBefore?: Date;
	/** @default in one year */
	notAfter?: Date;
}

export interface Leaf {
	der: Buffer;
	keyPair: KeyPair;
}

export interface PrivateCa {
	rootPem: string;
	intermediatePem: string;
	/** Root and intermediate, what a user passes as `--certificate-chain`. */
	chainPem: string;
	intermediateDer: Buffer;
	issueLeaf(opts?: LeafOptions): Promise<Leaf>;
}

/** A root → intermediate CA pair (ECDSA P-256), valid from an hour ago for a year. */
export async function createPrivateCa(name = "ftguard test"): Promise<PrivateCa> {
	const subtle = webcrypto.subtle;
	const notBefore = new Date(Date.now() - 3_600_000);
	const notAfter = new Date(Date.now() + 365 * 86_400_000);
	const rootKeys = (await subtle.generateKey(CA_ALGORITHM, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
	const intKeys = (await subtle.generateKey(CA_ALGORITHM, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
	const root = await x509.X509CertificateGenerator.createSelfSigned({
		serialNumber: "01",
		name: `CN=${name} root`,
		notBefore,
		notAfter,
		signingAlgorithm: CA_ALGORITHM,
		keys: rootKeys,
		extensions: [
			new x509.BasicConstraintsExtension(true, 1, true),
			new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
			await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey),
		],
	});
	const intermediate = await x509.X509CertificateGenerator.create({
		serialNumber: "02",
		subject: `CN=${name} intermediate`,
		issuer: root.subject,
		notBefore,
		notAfter,
		signingAlgorithm: CA_ALGORITHM,
		publicKey: intKeys.publicKey,
		signingKey: rootKeys.privateKey,
		extensions: [
			new x509.BasicConstraintsExtension(true, 0, true),
			new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
			await x509.SubjectKeyIdentifierExtension.create(intKeys.publicKey),
			await x509.AuthorityKeyIdentifierExtension.create(rootKeys.publicKey),
		],
	});
	let serial = 16;
	const rootPem = root.toString("pem");
	const intermediatePem = intermediate.toString("pem");
	return {
		rootPem,
		intermediatePem,
		chainPem: `${rootPem}\n${intermediatePem}\n`,
		intermediateDer: Buffer.from(intermediate.rawData),
		async issueLeaf(opts: LeafOptions = {}): Promise<Leaf> {
			const keyPair = generateEcKeyPair(opts.curve ?? "P-384");
			const spki = keyPair.publicKey.export({ type: "spki", format: "der" });
			const publicKey = await subtle.importKey("spki", spki, { name: "ECDSA", namedCurve: keyPair.curve }, true, [
				"verify",
			]);
			const usage =
				opts.digitalSignature === false ? x509.KeyUsageFlags.keyEncipherment : x509.KeyUsageFlags.digitalSignature;
			const leaf = await x509.X509CertificateGenerator.create({
				serialNumber: (serial++).toString(16).padStart(2, "0"),
				subject: `CN=${name} signer`,
				issuer: intermediate.subject,
				notBefore: opts.notBefore ?? notBefore,
				notAfter: opts.notAfter ?? notAfter,
				signingAlgorithm: CA_ALGORITHM,
				publicKey,
				signingKey: intKeys.privateKey,
				extensions: [
					new x509.BasicConstraintsExtension(false, undefined, true),
					new x509.KeyUsagesExtension(usage, true),
					...(opts.codeSigning === false
						? []
						: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.codeSigning])]),
					await x509.SubjectKeyIdentifierExtension.create(publicKey),
					await x509.AuthorityKeyIdentifierExtension.create(intKeys.publicKey),
				],
			});
			return { der: Buffer.from(leaf.rawData), keyPair };
		},
	};
}

export interface CertificateResult {
	bundle: Json;
	leaf: Leaf;
	/** The chain to trust (root + intermediate PEM). */
	chainPem: string;
}

/** A model_signing certificate-mode bundle: leaf + intermediate in `x509CertificateChain`. */
export async function signStatementWithCertificate(
	statement: Json | Uint8Array,
	ca: PrivateCa,
	leafOptions: LeafOptions = {},
): Promise<CertificateResult> {
	const leaf = await ca.issueLeaf(leafOptions);
	const payload = payloadBytes(statement);
	const sig = sign(CURVE_HASH[leaf.keyPair.curve], pae(IN_TOTO, payload), leaf.keyPair.privateKey);
	return {
		leaf,
		chainPem: ca.chainPem,
		bundle: {
			mediaType: BUNDLE_V03,
			verificationMaterial: {
				x509CertificateChain: {
					certificates: [{ rawBytes: b64(leaf.der) }, { rawBytes: b64(ca.intermediateDer) }],
				},
				tlogEntries: [],
			},
			dsseEnvelope: envelope(payload, IN_TOTO, sig),
		},
	};
}

// --- model_signing before 1.0 (v0.2) ---------------------------------------------
//
// What model_signing v0.2.0 wrote (src/model_signing/signature/{encoding,key,pki}.py
// at tag v0.2.0): the statement as protobuf's MessageToJson (indent 2), a
// "Digests/v0.1" predicate with every file a subject, a v0.3 bundle whose DSSE
// signature is over its buggy encoding, ECDSA with SHA-256 whatever the curve,
// `keyid: null`, no `tlogEntries`; key mode put the PEM itself in `publicKey`.

/** model_signing v0.2's statement: every file a subject, the predicate a placeholder. */
export function makeLegacyStatement(resources: { name: string; digest: string }[]): Json {
	return {
		_type: "https://in-toto.io/Statement/v1",
		subject: resources.map((r) => ({
			name: r.name,
			digest: { sha256: r.digest },
			annotations: { actual_hash_algorithm: "file-sha256" },
		})),
		predicateType: "https://model_signing/Digests/v0.1",
		predicate: { unused: "Unused, just passed due to API requirements" },
	};
}

const PY_ESCAPES: Record<number, string> = { 9: "\\t", 10: "\\n", 13: "\\r", 92: "\\\\" };

/** Python's `repr(b"...")`, written out from CPython's bytes_repr rules. */
export function pythonRepr(data: Uint8Array): string {
	const hasSingle = data.includes(0x27);
	const quote = hasSingle && !data.includes(0x22) ? '"' : "'";
	let body = "";
	for (const c of data) {
		const ch = String.fromCharCode(c);
		if (ch === quote) body += `\\${quote}`;
		else if (PY_ESCAPES[c] !== undefined) body += PY_ESCAPES[c];
		else if (c >= 0x20 && c < 0x7f) body += ch;
		else body += `\\x${c.toString(16).padStart(2, "0")}`;
	}
	return `b${quote}${body}${quote}`;
}

/**
 * model_signing v0.2's pre-authentication encoding: `"DSSEV1 {len(type)} {type}
 * {len(payload)} {payload}".encode()` with the payload a Python `bytes`, so its
 * repr lands in the signed text.
 */
export function legacyPae(payload: Uint8Array): Buffer {
	return Buffer.from(`DSSEV1 ${IN_TOTO.length} ${IN_TOTO} ${payload.length} ${pythonRepr(payload)}`, "utf8");
}

export interface PreV1Options {
	/** What is signed. @default "legacy" (v0.2's encoding) */
	encoding?: "legacy" | "dsse";
	/** The ECDSA digest. @default "sha256" (what v0.2 used whatever the curve) */
	hash?: "sha256" | "curve";
}

function preV1Signature(payload: Buffer, kp: KeyPair, opts: PreV1Options): Buffer {
	const data = (opts.encoding ?? "legacy") === "legacy" ? legacyPae(payload) : pae(IN_TOTO, payload);
	return sign((opts.hash ?? "sha256") === "sha256" ? "sha256" : CURVE_HASH[kp.curve], data, kp.privateKey);
}

function preV1Envelope(payload: Buffer, sig: Buffer): Json {
	return { payload: b64(payload), payloadType: IN_TOTO, signatures: [{ sig: b64(sig), keyid: null }] };
}

/** A bundle as `model_signing` v0.2 `sign private-key` wrote it. */
export function signStatementV02Keyed(
	statement: Json | Uint8Array,
	opts: PreV1Options & { keyPair?: KeyPair; curve?: Curve } = {},
): KeyedResult {
	const keyPair = opts.keyPair ?? generateEcKeyPair(opts.curve);
	const payload = payloadBytes(statement);
	return {
		keyPair,
		bundle: {
			mediaType: BUNDLE_V03,
			verificationMaterial: {
				// v0.2 named every key P-256, whatever its curve.
				publicKey: { rawBytes: b64(Buffer.from(keyPair.publicKeyPem)), keyDetails: "PKIX_ECDSA_P256_SHA_256" },
			},
			dsseEnvelope: preV1Envelope(payload, preV1Signature(payload, keyPair, opts)),
		},
	};
}

/** A bundle as `model_signing` v0.2 `sign pki` wrote it: leaf + chain in `x509CertificateChain`. */
export async function signStatementV02WithCertificate(
	statement: Json | Uint8Array,
	ca: PrivateCa,
	leafOptions: LeafOptions = {},
	opts: PreV1Options = {},
): Promise<CertificateResult> {
	const leaf = await ca.issueLeaf(leafOptions);
	const payload = payloadBytes(statement);
	return {
		leaf,
		chainPem: ca.chainPem,
		bundle: {
			mediaType: BUNDLE_V03,
			verificationMaterial: {
				x509CertificateChain: {
					certificates: [{ rawBytes: b64(leaf.der) }, { rawBytes: b64(ca.intermediateDer) }],
				},
			},
			dsseEnvelope: preV1Envelope(payload, preV1Signature(payload, leaf.keyPair, opts)),
		},
	};
}

// --- tampering ------------------------------------------------------------------

/** Which bytes of a bundle to change. */
export type Tamper = "signature" | "payload" | "messageDigest";

function flipBase64Byte(value: string, index = 0): string {
	const bytes = Buffer.from(value, "base64");
	const i = Math.min(index, bytes.length - 1);
	bytes[i] = (bytes[i] as number) ^ 0x01;
	return bytes.toString("base64");
}

/**
 * A deep copy of `bundle` with one byte flipped: the DSSE or message signature,
 * the DSSE payload, or the message digest. For the signature, a byte in the
 * middle is changed so that the DER still parses and the signature value itself
 * is wrong.
 */
export function tamper(bundle: Json, what: Tamper): Json {
	const copy = structuredClone(bundle) as {
		dsseEnvelope?: { payload: string; signatures: { sig: string }[] };
		messageSignature?: { signature: string; messageDigest: { digest: string } };
	};
	const dsse = copy.dsseEnvelope;
	const msg = copy.messageSignature;
	if (what === "payload") {
		if (!dsse) throw new Error("no DSSE payload to tamper with");
		// Change a character of the JSON (not its first byte, `{`) so it still parses.
		const payload = Buffer.from(dsse.payload, "base64");
		const i = payload.indexOf("sha256");
		payload[i >= 0 ? i : 1] = "S".charCodeAt(0);
		dsse.payload = payload.toString("base64");
	} else if (what === "signature") {
		const sig = dsse?.signatures[0];
		if (sig) sig.sig = flipBase64Byte(sig.sig, 20);
		else if (msg) msg.signature = flipBase64Byte(msg.signature, 20);
	} else {
		if (!msg) throw new Error("no message digest to tamper with");
		msg.messageDigest.digest = flipBase64Byte(msg.messageDigest.digest, 5);
	}
	return copy as Json;
}
