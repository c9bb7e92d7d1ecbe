import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import {
	type BuildManifestOptions,
	buildManifest,
	canonicalOrder,
	comparePaths,
	rootDigest,
	shardRanges,
} from "../../../lib/core/integrity/manifest";
import type { ResourceDescriptor } from "../../../lib/core/integrity/types";

const scratch = mkdtempSync(join(tmpdir(), "ftguard-prop-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let counter = 0;
function tempDir(): string {
	const d = join(scratch, `p${counter++}`);
	mkdirSync(d);
	return d;
}
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

type Model = Map<string, Uint8Array>;

// Names from a small alphabet so that collisions between "a", "a/b", "a-b",
// "a.b" (the interesting orderings) are frequent.
const segment = fc.constantFrom("a", "b", "a-b", "a.b", "B", "_", ".h", "é", "\u{1F600}");
const relPath = fc.array(segment, { minLength: 1, maxLength: 3 }).map((parts) => parts.join("/"));

/** A set of files where no file is also a directory prefix of another. */
const model: fc.Arbitrary<Model> = fc
	.uniqueArray(
		fc.record({
			path: relPath,
			data: fc.uint8Array({ maxLength: 300 }),
		}),
		{ minLength: 1, maxLength: 8, selector: (f) => f.path },
	)
	.map((files) => {
		const out: Model = new Map();
		for (const f of files) {
			const clash = [...out.keys()].some((p) => p.startsWith(`${f.path}/`) || f.path.startsWith(`${p}/`));
			if (!clash) out.set(f.path, f.data);
		}
		return out;
	});

function materialise(m: Model, order: string[] = [...m.keys()]): string {
	const dir = tempDir();
	for (const p of order) {
		const abs = join(dir, p);
		mkdirSync(dirname(abs), { recursive: true });
		writeFileSync(abs, m.get(p) as Uint8Array);
	}
	return dir;
}

const RUNS = { numRuns: 25 };

describe("manifest properties", () => {
	it("does not depend on the order the files were created in", async () => {
		await fc.assert(
			fc.asyncProperty(model, fc.func(fc.integer()), fc.boolean(), async (m, rank, workers) => {
				const paths = [...m.keys()];
				const shuffled = [...paths].sort((x, y) => rank(x) - rank(y));
				const opts: BuildManifestOptions = workers ? { inlineMaxBytes: 0 } : {};
				const a = await buildManifest(materialise(m, paths), opts);
				const b = await buildManifest(materialise(m, shuffled), opts);
				expect(b.resources).toEqual(a.resources);
				expect(b.root).toBe(a.root);
				// And the resources are exactly the files, with their digests, in pathlib order.
				expect(a.resources).toEqual(
					[...paths].sort(comparePaths).map((p) => ({
						name: p,
						algorithm: "sha256",
						digest: sha256(m.get(p) as Uint8Array),
					})),
				);
			}),
			{ numRuns: 15 },
		);
	});

	it("does not change when an ignored path is added", async () => {
		await fc.assert(
			fc.asyncProperty(
				model,
				fc.constantFrom(".git/config", ".git/objects/ab/cd", ".gitignore", ".github/x", "ignored", "ignored/deep/f"),
				fc.uint8Array({ maxLength: 100 }),
				async (m, extra, data) => {
					const opts = { ignorePaths: ["ignored"] };
					const dir = materialise(m);
					const before = await buildManifest(dir, opts);
					const abs = join(dir, extra);
					mkdirSync(dirname(abs), { recursive: true });
					writeFileSync(abs, data);
					const after = await buildManifest(dir, opts);
					expect(after.resources).toEqual(before.resources);
					expect(after.root).toBe(before.root);
				},
			),
			RUNS,
		);
	});

	it("covers every file exactly with its shards", () => {
		fc.assert(
			fc.property(
				fc.integer({ min: 0, max: 10_000_000 }),
				fc.integer({ min: 1, max: 3_000_000 }),
				fc.boolean(),
				(rawSize, shardSize, includeEmpty) => {
					// At most a few thousand shards per case, so 500 cases stay fast.
					const size = Math.min(rawSize, shardSize * 4000);
					const ranges = shardRanges(size, shardSize, includeEmpty);
					if (size === 0) {
						// As the released reference: no shard; optionally one empty shard.
						expect(ranges).toEqual(includeEmpty ? [[0, 0]] : []);
						return;
					}
					expect(ranges[0]?.[0]).toBe(0);
					expect(ranges[ranges.length - 1]?.[1]).toBe(size);
					expect(ranges).toHaveLength(Math.ceil(size / shardSize));
					// Contiguous, non-empty, full-size except the last (plain checks:
					// thousands of expect() calls per case would dominate the run time).
					const bad = ranges.findIndex(([start, end], i) => {
						const prevEnd = i === 0 ? 0 : (ranges[i - 1] as [number, number])[1];
						const last = i === ranges.length - 1;
						return start !== prevEnd || end <= start || (last ? end - start > shardSize : end - start !== shardSize);
					});
					expect(bad).toBe(-1);
				},
			),
			{ numRuns: 500 },
		);
	});

	it("hashes shards as crypto does over the same slices", async () => {
		await fc.assert(
			fc.asyncProperty(
				fc.uint8Array({ minLength: 0, maxLength: 5000 }),
				fc.integer({ min: 1, max: 2000 }),
				fc.boolean(),
				async (data, shardSize, workers) => {
					const dir = tempDir();
					writeFileSync(join(dir, "f.bin"), data);
					writeFileSync(join(dir, "g"), "g"); // a model is never empty
					const m = await buildManifest(dir, {
						method: "shards",
						shardSize,
						...(workers ? { inlineMaxBytes: 0 } : {}),
					});
					const expected: ResourceDescriptor[] = [];
					for (let s = 0; s < data.length; s += shardSize) {
						const e = Math.min(s + shardSize, data.length);
						expected.push({
							name: `f.bin:${s}:${e}`,
							algorithm: "sha256",
							digest: sha256(data.subarray(s, e)),
						});
					}
					expected.push({
						name: "g:0:1",
						algorithm: "sha256",
						digest: sha256(Buffer.from("g")),
					});
					expect(m.resources).toEqual(expected);
				},
			),
			{ numRuns: 20 },
		);
	});

	it("changes exactly the resource that holds a changed byte", async () => {
		await fc.assert(
			fc.asyncProperty(
				model.filter((m) => [...m.values()].some((d) => d.length > 0)),
				fc.nat(),
				fc.nat(),
				fc.integer({ min: 1, max: 255 }),
				fc.constantFrom("files", "shards") as fc.Arbitrary<"files" | "shards">,
				async (m, pick, offset, xor, method) => {
					const nonEmpty = [...m.keys()].filter((p) => (m.get(p) as Uint8Array).length > 0);
					const target = nonEmpty[pick % nonEmpty.length] as string;
					const dir = materialise(m);
					const opts = { method, shardSize: 64 } as const;
					const before = await buildManifest(dir, opts);
					const abs = join(dir, target);
					const bytes = readFileSync(abs);
					const at = offset % bytes.length;
					bytes[at] = (bytes[at] as number) ^ xor;
					writeFileSync(abs, bytes);
					const after = await buildManifest(dir, opts);
					const changed = after.resources.filter((r, i) => r.digest !== before.resources[i]?.digest).map((r) => r.name);
					const shardStart = at - (at % 64);
					const end = Math.min(shardStart + 64, bytes.length);
					expect(changed).toEqual([method === "files" ? target : `${target}:${shardStart}:${end}`]);
					expect(after.resources.map((r) => r.name)).toEqual(before.resources.map((r) => r.name));
					expect(after.root).not.toBe(before.root);
				},
			),
			RUNS,
		);
	});

	it("orders and roots a list the same whatever order it arrives in", () => {
		const resource = fc.record({
			name: relPath,
			algorithm: fc.constant("sha256" as const),
			digest: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString("hex")),
		});
		fc.assert(
			fc.property(
				fc.uniqueArray(resource, { selector: (r) => r.name, maxLength: 12 }),
				fc.func(fc.integer()),
				(rs, rank) => {
					const shuffled = [...rs].sort((x, y) => rank(x.name) - rank(y.name));
					expect(canonicalOrder(shuffled, "files")).toEqual(canonicalOrder(rs, "files"));
					expect(rootDigest(shuffled, "files")).toBe(rootDigest(rs, "files"));
					// pathlib order: the list of components, each by code point.
					const key = (n: string) => n.split("/").map((c) => [...c].map((ch) => ch.codePointAt(0) as number));
					const sorted = canonicalOrder(rs, "files");
					for (let i = 1; i < sorted.length; i++) {
						expect(lexCompare(key(sorted[i - 1]?.name as string), key(sorted[i]?.name as string))).toBeLessThan(0);
					}
				},
			),
			{ numRuns: 300 },
		);
	});
});

/** Python's list comparison, over lists of lists of numbers. */
function lexCompare(a: number[][], b: number[][]): number {
	for (let i = 0; i < Math.min(a.length, b.length); i++) {
		const x = a[i] as number[];
		const y = b[i] as number[];
		for (let j = 0; j < Math.min(x.length, y.length); j++) {
			if (x[j] !== y[j]) return (x[j] as number) - (y[j] as number);
		}
		if (x.length !== y.length) return x.length - y.length;
	}
	return a.length - b.length;
}
