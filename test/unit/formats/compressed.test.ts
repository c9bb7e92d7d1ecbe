/**
 * compressed.ts against Python's own readers (make_compressed_fixtures.py: gzip.GzipFile, joblib's zlib reading,
 * bz2.BZ2File, lzma.LZMAFile): what a loader decompresses is never more than what the scanner decompressed — every
 * stream decodes to at least Python's bytes (theirs a prefix of ours), concatenated streams included — and bombs
 * stop at the limit instead of in memory.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { deflateSync, gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { type Codec, codecOf, DEFAULT_INFLATE_LIMITS, inflate } from "../../../lib/core/formats/compressed";
import { decodeLzmaAlone } from "../../../lib/core/formats/lzma";
import { BufferSource } from "../../../lib/core/formats/source";

const DIR = join(__dirname, "../../fixtures/formats/compressed");
const expected = JSON.parse(readFileSync(join(DIR, "expected.json"), "utf8")) as {
	cases: Record<string, { codec: Codec; length: number; sha256: string; error: string | null }>;
};
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("decompression as Python's readers decompress", () => {
	for (const [name, want] of Object.entries(expected.cases)) {
		it(`${name}: at least the ${want.length} bytes Python reads${want.error ? " before failing" : ""}`, async () => {
			const raw = readFileSync(join(DIR, `${name}.z`));
			// joblib knows .lzma by "]\0\0" only; tarfile's transparent mode takes any header (a tar-named file)
			const joblibKnows = want.codec !== "lzma" || raw.subarray(0, 3).equals(Buffer.from("5d0000", "hex"));
			expect(codecOf(raw, "model.joblib")).toBe(joblibKnows ? want.codec : undefined);
			expect(codecOf(raw, "model.tar.xz")).toBe(want.codec);
			const r = await inflate(new BufferSource(raw), want.codec, DEFAULT_INFLATE_LIMITS);
			if (name === "xz-then-lzma" || (want.codec === "xz" && want.error !== null)) {
				// the xz decoder cannot say where its stream ended: what follows cannot be shown harmless
				expect(r).toMatchObject({ kind: "refused", reason: expect.stringMatching(/^xz stream could not be decoded/) });
				return;
			}
			if (want.length === 0) {
				// Python fails before producing a byte: whatever we decoded is a superset, never a refusal
				expect(["not-stream", "data"]).toContain(r.kind);
				return;
			}
			expect(r.kind).toBe("data");
			if (r.kind !== "data") return;
			expect(r.data.length).toBeGreaterThanOrEqual(want.length);
			expect(sha(r.data.subarray(0, want.length))).toBe(want.sha256);
			if (want.error === null) expect(r.data.length).toBe(want.length);
			else expect(r.error).toBeDefined();
		});
	}
});

describe("bounds", () => {
	const zeros = Buffer.alloc(8 * 1024 * 1024);
	const limits = { ...DEFAULT_INFLATE_LIMITS, maxBytes: 1024 * 1024 };
	it("a gzip / zlib bomb stops at the output limit: refused, never a pass", async () => {
		for (const [codec, raw] of [
			["gzip", gzipSync(zeros)],
			["zlib", deflateSync(zeros)],
		] as const) {
			const r = await inflate(new BufferSource(raw), codec, limits);
			expect(r).toMatchObject({ kind: "refused", reason: expect.stringMatching(/more than 1048576 bytes/) });
		}
	});

	it("an lzma stream past the limit stops while decoding", async () => {
		const raw = readFileSync(join(DIR, "lzma.z"));
		const r = await inflate(new BufferSource(raw), "lzma", { ...DEFAULT_INFLATE_LIMITS, maxBytes: 100_000 });
		expect(r.kind).toBe("refused");
	});

	it("lz4 (joblib reads it) cannot be checked here: refused", async () => {
		const r = await inflate(
			new BufferSource(Buffer.from([0x04, 0x22, 0x4d, 0x18, 0, 0])),
			"lz4",
			DEFAULT_INFLATE_LIMITS,
		);
		expect(r.kind).toBe("refused");
	});

	it("a stream that is not one fails before any byte: not-stream (its loaders fail too)", async () => {
		const r = await inflate(
			new BufferSource(Buffer.from("x marks the spot, not zlib")),
			"zlib",
			DEFAULT_INFLATE_LIMITS,
		);
		expect(r.kind).toBe("not-stream");
	});
});

describe("the LZMA decoder", () => {
	it("refuses a bad properties byte and a range coder that does not start with 0, as liblzma does", () => {
		const raw = readFileSync(join(DIR, "lzma.z"));
		const bad = Buffer.from(raw);
		bad[0] = 225;
		expect(() => decodeLzmaAlone(bad, 0, 1 << 20)).toThrow(/properties/);
		const rc = Buffer.from(raw);
		rc[13] = 1;
		expect(() => decodeLzmaAlone(rc, 0, 1 << 20)).toThrow(/range coder/);
	});

	it("stops at a declared size (the 8-byte size field) and at the end marker otherwise", () => {
		const raw = readFileSync(join(DIR, "lzma.z"));
		const full = decodeLzmaAlone(raw, 0, 1 << 22);
		expect(full.error).toBeUndefined();
		const sized = Buffer.from(raw);
		sized.writeUInt32LE(1000, 5);
		sized.writeUInt32LE(0, 9);
		const r = decodeLzmaAlone(sized, 0, 1 << 22);
		expect(Buffer.from(r.data)).toEqual(Buffer.from(full.data.subarray(0, 1000)));
	});
});
