/**
 * The manifest state hashes the way the marker's signature says it was made
 * (files, or shards of a given size); the signature state refuses a manifest
 * hashed any other way than the verified statement says.
 */
import { describe, expect, it } from "vitest";
import {
	buildPipelineManifest,
	contentObjects,
	hashPlanOf,
	MAX_SHARDS,
	parseManifestJson,
	shardsOf,
} from "../../../lib/core/pipeline/manifest";
import { verifyManifestSignature } from "../../../lib/core/pipeline/signature";
import { generateEcKeyPair, makeModelSigningStatement, signStatementKeyed } from "../../helpers/sign";

const key = generateEcKeyPair("P-256");
const digest = (c: string) => c.repeat(64);
const scan = { scanId: "ftg-1", bucket: "b", artefact: "m/" };

function bundle(resources: { name: string; digest: string }[], method: "files" | "shards", shardSize?: number) {
	const statement = makeModelSigningStatement({
		modelName: "m",
		resources: resources.map((r) => ({ ...r, algorithm: "sha256" })),
		method,
		...(shardSize !== undefined ? { serialization: { shard_size: shardSize } } : {}),
	});
	return Buffer.from(JSON.stringify(signStatementKeyed(statement, { keyPair: key }).bundle));
}

describe("hashPlanOf", () => {
	it("reads the method and shard size from the marker's statement", () => {
		expect(hashPlanOf(bundle([{ name: "w.bin", digest: digest("a") }], "files"))).toEqual({ method: "files" });
		expect(hashPlanOf(bundle([{ name: "w.bin:0:10", digest: digest("a") }], "shards", 10))).toEqual({
			method: "shards",
			shardSize: 10,
			shardEmptyFiles: false,
		});
		// an empty-file shard in the signed resources: the signer recorded empty files
		expect(
			hashPlanOf(
				bundle(
					[
						{ name: "e.txt:0:0", digest: digest("b") },
						{ name: "w.bin:0:10", digest: digest("a") },
					],
					"shards",
					10,
				),
			),
		).toMatchObject({ method: "shards", shardEmptyFiles: true });
	});

	it("falls back to files for anything it cannot read (the signature state reports why)", () => {
		for (const b of [undefined, Buffer.from("not json"), Buffer.from("{}"), Buffer.from('{"mediaType":1}')]) {
			expect(hashPlanOf(b)).toEqual({ method: "files" });
		}
	});
});

describe("a manifest hashed one way, a signature made another", () => {
	const shardDigests = [
		{ name: "w.bin:0:10", key: "m/w.bin", size: 15, range: [0, 10] as [number, number], digest: digest("a") },
		{ name: "w.bin:10:15", key: "m/w.bin", size: 15, range: [10, 15] as [number, number], digest: digest("b") },
	];
	const sharded = buildPipelineManifest(scan, shardDigests, {
		method: "shards",
		shardSize: 10,
		shardEmptyFiles: false,
	});
	const policies = [{ kind: "public-key" as const, pem: key.publicKeyPem }];

	it("writes the plan into the manifest, counts each object's bytes once, and reads it back", () => {
		expect(sharded.serialization).toMatchObject({ method: "shards", shard_size: 10 });
		expect(sharded.bytes).toBe(15);
		const back = parseManifestJson(Buffer.from(JSON.stringify(sharded)), sharded);
		expect(back.serialization).toEqual({ method: "shards", shard_size: 10 });
		expect(back.resources.map((r) => r.name)).toEqual(["w.bin:0:10", "w.bin:10:15"]);
		const broken = { ...sharded, serialization: { method: "shards" } };
		expect(() => parseManifestJson(Buffer.from(JSON.stringify(broken)), sharded)).toThrow(/shard_size/);
	});

	it("verifies when the signature says the same method and shard size", async () => {
		const b = bundle(sharded.resources, "shards", 10);
		const back = parseManifestJson(Buffer.from(JSON.stringify(sharded)), sharded);
		expect(await verifyManifestSignature(b, "m/model.sig", policies, back)).toMatchObject({ verified: true });
	});

	it("refuses another shard size or method as MANIFEST_MISMATCH", async () => {
		const back = parseManifestJson(Buffer.from(JSON.stringify(sharded)), sharded);
		const other = bundle(sharded.resources, "shards", 11);
		expect(await verifyManifestSignature(other, "m/model.sig", policies, back)).toMatchObject({
			verified: false,
			code: "MANIFEST_MISMATCH",
			reason: "signed as shards of 11 bytes, but the artefact was hashed as shards of 10 bytes",
		});
		const files = bundle([{ name: "w.bin", digest: digest("c") }], "files");
		expect(await verifyManifestSignature(files, "m/model.sig", policies, back)).toMatchObject({
			verified: false,
			code: "MANIFEST_MISMATCH",
		});
	});
});

describe("what the manifest state hashes", () => {
	const state = {
		artefact: "m/",
		marker: { key: "m/model.sig" },
		objects: [
			{ key: "m/model.sig", size: 900 },
			{ key: "m/w.bin", size: 25 },
			{ key: "m/empty", size: 0 },
		],
	};
	it("names every object but the marker by its path in the artefact", () => {
		expect(contentObjects(state).map((o) => o.name)).toEqual(["w.bin", "empty"]);
		expect(contentObjects({ ...state, artefact: "w.onnx", objects: [{ key: "w.onnx", size: 1 }] })).toEqual([
			{ key: "w.onnx", size: 1, name: "." },
		]);
		expect(() => contentObjects({ ...state, objects: [{ key: "elsewhere/x", size: 1 }] })).toThrow(/not part of m\//);
	});
	it("cuts shards as the signer did, and refuses a shard size that would mean too many GETs", () => {
		const plan = { method: "shards" as const, shardSize: 10, shardEmptyFiles: false };
		const cut = shardsOf(contentObjects(state), plan, "m/").map(({ o, start, end }) => `${o.name}:${start}:${end}`);
		expect(cut).toEqual(["w.bin:0:10", "w.bin:10:20", "w.bin:20:25"]);
		expect(shardsOf(contentObjects(state), { ...plan, shardEmptyFiles: true }, "m/")).toHaveLength(4);
		const huge = [{ key: "m/big", name: "big", size: MAX_SHARDS + 1 }];
		expect(() => shardsOf(huge, { ...plan, shardSize: 1 }, "m/")).toThrow(
			`shards of 1 bytes cut m/ into ${MAX_SHARDS + 1} pieces (limit ${MAX_SHARDS})`,
		);
	});
});
