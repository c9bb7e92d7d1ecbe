/**
 * Verdict tags bound by ETag on the local server, which has no versioning: a tag
 * write that names the ETag it was meant for (lib/aws/tagging.ts) lands only on
 * that content — also when an overwrite is in flight as the write arrives (the
 * check and the write are atomic against it: lib/local/s3rver-host.ts).
 */
import { PassThrough } from "node:stream";
import {
	GetObjectTaggingCommand,
	HeadObjectCommand,
	PutObjectCommand,
	PutObjectTaggingCommand,
} from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tagVerdict } from "../../lib/aws/record";
import { putFtguardTags } from "../../lib/aws/tagging";
import { STATUS_TAG, TAG_IF_MATCH_HEADER } from "../../lib/core/pipeline/names";
import type { ScanState } from "../../lib/core/pipeline/types";
import { type ObjectServer, startObjectServer } from "../../lib/local/object-server";

const BUCKET = "checkpoints";
let server: ObjectServer;

beforeAll(async () => {
	server = await startObjectServer({ buckets: [BUCKET] });
});
afterAll(async () => {
	await server?.close();
});

async function put(key: string, body: string): Promise<string> {
	return (await server.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }))).ETag as string;
}

async function tags(key: string): Promise<Record<string, string>> {
	const r = await server.client.send(new GetObjectTaggingCommand({ Bucket: BUCKET, Key: key }));
	return Object.fromEntries((r.TagSet ?? []).map((t) => [t.Key, t.Value]));
}

describe("a tag write bound by ETag (no versioning)", () => {
	it("is applied while the object has that ETag, refused (false, nothing written) once it has another", async () => {
		const etag = await put("a/model.bin", "scanned bytes");
		expect(
			await putFtguardTags(server.client, { bucket: BUCKET, key: "a/model.bin", etag }, { [STATUS_TAG]: "SCANNING" }),
		).toBe(true);
		expect((await tags("a/model.bin"))[STATUS_TAG]).toBe("SCANNING");

		await put("a/model.bin", "other bytes");
		const ok = await putFtguardTags(
			server.client,
			{ bucket: BUCKET, key: "a/model.bin", etag },
			{ [STATUS_TAG]: "PROMOTABLE" },
			{ baseDelayMs: 1 },
		);
		expect(ok).toBe(false);
		expect(await tags("a/model.bin")).toEqual({});
	});

	it("the server answers a mismatched condition with S3's 412 PreconditionFailed", async () => {
		await put("b/model.bin", "bytes");
		const command = new PutObjectTaggingCommand({
			Bucket: BUCKET,
			Key: "b/model.bin",
			Tagging: { TagSet: [{ Key: STATUS_TAG, Value: "PROMOTABLE" }] },
		});
		command.middlewareStack.add(
			(next) => (args) => {
				(args.request as { headers: Record<string, string> }).headers[TAG_IF_MATCH_HEADER] = '"0123"';
				return next(args);
			},
			{ step: "build" },
		);
		await expect(server.client.send(command)).rejects.toMatchObject({
			name: "PreconditionFailed",
			$metadata: { httpStatusCode: 412 },
		});
		expect(await tags("b/model.bin")).toEqual({});
	});

	it("waits for an overwrite in flight and is then refused: the new content never carries the old verdict", async () => {
		const key = "c/model.bin";
		const etag = await put(key, "x".repeat(1000));
		const body = new PassThrough();
		const overwrite = server.client.send(
			new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body, ContentLength: 2000 }),
		);
		body.write("y".repeat(1000)); // half of the new object: the PUT is in progress
		await new Promise((r) => setTimeout(r, 300));
		let settled = false;
		const tagging = putFtguardTags(
			server.client,
			{ bucket: BUCKET, key, etag },
			{ [STATUS_TAG]: "PROMOTABLE" },
		).finally(() => {
			settled = true;
		});
		await new Promise((r) => setTimeout(r, 300));
		expect(settled).toBe(false); // held until the overwrite is done
		body.end("y".repeat(1000));
		await overwrite;
		expect(await tagging).toBe(false);
		expect(await tags(key)).toEqual({});
		const now = await server.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
		expect(now.ContentLength).toBe(2000);
	});

	it("record's tagVerdict reports an object overwritten after its re-check as not tagged", async () => {
		const key = "d/model.bin";
		const etag = await put(key, "scanned");
		await put(key, "replaced after the re-check");
		const state = { bucket: BUCKET, scanId: "scan-1" } as ScanState;
		const [r] = await tagVerdict(
			server.client,
			state,
			[{ object: { key, etag, size: 7 }, changed: undefined }],
			"PROMOTABLE",
		);
		expect(r).toMatchObject({ key, tagged: false, skipped: "changed while tagged" });
		expect(await tags(key)).toEqual({});
	});
});
