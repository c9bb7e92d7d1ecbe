/**
 * Reading the objects of an artefact exactly as they were when the scan marked
 * them. Every read is pinned: by VersionId where the store versions objects,
 * otherwise by ETag (`If-Match`, and the response's ETag checked here too,
 * because not every S3-compatible server honours `If-Match` on GET). An object
 * overwritten after it was marked then fails to read instead of being scanned
 * in its new form.
 */
import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import {
	GetObjectCommand,
	type GetObjectCommandOutput,
	HeadObjectCommand,
	ListObjectsV2Command,
	type ListObjectsV2CommandOutput,
	type S3Client,
} from "@aws-sdk/client-s3";
import { FtguardError, isFtguardError } from "../core/errors";
import { MAX_BUNDLE_BYTES } from "../core/integrity/bundle";
import { OffThreadHasher } from "../core/integrity/stream-hasher";
import { normalizeEtag } from "../core/pipeline/artefact";
import type { ScanObject, ScanState } from "../core/pipeline/types";

/** An object version as the mark state recorded it. */
export interface PinnedObject {
	bucket: string;
	key: string;
	versionId?: string | undefined;
	etag?: string | undefined;
	size: number;
}

export interface ObjectHead {
	versionId?: string;
	etag?: string;
	size: number;
}

function errName(e: unknown): string {
	return (e as { name?: string }).name ?? "error";
}

function httpStatus(e: unknown): number | undefined {
	return (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

function where(o: { bucket: string; key: string; versionId?: string | undefined }): string {
	return `s3://${o.bucket}/${o.key}${o.versionId ? ` (version ${o.versionId})` : ""}`;
}

/** An SDK error saying a condition (If-Match, or the local server's tag condition) no longer holds. */
export function isPreconditionFailed(e: unknown): boolean {
	return errName(e) === "PreconditionFailed" || httpStatus(e) === 412;
}

/** Maps an SDK error to NOT_FOUND (gone), IO_ERROR (changed since marked, or anything else). */
export function s3Error(e: unknown, what: string): FtguardError {
	const name = errName(e);
	const status = httpStatus(e);
	if (isPreconditionFailed(e)) {
		return new FtguardError("IO_ERROR", `${what} changed after it was marked`, { cause: e });
	}
	if (name === "NoSuchKey" || name === "NotFound" || name === "NoSuchVersion" || status === 404) {
		return new FtguardError("NOT_FOUND", `${what} does not exist`, { cause: e });
	}
	return new FtguardError("IO_ERROR", `cannot access ${what}: ${name}`, { cause: e });
}

/** The current version of a key (or the given version), or undefined when there is none. */
export async function headObject(
	s3: S3Client,
	bucket: string,
	key: string,
	versionId?: string,
): Promise<ObjectHead | undefined> {
	try {
		const r = await s3.send(
			new HeadObjectCommand({ Bucket: bucket, Key: key, ...(versionId !== undefined ? { VersionId: versionId } : {}) }),
		);
		return {
			...(r.VersionId && r.VersionId !== "null" ? { versionId: r.VersionId } : {}),
			...(r.ETag ? { etag: r.ETag } : {}),
			size: r.ContentLength ?? 0,
		};
	} catch (e) {
		const err = s3Error(e, where({ bucket, key, ...(versionId !== undefined ? { versionId } : {}) }));
		if (err.code === "NOT_FOUND") return undefined;
		throw err;
	}
}

/** One object of a listing: its key and the ETag the listing reports (quoted, as S3 sends it). */
export interface ListedObject {
	key: string;
	etag?: string;
}

/** Every object under `prefix` ("" for the whole bucket), every page, in listing order; more than `max` is TOO_MANY_FILES. */
export async function listObjects(
	s3: S3Client,
	bucket: string,
	prefix: string,
	max = Number.POSITIVE_INFINITY,
): Promise<ListedObject[]> {
	const objects: ListedObject[] = [];
	let token: string | undefined;
	do {
		let r: ListObjectsV2CommandOutput;
		try {
			r = await s3.send(
				new ListObjectsV2Command({
					Bucket: bucket,
					...(prefix ? { Prefix: prefix } : {}),
					...(token ? { ContinuationToken: token } : {}),
				}),
			);
		} catch (e) {
			throw s3Error(e, `s3://${bucket}/${prefix}`);
		}
		for (const c of r.Contents ?? []) if (c.Key) objects.push({ key: c.Key, ...(c.ETag ? { etag: c.ETag } : {}) });
		if (objects.length > max) {
			throw new FtguardError("TOO_MANY_FILES", `s3://${bucket}/${prefix} holds more than ${max} objects`);
		}
		token = r.NextContinuationToken;
	} while (token);
	return objects;
}

/** Every key under `prefix`, sorted; more than `max` is TOO_MANY_FILES. */
export async function listKeys(s3: S3Client, bucket: string, prefix: string, max: number): Promise<string[]> {
	return (await listObjects(s3, bucket, prefix, max)).map((o) => o.key).sort();
}

/**
 * Why the key's current object is no longer the version that was scanned, or
 * undefined when it still is. With versioning the current VersionId must be the
 * pinned one; without, the ETag (and size) must be unchanged.
 */
export async function changedSince(s3: S3Client, bucket: string, o: ScanObject): Promise<string | undefined> {
	const now = await headObject(s3, bucket, o.key);
	if (now === undefined) return "deleted";
	if (o.versionId !== undefined) {
		return now.versionId === o.versionId ? undefined : `current version is ${now.versionId ?? "unversioned"}`;
	}
	if (o.etag === undefined) return "no version or ETag was recorded at mark";
	if (now.etag === undefined || normalizeEtag(now.etag) !== normalizeEtag(o.etag)) return "ETag changed";
	return now.size === o.size || o.size === 0 ? undefined : "size changed";
}

/**
 * GETs a pinned object (or a byte range of it). The returned body is exactly the
 * marked version, or this throws: IO_ERROR when it changed, NOT_FOUND when gone.
 */
export async function getPinned(
	s3: S3Client,
	o: PinnedObject,
	range?: { start: number; end: number },
	abortSignal?: AbortSignal,
): Promise<GetObjectCommandOutput> {
	if (o.versionId === undefined && o.etag === undefined) {
		throw new FtguardError("USAGE", `${where(o)} has neither a VersionId nor an ETag to pin it`);
	}
	let r: GetObjectCommandOutput;
	try {
		r = await s3.send(
			new GetObjectCommand({
				Bucket: o.bucket,
				Key: o.key,
				...(o.versionId !== undefined ? { VersionId: o.versionId } : { IfMatch: o.etag }),
				...(range ? { Range: `bytes=${range.start}-${range.end - 1}` } : {}),
			}),
			abortSignal ? { abortSignal } : {},
		);
	} catch (e) {
		throw s3Error(e, where(o));
	}
	const changed =
		o.versionId !== undefined
			? r.VersionId !== undefined && r.VersionId !== o.versionId
			: r.ETag === undefined || normalizeEtag(r.ETag) !== normalizeEtag(o.etag as string);
	if (changed) {
		(r.Body as Readable | undefined)?.destroy?.();
		throw new FtguardError("IO_ERROR", `${where(o)} changed after it was marked`);
	}
	return r;
}

/**
 * How a large object is read for hashing: byte ranges of `partBytes`, `inFlight` of them requested at once and
 * hashed in order as each completes. One S3 GET stream runs at roughly 100 MB/s, far below what SHA-256 does on
 * one core; parallel ranged GETs are how S3 is read fast (and locally they keep the server busy while this thread
 * hashes). Memory: at most `inFlight` parts per object.
 */
export interface RangedReadOptions {
	/** @default 8 MiB */
	partBytes?: number;
	/** @default 4 */
	inFlight?: number;
	/** objects (or ranges) at least this large are hashed on a worker thread; @default 64 MiB */
	offThreadMinBytes?: number;
}

const DEFAULT_PART_BYTES = 8 * 1024 * 1024;
const DEFAULT_IN_FLIGHT = 4;

/** The body of one pinned range, read whole; its length must be exactly the range's. */
async function readPinnedRange(
	s3: S3Client,
	o: PinnedObject,
	range: { start: number; end: number },
	signal: AbortSignal,
): Promise<Uint8Array[]> {
	const r = await getPinned(s3, o, range, signal);
	const body = r.Body as (Readable & AsyncIterable<Uint8Array>) | undefined;
	if (!body) throw new FtguardError("IO_ERROR", `${where(o)}: empty response body`);
	checkContentRange(o, r, body);
	const chunks: Uint8Array[] = [];
	let n = 0;
	try {
		for await (const chunk of body) {
			chunks.push(chunk);
			n += chunk.length;
		}
	} catch (e) {
		throw s3Error(e, where(o));
	}
	if (n !== range.end - range.start) {
		throw new FtguardError(
			"IO_ERROR",
			`${where(o)}: bytes ${range.start}-${range.end - 1} came back as ${n} bytes (the object is not ${o.size} bytes as marked)`,
		);
	}
	return chunks;
}

/** Streams a pinned object through SHA-256: no copy on disk, memory bounded whatever its size. */
export async function sha256Pinned(
	s3: S3Client,
	o: PinnedObject,
	options: RangedReadOptions = {},
): Promise<{ digest: string; size: number }> {
	const partBytes = options.partBytes ?? DEFAULT_PART_BYTES;
	const inFlight = options.inFlight ?? DEFAULT_IN_FLIGHT;
	if (o.size > partBytes) {
		const range = { start: 0, end: o.size };
		return { digest: await hashRange(s3, o, range, partBytes, inFlight, options.offThreadMinBytes), size: o.size };
	}
	const h = hasherFor(o.size, options.offThreadMinBytes);
	try {
		await streamPinned(s3, o, undefined, h);
		return { digest: await h.digest(), size: o.size };
	} finally {
		await h.close();
	}
}

/**
 * One GET of the whole object (no `range`) or of one byte range, streamed through `h` as it arrives — nothing is
 * buffered. The bytes received must be exactly the object's (or the range's) marked length.
 */
async function streamPinned(
	s3: S3Client,
	o: PinnedObject,
	range: { start: number; end: number } | undefined,
	h: Hasher,
): Promise<void> {
	const r = await getPinned(s3, o, range);
	const body = r.Body as (Readable & AsyncIterable<Uint8Array>) | undefined;
	if (!body) throw new FtguardError("IO_ERROR", `${where(o)}: empty response body`);
	if (range) checkContentRange(o, r, body);
	let size = 0;
	try {
		for await (const chunk of body) {
			await h.update(chunk);
			size += chunk.length;
		}
	} catch (e) {
		throw isFtguardError(e) ? e : s3Error(e, where(o));
	}
	const expected = range ? range.end - range.start : o.size;
	if (size !== expected) {
		throw new FtguardError(
			"IO_ERROR",
			range
				? `${where(o)}: bytes ${range.start}-${range.end - 1} came back as ${size} bytes (the object is not ${o.size} bytes as marked)`
				: `${where(o)} is ${size} bytes, ${o.size} when marked`,
		);
	}
}

/** A ranged response's "bytes a-b/total": the whole object's size, which must still be the marked one. */
function checkContentRange(o: PinnedObject, r: GetObjectCommandOutput, body: Readable | undefined): void {
	const total = /\/(\d+)$/.exec(r.ContentRange ?? "")?.[1];
	if (total === undefined || Number(total) !== o.size) {
		body?.destroy();
		throw new FtguardError(
			"IO_ERROR",
			`${where(o)}: ranged read says the object is ${total ?? "of unknown size"} bytes, ${o.size} when marked`,
		);
	}
}

/** Below this many bytes the digest is computed on the calling thread: a worker costs tens of milliseconds to start. */
const OFF_THREAD_MIN_BYTES = 64 * 1024 * 1024;

interface Hasher {
	update(chunk: Uint8Array): Promise<void> | void;
	digest(): Promise<string>;
	close(): Promise<void>;
}

/** SHA-256 for `bytes` bytes: on a worker thread for large inputs (the receiving thread keeps receiving), else here. */
function hasherFor(bytes: number, offThreadMinBytes = OFF_THREAD_MIN_BYTES): Hasher {
	if (bytes >= offThreadMinBytes) return new OffThreadHasher();
	const h = createHash("sha256");
	return {
		update: (chunk) => {
			h.update(chunk);
		},
		digest: async () => h.digest("hex"),
		close: async () => {},
	};
}

/**
 * SHA-256 of the bytes `[range.start, range.end)` of a pinned object (a shard, for signatures made with the
 * "shards" method), read as parallel ranged GETs like {@link sha256Pinned}. An empty range is the empty string's
 * digest and reads nothing.
 */
export async function sha256PinnedRange(
	s3: S3Client,
	o: PinnedObject,
	range: { start: number; end: number },
	options: RangedReadOptions = {},
): Promise<string> {
	if (!(Number.isSafeInteger(range.start) && Number.isSafeInteger(range.end))) {
		throw new FtguardError("USAGE", `${where(o)}: bad byte range ${range.start}-${range.end}`);
	}
	if (range.start < 0 || range.end < range.start || range.end > o.size) {
		throw new FtguardError("USAGE", `${where(o)}: bytes ${range.start}-${range.end} are outside its ${o.size} bytes`);
	}
	return hashRange(
		s3,
		o,
		range,
		options.partBytes ?? DEFAULT_PART_BYTES,
		options.inFlight ?? DEFAULT_IN_FLIGHT,
		options.offThreadMinBytes,
	);
}

async function hashRange(
	s3: S3Client,
	o: PinnedObject,
	range: { start: number; end: number },
	partBytes: number,
	inFlight: number,
	offThreadMinBytes?: number,
): Promise<string> {
	// a part never longer than the range (Infinity: the whole range in one GET)
	const span = range.end - range.start;
	const part = Math.max(1, Math.min(partBytes, span));
	const parts = Math.ceil(span / part);
	if (parts === 1) {
		// one part: streamed through the hasher as it arrives, never held whole (a shard may be 1 GB)
		const h = hasherFor(span, offThreadMinBytes);
		try {
			await streamPinned(s3, o, range, h);
			return await h.digest();
		} finally {
			await h.close();
		}
	}
	const abort = new AbortController();
	const pending: Promise<Uint8Array[]>[] = [];
	const request = (i: number) => {
		const start = range.start + i * part;
		const p = readPinnedRange(s3, o, { start, end: Math.min(range.end, start + part) }, abort.signal);
		// settled below in order; a part that fails after an earlier failure must not surface as unhandled
		p.catch(() => {});
		pending[i] = p;
	};
	for (let i = 0; i < Math.min(inFlight, parts); i++) request(i);
	const h = hasherFor(range.end - range.start, offThreadMinBytes);
	try {
		for (let i = 0; i < parts; i++) {
			const chunks = await (pending[i] as Promise<Uint8Array[]>);
			pending[i] = Promise.resolve([]); // let the part's memory go
			if (i + inFlight < parts) request(i + inFlight);
			for (const c of chunks) await h.update(c);
		}
		return await h.digest();
	} finally {
		// on any failure, stop the requests still running (no-op once all parts are in) and the hashing worker
		abort.abort();
		await h.close();
	}
}

/** Reads a whole pinned object of at most `maxBytes` (bundles, configs). */
export async function readPinnedBytes(s3: S3Client, o: PinnedObject, maxBytes: number): Promise<Uint8Array> {
	if (o.size > maxBytes) throw new FtguardError("DATA_INVALID", `${where(o)} is ${o.size} bytes (limit ${maxBytes})`);
	const r = await getPinned(s3, o);
	if (!r.Body) throw new FtguardError("IO_ERROR", `${where(o)}: empty response body`);
	const bytes = await r.Body.transformToByteArray();
	if (bytes.length > maxBytes) throw new FtguardError("DATA_INVALID", `${where(o)} is over ${maxBytes} bytes`);
	return bytes;
}

/** The marker's bytes (its pinned version), or undefined when it is not among the marked objects. */
export async function markerBytes(
	s3: S3Client,
	state: Pick<ScanState, "bucket" | "marker"> & { objects: ScanObject[] },
): Promise<Uint8Array | undefined> {
	const marker = state.objects.find((o) => o.key === state.marker.key);
	return marker ? readPinnedBytes(s3, { bucket: state.bucket, ...marker }, MAX_BUNDLE_BYTES) : undefined;
}
