/**
 * A real S3-compatible server (s3rver) on loopback for tests, with a client
 * pointed at it. s3rver keeps objects in a temp directory and has no versioning,
 * so objects carry ETags but no VersionId.
 */
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import S3rver from "s3rver";
import { listKeys } from "../../lib/aws/objects";
import { LOCAL_CREDENTIALS } from "../../lib/local/s3rver-host";

export interface LocalS3 {
	endpoint: string;
	client: S3Client;
	put(bucket: string, key: string, body: Uint8Array | string): Promise<void>;
	get(bucket: string, key: string): Promise<Buffer>;
	list(bucket: string, prefix?: string): Promise<string[]>;
	close(): Promise<void>;
}

/** s3rver's one key pair (lib/local/s3rver-host.ts). */
export const TEST_CREDENTIALS = { ...LOCAL_CREDENTIALS };

/**
 * Points the Lambda handlers of this process (lib/aws/runtime.ts) at `s3`, as the local pipeline does: its
 * endpoint and key pair, the region, the report bucket, Powertools logging silenced; `extra` added on top.
 */
export function useForHandlers(s3: LocalS3, reportBucket: string, extra: Record<string, string> = {}): void {
	Object.assign(process.env, {
		FTGUARD_S3_ENDPOINT: s3.endpoint,
		AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId,
		AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey,
		AWS_REGION: "us-east-1",
		FTGUARD_REPORT_BUCKET: reportBucket,
		POWERTOOLS_LOG_LEVEL: "SILENT",
		...extra,
	});
}

export async function startLocalS3(buckets: string[]): Promise<LocalS3> {
	const dir = mkdtempSync(join(tmpdir(), "ftguard-s3-"));
	const server = new S3rver({
		address: "127.0.0.1",
		port: 0,
		silent: true,
		directory: dir,
		configureBuckets: buckets.map((name) => ({ name, configs: [] })),
	});
	const addr = (await server.run()) as AddressInfo;
	const endpoint = `http://127.0.0.1:${addr.port}`;
	const client = new S3Client({ endpoint, forcePathStyle: true, region: "us-east-1", credentials: TEST_CREDENTIALS });
	return {
		endpoint,
		client,
		async put(bucket, key, body) {
			await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
		},
		async get(bucket, key) {
			const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
			return Buffer.from((await r.Body?.transformToByteArray()) ?? []);
		},
		async list(bucket, prefix) {
			return listKeys(client, bucket, prefix ?? "", Number.POSITIVE_INFINITY);
		},
		async close() {
			client.destroy();
			await server.close();
			rmSync(dir, { recursive: true, force: true });
		},
	};
}
