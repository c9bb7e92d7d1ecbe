/**
 * The local pipeline end to end: the state machine CDK synthesizes, executed
 * in-process with the real Lambda handlers against s3rver on loopback. Uploads
 * go through the S3 API; the server's events start the scans, as EventBridge
 * does in AWS.
 */
import { createReadStream, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import {
	CompleteMultipartUploadCommand,
	CopyObjectCommand,
	CreateMultipartUploadCommand,
	DeleteObjectCommand,
	GetObjectCommand,
	GetObjectTaggingCommand,
	HeadObjectCommand,
	PutObjectCommand,
	PutObjectTaggingCommand,
	UploadPartCommand,
	UploadPartCopyCommand,
} from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildManifest } from "../../lib/core/integrity/manifest";
import { verifyProvenanceBundle } from "../../lib/core/provenance/verify";
import { statesOf } from "../../lib/local/definition";
import { AwsChunkedDecoder, type ObjectCreatedEvent, toObjectCreated } from "../../lib/local/object-server";
import type { LocalPipeline } from "../../lib/local/pipeline";
import { REPO } from "../helpers/cli";
import { startQuietPipeline } from "../helpers/pipeline";

const EXAMPLES = join(REPO, "examples");
const BUCKET = "checkpoints";

let pipeline: LocalPipeline;
beforeAll(async () => {
	pipeline = await startQuietPipeline({
		policy: {
			signers: [{ kind: "public-key", pem: readFileSync(join(EXAMPLES, "keys/signer.pub.pem"), "utf8") }],
			// the example checkpoint is safetensors with no ONNX export: promotable only under jobs/j1/
			backdoor: {
				waivers: [{ family: "TinyClassifier", prefix: "jobs/j1/", reason: "test: no ONNX export", approvedBy: "ci" }],
			},
		},
	});
}, 60_000);
afterAll(async () => pipeline?.close());

async function put(key: string, body: Uint8Array | string): Promise<void> {
	await pipeline.server.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
}

/** Uploads a model directory, its marker (model.sig) last, and returns the marker key. */
async function upload(dir: string, prefix: string): Promise<string> {
	for (const n of readdirSync(dir).filter((n) => n !== "model.sig"))
		await put(`${prefix}${n}`, readFileSync(join(dir, n)));
	await put(`${prefix}model.sig`, readFileSync(join(dir, "model.sig")));
	return `${prefix}model.sig`;
}

/** A multipart upload of one part (the last part may be under 5 MiB), created with `tagging` if given. */
async function multipartUpload(Key: string, Body: Readable | string, ContentLength: number, tagging?: string) {
	const s3 = pipeline.server.client;
	const { UploadId } = await s3.send(
		new CreateMultipartUploadCommand({ Bucket: BUCKET, Key, ...(tagging ? { Tagging: tagging } : {}) }),
	);
	const part = await s3.send(
		new UploadPartCommand({ Bucket: BUCKET, Key, UploadId, PartNumber: 1, Body, ContentLength }),
	);
	await s3.send(
		new CompleteMultipartUploadCommand({
			Bucket: BUCKET,
			Key,
			UploadId,
			MultipartUpload: { Parts: [{ ETag: part.ETag, PartNumber: 1 }] },
		}),
	);
}

async function tagsOf(key: string, bucket = BUCKET): Promise<Record<string, string>> {
	const r = await pipeline.server.client.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: key }));
	return Object.fromEntries((r.TagSet ?? []).map((t) => [t.Key, t.Value]));
}

describe("the local pipeline", () => {
	it("reads the definition from the synthesized stack and maps every Task to a local runner", () => {
		const { asl, tasks } = pipeline.definition;
		expect(asl.StartAt).toBe("Mark");
		expect(tasks).toMatchObject({
			Mark: { kind: "lambda", step: "mark" },
			Manifest: { kind: "lambda", step: "manifest" },
			Signature: { kind: "lambda", step: "signature" },
			Files: { kind: "lambda", step: "files" },
			Decide: { kind: "lambda", step: "decide" },
			Record: { kind: "lambda", step: "record" },
			RecordQuarantine: { kind: "lambda", step: "record" },
			BackdoorScan: { kind: "batch" },
		});
		const scan = statesOf(asl).BackdoorScan as unknown as {
			Parameters: { ContainerOverrides: { Environment: unknown[] } };
		};
		expect(scan.Parameters.ContainerOverrides.Environment).toContainEqual({
			Name: "FTGUARD_OUTPUT_PREFIX",
			"Value.$": "States.Format('s3://{}/scans/{}/backdoor/{}', 'reports', $.scanId, $.index)",
		});
	});

	it("promotes the signed clean checkpoint: every object tagged PROMOTABLE with the root digest", async () => {
		const prefix = "jobs/j1/ckpt-1/";
		const marker = await upload(join(EXAMPLES, "checkpoint"), prefix);
		const v = await pipeline.waitForVerdict(marker, 60_000);
		expect(v).toMatchObject({ status: "PROMOTABLE", reasons: [], execution: "SUCCEEDED" });
		expect(v.notes).toEqual([
			"backdoor: not scanned: no ONNX export to scan for backdoors; waived for family TinyClassifier under prefix jobs/j1/ (test: no ONNX export; approved by ci)",
		]);
		const local = await buildManifest(join(EXAMPLES, "checkpoint"), { ignorePaths: ["model.sig"] });
		for (const n of ["config.json", "model.safetensors", "model.sig", "tokenizer_config.json"]) {
			expect(await tagsOf(`${prefix}${n}`)).toEqual({
				"ftguard:status": "PROMOTABLE",
				"ftguard:scan-id": v.scanId,
				"ftguard:digest": `sha256:${local.root}`,
				"ftguard:provenance": `scans/${v.scanId}/provenance.sigstore.json`,
			});
		}
		// what a deployment system does instead of trusting the tag: the record the tag names, checked with the
		// pipeline's public key against the bytes
		const record = await pipeline.server.client.send(
			new GetObjectCommand({
				Bucket: pipeline.definition.buckets.reports,
				Key: `scans/${v.scanId}/provenance.sigstore.json`,
			}),
		);
		const bundle = await record.Body?.transformToByteArray();
		const publicKey = readFileSync(pipeline.provenance?.publicKeyFile as string, "utf8");
		const verified = verifyProvenanceBundle(bundle as Uint8Array, publicKey, "provenance");
		expect(verified.root).toBe(local.root);
		expect(verified.statement.predicate.verdict.status).toBe("PROMOTABLE");
	}, 60_000);

	it("quarantines the same checkpoint where no waiver covers it: not scanned for backdoors", async () => {
		const prefix = "jobs/unscanned/ckpt-1/";
		const v = await pipeline.waitForVerdict(await upload(join(EXAMPLES, "checkpoint"), prefix), 60_000);
		expect(v).toMatchObject({
			status: "QUARANTINED",
			reasons: ["not scanned: no ONNX export to scan for backdoors"],
			execution: "SUCCEEDED",
		});
		expect(v).not.toHaveProperty("notes");
		expect((await tagsOf(`${prefix}model.safetensors`))["ftguard:status"]).toBe("QUARANTINED");
	}, 60_000);

	it("quarantines the tampered copy with the signature's reason", async () => {
		const prefix = "jobs/j1/ckpt-tampered/";
		const marker = await upload(join(EXAMPLES, "checkpoint-tampered"), prefix);
		const v = await pipeline.waitForVerdict(marker, 60_000);
		expect(v.status).toBe("QUARANTINED");
		expect(v.reasons.join("\n")).toMatch(/^signature: DIGEST_MISMATCH .*model\.safetensors/m);
		expect((await tagsOf(`${prefix}model.safetensors`))["ftguard:status"]).toBe("QUARANTINED");
	}, 60_000);

	it("scans a checkpoint whose files and marker were uploaded in multipart uploads (the CLIs' way for big files)", async () => {
		const prefix = "jobs/j1/ckpt-multipart/";
		const dir = join(EXAMPLES, "checkpoint");
		for (const n of [...readdirSync(dir).filter((n) => n !== "model.sig"), "model.sig"]) {
			const Key = `${prefix}${n}`;
			// streamed: aws-chunked framing as the SDKs send it
			await multipartUpload(Key, createReadStream(join(dir, n)), statSync(join(dir, n)).size);
		}
		const v = await pipeline.waitForVerdict(`${prefix}model.sig`, 60_000);
		expect(v).toMatchObject({ status: "PROMOTABLE", reasons: [] });
		expect((await tagsOf(`${prefix}model.safetensors`))["ftguard:status"]).toBe("PROMOTABLE");
	}, 60_000);

	it("un-promotes an overwritten file; the same marker uploaded again rescans the artefact", async () => {
		const prefix = "jobs/j1/ckpt-overwritten/";
		const dir = join(EXAMPLES, "checkpoint");
		const marker = await upload(dir, prefix);
		const first = await pipeline.waitForVerdict(marker, 60_000);
		expect(first.status).toBe("PROMOTABLE");
		// other bytes under a PROMOTABLE key: a new object, untagged (unreadable in AWS), as S3 does
		const weights = readFileSync(join(dir, "model.safetensors"));
		const changed = Buffer.from(weights);
		changed.writeUInt8(changed.readUInt8(changed.length - 1) ^ 1, changed.length - 1);
		await put(`${prefix}model.safetensors`, changed);
		expect(await tagsOf(`${prefix}model.safetensors`)).toEqual({});
		// the same marker bytes again (same ETag): not taken for a duplicate event, scanned, and the change found
		await put(marker, readFileSync(join(dir, "model.sig")));
		const second = await pipeline.waitForVerdict(marker, 60_000, [first.scanId]);
		expect(second.scanId).not.toBe(first.scanId);
		expect(second.status).toBe("QUARANTINED");
		expect(second.reasons.join("\n")).toMatch(/DIGEST_MISMATCH/);
		expect((await tagsOf(`${prefix}model.safetensors`))["ftguard:status"]).toBe("QUARANTINED");
	}, 60_000);

	it("starts nothing for objects that are not commit markers", async () => {
		const before = pipeline.executionCount;
		await put("jobs/j9/loose/config.json", "{}");
		await new Promise((r) => setTimeout(r, 200));
		expect(pipeline.executionCount).toBe(before);
	});
});

describe("the local object server", () => {
	it("stores a streamed upload's bytes, not its aws-chunked framing (the SDKs' and CLI's default for streams)", async () => {
		const file = join(EXAMPLES, "checkpoint/config.json");
		const key = "jobs/streamed/config.json";
		// a stream body: the SDK sends aws-chunked with a CRC32 trailer (flexible checksums)
		await pipeline.server.client.send(
			new PutObjectCommand({
				Bucket: BUCKET,
				Key: key,
				Body: createReadStream(file),
				ContentLength: statSync(file).size,
			}),
		);
		const got = await pipeline.server.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
		expect(Buffer.from((await got.Body?.transformToByteArray()) ?? [])).toEqual(readFileSync(file));
	});

	it("gives a new object only the tags sent with it, as S3 does (s3rver kept the old key's tags)", async () => {
		const s3 = pipeline.server.client;
		const key = "loose/tagged.bin";
		const tag = (Key: string, value: string) =>
			s3.send(
				new PutObjectTaggingCommand({
					Bucket: BUCKET,
					Key,
					Tagging: { TagSet: [{ Key: "ftguard:status", Value: value }] },
				}),
			);
		await put(key, "one");
		await tag(key, "PROMOTABLE");
		await put(key, "two");
		expect(await tagsOf(key)).toEqual({});
		await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: "three", Tagging: "team=ml&x=a%26b" }));
		expect(await tagsOf(key)).toEqual({ team: "ml", x: "a&b" });
		await tag(key, "PROMOTABLE");
		// CopyObject: the source's tags (directive COPY, the default) or the request's (REPLACE) — into another
		// bucket: nothing may be copied into the checkpoint bucket (its policy in AWS; test below)
		const REPORTS = pipeline.definition.buckets.reports;
		await s3.send(new CopyObjectCommand({ Bucket: REPORTS, Key: "loose/copy.bin", CopySource: `${BUCKET}/${key}` }));
		expect(await tagsOf("loose/copy.bin", REPORTS)).toEqual({ "ftguard:status": "PROMOTABLE" });
		await s3.send(
			new CopyObjectCommand({
				Bucket: REPORTS,
				Key: "loose/copy.bin",
				CopySource: `${BUCKET}/${key}`,
				TaggingDirective: "REPLACE",
				Tagging: "a=1",
			}),
		);
		expect(await tagsOf("loose/copy.bin", REPORTS)).toEqual({ a: "1" });
		// deleted, then created again: untagged
		await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
		await put(key, "four");
		expect(await tagsOf(key)).toEqual({});
	});

	it("refuses, as the checkpoint bucket's policy does in AWS, uploads carrying ftguard:* tags and copies into it", async () => {
		const s3 = pipeline.server.client;
		const denied = { name: "AccessDenied", $metadata: { httpStatusCode: 403 } };
		await expect(
			s3.send(
				new PutObjectCommand({
					Bucket: BUCKET,
					Key: "loose/self.bin",
					Body: "x",
					Tagging: "ftguard%3Astatus=PROMOTABLE",
				}),
			),
		).rejects.toMatchObject(denied);
		await expect(
			s3.send(
				new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: "loose/self.bin", Tagging: "a=1&ftguard%3Ax=y" }),
			),
		).rejects.toMatchObject(denied);
		await put("loose/source.bin", "promoted bytes");
		await s3.send(
			new PutObjectTaggingCommand({
				Bucket: BUCKET,
				Key: "loose/source.bin",
				Tagging: { TagSet: [{ Key: "ftguard:status", Value: "PROMOTABLE" }] },
			}),
		);
		await expect(
			s3.send(
				new CopyObjectCommand({ Bucket: BUCKET, Key: "loose/copied.bin", CopySource: `${BUCKET}/loose/source.bin` }),
			),
		).rejects.toMatchObject(denied);
		const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: "loose/copied.bin" }));
		await expect(
			s3.send(
				new UploadPartCopyCommand({
					Bucket: BUCKET,
					Key: "loose/copied.bin",
					UploadId,
					PartNumber: 1,
					CopySource: `${BUCKET}/loose/source.bin`,
				}),
			),
		).rejects.toMatchObject(denied);
		await expect(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "loose/self.bin" }))).rejects.toMatchObject({
			$metadata: { httpStatusCode: 404 },
		});
		await expect(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "loose/copied.bin" }))).rejects.toMatchObject({
			$metadata: { httpStatusCode: 404 },
		});
	});

	it("completes a multipart upload with the tags it was created with; its event's reason is CompleteMultipartUpload", async () => {
		const events: ObjectCreatedEvent[] = [];
		const off = pipeline.server.onObjectCreated((e) => events.push(e));
		try {
			for (const [Key, Tagging] of [
				["loose/mp-tagged.bin", "team=ml&x=a%26b"],
				["loose/mp-plain.bin", undefined],
			] as const) {
				await multipartUpload(Key, "bytes", 5, Tagging);
			}
			await put("loose/plain-put.bin", "x");
			expect(await tagsOf("loose/mp-tagged.bin")).toEqual({ team: "ml", x: "a&b" });
			expect(await tagsOf("loose/mp-plain.bin")).toEqual({});
			// the events come from the server's thread: wait for all three
			for (let i = 0; i < 100 && events.length < 3; i++) await new Promise((r) => setTimeout(r, 20));
			expect(Object.fromEntries(events.map((e) => [e.detail.object.key, e.detail.reason]))).toEqual({
				"loose/mp-tagged.bin": "CompleteMultipartUpload",
				"loose/mp-plain.bin": "CompleteMultipartUpload",
				"loose/plain-put.bin": "PutObject",
			});
		} finally {
			off();
		}
	});

	it("gives two creations in the same millisecond distinct, ordered sequencers (s3rver's is the time in ms)", () => {
		const record = {
			eventName: "ObjectCreated:Put",
			eventTime: new Date().toISOString(),
			s3: { bucket: { name: BUCKET }, object: { key: "a/model.sig", eTag: '"abc"', sequencer: "19ADD5E5C00" } },
		};
		const a = toObjectCreated(record)?.detail.object.sequencer ?? "";
		const b = toObjectCreated(record)?.detail.object.sequencer ?? "";
		expect(a).not.toBe(b);
		expect(a.startsWith("19ADD5E5C00") && b.startsWith("19ADD5E5C00")).toBe(true);
		expect(a < b).toBe(true);
	});

	it("decodes aws-chunked across arbitrary read boundaries and refuses a truncated body", async () => {
		const body = Buffer.from(
			"5;chunk-signature=ab\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n",
		);
		for (const split of [1, 3, 7, body.length]) {
			const d = new AwsChunkedDecoder();
			const out: Buffer[] = [];
			d.on("data", (c: Buffer) => out.push(c));
			for (let i = 0; i < body.length; i += split) d.write(body.subarray(i, i + split));
			d.end();
			await new Promise((r) => d.on("end", r));
			expect(Buffer.concat(out).toString()).toBe("hello world");
		}
		const truncated = new AwsChunkedDecoder();
		const failed = new Promise((resolve) => truncated.on("error", resolve));
		truncated.resume();
		truncated.end(Buffer.from("5\r\nhel"));
		expect(String(await failed)).toMatch(/ended before its last chunk/);
	});
});
