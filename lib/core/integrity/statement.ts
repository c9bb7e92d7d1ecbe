/**
 * The in-toto statement inside an OpenSSF Model Signing (OMS) signature.
 *
 * Two predicate types are read into one shape:
 * - `https://model_signing/signature/v1.0`: one subject (the model name and the
 *   root digest), the per-file or per-shard digests in `predicate.resources`, and
 *   the serialization parameters in `predicate.serialization`;
 * - `https://model_signing/Digests/v0.1` (legacy, produced before model_signing
 *   1.0 and still accepted by the reference verifier): every file is a subject,
 *   there is no root digest and no serialization section.
 *
 * Only the payload's structure is checked here. Whether the payload is
 * authentic is `verifyDsseBundle`'s job and must happen first.
 *
 * `modelSigningStatement` is the other direction (what `ftguard sign` signs):
 * the v1.0 statement of a manifest, fields in the order model_signing builds them.
 */
import { z } from "zod";
import { FtguardError } from "../errors";
import { canonicalOrder, parseShardName, rootDigest } from "./manifest";
import type { Manifest, ResourceDescriptor, Serialization, SerializationMethod } from "./types";

export const IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json";
export const IN_TOTO_STATEMENT_V1 = "https://in-toto.io/Statement/v1";
export const MODEL_SIGNING_PREDICATE_V1 = "https://model_signing/signature/v1.0";
export const MODEL_SIGNING_PREDICATE_LEGACY = "https://model_signing/Digests/v0.1";

/**
 * Subject name the reference tool gives legacy statements, which carry none; kept
 * identical so reports from both tools agree.
 */
export const LEGACY_SUBJECT_NAME = "compat-undefined-not-present";

/**
 * `predicate.serialization` as signed. Fields other than `method` and
 * `hash_type` are optional because model_signing 1.0 wrote no `ignore_paths`,
 * and legacy statements have no section at all.
 */
export type SignedSerialization = Pick<Serialization, "method" | "hash_type"> &
	Partial<Pick<Serialization, "allow_symlinks" | "ignore_paths" | "shard_size">>;

/** A model_signing statement, read into one shape whatever its predicate version. */
export interface ModelSigningStatement {
	predicateType: string;
	/** True for `Digests/v0.1`: `rootDigest` was computed here, not signed. */
	legacy: boolean;
	/** The model name as signed (informational; a directory may be renamed). */
	subjectName: string;
	/** Lower-case hex SHA-256: the signed subject digest (v1.0), or computed (legacy). */
	rootDigest: string;
	/** In canonical (OMS) order, digests lower-case. */
	resources: ResourceDescriptor[];
	serialization: SignedSerialization;
}

const HEX64 = /^[0-9a-fA-F]{64}$/;

const baseStatement = z.object({
	_type: z.string(),
	subject: z.array(z.unknown()),
	predicateType: z.string(),
	predicate: z.unknown().optional(),
});

const v1Subject = z.object({
	name: z.string().min(1),
	digest: z.object({ sha256: z.string().regex(HEX64) }),
});

const v1Predicate = z
	.object({
		serialization: z
			.object({
				method: z.enum(["files", "shards"]),
				hash_type: z.literal("sha256"),
				allow_symlinks: z.boolean().optional(),
				ignore_paths: z.array(z.string()).optional(),
				shard_size: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
			})
			.refine((s) => s.method !== "shards" || s.shard_size !== undefined, {
				message: "shard_size is required for method shards",
				path: ["shard_size"],
			}),
		resources: z.array(
			z.object({
				name: z.string().min(1),
				// model_signing names a shard's digest after its hasher: "sha256-sharded-<shard_size>" (_hashing/io.py
				// ShardedFileHasher.digest_name); a whole file's is "sha256". Both are SHA-256 of the bytes named.
				algorithm: z.string().regex(/^sha256(-sharded-[1-9][0-9]*)?$/, 'expected "sha256" or "sha256-sharded-<N>"'),
				digest: z.string().regex(HEX64, "expected 64 hex digits"),
			}),
		),
	})
	.refine(
		(p) =>
			p.resources.every(
				(r) =>
					r.algorithm === "sha256" ||
					(p.serialization.method === "shards" && r.algorithm === `sha256-sharded-${p.serialization.shard_size}`),
			),
		{ message: "a sha256-sharded-<N> digest needs method shards with shard_size N", path: ["resources"] },
	);

const legacySubject = z.object({
	name: z.string().min(1),
	digest: z.object({
		sha256: z.string().regex(HEX64, "expected 64 hex digits"),
	}),
	annotations: z
		.object({
			// The reference tool wrote "file-sha256"; anything else would be a digest we
			// cannot recompute, so it is refused rather than compared and failed.
			actual_hash_algorithm: z.enum(["file-sha256", "sha256"]).optional(),
		})
		.optional(),
});

function zodMessage(error: z.ZodError): string {
	const issue = error.issues[0];
	if (issue === undefined) return "invalid";
	const path = issue.path.length > 0 ? issue.path.join(".") : "(root)";
	return `${path}: ${issue.message}`;
}

/**
 * Parses and validates a model_signing in-toto statement (the DSSE payload).
 *
 * @throws FtguardError PAYLOAD_INVALID (not UTF-8 JSON, not an in-toto v1
 *   statement, malformed predicate, duplicate resources), PREDICATE_TYPE_UNSUPPORTED,
 *   SUBJECT_INVALID (v1.0: not exactly one subject with a sha256 digest),
 *   PATH_ESCAPE (a resource named with `..` or an absolute path).
 */
export function parseModelSigningStatement(payload: Uint8Array): ModelSigningStatement {
	let json: unknown;
	try {
		json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
	} catch (e) {
		throw new FtguardError("PAYLOAD_INVALID", "signed payload is not UTF-8 JSON", { cause: e });
	}
	const base = baseStatement.safeParse(json);
	if (!base.success) {
		throw new FtguardError("PAYLOAD_INVALID", `signed payload is not an in-toto statement: ${zodMessage(base.error)}`);
	}
	const statement = base.data;
	if (statement._type !== IN_TOTO_STATEMENT_V1) {
		throw new FtguardError(
			"PAYLOAD_INVALID",
			`expected an in-toto ${IN_TOTO_STATEMENT_V1}, got ${JSON.stringify(statement._type)}`,
		);
	}
	switch (statement.predicateType) {
		case MODEL_SIGNING_PREDICATE_V1:
			return parseV1(statement.subject, statement.predicate);
		case MODEL_SIGNING_PREDICATE_LEGACY:
			return parseLegacy(statement.subject);
		default:
			throw new FtguardError(
				"PREDICATE_TYPE_UNSUPPORTED",
				`unsupported predicate type ${JSON.stringify(statement.predicateType)}`,
				{
					details: { predicateType: statement.predicateType },
				},
			);
	}
}

function parseV1(subjects: unknown[], predicate: unknown): ModelSigningStatement {
	if (subjects.length !== 1) {
		throw new FtguardError("SUBJECT_INVALID", `expected exactly one subject, got ${subjects.length}`);
	}
	const subject = v1Subject.safeParse(subjects[0]);
	if (!subject.success) {
		throw new FtguardError("SUBJECT_INVALID", `subject is not {name, digest: {sha256}}: ${zodMessage(subject.error)}`);
	}
	const parsed = v1Predicate.safeParse(predicate);
	if (!parsed.success) {
		throw new FtguardError(
			"PAYLOAD_INVALID",
			`model_signing predicate is malformed: predicate.${zodMessage(parsed.error)}`,
		);
	}
	const { serialization, resources } = parsed.data;
	const checked = checkResources(
		resources.map((r) => ({
			name: r.name,
			// the shard's bytes hashed with SHA-256 either way (the refinement above tied N to shard_size)
			algorithm: "sha256",
			digest: r.digest.toLowerCase(),
		})),
		serialization.method,
		serialization.shard_size,
	);
	return {
		predicateType: MODEL_SIGNING_PREDICATE_V1,
		legacy: false,
		subjectName: subject.data.name,
		rootDigest: subject.data.digest.sha256.toLowerCase(),
		resources: checked,
		serialization: {
			method: serialization.method,
			hash_type: serialization.hash_type,
			...(serialization.allow_symlinks !== undefined ? { allow_symlinks: serialization.allow_symlinks } : {}),
			...(serialization.ignore_paths !== undefined ? { ignore_paths: serialization.ignore_paths } : {}),
			...(serialization.shard_size !== undefined ? { shard_size: serialization.shard_size } : {}),
		},
	};
}

function parseLegacy(subjects: unknown[]): ModelSigningStatement {
	if (subjects.length === 0) {
		throw new FtguardError("SUBJECT_INVALID", "legacy statement has no subjects");
	}
	const resources: ResourceDescriptor[] = subjects.map((s, i) => {
		const parsed = legacySubject.safeParse(s);
		if (!parsed.success) {
			throw new FtguardError("SUBJECT_INVALID", `legacy subject ${i} is malformed: ${zodMessage(parsed.error)}`);
		}
		return {
			name: parsed.data.name,
			algorithm: "sha256",
			digest: parsed.data.digest.sha256.toLowerCase(),
		};
	});
	// The reference tool reads every legacy subject as a whole file hashed with
	// SHA-256, symlinks not followed; that is the serialization re-hashing must use.
	const serialization: SignedSerialization = {
		method: "files",
		hash_type: "sha256",
		allow_symlinks: false,
	};
	const checked = checkResources(resources, "files", undefined);
	return {
		predicateType: MODEL_SIGNING_PREDICATE_LEGACY,
		legacy: true,
		subjectName: LEGACY_SUBJECT_NAME,
		rootDigest: rootDigest(checked, "files"),
		resources: checked,
		serialization,
	};
}

/**
 * Refuses names that could make a verifier look outside the model directory or
 * that two spellings could share (`a//b`, `./a`), so that names compare as strings.
 * `.` alone is the single-file model's one resource.
 */
function checkPath(path: string, name: string): void {
	if (path === ".") return;
	const segments = path.split("/");
	if (path.startsWith("/") || segments.includes("..")) {
		throw new FtguardError("PATH_ESCAPE", `resource ${JSON.stringify(name)} points outside the model`, {
			details: { resource: name },
		});
	}
	if (path.includes("\0") || segments.some((s) => s === "" || s === ".")) {
		throw new FtguardError("PAYLOAD_INVALID", `resource ${JSON.stringify(name)} is not a canonical relative path`, {
			details: { resource: name },
		});
	}
}

function checkResources(
	resources: ResourceDescriptor[],
	method: SerializationMethod,
	shardSize: number | undefined,
): ResourceDescriptor[] {
	const seen = new Set<string>();
	for (const r of resources) {
		if (seen.has(r.name)) {
			// The reference tool keeps the last of two equal names (a dict); which
			// digest a duplicate "means" is ambiguous, so it is refused outright.
			throw new FtguardError("PAYLOAD_INVALID", `resource ${JSON.stringify(r.name)} is listed twice`, {
				details: { resource: r.name },
			});
		}
		seen.add(r.name);
		if (method === "shards") {
			const shard = parseShardName(r.name);
			if (shard === undefined || shard.start > shard.end) {
				throw new FtguardError(
					"PAYLOAD_INVALID",
					`shard resource ${JSON.stringify(r.name)} is not path:start:end with start <= end`,
					{
						details: { resource: r.name },
					},
				);
			}
			if (shardSize !== undefined && shard.end - shard.start > shardSize) {
				throw new FtguardError(
					"PAYLOAD_INVALID",
					`shard ${JSON.stringify(r.name)} is larger than shard_size ${shardSize}`,
				);
			}
			checkPath(shard.path, r.name);
		} else {
			checkPath(r.name, r.name);
		}
	}
	return canonicalOrder(resources, method);
}

/**
 * Checks that the signed subject digest is the digest of the signed resources, so
 * that the one value a report shows (the root) stands for the resources compared.
 * Legacy statements pass trivially: their root was computed, not signed.
 *
 * @throws FtguardError ROOT_DIGEST_MISMATCH
 */
export function checkRootDigest(statement: ModelSigningStatement): void {
	const actual = rootDigest(statement.resources, statement.serialization.method);
	if (actual !== statement.rootDigest) {
		throw new FtguardError(
			"ROOT_DIGEST_MISMATCH",
			"the signed subject digest is not the digest of the signed resources",
			{ details: { expected: statement.rootDigest, actual } },
		);
	}
}

/** The v1.0 statement as signed: plain JSON, keys in the order {@link modelSigningStatement} inserts them. */
export interface ModelSigningStatementJson {
	_type: typeof IN_TOTO_STATEMENT_V1;
	subject: [{ name: string; digest: { sha256: string } }];
	predicateType: typeof MODEL_SIGNING_PREDICATE_V1;
	predicate: { serialization: SignedSerialization; resources: ResourceDescriptor[] };
}

/**
 * The in-toto statement model_signing 1.1 signs for `manifest` (`signing.Payload`): one subject (the model
 * name, the root digest), the resources in canonical order, the serialization section with the ignore paths
 * (sorted here; model_signing lists a set, in no fixed order).
 *
 * Key order follows model_signing's source (`Payload.__init__`, `serialization_parameters`). Its own bytes
 * do not: the predicate is a protobuf `Struct`, whose map order changes from one Python process to the next,
 * so two model_signing runs over the same files may differ in key order. Verifiers parse the JSON and compare
 * values, so any order verifies.
 *
 * Method "shards" is refused: model_signing names shard digests `sha256-sharded-<size>`, which ftguard's
 * verifier (and, with its float shard_size, model_signing's own) does not yet read back.
 */
export function modelSigningStatement(manifest: Manifest): ModelSigningStatementJson {
	const s = manifest.serialization;
	if (s.method !== "files") {
		throw new FtguardError("USAGE", `signing with serialization method "${s.method}" is not supported (use "files")`);
	}
	const serialization: SignedSerialization = {
		method: s.method,
		hash_type: s.hash_type,
		allow_symlinks: s.allow_symlinks,
		// model_signing leaves the key out when nothing is ignored
		...(s.ignore_paths.length > 0 ? { ignore_paths: [...s.ignore_paths] } : {}),
	};
	return {
		_type: IN_TOTO_STATEMENT_V1,
		subject: [{ name: manifest.modelName, digest: { sha256: manifest.root } }],
		predicateType: MODEL_SIGNING_PREDICATE_V1,
		predicate: {
			serialization,
			resources: canonicalOrder(manifest.resources, s.method).map((r) => ({
				name: r.name,
				algorithm: r.algorithm,
				digest: r.digest,
			})),
		},
	};
}
