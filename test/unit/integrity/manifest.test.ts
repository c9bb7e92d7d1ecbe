import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
	cpSync,
	mkdirSync,
	mkdtempSync,
	readdirSync,
	readFileSync,
	rmSync,
	truncateSync,
	writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FtguardError } from "../../../lib/core/errors";
import { hashTasks } from "../../../lib/core/integrity/hash-pool";
import {
	buildManifest,
	canonicalOrder,
	compareCodePoints,
	DEFAULT_SHARD_SIZE,
	hashOptionsFromSerialization,
	rootDigest,
	rootDigestOfListed,
	shardRanges,
} from "../../../lib/core/integrity/manifest";
import type { HashProgress, ResourceDescriptor, Serialization } from "../../../lib/core/integrity/types";

// Real signatures made by the reference model_signing tool; read in place, never copied.
const VECTORS = resolve(process.cwd(), "../shared/vectors/model-signing");

interface Statement {
	subject: Array<{ name: string; digest: { sha256: string } }>;
	predicate: {
		serialization: Serialization;
		resources: ResourceDescriptor[];
	};
}

function statementOf(folder: string): Statement {
	const bundle = JSON.parse(readFileSync(join(VECTORS, folder, "model.sig"), "utf8"));
	return JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, "base64").toString("utf8"));
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const sorted = (rs: ResourceDescriptor[]) =>
	rs.map((r) => ({ name: r.name, algorithm: r.algorithm, digest: r.digest }));

const scratch = mkdtempSync(join(tmpdir(), "ftguard-manifest-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let counter = 0;
function tempDir(): string {
	const d = join(scratch, `m${counter++}`);
	mkdirSync(d);
	return d;
}
function write(root: string, rel: string, data: string | Uint8Array): void {
	const p = join(root, rel);
	mkdirSync(dirname(p), { recursive: true });
	writeFileSync(p, data);
}
async function rejection(p: Promise<unknown>): Promise<FtguardError> {
	try {
		await p;
	} catch (e) {
		if (e instanceof FtguardError) return e;
		throw e;
	}
	throw new Error("expected a rejection");
}

const vectorFolders = readdirSync(VECTORS).filter((f) => f.startsWith("v"));

describe("when hashing the reference tool's signed vectors", () => {
	it("finds all six vectors", () => {
		expect(vectorFolders.sort()).toEqual([
			"v1.0.0-certificate",
			"v1.0.0-elliptic-key",
			"v1.0.0-sigstore",
			"v1.1.0-certificate",
			"v1.1.0-elliptic-key",
			"v1.1.0-sigstore",
		]);
	});

	for (const folder of vectorFolders) {
		for (const path of ["inline", "workers"] as const) {
			it(`reproduces the resources and root of ${folder} (${path})`, async () => {
				const statement = statementOf(folder);
				// v1.0.0-elliptic-key signed the FILE signme-1: its one resource is ".".
				const model = folder === "v1.0.0-elliptic-key" ? join(VECTORS, folder, "signme-1") : join(VECTORS, folder);
				// The verifier's path: the signature's own serialization, plus the
				// signature file and the paths the vectors' README says to ignore.
				const fromSig = hashOptionsFromSerialization(statement.predicate.serialization);
				const m = await buildManifest(model, {
					...fromSig,
					ignorePaths: folder.startsWith("v1.1.0") ? ["model.sig", "ignore-me"] : ["model.sig"],
					inlineMaxBytes: path === "inline" ? 1 << 20 : 0,
				});
				expect(sorted(m.resources)).toEqual(sorted(statement.predicate.resources));
				expect(m.root).toBe(statement.subject[0]?.digest.sha256);
				expect(m.modelName).toBe(statement.subject[0]?.name);
				expect(rootDigest(statement.predicate.resources, "files")).toBe(m.root);
			});
		}
	}

	it("names a single-file model's one resource '.'", async () => {
		const m = await buildManifest(join(VECTORS, "v1.0.0-elliptic-key", "signme-1"));
		expect(m.resources.map((r) => r.name)).toEqual(["."]);
		expect(m.modelName).toBe("signme-1");
	});

	it("records ignore paths as the reference does: sorted, POSIX, defaults included", async () => {
		const m = await buildManifest(join(VECTORS, "v1.1.0-sigstore"), {
			ignorePaths: ["./model.sig", "ignore-me/"],
		});
		expect(m.serialization).toEqual({
			method: "files",
			hash_type: "sha256",
			allow_symlinks: false,
			ignore_paths: [".git", ".gitattributes", ".github", ".gitignore", "ignore-me", "model.sig"],
		});
		expect([...(statementOf("v1.1.0-sigstore").predicate.serialization.ignore_paths ?? [])].sort()).toEqual(
			m.serialization.ignore_paths,
		);
	});

	it("includes a file the signer ignored when the verifier does not ignore it", async () => {
		const m = await buildManifest(join(VECTORS, "v1.1.0-sigstore"), {
			ignorePaths: ["model.sig"],
		});
		expect(m.resources.map((r) => r.name)).toEqual(["ignore-me", "signme-1", "signme-2"]);
		// An empty file is a resource in method "files": the digest of zero bytes.
		expect(m.resources[0]?.digest).toBe(sha256(new Uint8Array()));
		expect(m.root).not.toBe(statementOf("v1.1.0-sigstore").subject[0]?.digest.sha256);
	});

	it("changes exactly one digest and the root when one byte of signme-1 flips", async () => {
		const copy = tempDir();
		cpSync(join(VECTORS, "v1.0.0-sigstore"), copy, { recursive: true });
		const p = join(copy, "signme-1");
		const bytes = readFileSync(p);
		bytes[0] = (bytes[0] as number) ^ 0x01;
		rmSync(p, { force: true });
		writeFileSync(p, bytes);
		const statement = statementOf("v1.0.0-sigstore");
		const m = await buildManifest(copy, { ignorePaths: ["model.sig"] });
		expect(m.root).not.toBe(statement.subject[0]?.digest.sha256);
		const changed = m.resources.filter((r, i) => r.digest !== statement.predicate.resources[i]?.digest);
		expect(changed.map((r) => r.name)).toEqual(["signme-1"]);
	});
});

describe("when hashing by shards", () => {
	// Expected digests come from node:crypto over slices of the file's bytes,
	// computed here independently of the hashing code under test.
	function expectedShards(name: string, bytes: Uint8Array, shardSize: number): ResourceDescriptor[] {
		const out: ResourceDescriptor[] = [];
		for (let start = 0; start < bytes.length; start += shardSize) {
			const end = Math.min(start + shardSize, bytes.length);
			out.push({
				name: `${name}:${start}:${end}`,
				algorithm: "sha256",
				digest: sha256(bytes.subarray(start, end)),
			});
		}
		return out;
	}

	for (const path of ["inline", "workers"] as const) {
		it(`cuts each file at multiples of the shard size (${path})`, async () => {
			const dir = tempDir();
			const big = createHash("sha512").update("seed").digest();
			const a = Buffer.concat(Array.from({ length: 90 }, () => big)); // 5760 bytes
			const b = a.subarray(0, 2000); // exactly two shards
			write(dir, "a.bin", a);
			write(dir, "sub/b.bin", b);
			write(dir, "empty", "");
			const m = await buildManifest(dir, {
				method: "shards",
				shardSize: 1000,
				inlineMaxBytes: path === "inline" ? 1 << 20 : 0,
			});
			expect(m.resources).toEqual([
				...expectedShards("a.bin", a, 1000),
				// The released reference gives an empty file no shard at all.
				...expectedShards("sub/b.bin", b, 1000),
			]);
			expect(m.serialization.shard_size).toBe(1000);
			expect(m.bytes).toBe(a.length + b.length);
			expect(m.root).toBe(sha256(Buffer.concat(m.resources.map((r) => Buffer.from(r.digest, "hex")))));
		});
	}

	it("hashes multi-megabyte shards on workers exactly as crypto does over slices", async () => {
		const dir = tempDir();
		const chunk = createHash("sha512").update("x").digest();
		const data = Buffer.alloc(9 * 1024 * 1024 + 123);
		for (let i = 0; i < data.length; i += chunk.length) {
			chunk.copy(data, i);
			data.writeUInt32LE(i >>> 0, i);
		}
		write(dir, "w.bin", data);
		const m = await buildManifest(dir, {
			method: "shards",
			shardSize: 2_000_000,
			chunkSize: 65536,
			inlineMaxBytes: 0,
		});
		expect(m.resources).toEqual(expectedShards("w.bin", data, 2_000_000));
	});

	it("records an empty file as path:0:0 when asked to (model-transparency#653)", async () => {
		const dir = tempDir();
		write(dir, "empty", "");
		write(dir, "x", "abc");
		const m = await buildManifest(dir, {
			method: "shards",
			shardEmptyFiles: true,
		});
		expect(m.resources.map((r) => r.name)).toEqual(["empty:0:0", "x:0:3"]);
		expect(m.resources[0]?.digest).toBe(sha256(new Uint8Array()));
	});

	it("sorts shards by numeric offsets, not as strings", async () => {
		const dir = tempDir();
		write(dir, "f", "0123456789ab");
		const m = await buildManifest(dir, { method: "shards", shardSize: 1 });
		expect(m.resources.map((r) => r.name).slice(8, 11)).toEqual(["f:8:9", "f:9:10", "f:10:11"]);
		const shuffled = [...m.resources].reverse();
		expect(canonicalOrder(shuffled, "shards")).toEqual(m.resources);
		expect(rootDigest(shuffled, "shards")).toBe(m.root);
	});

	it("uses the reference's 1,000,000,000-byte default shard size", async () => {
		const dir = tempDir();
		write(dir, "x", "abc");
		const m = await buildManifest(dir, { method: "shards" });
		expect(m.serialization.shard_size).toBe(DEFAULT_SHARD_SIZE);
		expect(DEFAULT_SHARD_SIZE).toBe(1_000_000_000);
		expect(shardRanges(2_000_000_001, DEFAULT_SHARD_SIZE)).toEqual([
			[0, 1_000_000_000],
			[1_000_000_000, 2_000_000_000],
			[2_000_000_000, 2_000_000_001],
		]);
	});
});

describe("when ordering resources canonically", () => {
	it("compares paths component by component, as pathlib does", async () => {
		const dir = tempDir();
		for (const n of ["a-c", "a/b", "a.txt", "B", "a/b c", "_"]) write(dir, n, n);
		const m = await buildManifest(dir);
		// "-" (0x2d) < "." < "/" (0x2f) as strings, but "a" < "a-c" as components.
		expect(m.resources.map((r) => r.name)).toEqual(["B", "_", "a/b", "a/b c", "a-c", "a.txt"]);
	});

	it("compares names by code point, not UTF-16 unit", async () => {
		const dir = tempDir();
		const fullwidthA = "\uFF21"; // U+FF21
		const emoji = "\u{1F600}"; // U+1F600: a surrogate pair in UTF-16 (0xD83D...)
		write(dir, emoji, "e");
		write(dir, fullwidthA, "f");
		const m = await buildManifest(dir);
		expect(m.resources.map((r) => r.name)).toEqual([fullwidthA, emoji]);
		expect(compareCodePoints(fullwidthA, emoji)).toBeLessThan(0);
		expect(fullwidthA < emoji).toBe(false); // what a naive JS sort would do
	});

	it("includes hidden files and nested git folders but not the top-level git paths", async () => {
		const dir = tempDir();
		write(dir, ".hidden", "h");
		write(dir, ".git/config", "c");
		write(dir, ".github/workflows/x.yml", "y");
		write(dir, ".gitignore", "*");
		write(dir, ".gitattributes", "*");
		write(dir, "sub/.git/HEAD", "ref");
		write(dir, ".gitmodules", "m");
		mkdirSync(join(dir, "empty-dir"));
		const m = await buildManifest(dir);
		expect(m.resources.map((r) => r.name)).toEqual([".gitmodules", ".hidden", "sub/.git/HEAD"]);
	});

	it("computes the root over raw digest bytes, whatever order it is given", () => {
		const rs: ResourceDescriptor[] = ["b", "a", "c"].map((n) => ({
			name: n,
			algorithm: "sha256",
			digest: sha256(Buffer.from(n)),
		}));
		const expected = sha256(Buffer.concat(["a", "b", "c"].map((n) => Buffer.from(sha256(Buffer.from(n)), "hex"))));
		expect(rootDigest(rs)).toBe(expected);
		expect(rootDigestOfListed(rs)).not.toBe(expected);
		expect(() => rootDigest([{ name: "x", algorithm: "sha256", digest: "XYZ" }])).toThrow(FtguardError);
	});
});

describe("when reporting progress and aborting", () => {
	for (const path of ["inline", "workers"] as const) {
		it(`reports bytes and files up to the totals, throttled (${path})`, async () => {
			const dir = tempDir();
			for (let i = 0; i < 6; i++) write(dir, `f${i}`, Buffer.alloc(2 << 20, i));
			const seen: HashProgress[] = [];
			const started = Date.now();
			const m = await buildManifest(dir, {
				inlineMaxBytes: path === "inline" ? 16 << 20 : 0,
				chunkSize: 1 << 20,
				onProgress: (p) => seen.push(p),
			});
			const elapsed = Date.now() - started;
			const last = seen[seen.length - 1];
			expect(last).toEqual({
				bytesDone: m.bytes,
				bytesTotal: m.bytes,
				filesDone: 6,
				filesTotal: 6,
			});
			expect(seen[0]?.bytesDone).toBe(0);
			// At most ~10 per second, plus the first and the last.
			expect(seen.length).toBeLessThanOrEqual(Math.ceil(elapsed / 100) + 3);
			for (let i = 1; i < seen.length; i++) {
				expect(seen[i]?.bytesDone).toBeGreaterThanOrEqual(seen[i - 1]?.bytesDone ?? 0);
			}
		});
	}

	it("turns a throwing progress callback into INTERNAL, not an uncaught exception", async () => {
		const dir = tempDir();
		for (let i = 0; i < 3; i++) write(dir, `f${i}`, Buffer.alloc(2 << 20, i));
		for (const inlineMaxBytes of [0, 16 << 20]) {
			const err = await rejection(
				buildManifest(dir, {
					inlineMaxBytes,
					onProgress: () => {
						throw new Error("render failed");
					},
				}),
			);
			expect(err.code).toBe("INTERNAL");
			expect(err.message).toBe("progress callback failed: Error: render failed");
		}
	});

	it("stops promptly with ABORTED when the signal fires mid-file", async () => {
		const dir = tempDir();
		const f = join(dir, "huge.bin");
		writeFileSync(f, "");
		truncateSync(f, 8 * 1024 * 1024 * 1024); // sparse 8 GiB: many seconds to hash
		const ac = new AbortController();
		const started = Date.now();
		setTimeout(() => ac.abort(), 150);
		const err = await rejection(buildManifest(dir, { signal: ac.signal, inlineMaxBytes: 0 }));
		expect(err.code).toBe("ABORTED");
		expect(Date.now() - started).toBeLessThan(3000);
	});
});

describe("when a hash worker fails", () => {
	const task = (path: string, size: number) => ({
		path,
		name: "x.bin",
		start: 0,
		end: size,
		size,
		dev: 0n,
		ino: 0n,
		toEof: true,
	});
	const base = { concurrency: 2, chunkSize: 1 << 16, inlineMaxBytes: 0 };

	it("turns a worker that dies into INTERNAL instead of hanging", async () => {
		const dir = tempDir();
		write(dir, "x.bin", "abc");
		const err = await rejection(
			hashTasks([task(join(dir, "x.bin"), 3)], {
				...base,
				workerSource: "require('node:worker_threads').parentPort.on('message', () => process.exit(3));",
			}),
		);
		expect(err.code).toBe("INTERNAL");
		expect(err.message).toMatch(/exit code 3/);
	});

	it("turns a worker that throws into INTERNAL", async () => {
		const err = await rejection(
			hashTasks([task("/nonexistent", 3)], {
				...base,
				workerSource: "throw new Error('boom\\nsecond line')",
			}),
		);
		expect(err.code).toBe("INTERNAL");
		expect(err.message).toBe("hash worker failed: boom");
	});

	it("reports a file that changed since the walk as IO_ERROR naming it", async () => {
		const dir = tempDir();
		write(dir, "x.bin", "abcdef");
		const err = await rejection(hashTasks([task(join(dir, "x.bin"), 3)], base));
		expect(err.code).toBe("IO_ERROR");
		expect(err.message).toBe('file changed while hashing: "x.bin"');
	});

	it("refuses a directory found where a file was expected", async () => {
		const dir = tempDir();
		mkdirSync(join(dir, "x.bin"));
		for (const inlineMaxBytes of [0, 1 << 20]) {
			const err = await rejection(hashTasks([task(join(dir, "x.bin"), 3)], { ...base, inlineMaxBytes }));
			expect(err.code).toBe("SPECIAL_FILE");
		}
	});
});

describe("when the caller is done", () => {
	it("leaves no worker or timer behind: the process exits by itself", () => {
		const dir = tempDir();
		for (let i = 0; i < 3; i++) write(dir, `f${i}`, Buffer.alloc(2 << 20, i));
		const script = join(scratch, "exit-check.mts");
		const lib = resolve(process.cwd(), "lib/core/integrity/manifest.ts");
		writeFileSync(
			script,
			[
				`import { buildManifest } from ${JSON.stringify(lib)};`,
				`const ok = await buildManifest(${JSON.stringify(dir)}, { inlineMaxBytes: 0, onProgress: () => {} });`,
				`const failed = await buildManifest(${JSON.stringify(join(dir, "missing"))}).catch((e) => e.code);`,
				`const aborted = await buildManifest(${JSON.stringify(dir)}, { inlineMaxBytes: 0, signal: AbortSignal.timeout(1) }).catch((e) => e.code);`,
				"console.log(JSON.stringify({ root: ok.root, failed, aborted }));",
			].join("\n"),
		);
		// No process.exit() in the script: it must end because nothing is left running.
		const out = execFileSync(process.execPath, ["--import", "tsx", script], {
			cwd: process.cwd(),
			timeout: 20_000,
			encoding: "utf8",
		});
		const result = JSON.parse(out.trim().split("\n").pop() as string);
		expect(result.root).toMatch(/^[0-9a-f]{64}$/);
		expect(result.failed).toBe("NOT_FOUND");
		expect(["ABORTED", undefined]).toContain(result.aborted);
	});
});
