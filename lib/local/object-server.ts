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
