/**
 * The S3 adapters' VersionId path, which s3rver (no versioning) cannot exercise:
 * a fake client records each command's input and answers like a versioned
 * bucket. The ETag path runs against s3rver in test/integration/lambdas-pipeline.test.ts.
 */
import type { S3Client } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { changedSince, getPinned, headObject } from "../../../lib/aws/objects";
import { S3Source } from "../../../lib/aws/s3-source";
import { putFtguardTags } from "../../../lib/aws/tagging";

type Sent = { command: string; input: Record<string, unknown> };
type Reply = (command: string, input: Record<string, unknown>) => unknown;

function fakeS3(reply: Reply): { client: S3Client; sent: Sent[] } {
	const sent: Sent[] = [];
	const client = {
		async send(cmd: { constructor: { name: string }; input: Record<string, unknown> }) {
			sent.push({ command: cmd.constructor.name, input: cmd.input });
			const r = reply(cmd.constructor.name, cmd.input);
			if (r instanceof Error) throw r;
			return r;
		},
	} as unknown as S3Client;
	return { client, sent };
}

function s3Error(name: string, status: number): Error {
	return Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } });
}

/** A versioned object of `size` bytes whose byte i is i mod 251; serves ranges of version "v1". */
function versionedObject(size: number, currentVersion = "v1"): Reply {
	return (command, input) => {
		if (command !== "GetObjectCommand") throw new Error(`unexpected ${command}`);
		if (input.VersionId !== "v1") return s3Error("NoSuchVersion", 404);
		const m = /^bytes=(\d+)-(\d+)$/.exec(String(input.Range ?? `bytes=0-${size - 1}`));
		const start = Number(m?.[1]);
		const end = Number(m?.[2]) + 1;
		const bytes = Uint8Array.from({ length: end - start }, (_, i) => (start + i) % 251);
		return {
			VersionId: currentVersion === "v1" ? "v1" : currentVersion,
			ETag: '"e1"',
			Body: { transformToByteArray: async () => bytes },
		};
	};
}

const obj = { bucket: "b", key: "c/w.bin", versionId: "v1", etag: '"e1"', size: 100 << 20 };

describe("reads pinned by VersionId", () => {
	it("asks for the marked version and sends no If-Match", async () => {
		const { client, sent } = fakeS3(versionedObject(obj.size));
		await getPinned(client, obj, { start: 0, end: 10 });
		expect(sent[0]?.input).toEqual({ Bucket: "b", Key: "c/w.bin", VersionId: "v1", Range: "bytes=0-9" });
	});

	it("binds by If-Match where there is no VersionId", async () => {
		const { client, sent } = fakeS3(() => ({
			ETag: '"e1"',
			Body: { transformToByteArray: async () => new Uint8Array() },
		}));
		await getPinned(client, { bucket: "b", key: "k", etag: "e1", size: 0 });
		expect(sent[0]?.input).toEqual({ Bucket: "b", Key: "k", IfMatch: "e1" });
	});

	it("fails when the store answers with another version or ETag, or the version is gone", async () => {
		const other = fakeS3(versionedObject(obj.size, "v2"));
		await expect(getPinned(other.client, obj)).rejects.toMatchObject({
			code: "IO_ERROR",
			message: /changed after it was marked/,
		});
		const etag = fakeS3(() => ({ ETag: '"e2"', Body: {} }));
		await expect(getPinned(etag.client, { bucket: "b", key: "k", etag: "e1", size: 0 })).rejects.toMatchObject({
			code: "IO_ERROR",
		});
		const precondition = fakeS3(() => s3Error("PreconditionFailed", 412));
		await expect(getPinned(precondition.client, { bucket: "b", key: "k", etag: "e1", size: 0 })).rejects.toMatchObject({
			code: "IO_ERROR",
			message: /changed after it was marked/,
		});
		const gone = fakeS3(() => s3Error("NoSuchVersion", 404));
		await expect(getPinned(gone.client, obj)).rejects.toMatchObject({ code: "NOT_FOUND" });
	});

	it("refuses an object with neither VersionId nor ETag", async () => {
		const { client } = fakeS3(() => ({}));
		await expect(getPinned(client, { bucket: "b", key: "k", size: 1 })).rejects.toMatchObject({ code: "USAGE" });
	});
});

describe("S3Source", () => {
	it("fetches only the blocks a scanner reads, by ranged GETs of the pinned version, and caches them", async () => {
		const { client, sent } = fakeS3(versionedObject(obj.size));
		const src = new S3Source(client, obj);
		const a = await src.read(5 << 20, 16);
		expect([...a]).toEqual(Array.from({ length: 16 }, (_, i) => ((5 << 20) + i) % 251));
		await src.read((5 << 20) + 100, 16); // same block: no request
		expect(sent.map((s) => s.input.Range)).toEqual([`bytes=${5 << 20}-${(6 << 20) - 1}`]);
		expect(sent.every((s) => s.input.VersionId === "v1")).toBe(true);
		expect(src.bytesFetched).toBe(1 << 20);
		expect(src.bytesRead).toBe(32);
	});

	it("joins reads across a block boundary and clamps at the end of the object", async () => {
		const small = { ...obj, size: 3000 };
		const { client } = fakeS3(versionedObject(small.size));
		const src = new S3Source(client, small, { blockSize: 1024 });
		const r = await src.read(1000, 100);
		expect([...r]).toEqual(Array.from({ length: 100 }, (_, i) => (1000 + i) % 251));
		expect((await src.read(2990, 100)).length).toBe(10);
		expect((await src.read(5000, 10)).length).toBe(0);
	});

	it("probes a few bytes with one exact ranged GET, or from a block already cached", async () => {
		const { client, sent } = fakeS3(versionedObject(obj.size));
		const src = new S3Source(client, obj);
		const p = await src.probe(7 << 20, 8);
		expect([...p]).toEqual(Array.from({ length: 8 }, (_, i) => ((7 << 20) + i) % 251));
		await src.read(0, 16); // block 0 cached
		await src.probe(4096, 8); // from it: no request
		expect(sent.map((s) => s.input.Range)).toEqual([`bytes=${7 << 20}-${(7 << 20) + 7}`, `bytes=0-${(1 << 20) - 1}`]);
		expect(src.bytesFetched).toBe(8 + (1 << 20));
		expect(src.bytesRead).toBe(8 + 16 + 8);
	});

	it("reads a large range directly, without caching it", async () => {
		const { client, sent } = fakeS3(versionedObject(obj.size));
		const src = new S3Source(client, obj);
		expect((await src.read(0, 8 << 20)).length).toBe(8 << 20);
		expect(sent.map((s) => s.input.Range)).toEqual([`bytes=0-${(8 << 20) - 1}`]);
	});
});

describe("tags on exact versions", () => {
	it("writes ftguard tags on the pinned version and keeps the object's other tags", async () => {
		const { client, sent } = fakeS3((command) =>
			command === "GetObjectTaggingCommand"
				? {
						TagSet: [
							{ Key: "team", Value: "ml" },
							{ Key: "ftguard:status", Value: "SCANNING" },
							{ Key: "ftguard:digest", Value: "old" },
						],
					}
				: {},
		);
		await putFtguardTags(client, obj, { "ftguard:status": "PROMOTABLE", "ftguard:scan-id": "ftg-1" });
		expect(sent.map((s) => s.command)).toEqual(["GetObjectTaggingCommand", "PutObjectTaggingCommand"]);
		expect(sent[0]?.input).toMatchObject({ VersionId: "v1" });
		expect(sent[1]?.input).toEqual({
			Bucket: "b",
			Key: "c/w.bin",
			VersionId: "v1",
			Tagging: {
				TagSet: [
					{ Key: "team", Value: "ml" },
					{ Key: "ftguard:status", Value: "PROMOTABLE" },
					{ Key: "ftguard:scan-id", Value: "ftg-1" },
				],
			},
		});
	});

	it("drops case variants of ftguard keys (IAM condition keys fold case), keeping other tags", async () => {
		const { client, sent } = fakeS3((command) =>
			command === "GetObjectTaggingCommand"
				? {
						TagSet: [
							{ Key: "team", Value: "ml" },
							{ Key: "FTGUARD:STATUS", Value: "PROMOTABLE" },
							{ Key: "Ftguard:Scan-Id", Value: "forged" },
						],
					}
				: {},
		);
		await putFtguardTags(client, obj, { "ftguard:status": "QUARANTINED" });
		expect(sent[1]?.input.Tagging).toEqual({
			TagSet: [
				{ Key: "team", Value: "ml" },
				{ Key: "ftguard:status", Value: "QUARANTINED" },
			],
		});
	});

	it("retries a failing tag write a few times, then throws", async () => {
		const { client, sent } = fakeS3((command) =>
			command === "GetObjectTaggingCommand" ? { TagSet: [] } : s3Error("SlowDown", 503),
		);
		await expect(
			putFtguardTags(client, obj, { "ftguard:status": "QUARANTINED" }, { attempts: 3, baseDelayMs: 1 }),
		).rejects.toMatchObject({ code: "IO_ERROR", message: /gave up tagging after retries/ });
		expect(sent.filter((s) => s.command === "PutObjectTaggingCommand")).toHaveLength(3);
	});

	it("does not retry a version that no longer exists", async () => {
		const { client, sent } = fakeS3(() => s3Error("NoSuchVersion", 404));
		await expect(
			putFtguardTags(client, obj, { "ftguard:status": "QUARANTINED" }, { baseDelayMs: 1 }),
		).rejects.toMatchObject({
			code: "NOT_FOUND",
		});
		expect(sent).toHaveLength(1);
	});

	it("refuses to write a tag that is not ftguard's", async () => {
		const { client } = fakeS3(() => ({}));
		await expect(putFtguardTags(client, obj, { team: "x" })).rejects.toMatchObject({ code: "INTERNAL" });
	});
});

describe("changedSince (VersionId)", () => {
	const head = (versionId: string | undefined) =>
		fakeS3(() => ({ VersionId: versionId, ETag: '"e1"', ContentLength: 5 }));
	it("is unchanged while the current version is the pinned one", async () => {
		expect(await changedSince(head("v1").client, "b", { key: "k", versionId: "v1", size: 5 })).toBeUndefined();
	});
	it("names the new version when the key was overwritten, even with identical bytes (same ETag)", async () => {
		expect(await changedSince(head("v2").client, "b", { key: "k", versionId: "v1", etag: '"e1"', size: 5 })).toBe(
			"current version is v2",
		);
	});
	it("reads a deleted key as changed", async () => {
		const gone = fakeS3(() => s3Error("NotFound", 404));
		expect(await changedSince(gone.client, "b", { key: "k", versionId: "v1", size: 5 })).toBe("deleted");
	});
	it("treats S3's 'null' version (versioning suspended) as no version", async () => {
		expect(await headObject(head("null").client, "b", "k")).toEqual({ etag: '"e1"', size: 5 });
	});
});
