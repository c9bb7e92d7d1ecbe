/**
 * The model_signing in-toto statement: both predicate versions read into one
 * shape, malformed statements refused with a precise code, and the root digest
 * checked in the reference tool's canonical order.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
	checkRootDigest,
	LEGACY_SUBJECT_NAME,
	MODEL_SIGNING_PREDICATE_LEGACY,
	parseModelSigningStatement,
} from "../../../lib/core/integrity/statement";
import { codeOf } from "../../helpers/errors";
import { type Json, makeModelSigningStatement, referenceRootDigest } from "../../helpers/sign";

const VECTORS = resolve(dirname(fileURLToPath(import.meta.url)), "../../../../shared/vectors/model-signing");

const bytes = (s: unknown) => Buffer.from(typeof s === "string" ? s : JSON.stringify(s));
const D1 = "1".repeat(64);
const D2 = "2".repeat(64);
const D3 = "3".repeat(64);

/** A valid v1.0 statement with `edit` applied to a deep copy. */
function statementWith(edit: (s: Json & { predicate: Json; subject: Json[] }) => void): Buffer {
	const s = structuredClone(
		makeModelSigningStatement({
			modelName: "m",
			resources: [
				{ name: "a.bin", digest: D1 },
				{ name: "b/c.bin", digest: D2 },
			],
		}),
	) as Json & { predicate: Json; subject: Json[] };
	edit(s);
	return bytes(s);
}

describe("when the statement comes from the reference tool", () => {
	it.each([
		"v1.0.0-sigstore",
		"v1.1.0-sigstore",
		"v1.0.0-elliptic-key",
		"v1.1.0-elliptic-key",
		"v1.0.0-certificate",
		"v1.1.0-certificate",
	])("reads %s", (name) => {
		const bundle = JSON.parse(readFileSync(resolve(VECTORS, name, "model.sig"), "utf8"));
		const s = parseModelSigningStatement(Buffer.from(bundle.dsseEnvelope.payload, "base64"));
		expect(s.legacy).toBe(false);
		expect(s.serialization).toMatchObject({
			method: "files",
			hash_type: "sha256",
			allow_symlinks: false,
		});
		expect(s.rootDigest).toMatch(/^[0-9a-f]{64}$/);
		expect(() => checkRootDigest(s)).not.toThrow();
		if (name.startsWith("v1.1.0")) expect(s.serialization.ignore_paths).toContain("ignore-me");
		if (name === "v1.0.0-elliptic-key") {
			// A single-file model: one resource named ".".
			expect(s.subjectName).toBe("signme-1");
			expect(s.resources.map((r) => r.name)).toEqual(["."]);
		} else {
			expect(s.subjectName).toBe(name);
			expect(s.resources.map((r) => r.name)).toEqual(["signme-1", "signme-2"]);
		}
	});
});

describe("when the statement uses the legacy Digests/v0.1 predicate", () => {
	const legacy = (subjects: Json[]) =>
		bytes({
			_type: "https://in-toto.io/Statement/v1",
			subject: subjects,
			predicateType: MODEL_SIGNING_PREDICATE_LEGACY,
			predicate: { unused: "Unused, just passed due to API requirements" },
		});

	it("reads every subject as a whole file and computes the root", () => {
		const s = parseModelSigningStatement(
			legacy([
				{
					name: "z.bin",
					digest: { sha256: D2 },
					annotations: { actual_hash_algorithm: "file-sha256" },
				},
				{ name: "a.bin", digest: { sha256: D1.toUpperCase() } },
			]),
		);
		expect(s).toMatchObject({
			legacy: true,
			subjectName: LEGACY_SUBJECT_NAME,
			predicateType: MODEL_SIGNING_PREDICATE_LEGACY,
		});
		expect(s.serialization).toEqual({
			method: "files",
			hash_type: "sha256",
			allow_symlinks: false,
		});
		expect(s.resources).toEqual([
			{ name: "a.bin", algorithm: "sha256", digest: D1 },
			{ name: "z.bin", algorithm: "sha256", digest: D2 },
		]);
		expect(s.rootDigest).toBe(referenceRootDigest(s.resources));
		expect(() => checkRootDigest(s)).not.toThrow();
	});

	it("refuses a digest made with another algorithm as SUBJECT_INVALID", () => {
		expect(
			codeOf(() =>
				parseModelSigningStatement(
					legacy([
						{
							name: "a",
							digest: { sha256: D1 },
							annotations: { actual_hash_algorithm: "file-sha256-1000000" },
						},
					]),
				),
			),
		).toBe("SUBJECT_INVALID");
	});

	it("refuses a statement without subjects as SUBJECT_INVALID", () => {
		expect(codeOf(() => parseModelSigningStatement(legacy([])))).toBe("SUBJECT_INVALID");
	});
});

describe("when the statement is malformed", () => {
	it.each<[string, Buffer, string]>([
		["not JSON", bytes("{not json"), "PAYLOAD_INVALID"],
		["not UTF-8", Buffer.from([0x7b, 0xff, 0x7d]), "PAYLOAD_INVALID"],
		["a JSON array", bytes([]), "PAYLOAD_INVALID"],
		[
			"an in-toto v0.1 statement",
			statementWith((s) => (s._type = "https://in-toto.io/Statement/v0.1")),
			"PAYLOAD_INVALID",
		],
		[
			"another predicate type",
			statementWith((s) => (s.predicateType = "https://slsa.dev/provenance/v1")),
			"PREDICATE_TYPE_UNSUPPORTED",
		],
		["no subject", statementWith((s) => (s.subject = [])), "SUBJECT_INVALID"],
		["two subjects", statementWith((s) => s.subject.push(s.subject[0] as Json)), "SUBJECT_INVALID"],
		[
			"a subject without sha256",
			statementWith((s) => (s.subject = [{ name: "m", digest: { sha512: D1 } }])),
			"SUBJECT_INVALID",
		],
		[
			"a subject with a short digest",
			statementWith((s) => (s.subject = [{ name: "m", digest: { sha256: "abc" } }])),
			"SUBJECT_INVALID",
		],
		["no predicate", statementWith((s) => delete (s as Json).predicate), "PAYLOAD_INVALID"],
		["no serialization", statementWith((s) => delete s.predicate.serialization), "PAYLOAD_INVALID"],
		[
			"an unknown method",
			statementWith((s) => ((s.predicate.serialization as Json).method = "bytes")),
			"PAYLOAD_INVALID",
		],
		[
			"another hash type",
			statementWith((s) => ((s.predicate.serialization as Json).hash_type = "blake2")),
			"PAYLOAD_INVALID",
		],
		[
			"allow_symlinks as a string",
			statementWith((s) => ((s.predicate.serialization as Json).allow_symlinks = "false")),
			"PAYLOAD_INVALID",
		],
		[
			"shards without shard_size",
			statementWith((s) => ((s.predicate.serialization as Json).method = "shards")),
			"PAYLOAD_INVALID",
		],
		[
			"a resource with sha512",
			statementWith((s) => (((s.predicate.resources as Json[])[0] as Json).algorithm = "sha512")),
			"PAYLOAD_INVALID",
		],
		[
			"a resource digest of 63 digits",
			statementWith((s) => (((s.predicate.resources as Json[])[0] as Json).digest = D1.slice(1))),
			"PAYLOAD_INVALID",
		],
		[
			"a resource without a name",
			statementWith((s) => delete ((s.predicate.resources as Json[])[0] as Json).name),
			"PAYLOAD_INVALID",
		],
		[
			"a resource listed twice",
			statementWith((s) => (s.predicate.resources as Json[]).push((s.predicate.resources as Json[])[0] as Json)),
			"PAYLOAD_INVALID",
		],
		[
			"a resource named ../x",
			statementWith((s) => (((s.predicate.resources as Json[])[0] as Json).name = "../x")),
			"PATH_ESCAPE",
		],
		[
			"a resource named a/../../x",
			statementWith((s) => (((s.predicate.resources as Json[])[0] as Json).name = "a/../../x")),
			"PATH_ESCAPE",
		],
		[
			"an absolute resource",
			statementWith((s) => (((s.predicate.resources as Json[])[0] as Json).name = "/etc/passwd")),
			"PATH_ESCAPE",
		],
		[
			"a resource named a//b",
			statementWith((s) => (((s.predicate.resources as Json[])[0] as Json).name = "a//b")),
			"PAYLOAD_INVALID",
		],
		[
			"a resource named ./a",
			statementWith((s) => (((s.predicate.resources as Json[])[0] as Json).name = "./a")),
			"PAYLOAD_INVALID",
		],
	])("refuses %s as %s", (_, payload, code) => {
		expect(codeOf(() => parseModelSigningStatement(payload))).toBe(code);
	});
});

describe("when the model is serialized in shards", () => {
	const sharded = (names: string[], shardSize = 100) =>
		bytes(
			makeModelSigningStatement({
				modelName: "m",
				method: "shards",
				serialization: { shard_size: shardSize },
				resources: names.map((name, i) => ({
					name,
					digest: (i % 10).toString().repeat(64),
				})),
			}),
		);

	it("orders shards by path, then start offset as a number", () => {
		const s = parseModelSigningStatement(
			sharded(["b:0:100", "a:100:200", "a:0:100", "a/x:0:5", "a:200:250", "a-b:0:1"]),
		);
		expect(s.resources.map((r) => r.name)).toEqual([
			"a:0:100",
			"a:100:200",
			"a:200:250",
			"a/x:0:5",
			"a-b:0:1",
			"b:0:100",
		]);
		expect(s.serialization.shard_size).toBe(100);
		expect(() => checkRootDigest(s)).not.toThrow();
	});

	it.each([
		["a name without offsets", "a.bin"],
		["a negative offset", "a.bin:-1:5"],
		["an end before the start", "a.bin:10:5"],
		["a shard larger than shard_size", "a.bin:0:101"],
	])("refuses %s as PAYLOAD_INVALID", (_, name) => {
		expect(codeOf(() => parseModelSigningStatement(sharded([name])))).toBe("PAYLOAD_INVALID");
	});

	/** The same statement with each resource's algorithm set as model_signing's shard hasher names it. */
	const withAlgorithm = (payload: Buffer, algorithm: string, method?: string) => {
		const s = JSON.parse(payload.toString()) as { predicate: { resources: Json[]; serialization: Json } };
		for (const r of s.predicate.resources) r.algorithm = algorithm;
		if (method !== undefined) s.predicate.serialization.method = method;
		return bytes(s);
	};

	it('reads model_signing\'s shard digests, "sha256-sharded-<shard_size>", as SHA-256 of the shard', () => {
		const s = parseModelSigningStatement(withAlgorithm(sharded(["a:0:100", "a:100:150"]), "sha256-sharded-100"));
		expect(s.resources.map((r) => r.algorithm)).toEqual(["sha256", "sha256"]);
		expect(() => checkRootDigest(s)).not.toThrow();
	});

	it.each([
		["another shard size", "sha256-sharded-99", undefined],
		["a sharded digest in a files manifest", "sha256-sharded-100", "files"],
		["another hash", "sha512-sharded-100", undefined],
		["a leading zero", "sha256-sharded-0100", undefined],
	])("refuses %s as PAYLOAD_INVALID", (_, algorithm, method) => {
		const payload = withAlgorithm(sharded(["a:0:100"]), algorithm, method);
		expect(codeOf(() => parseModelSigningStatement(payload))).toBe("PAYLOAD_INVALID");
	});

	it.each([0, -5, 1.5])("refuses shard_size %s as PAYLOAD_INVALID", (size) => {
		expect(codeOf(() => parseModelSigningStatement(sharded(["a:0:1"], size)))).toBe("PAYLOAD_INVALID");
	});
});

describe("root digest", () => {
	it("fails ROOT_DIGEST_MISMATCH when the subject is not the digest of the resources", () => {
		const s = parseModelSigningStatement(
			bytes(
				makeModelSigningStatement({
					modelName: "m",
					resources: [{ name: "a", digest: D1 }],
					root: D3,
				}),
			),
		);
		expect(codeOf(() => checkRootDigest(s))).toBe("ROOT_DIGEST_MISMATCH");
	});

	it("uses the canonical order, not the listed one: a root over the listed order fails", () => {
		const listed = [
			{ name: "b", algorithm: "sha256", digest: D2 },
			{ name: "a", algorithm: "sha256", digest: D1 },
		];
		// What the reference verifier would accept: the digests hashed as listed.
		const listedRoot = createHash("sha256").update(Buffer.from(D2, "hex")).update(Buffer.from(D1, "hex")).digest("hex");
		const payload = statementWith((s) => {
			s.predicate.resources = listed;
			s.subject = [{ name: "m", digest: { sha256: listedRoot } }];
		});
		expect(codeOf(() => checkRootDigest(parseModelSigningStatement(payload)))).toBe("ROOT_DIGEST_MISMATCH");
	});

	it("components sort before longer names sharing a prefix (a/b < a-b), as PurePosixPath does", () => {
		const s = parseModelSigningStatement(
			bytes(
				makeModelSigningStatement({
					modelName: "m",
					resources: [
						{ name: "a-b", digest: D1 },
						{ name: "a/b", digest: D2 },
					],
				}),
			),
		);
		expect(s.resources.map((r) => r.name)).toEqual(["a/b", "a-b"]);
		expect(() => checkRootDigest(s)).not.toThrow();
	});

	it("agrees with the reference order for any set of names, however they are listed", () => {
		const segment = fc
			.stringMatching(/^[a-zA-Z0-9._\-\u00e9\u{1F600}\uFF21]{1,6}$/u)
			.filter((x) => x !== "." && x !== "..");
		const name = fc.array(segment, { minLength: 1, maxLength: 3 }).map((parts) => parts.join("/"));
		const digest = fc.stringMatching(/^[0-9a-f]{64}$/);
		fc.assert(
			fc.property(
				fc.uniqueArray(fc.tuple(name, digest), {
					selector: (t) => t[0],
					maxLength: 12,
				}),
				(entries) => {
					const resources = entries.map(([n, d]) => ({ name: n, digest: d }));
					const statement = makeModelSigningStatement({
						modelName: "m",
						resources,
					});
					// List in reverse: parsing must restore the canonical order.
					const pred = statement.predicate as { resources: Json[] };
					pred.resources.reverse();
					const s = parseModelSigningStatement(bytes(statement));
					expect(s.rootDigest).toBe(referenceRootDigest(resources));
					expect(() => checkRootDigest(s)).not.toThrow();
				},
			),
			{ numRuns: 200 },
		);
	});
});
