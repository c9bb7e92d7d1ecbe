/**
 * s3rver itself, hosted in whichever thread calls {@link hostS3rver}: the local
 * pipeline runs it in a worker thread (lib/local/object-server-worker.ts) so that
 * serving objects never shares a thread with the handlers that read them, as S3
 * never shares a CPU with a Lambda. Also: the aws-chunked decoder s3rver lacks,
 * and the EventBridge form of its `event` records (s3rver has no bucket
 * notifications and no versioning).
 */
import { createReadStream, mkdirSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { Transform, type TransformCallback } from "node:stream";
import S3rver from "s3rver";
import { normalizeEtag } from "../core/pipeline/artefact";
import { FTGUARD_TAG_PATTERN, TAG_IF_MATCH_HEADER } from "../core/pipeline/names";
import { JobCredentials } from "./job-credentials";

const FTGUARD_TAG_PREFIX = FTGUARD_TAG_PATTERN.replace(/\*$/, "");

/** The only credentials s3rver accepts (its built-in account): any other access key is InvalidAccessKeyId. */
export const LOCAL_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } as const;
export const LOCAL_REGION = "us-east-1";

/** The EventBridge event S3 emits for a new object (the fields the start logic reads). */
export interface ObjectCreatedEvent {
	version: "0";
	source: "aws.s3";
	"detail-type": "Object Created";
	time: string;
	region: string;
	detail: {
		bucket: { name: string };
		object: { key: string; size?: number; etag?: string; sequencer?: string };
		reason: string;
	};
}

interface S3rverRecord {
	eventName: string;
	eventTime: string;
	s3: { bucket: { name: string }; object: { key: string; size?: number; eTag?: string; sequencer?: string } };
}

let eventCount = 0;
/**
 * s3rver's sequencer is the time in hex milliseconds: two writes in one millisecond share it, and without
 * versioning the scan id is ETag + sequencer, so an identical marker uploaded twice within a millisecond would be
 * taken for one event delivered twice. S3's sequencers are unique and grow per key; a count appended keeps
 * both (the millisecond part has a fixed width of 11 hex digits until the year 2527).
 */
function uniqueSequencer(sequencer: string): string {
	eventCount += 1;
	return `${sequencer}${eventCount.toString(16).toUpperCase().padStart(8, "0")}`;
}

/** EventBridge's `reason` for each s3rver event name (s3rver says `Post` for a completed multipart upload too). */
const REASONS: Record<string, string> = { Put: "PutObject", Copy: "CopyObject", Post: "POST Object" };

/**
 * The EventBridge form of one s3rver record, or undefined for a removal. `multipart`: the record is a multipart
 * upload's completion (s3rver records it as a POST; only the request tells them apart).
 */
export function toObjectCreated(record: S3rverRecord, multipart = false): ObjectCreatedEvent | undefined {
	if (!record.eventName.startsWith("ObjectCreated:")) return undefined;
	const { bucket, object } = record.s3;
	return {
		version: "0",
		source: "aws.s3",
		"detail-type": "Object Created",
		time: record.eventTime,
		region: LOCAL_REGION,
		detail: {
			bucket: { name: bucket.name },
			object: {
				key: object.key,
				...(object.size !== undefined ? { size: object.size } : {}),
				...(object.eTag ? { etag: normalizeEtag(object.eTag) } : {}),
				...(object.sequencer ? { sequencer: uniqueSequencer(object.sequencer) } : {}),
			},
			reason: multipart
				? "CompleteMultipartUpload"
				: (REASONS[record.eventName.slice("ObjectCreated:".length)] ?? "PutObject"),
		},
	};
}

/**
 * Decodes an `aws-chunked` request body (`<hex size>[;chunk-signature=…]\r\n<data>\r\n` … `0\r\n<trailers>\r\n`):
 * what the SDKs and the AWS CLI send for streaming uploads (flexible checksums in a trailer, SigV4 streaming).
 * s3rver would store the framing as the object's bytes.
 */
export class AwsChunkedDecoder extends Transform {
	private buffer: Buffer = Buffer.alloc(0);
	private remaining = -1; // bytes of the current chunk's data still to pass on; -1: expecting a size line
	private done = false;

	override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
		this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
		try {
			this.drain();
			callback();
		} catch (e) {
			callback(e as Error);
		}
	}

	override _flush(callback: TransformCallback): void {
		callback(this.done ? null : new Error("aws-chunked body ended before its last chunk"));
	}

	private drain(): void {
		while (!this.done) {
			if (this.remaining > 0) {
				const n = Math.min(this.remaining, this.buffer.length);
				if (n === 0) return;
				this.push(this.buffer.subarray(0, n));
				this.buffer = this.buffer.subarray(n);
				this.remaining -= n;
				continue;
			}
			if (this.remaining === 0) {
				if (this.buffer.length < 2) return;
				this.buffer = this.buffer.subarray(2); // the CRLF after a chunk's data
				this.remaining = -1;
				continue;
			}
			const eol = this.buffer.indexOf("\r\n");
			if (eol < 0) {
				if (this.buffer.length > 4096) throw new Error("aws-chunked: chunk header too long");
				return;
			}
			const size = Number.parseInt(this.buffer.subarray(0, eol).toString("latin1").split(";")[0] ?? "", 16);
			if (!Number.isSafeInteger(size) || size < 0) throw new Error("aws-chunked: bad chunk size");
			this.buffer = this.buffer.subarray(eol + 2);
			if (size === 0) {
				// trailers (x-amz-checksum-…) follow; they are not part of the object
				this.done = true;
				return;
			}
			this.remaining = size;
		}
	}
}

/** Koa middleware (first in s3rver's chain): aws-chunked uploads reach s3rver as their plain bytes. */
function decodeAwsChunked(ctx: KoaContext, next: () => Promise<unknown>): Promise<unknown> {
	const encoding = String(ctx.headers["content-encoding"] ?? "");
	const sha = String(ctx.headers["x-amz-content-sha256"] ?? "");
	if (encoding.includes("aws-chunked") || sha.startsWith("STREAMING-")) {
		const decoded = ctx.req.pipe(new AwsChunkedDecoder());
		ctx.req.on("error", (e) => decoded.destroy(e));
		const length = ctx.headers["x-amz-decoded-content-length"];
		if (length !== undefined) ctx.headers["content-length"] = length;
		const rest = encoding
			.split(",")
			.map((e) => e.trim())
			.filter((e) => e !== "" && e !== "aws-chunked");
		if (rest.length > 0) ctx.headers["content-encoding"] = rest.join(",");
		else delete ctx.headers["content-encoding"];
		// s3rver's handlers read the body from ctx.req
		ctx.req = decoded as unknown as KoaContext["req"];
	}
	return next();
}

interface KoaContext {
	headers: Record<string, string | string[] | undefined>;
	req: NodeJS.ReadableStream & { on(event: "error", listener: (e: Error) => void): unknown };
}

/** What the tag middleware needs of s3rver's Koa context (after its router ran). */
interface KoaObjectContext extends KoaContext {
	method: string;
	status: number;
	query: Record<string, string | string[] | undefined>;
	params?: { bucket?: string; key?: string };
	body?: unknown;
	store: {
		getSubresource(bucket: string, key: string, type: "tagging"): Promise<{ toXML(): string } | null>;
		putSubresource(
			bucket: string,
			key: string,
			resource: { type: string; toXML(indent?: number): string },
		): Promise<void>;
		deleteSubresource(bucket: string, key: string, type: "tagging"): Promise<void>;
	};
}

const xmlEscape = (v: string) =>
	v.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c] ?? c);

/** A tag set as s3rver stores it (its TaggingConfiguration XML). */
function taggingResource(tags: URLSearchParams): { type: string; toXML(): string } {
	const set = [...tags].map(([k, v]) => `<Tag><Key>${xmlEscape(k)}</Key><Value>${xmlEscape(v)}</Value></Tag>`);
	return { type: "tagging", toXML: () => `<Tagging><TagSet>${set.join("")}</TagSet></Tagging>` };
}

/** A header's (or query parameter's) value: the first, when it was given more than once. */
function first(v: string | string[] | undefined): string | undefined {
	return Array.isArray(v) ? v[0] : v;
}

/** An S3 error response, as s3rver writes its own. */
function s3ErrorResponse(ctx: KoaRequestContext, status: number, code: string, message: string): void {
	ctx.status = status;
	ctx.set("Content-Type", "application/xml");
	ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error>`;
}

/**
 * Two statements of the checkpoint bucket's policy in AWS (lib/infra/checkpoint-store.ts), which s3rver has no
 * way to express: no upload may carry an `ftguard:*` tag (DenyFtguardTagsOnUpload — an object tagged PROMOTABLE by
 * whoever uploaded it), and nothing may be copied into the bucket (DenyCopyIntoCheckpoints — a copy takes the
 * source's tags, PROMOTABLE included). In AWS the verdict role is exempt; it never uploads or copies, and here
 * every caller has the same key pair, so the rules hold for all. Applied to every bucket (the first) and to
 * `noCopyInto` (the second).
 */
function uploadRules(noCopyInto: ReadonlySet<string>) {
	return (ctx: KoaRequestContext, next: () => Promise<unknown>): Promise<unknown> | undefined => {
		// CopyObject and UploadPartCopy alike (both are s3:PutObject with a copy source in AWS)
		const bucket = decodeURIComponent(ctx.path.split("/")[1] ?? "");
		if (ctx.method === "PUT" && first(ctx.headers["x-amz-copy-source"]) !== undefined && noCopyInto.has(bucket)) {
			s3ErrorResponse(ctx, 403, "AccessDenied", `nothing may be copied into ${bucket}: upload the bytes`);
			return;
		}
		const creates =
			(ctx.method === "PUT" &&
				!["tagging", "acl", "retention", "legal-hold", "partNumber"].some((q) => q in ctx.query)) ||
			(ctx.method === "POST" && "uploads" in ctx.query);
		const tags = creates ? [...new URLSearchParams(first(ctx.headers["x-amz-tagging"]) ?? "").keys()] : [];
		if (tags.some((k) => k.startsWith(FTGUARD_TAG_PREFIX))) {
			s3ErrorResponse(ctx, 403, "AccessDenied", "ftguard:* tags are written only by ftguard's verdict");
			return;
		}
		return next();
	};
}

/** Tags given when a multipart upload was created (`x-amz-tagging`), by upload id, until it completes or aborts. */
const uploadTags = new Map<string, string>();

/**
 * S3 gives every new object (every new version) only the tags sent with it — `x-amz-tagging` on PutObject, the
 * source's tags on CopyObject (directive COPY, the default) — and a deleted object loses its tags. s3rver keeps the
 * old key's tag file through an overwrite or a delete: a PROMOTABLE checkpoint overwritten with other bytes stayed
 * PROMOTABLE here. This middleware restores S3's rule after s3rver has written the object. A multipart upload
 * completes with the tags given when it was created (kept here by upload id, in memory: an upload created before
 * a restart of the server completes untagged).
 */
async function newObjectTags(ctx: KoaObjectContext, next: () => Promise<unknown>): Promise<void> {
	await next();
	const { bucket, key } = ctx.params ?? {};
	if (!bucket || !key || ctx.status >= 300) return;
	const header = (name: string) => first(ctx.headers[name]);
	const query = (name: string) => first(ctx.query[name]);
	if (ctx.method === "POST" && "uploads" in ctx.query) {
		const id = (ctx.body as { InitiateMultipartUploadResult?: { UploadId?: string } } | undefined)
			?.InitiateMultipartUploadResult?.UploadId;
		const given = header("x-amz-tagging");
		if (id !== undefined && given) uploadTags.set(id, given);
		return;
	}
	if (ctx.method === "DELETE" && "uploadId" in ctx.query) {
		uploadTags.delete(query("uploadId") ?? ""); // aborted
		return;
	}
	const sub = ["tagging", "acl", "retention", "legal-hold", "partNumber", "uploads"].some((q) => q in ctx.query);
	if (sub) return;
	if (ctx.method === "DELETE") {
		await ctx.store.deleteSubresource(bucket, key, "tagging");
		return;
	}
	const complete = ctx.method === "POST" && "uploadId" in ctx.query;
	const put = ctx.method === "PUT" && !("uploadId" in ctx.query);
	if (!complete && !put) return;
	const source = put ? header("x-amz-copy-source") : undefined;
	if (source !== undefined && (header("x-amz-tagging-directive") ?? "COPY").toUpperCase() === "COPY") {
		const path = decodeURIComponent(source.split("?")[0] ?? "").replace(/^\//, "");
		const slash = path.indexOf("/");
		const tags =
			slash > 0 ? await ctx.store.getSubresource(path.slice(0, slash), path.slice(slash + 1), "tagging") : null;
		if (tags) await ctx.store.putSubresource(bucket, key, { type: "tagging", toXML: () => tags.toXML() });
		else await ctx.store.deleteSubresource(bucket, key, "tagging");
		return;
	}
	let given = put ? header("x-amz-tagging") : undefined;
	if (complete) {
		given = uploadTags.get(query("uploadId") ?? "");
		uploadTags.delete(query("uploadId") ?? "");
	}
	if (given) await ctx.store.putSubresource(bucket, key, taggingResource(new URLSearchParams(given)));
	else await ctx.store.deleteSubresource(bucket, key, "tagging");
}

/** What the object lock needs of the Koa context (before s3rver's router ran: path-style, after its vhost rewrite). */
interface KoaRequestContext extends KoaObjectContext {
	path: string;
	set(field: string, value: string): void;
	store: KoaObjectContext["store"] & { getMetadata(bucket: string, key: string): Promise<{ etag?: string }> };
}

const objectLocks = new Map<string, Promise<void>>();
/** Objects (`/bucket/key`) whose multipart upload is completing now: s3rver's event for them says POST. */
const completing = new Set<string>();

/**
 * One write at a time per object, and S3's versioned binding of a verdict, for a server without versioning.
 *
 * In AWS a verdict tag binds to the scanned VersionId; this server has no versions, so a tag write may carry
 * `x-ftguard-if-match: <ETag>` and is applied only while the ETag still matches (else 412). Every request that changes
 * an object or its tags holds the object's lock until done, so the check and the write are atomic against overwrites.
 * (The check runs before s3rver's authentication: with its published loopback key it reveals no more than a GET.)
 */
async function oneWriterPerObject(ctx: KoaRequestContext, next: () => Promise<unknown>): Promise<unknown> {
	const write = ctx.method !== "GET" && ctx.method !== "HEAD" && !("partNumber" in ctx.query);
	const slash = ctx.path.indexOf("/", 1);
	if (!write || slash < 0 || slash === ctx.path.length - 1) return next();
	let id: string;
	try {
		id = decodeURIComponent(ctx.path);
	} catch {
		return next(); // s3rver answers a malformed path itself
	}
	const before = objectLocks.get(id) ?? Promise.resolve();
	let release = () => {};
	const mine = before.then(() => new Promise<void>((r) => (release = r)));
	objectLocks.set(id, mine);
	await before;
	try {
		const expected = ctx.headers[TAG_IF_MATCH_HEADER];
		if (ctx.method === "PUT" && "tagging" in ctx.query && typeof expected === "string") {
			const bucket = id.slice(1, id.indexOf("/", 1));
			const key = id.slice(id.indexOf("/", 1) + 1);
			// a missing object: s3rver answers NoSuchKey; one whose ETag cannot be read is refused, never tagged blind
			const now = await ctx.store.getMetadata(bucket, key).then(
				(m) => m.etag ?? "",
				(e: NodeJS.ErrnoException) => (e.code === "ENOENT" ? undefined : ""),
			);
			if (now !== undefined && normalizeEtag(now) !== normalizeEtag(expected)) {
				s3ErrorResponse(ctx, 412, "PreconditionFailed", `${TAG_IF_MATCH_HEADER}: the object's ETag is not ${expected}`);
				return;
			}
		}
		const complete = ctx.method === "POST" && "uploadId" in ctx.query;
		if (complete) completing.add(id); // one at a time per object: the lock is held
		try {
			return await next();
		} finally {
			if (complete) completing.delete(id);
		}
	} finally {
		release();
		if (objectLocks.get(id) === mine) objectLocks.delete(id);
	}
}

/** What {@link readInLargeChunks} needs of s3rver's filesystem store and the objects it returns. */
interface S3rverStore {
	getObject(bucket: string, key: string, options?: { start?: number; end?: number }): Promise<S3rverObject | null>;
	getResourcePath(bucket: string, key: string, resource: "object"): string;
}
interface S3rverObject {
	size: number;
	range?: { start: number; end: number };
	content: NodeJS.ReadableStream & { destroy(): void };
}

/**
 * s3rver streams an object's file in Node's default 64 KiB reads, which caps a GET at ~0.5 GB/s here; in 1 MiB
 * reads it serves ~1.3 GB/s, so the object server no longer sets the pace of a local multi-GiB scan. The stream
 * s3rver opened is replaced by the same byte range read in larger chunks.
 */
function readInLargeChunks(store: S3rverStore): void {
	const getObject = store.getObject.bind(store);
	store.getObject = async (bucket, key, options) => {
		const object = await getObject(bucket, key, options);
		if (!object?.content) return object; // missing, or a range that cannot be satisfied
		const { start, end } = object.range ?? { start: 0, end: Math.max(0, object.size - 1) };
		object.content.destroy();
		object.content = await new Promise((resolve, reject) => {
			const stream = createReadStream(store.getResourcePath(bucket, key, "object"), {
				start,
				end,
				highWaterMark: 1 << 20,
			})
				.on("error", reject)
				.on("open", () => resolve(stream));
		});
		return object;
	};
}

export interface S3rverHostOptions {
	/** 0: any free port */
	port: number;
	dataDir: string;
	buckets: readonly string[];
	/** buckets nothing may be copied into, as the checkpoint bucket's policy says in AWS (see {@link uploadRules}) */
	noCopyInto?: readonly string[];
}

export interface S3rverHost {
	port: number;
	/** a batch job attempt's own key pair (lib/local/job-credentials.ts) */
	grant(accessKeyId: string, secretAccessKey: string): void;
	/** resolves once nothing made with the key can still land */
	revoke(accessKeyId: string): Promise<void>;
	close(): Promise<void>;
}

/** Starts s3rver on 127.0.0.1 with the buckets, calling `onCreated` for every object creation. */
export async function hostS3rver(
	options: S3rverHostOptions,
	onCreated: (event: ObjectCreatedEvent) => void,
): Promise<S3rverHost> {
	mkdirSync(options.dataDir, { recursive: true });
	const server = new S3rver({
		address: "127.0.0.1",
		port: options.port,
		silent: true,
		directory: options.dataDir,
		configureBuckets: options.buckets.map((name) => ({ name, configs: [] })),
	});
	// the body decoder first; the object lock and S3's tag rule last before the router (after s3rver's vhost
	// rewrite: the path is path-style there), so that a whole object write, tag rule included, holds the lock
	const middleware = (server as unknown as { middleware: unknown[] }).middleware;
	const jobs = new JobCredentials();
	// the job keys' gate first: it holds a job's writes until their body is in, then checks the key again
	middleware.unshift(jobs.middleware, decodeAwsChunked);
	middleware.splice(
		middleware.length - 1,
		0,
		uploadRules(new Set(options.noCopyInto ?? [])),
		oneWriterPerObject,
		newObjectTags,
	);
	readInLargeChunks((server as unknown as { store: S3rverStore }).store);
	server.on("event", (e: { Records?: S3rverRecord[] }) => {
		for (const r of e.Records ?? []) {
			const created = toObjectCreated(r, completing.has(`/${r.s3.bucket.name}/${r.s3.object.key}`));
			if (created) onCreated(created);
		}
	});
	const addr = (await server.run()) as AddressInfo;
	return {
		port: addr.port,
		grant: (id, secret) => jobs.grant(id, secret),
		revoke: (id) => jobs.revoke(id),
		async close() {
			await server.close();
		},
	};
}
