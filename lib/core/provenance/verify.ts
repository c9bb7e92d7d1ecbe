/**
 * Checking a provenance record, in the order that trusts least: the bundle's signature under the given public key
 * (integrity/sigstore-dsse.ts, before the payload is even parsed), then the statement's shape and predicate type,
 * then — the caller having hashed the artefact the way the predicate says — its root digest against the subject.
 * Whether the verdict it states lets the artefact through is the caller's decision (the CLI: PROMOTABLE only).
 */
import { z } from "zod";
import { FtguardError } from "../errors";
import { parseBundle } from "../integrity/bundle";
import { verifyDsse } from "../integrity/sigstore-dsse";
import { IN_TOTO_STATEMENT_V1 } from "../integrity/statement";
import type { SignerInfo } from "../integrity/trust-policy";
import type { HashPlan } from "../pipeline/manifest";
import { zodMessage } from "../schema";
import { PROVENANCE_PREDICATE_TYPE, type ProvenancePredicate, type ProvenanceStatement } from "./statement";

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, "64 lower-case hex characters");

const hashPlanSchema = z.union([
	z.object({ method: z.literal("files") }).strict(),
	z
		.object({
			method: z.literal("shards"),
			shardSize: z.number().int().positive(),
			shardEmptyFiles: z.boolean(),
		})
		.strict(),
]);

/**
 * What a verifier relies on is checked; the rest of the predicate (docs/provenance.md) passes through as signed.
 * Other readers may add fields, so unknown ones are kept.
 */
const statementSchema = z.object({
	_type: z.literal(IN_TOTO_STATEMENT_V1),
	subject: z.array(z.object({ name: z.string().min(1), digest: z.object({ sha256: hex64 }).loose() }).loose()),
	predicateType: z.string(),
	predicate: z
		.object({
			scanId: z.string().min(1),
			recordedAt: z.string().min(1),
			verdict: z
				.object({
					status: z.enum(["PROMOTABLE", "QUARANTINED"]),
					reasons: z.array(z.string()),
					notes: z.array(z.string()).optional(),
				})
				.loose(),
			checkpoint: z
				.object({
					uri: z.string().min(1),
					bucket: z.string().min(1),
					artefact: z.string().min(1),
					marker: z.object({ key: z.string().min(1) }).loose(),
					rootDigest: z.string().regex(/^sha256:[0-9a-f]{64}$/),
					serialization: hashPlanSchema.optional(),
					objects: z.array(z.object({ key: z.string().min(1) }).loose()),
				})
				.loose(),
			checks: z.object({}).loose(),
			policy: z
				.object({ digest: z.string().regex(/^sha256:[0-9a-f]{64}$/) })
				.loose()
				.optional(),
		})
		.loose(),
});

export interface VerifiedProvenance {
	statement: ProvenanceStatement;
	/** the subject's digest (lower-case hex): what the artefact's root digest must be */
	root: string;
	signer: SignerInfo;
}

/** The statement in a bundle, parsed and shape-checked but NOT verified: for `ftguard provenance show`. */
export function readProvenanceUnverified(bundleBytes: Uint8Array, source: string): ProvenanceStatement {
	const bundle = parseBundle(bundleBytes, source);
	if (bundle.content.$case !== "dsseEnvelope") {
		throw new FtguardError("BUNDLE_MALFORMED", `${source}: the bundle holds no DSSE envelope`);
	}
	return parseProvenancePayload(Buffer.from(bundle.content.dsseEnvelope.payload)).statement;
}

/**
 * Verifies the bundle's signature with `publicKeyPem` (EC P-256/384/521), then parses the signed statement.
 * @throws FtguardError BUNDLE_MALFORMED / BUNDLE_MEDIA_TYPE / KEY_INVALID (could not check: exit 2);
 *   SIGNATURE_INVALID, PAYLOAD_INVALID, PREDICATE_TYPE_UNSUPPORTED, SUBJECT_INVALID (a finding: exit 1)
 */
export function verifyProvenanceBundle(
	bundleBytes: Uint8Array,
	publicKeyPem: string,
	source: string,
): VerifiedProvenance {
	const bundle = parseBundle(bundleBytes, source);
	// not a model_signing signature: no retry of model_signing v0.2's encoding
	const { payload, signer } = verifyDsse(bundle, { kind: "public-key", pem: publicKeyPem }, {}, false);
	return { ...parseProvenancePayload(payload), signer };
}

function parseProvenancePayload(payload: Buffer): { statement: ProvenanceStatement; root: string } {
	let json: unknown;
	try {
		json = JSON.parse(payload.toString("utf8"));
	} catch (e) {
		throw new FtguardError("PAYLOAD_INVALID", "the signed payload is not JSON", { cause: e });
	}
	const r = statementSchema.safeParse(json);
	if (!r.success) {
		// the predicate type first: a well-formed statement of another kind deserves that name, not a field error
		const type = (json as { predicateType?: unknown } | null)?.predicateType;
		if (typeof type === "string" && type !== PROVENANCE_PREDICATE_TYPE) throw unsupported(type);
		throw new FtguardError("PAYLOAD_INVALID", `the signed statement is malformed: ${zodMessage(r.error)}`);
	}
	if (r.data.predicateType !== PROVENANCE_PREDICATE_TYPE) throw unsupported(r.data.predicateType);
	const subjects = r.data.subject;
	if (subjects.length !== 1) {
		throw new FtguardError("SUBJECT_INVALID", `the statement names ${subjects.length} subjects, expected one artefact`);
	}
	const root = (subjects[0] as { digest: { sha256: string } }).digest.sha256;
	if (r.data.predicate.checkpoint.rootDigest !== `sha256:${root}`) {
		throw new FtguardError("SUBJECT_INVALID", "the predicate's root digest is not the subject's digest");
	}
	return { statement: r.data as unknown as ProvenanceStatement, root };
}

function unsupported(type: string): FtguardError {
	return new FtguardError(
		"PREDICATE_TYPE_UNSUPPORTED",
		`predicate type ${JSON.stringify(type)} is not ${PROVENANCE_PREDICATE_TYPE}`,
	);
}

/**
 * The hashing the verifier must repeat, as the signed predicate records it. Never from the marker beside the bytes:
 * that file is not what the record's signature covers, and a forged one could choose a hashing that skips files.
 * @throws FtguardError PAYLOAD_INVALID when the record does not say
 */
export function recordedHashPlan(predicate: ProvenancePredicate): HashPlan {
	const plan = predicate.checkpoint.serialization as HashPlan | undefined;
	if (plan === undefined || (plan.method !== "files" && plan.method !== "shards"))
		throw new FtguardError(
			"PAYLOAD_INVALID",
			"the record does not say how the artefact was hashed (checkpoint.serialization)",
		);
	return plan;
}

/**
 * The files the record's verdict covers, by name relative to the artefact: every pinned object but the commit
 * marker. The root digest orders digests by name but does not hash the names; comparing them binds each name to its
 * bytes (a renamed file — config.json to evil.py — keeps the root digest).
 */
export function recordedNames(predicate: ProvenancePredicate): string[] {
	const { artefact, marker, objects } = predicate.checkpoint;
	if (!artefact.endsWith("/")) return ["."];
	return objects
		.map((o) => o.key)
		.filter((k) => k !== marker.key && k.startsWith(artefact))
		.map((k) => k.slice(artefact.length))
		.sort();
}

/** The computed artefact is of the record's kind and has exactly the record's file names. @throws MANIFEST_MISMATCH */
export function checkArtefactShape(
	predicate: ProvenancePredicate,
	computed: { kind: "directory" | "file"; names: readonly string[] },
	where: string,
): void {
	const kind = predicate.checkpoint.artefact.endsWith("/") ? "directory" : "file";
	if (computed.kind !== kind)
		throw new FtguardError("MANIFEST_MISMATCH", `${where} is a ${computed.kind}; the record is of a ${kind}`);
	const expected = recordedNames(predicate);
	const actual = [...computed.names].sort();
	const missing = expected.filter((n) => !actual.includes(n));
	const extra = actual.filter((n) => !expected.includes(n));
	if (missing.length > 0 || extra.length > 0) {
		const list = (xs: string[]) =>
			xs
				.slice(0, 3)
				.map((x) => JSON.stringify(x))
				.join(", ") + (xs.length > 3 ? ", …" : "");
		throw new FtguardError(
			"MANIFEST_MISMATCH",
			`${where} does not hold the files the record names${extra.length ? `: not in the record ${list(extra)}` : ""}${missing.length ? `; missing ${list(missing)}` : ""}`,
			{ details: { missing, extra } },
		);
	}
}

/** The artefact's computed root digest (hex) must be the subject's. @throws FtguardError ROOT_DIGEST_MISMATCH */
export function checkArtefactRoot(verified: VerifiedProvenance, computedRoot: string, where: string): void {
	if (computedRoot !== verified.root) {
		throw new FtguardError(
			"ROOT_DIGEST_MISMATCH",
			`${where} is not the artefact the record describes: root digest sha256:${computedRoot}, the record says sha256:${verified.root}`,
			{ details: { expected: `sha256:${verified.root}`, actual: `sha256:${computedRoot}` } },
		);
	}
}
