/**
 * OpenSSF Model Signing (OMS) manifests: the resources of a model and their
 * SHA-256 digests, computed exactly as the reference `model_signing` tool
 * (sigstore/model-transparency) computes them, so that its signatures verify
 * here and ours verify there.
 *
 * What "exactly" pins down (from the reference source):
 * - Method "files": one resource per regular file, named by its POSIX path
 *   relative to the model directory; a single-file model's one resource is ".".
 *   Empty files are resources (digest of zero bytes).
 * - Method "shards": each file is cut at multiples of `shard_size` (default
 *   1,000,000,000 bytes), resource `path:start:end` (end exclusive, decimal);
 *   the last shard ends at the file size. An empty file has no shard at all in
 *   the released tool (`_get_shards` guards with `size > 0`); see
 *   `HashOptions.shardEmptyFiles`.
 * - Canonical order is Python's `sorted()` over the manifest keys: a file key is
 *   a `PurePosixPath`, which compares component by component (so "a/b" sorts
 *   before "a-c" although "-" < "/"), each component by Unicode code point (not
 *   UTF-16 unit); a shard key is the tuple (path, start, end), offsets compared
 *   as integers (so ":9:" before ":10:").
 * - The root digest (the in-toto subject digest) is SHA-256 over the raw 32-byte
 *   digests concatenated in that order.
 * - `.git`, `.gitattributes`, `.github`, `.gitignore` at the top of the model are
 *   always ignored, as the reference's default hashing config does; the signature
 *   file is ignored by whoever signs or verifies (it passes it in `ignorePaths`).
 */
import { createHash } from "node:crypto";
import { availableParallelism } from "node:os";
import { FtguardError, firstLine, toFtguardError } from "../errors";
import { defaultConcurrency, type HashTask, hashTasks } from "./hash-pool";
import type {
	HashOptions,
	HashProgress,
	Manifest,
	ResourceDescriptor,
	Serialization,
	SerializationMethod,
} from "./types";
import { normalizeIgnorePaths, walkModel } from "./walk";

/** Always ignored, relative to the model directory (the reference's git defaults). */
export const DEFAULT_IGNORE_PATHS: readonly string[] = Object.freeze([
	".git",
	".gitattributes",
	".github",
	".gitignore",
]);

/** The reference's default shard size for method "shards". */
export const DEFAULT_SHARD_SIZE = 1_000_000_000;
/** Far above any real checkpoint (tens of files); each listed file costs ~1 KB while hashing. */
export const DEFAULT_MAX_FILES = 100_000;
export const DEFAULT_MAX_DEPTH = 128;
/**
 * 1 MiB reads. Measured (page-cached file, read + hash interleaved): 32 KiB reads
 * reach 0.91x `openssl dgst`, 1 MiB 1.02x, 4 MiB 0.94x — a 4 MiB buffer no
 * longer fits in L2, so the hash re-reads what `read` just copied from further
 * away. Double-buffered async reads gained nothing: the copy is ~6% of the time.
 */
export const DEFAULT_CHUNK_SIZE = 1 << 20;
/** Each worker holds one read buffer: this caps the pool's buffers at 8 × 64 MiB. */
const MAX_CHUNK_SIZE = 64 << 20;
/** Below this many bytes (and at most 4,096 ranges) hashing stays on the calling thread: see hash-pool.ts. */
export const DEFAULT_INLINE_MAX_BYTES = 16 << 20;

/** {@link HashOptions} plus tuning knobs for benchmarks and tests. */
export interface BuildManifestOptions extends HashOptions {
	/** Bytes per read. @default 1 MiB */
	chunkSize?: number;
	/** Jobs up to this many bytes (and at most 4,096 ranges) skip the worker pool. Use 0 to force workers. @default 16 MiB */
	inlineMaxBytes?: number;
}

/**
 * Hashes a model directory, or a single model file, into an OMS manifest.
 *
 * To re-hash a model for verification, pass the signature's serialization
 * through {@link hashOptionsFromSerialization} (plus the signature file's own
 * path in `ignorePaths` when it lies inside the model).
 *
 * @throws FtguardError NOT_FOUND, IO_ERROR, SYMLINK_REFUSED, PATH_ESCAPE,
 *   SPECIAL_FILE, TOO_MANY_FILES, PATH_TOO_DEEP, USAGE, ABORTED, INTERNAL.
 */
export async function buildManifest(modelPath: string, opts: BuildManifestOptions = {}): Promise<Manifest> {
	try {
		return await build(modelPath, opts);
	} catch (e) {
		// Anything unexpected (a bug, a RangeError) still leaves as an FtguardError.
		throw toFtguardError(e, "building the manifest");
	}
}

async function build(modelPath: string, opts: BuildManifestOptions): Promise<Manifest> {
	const method = opts.method ?? "files";
	if (method !== "files" && method !== "shards") {
		throw new FtguardError("USAGE", `unknown serialization method: ${JSON.stringify(method)}`);
	}
	const shardSize = positiveInt(opts.shardSize, DEFAULT_SHARD_SIZE, "shardSize");
	const maxFiles = positiveInt(opts.maxFiles, DEFAULT_MAX_FILES, "maxFiles");
	const maxDepth = positiveInt(opts.maxDepth, DEFAULT_MAX_DEPTH, "maxDepth");
	const concurrency = positiveInt(opts.concurrency, defaultConcurrency(availableParallelism()), "concurrency");
	const chunkSize = positiveInt(opts.chunkSize, DEFAULT_CHUNK_SIZE, "chunkSize");
	if (chunkSize > MAX_CHUNK_SIZE) throw new FtguardError("USAGE", `chunkSize must be at most ${MAX_CHUNK_SIZE} bytes`);
	const inlineMaxBytes = opts.inlineMaxBytes ?? DEFAULT_INLINE_MAX_BYTES;
	const allowSymlinks = opts.allowSymlinks ?? false;
	const ignorePaths = normalizeIgnorePaths([...DEFAULT_IGNORE_PATHS, ...(opts.ignorePaths ?? [])]);

	const walk = await walkModel(modelPath, {
		allowSymlinks,
		ignorePaths,
		maxFiles,
		maxDepth,
		signal: opts.signal,
	});

	// Tasks are built in canonical order, so digests come back already sorted.
	const files = [...walk.files].sort((a, b) => comparePaths(a.name, b.name));
	const tasks: HashTask[] = [];
	const names: string[] = [];
	const taskFile: number[] = [];
	const shardsLeft: number[] = [];
	let bytesTotal = 0;
	files.forEach((f, fileIndex) => {
		bytesTotal += f.size;
		const ranges: Array<[number, number]> =
			method === "files" ? [[0, f.size]] : shardRanges(f.size, shardSize, opts.shardEmptyFiles ?? false);
		shardsLeft.push(ranges.length);
		for (const [start, end] of ranges) {
			tasks.push({
				path: f.openPath,
				name: f.name,
				start,
				end,
				size: f.size,
				dev: f.dev,
				ino: f.ino,
				toEof: method === "files",
			});
			names.push(method === "files" ? f.name : `${f.name}:${start}:${end}`);
			taskFile.push(fileIndex);
		}
	});

	const progress = {
		bytesDone: 0,
		bytesTotal,
		filesDone: 0,
		filesTotal: files.length,
	};
	for (const left of shardsLeft) if (left === 0) progress.filesDone++; // empty files without shards
	// The caller's callback runs inside timers and worker events: an exception
	// there must not escape as an uncaught error, so it is kept and rethrown.
	let callbackError: unknown;
	let lastEmitted = "";
	const emit = (p: HashProgress) => {
		const key = `${p.bytesDone}/${p.filesDone}`;
		if (!opts.onProgress || callbackError !== undefined || key === lastEmitted) return;
		lastEmitted = key;
		try {
			opts.onProgress({ ...p });
		} catch (e) {
			callbackError = e;
		}
	};
	emit(progress);

	const digests = await hashTasks(tasks, {
		concurrency,
		chunkSize,
		inlineMaxBytes,
		signal: opts.signal,
		onTaskDone: (i) => {
			const f = taskFile[i] as number;
			shardsLeft[f] = (shardsLeft[f] as number) - 1;
			if (shardsLeft[f] === 0) progress.filesDone++;
		},
		onBytes: opts.onProgress
			? (b) => {
					progress.bytesDone = b;
					emit(progress);
				}
			: undefined,
	});
	progress.bytesDone = bytesTotal;
	progress.filesDone = files.length;
	emit(progress);
	if (callbackError !== undefined) {
		throw new FtguardError("INTERNAL", `progress callback failed: ${firstLine(String(callbackError))}`, {
			cause: callbackError,
		});
	}

	const resources: ResourceDescriptor[] = names.map((name, i) => ({
		name,
		algorithm: "sha256",
		digest: digests[i] as string,
	}));
	const serialization: Serialization = {
		method,
		hash_type: "sha256",
		allow_symlinks: allowSymlinks,
		ignore_paths: ignorePaths,
		...(method === "shards" ? { shard_size: shardSize } : {}),
	};
	return {
		modelName: walk.modelName,
		root: rootDigestOfListed(resources),
		resources,
		serialization,
		bytes: bytesTotal,
	};
}

/**
 * The hashing parameters a signature was made with, for re-hashing the model
 * when verifying it: method, shard size, symlink rule and, when the signed
 * resources contain an empty-file shard (`path:0:0`, as newer model_signing
 * writes), the matching empty-file rule.
 *
 * The signer's `ignore_paths` are deliberately not returned: a file the
 * signature does not cover is unsigned content next to the model, and only the
 * verifying user may accept it (the caller passes its own ignore paths).
 */
export function hashOptionsFromSerialization(
	s: Pick<Serialization, "method"> & Partial<Pick<Serialization, "allow_symlinks" | "shard_size">>,
	resources: readonly { name: string }[] = [],
): Pick<HashOptions, "method" | "shardSize" | "allowSymlinks" | "shardEmptyFiles"> {
	if (
		s.method === "shards" &&
		(s.shard_size === undefined || !Number.isSafeInteger(s.shard_size) || s.shard_size <= 0)
	) {
		throw new FtguardError("PAYLOAD_INVALID", 'serialization method "shards" needs a positive integer shard_size');
	}
	return {
		method: s.method,
		allowSymlinks: s.allow_symlinks === true,
		...(s.method === "shards"
			? { shardSize: s.shard_size as number, shardEmptyFiles: resources.some((r) => r.name.endsWith(":0:0")) }
			: {}),
	};
}

/**
 * Byte ranges `[start, end)` of a file of `size` bytes cut every `shardSize`
 * bytes; the last range ends at `size`. An empty file has none, unless
 * `includeEmpty` (then one `[0, 0]`).
 */
export function shardRanges(size: number, shardSize: number, includeEmpty = false): Array<[number, number]> {
	if (!Number.isSafeInteger(shardSize) || shardSize <= 0) {
		throw new FtguardError("USAGE", `shard size must be a positive integer, got ${shardSize}`);
	}
	if (size === 0) return includeEmpty ? [[0, 0]] : [];
	const out: Array<[number, number]> = [];
	let start = 0;
	for (let end = shardSize; end < size; end += shardSize) {
		out.push([start, end]);
		start = end;
	}
	out.push([start, size]);
	return out;
}

/** Compares two Unicode strings by code point, as Python compares `str`. */
export function compareCodePoints(a: string, b: string): number {
	const n = Math.min(a.length, b.length);
	for (let i = 0; i < n; i++) {
		const x = a.charCodeAt(i);
		const y = b.charCodeAt(i);
		if (x === y) continue;
		// UTF-16 order differs from code point order only where a surrogate (an
		// astral character) meets a unit in U+E000..U+FFFF: the astral one is larger.
		const xs = x >= 0xd800 && x <= 0xdfff;
		const ys = y >= 0xd800 && y <= 0xdfff;
		if (xs !== ys) return xs ? 1 : -1;
		return x - y;
	}
	return a.length - b.length;
}

/** Compares POSIX paths as `PurePosixPath` does: component by component. */
export function comparePaths(a: string, b: string): number {
	if (a === b) return 0;
	const pa = a.split("/");
	const pb = b.split("/");
	const n = Math.min(pa.length, pb.length);
	for (let i = 0; i < n; i++) {
		const c = compareCodePoints(pa[i] as string, pb[i] as string);
		if (c !== 0) return c;
	}
	return pa.length - pb.length;
}

/** Splits a shard resource name `path:start:end` (the path may itself contain ':'). */
export function parseShardName(name: string): { path: string; start: number; end: number } | undefined {
	const m = /^(.*):(0|[1-9]\d*):(0|[1-9]\d*)$/s.exec(name);
	if (!m) return undefined;
	const start = Number(m[2]);
	const end = Number(m[3]);
	if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end)) return undefined;
	return { path: m[1] as string, start, end };
}

/**
 * Comparator for resource names in canonical OMS order. Shard names that do not
 * parse sort after all others (by code point), so a malformed list still has a
 * deterministic order.
 */
export function compareResourceNames(a: string, b: string, method: SerializationMethod): number {
	if (method === "files") return comparePaths(a, b);
	const sa = parseShardName(a);
	const sb = parseShardName(b);
	if (sa && sb) return comparePaths(sa.path, sb.path) || sa.start - sb.start || sa.end - sb.end;
	if (sa) return -1;
	if (sb) return 1;
	return compareCodePoints(a, b);
}

/**
 * Guesses the method from resource names: "shards" when every name is
 * `path:start:end`. Pass the method explicitly whenever it is known — a files
 * manifest whose every file name looks like a shard would be misread.
 */
export function inferMethod(resources: readonly ResourceDescriptor[]): SerializationMethod {
	return resources.length > 0 && resources.every((r) => parseShardName(r.name) !== undefined) ? "shards" : "files";
}

/** A sorted copy of `resources` in canonical OMS order. */
export function canonicalOrder(
	resources: readonly ResourceDescriptor[],
	method: SerializationMethod = inferMethod(resources),
): ResourceDescriptor[] {
	return [...resources].sort((x, y) => compareResourceNames(x.name, y.name, method));
}

/**
 * The OMS root digest: hex SHA-256 over the raw digests of `resources` taken in
 * canonical order.
 */
export function rootDigest(
	resources: readonly ResourceDescriptor[],
	method: SerializationMethod = inferMethod(resources),
): string {
	return rootDigestOfListed(canonicalOrder(resources, method));
}

/**
 * SHA-256 over the raw digests in the order given — what the reference verifier
 * checks a signed statement's subject digest against (the predicate's order).
 */
export function rootDigestOfListed(resources: readonly ResourceDescriptor[]): string {
	const h = createHash("sha256");
	for (const r of resources) {
		if (!/^[0-9a-f]{64}$/.test(r.digest)) {
			throw new FtguardError(
				"PAYLOAD_INVALID",
				`resource digest is not 64 lower-case hex characters: ${JSON.stringify(r.name)}`,
			);
		}
		h.update(Buffer.from(r.digest, "hex"));
	}
	return h.digest("hex");
}

function positiveInt(value: number | undefined, fallback: number, what: string): number {
	if (value === undefined) return fallback;
	if (!Number.isSafeInteger(value) || value <= 0) {
		throw new FtguardError("USAGE", `${what} must be a positive integer, got ${value}`);
	}
	return value;
}
