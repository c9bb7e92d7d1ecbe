/**
 * The local pipeline's object store: s3rver (a real S3-compatible HTTP server)
 * on 127.0.0.1, with the buckets created, and its in-process `event` records
 * turned into the EventBridge "Object Created" shape that S3 sends in AWS
 * (s3rver has no bucket notifications and no versioning: REFERENCE.md).
 */
import { EventEmitter } from "node:events";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Transform, type TransformCallback } from "node:stream";
import { S3Client } from "@aws-sdk/client-s3";
import S3rver from "s3rver";

/** s3rver accepts any credentials; clients must still sign requests with something. */
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

export interface ObjectServerOptions {
	/** @default 0 (any free port) */
	port?: number;
	/** where objects are kept; @default a temporary directory, removed on close */
	dataDir?: string;
	buckets: readonly string[];
}

export interface ObjectServer {
	/** http://127.0.0.1:<port>; path-style addressing */
	endpoint: string;
	port: number;
	dataDir: string;
	/** a client for the server (path-style, dummy credentials) */
	client: S3Client;
	/** every object creation in any bucket, as EventBridge would deliver it */
	onObjectCreated(listener: (event: ObjectCreatedEvent) => void): () => void;
	close(): Promise<void>;
}

interface S3rverRecord {
	eventName: string;
	eventTime: string;
	s3: { bucket: { name: string }; object: { key: string; size?: number; eTag?: string; sequencer?: string } };
}

/** The EventBridge form of one s3rver record, or undefined for a removal. */
export function toObjectCreated(record: S3rverRecord): ObjectCreatedEvent | undefined {
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
				...(object.eTag ? { etag: object.eTag.replaceAll('"', "") } : {}),
				...(object.sequencer ? { sequencer: object.sequencer } : {}),
			},
			reason: `${record.eventName.slice("ObjectCreated:".length)}Object`,
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

export async function startObjectServer(options: ObjectServerOptions): Promise<ObjectServer> {
	const temporary = options.dataDir === undefined;
	const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "ftguard-s3-"));
	mkdirSync(dataDir, { recursive: true });
	const server = new S3rver({
		address: "127.0.0.1",
		port: options.port ?? 0,
		silent: true,
		directory: dataDir,
		configureBuckets: options.buckets.map((name) => ({ name, configs: [] })),
	});
	(server as unknown as { middleware: unknown[] }).middleware.unshift(decodeAwsChunked);
	const addr = (await server.run()) as AddressInfo;
	const endpoint = `http://127.0.0.1:${addr.port}`;
	const client = new S3Client({ endpoint, forcePathStyle: true, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
	const events = new EventEmitter();
	server.on("event", (e: { Records?: S3rverRecord[] }) => {
		for (const r of e.Records ?? []) {
			const created = toObjectCreated(r);
			if (created) events.emit("created", created);
		}
	});
	return {
		endpoint,
		port: addr.port,
		dataDir,
		client,
		onObjectCreated(listener) {
			events.on("created", listener);
			return () => events.off("created", listener);
		},
		async close() {
			events.removeAllListeners();
			client.destroy();
			await server.close();
			if (temporary) rmSync(dataDir, { recursive: true, force: true });
		},
	};
}
