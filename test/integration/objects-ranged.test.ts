/**
 * Hashing a large object by parallel ranged GETs (lib/aws/objects.ts sha256Pinned),
 * against the real S3-compatible server: the digest is the whole object's, every
 * range is pinned to the marked ETag, and a changed or resized object fails.
 */
import { createHash, randomBytes } from "node:crypto";
import { HeadObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256Pinned, sha256PinnedRange } from "../../lib/aws/objects";
import { type LocalS3, startLocalS3 } from "../helpers/s3";

const BUCKET = "ranged";
let s3: LocalS3;
const body = randomBytes(5 * 1024 * 1024 + 123);
const digest = createHash("sha256").update(body).digest("hex");

async function etagOf(client: S3Client, key: string): Promise<string> {
	return ((await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }))).ETag ?? "").replaceAll('"', "");
}

beforeAll(async () => {
	s3 = await startLocalS3([BUCKET]);
	await s3.put(BUCKET, "big.bin", body);
});
afterAll(async () => {
	await s3?.close();
});

describe("sha256Pinned by ranges", () => {
	it("gives the whole object's digest whatever the part size and parallelism", async () => {
		const o = { bucket: BUCKET, key: "big.bin", etag: await etagOf(s3.client, "big.bin"), size: body.length };
		for (const [partBytes, inFlight] of [
			[1 << 20, 3],
			[1 << 20, 1],
			[777_777, 8],
			[body.length - 1, 2],
		] as const) {
			expect(await sha256Pinned(s3.client, o, { partBytes, inFlight })).toEqual({ digest, size: body.length });
		}
		// one GET (the object fits one part) gives the same digest
		expect((await sha256Pinned(s3.client, o, { partBytes: body.length })).digest).toBe(digest);
		// and so does hashing on a worker thread, by ranges or in one GET
		expect((await sha256Pinned(s3.client, o, { partBytes: 1 << 20, offThreadMinBytes: 0 })).digest).toBe(digest);
		expect((await sha256Pinned(s3.client, o, { partBytes: body.length, offThreadMinBytes: 0 })).digest).toBe(digest);
	});

	it("sends every range pinned to the marked ETag", async () => {
		const o = { bucket: BUCKET, key: "big.bin", etag: await etagOf(s3.client, "big.bin"), size: body.length };
		const seen: Record<string, unknown>[] = [];
		const spy = {
			send: (cmd: { input: Record<string, unknown> }, opts?: unknown) => {
				seen.push(cmd.input);
				return s3.client.send(cmd as never, opts as never);
			},
		} as unknown as S3Client;
		await sha256Pinned(spy, o, { partBytes: 2 << 20, inFlight: 2 });
		expect(seen.map((i) => [i.Range, i.IfMatch])).toEqual([
			["bytes=0-2097151", o.etag],
			["bytes=2097152-4194303", o.etag],
			[`bytes=4194304-${body.length - 1}`, o.etag],
		]);
	});

	it("fails when the object was replaced after it was marked", async () => {
		await s3.put(BUCKET, "replaced.bin", body);
		const o = { bucket: BUCKET, key: "replaced.bin", etag: await etagOf(s3.client, "replaced.bin"), size: body.length };
		await s3.put(BUCKET, "replaced.bin", Buffer.concat([body.subarray(1), Buffer.from([7])]));
		await expect(sha256Pinned(s3.client, o, { partBytes: 1 << 20 })).rejects.toMatchObject({ code: "IO_ERROR" });
	});

	it("fails when the object's size is not the marked one", async () => {
		const etag = await etagOf(s3.client, "big.bin");
		for (const size of [body.length - 1, body.length + 1]) {
			// in parts, and in one streamed GET (the local server's way)
			for (const partBytes of [1 << 20, Number.POSITIVE_INFINITY]) {
				await expect(
					sha256Pinned(s3.client, { bucket: BUCKET, key: "big.bin", etag, size }, { partBytes }),
				).rejects.toMatchObject({ code: "IO_ERROR", message: /bytes/ });
			}
			// a one-part range of an object that is not its marked size
			await expect(
				sha256PinnedRange(
					s3.client,
					{ bucket: BUCKET, key: "big.bin", etag, size },
					{ start: 0, end: 1000 },
					{ partBytes: Number.POSITIVE_INFINITY },
				),
			).rejects.toMatchObject({ code: "IO_ERROR", message: /bytes/ });
		}
	});

	it("hashes any byte range of the object (a shard), in parts or in one read, and refuses ranges outside it", async () => {
		const o = { bucket: BUCKET, key: "big.bin", etag: await etagOf(s3.client, "big.bin"), size: body.length };
		const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
		for (const [start, end] of [
			[0, 1000],
			[1_000_000, 3_500_001],
			[body.length - 7, body.length],
			[42, 42],
		] as const) {
			for (const partBytes of [1 << 20, Number.POSITIVE_INFINITY]) {
				expect(await sha256PinnedRange(s3.client, o, { start, end }, { partBytes })).toBe(
					sha(body.subarray(start, end)),
				);
			}
		}
		for (const range of [
			{ start: -1, end: 10 },
			{ start: 10, end: 9 },
			{ start: 0, end: body.length + 1 },
			{ start: 0.5, end: 10 },
		]) {
			await expect(sha256PinnedRange(s3.client, o, range)).rejects.toMatchObject({ code: "USAGE" });
		}
	});

	it("fails with the first failing part and cancels the requests still running", async () => {
		const o = { bucket: BUCKET, key: "big.bin", etag: await etagOf(s3.client, "big.bin"), size: body.length };
		const signals: AbortSignal[] = [];
		let calls = 0;
		const flaky = {
			send: async (cmd: { input: Record<string, unknown> }, opts?: { abortSignal?: AbortSignal }) => {
				calls += 1;
				if (opts?.abortSignal) signals.push(opts.abortSignal);
				if (cmd.input.Range === "bytes=1048576-2097151") {
					throw Object.assign(new Error("slow down"), { name: "SlowDown", $metadata: { httpStatusCode: 503 } });
				}
				return s3.client.send(cmd as never, opts as never);
			},
		} as unknown as S3Client;
		await expect(sha256Pinned(flaky, o, { partBytes: 1 << 20, inFlight: 3 })).rejects.toMatchObject({
			code: "IO_ERROR",
		});
		expect(calls).toBeLessThan(6); // parts after the failure are not all requested
		expect(signals.length).toBeGreaterThan(0);
		expect(signals.every((s) => s.aborted)).toBe(true);
	});
});
