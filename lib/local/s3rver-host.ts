/**
 * s3rver itself, hosted in whichever thread calls {@link hostS3rver}: the local
 * pipeline runs it in a worker thread (lib/local/object-server-worker.ts) so that
 * serving objects never shares a thread with the handlers that read them, as S3
 * never shares a CPU with a Lambda. Also: the aws-chunked decoder s3rver lacks,
 * and the EventBridge form of its `event` records (s3rver has no bucket
 * notifications and no versioning: REFERENCE.md).
 */
import { mkdirSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { Transform, type TransformCallback } from "node:stream";
import S3rver from "s3rver";

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

export interface S3rverHostOptions {
	/** 0: any free port */
	port: number;
	dataDir: string;
	buckets: readonly string[];
}

export interface S3rverHost {
	port: number;
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
	(server as unknown as { middleware: unknown[] }).middleware.unshift(decodeAwsChunked);
	server.on("event", (e: { Records?: S3rverRecord[] }) => {
		for (const r of e.Records ?? []) {
			const created = toObjectCreated(r);
			if (created) onCreated(created);
		}
	});
	const addr = (await server.run()) as AddressInfo;
	return {
		port: addr.port,
		async close() {
			await server.close();
		},
	};
}
