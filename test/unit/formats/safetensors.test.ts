import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
	checkSafetensors,
	parseStrictJson,
	readSafetensorsLayout,
	safetensorsScanner,
} from "../../../lib/core/formats/safetensors";
import { BufferSource } from "../../../lib/core/formats/source";
import { verdictOf } from "../../../lib/core/formats/types";
import { fuzzScanner, scanBuffer } from "../../fixtures/formats/fuzz";

/** Builds a safetensors file from a raw header string and a data size (bytes of zeros). */
function st(header: string, dataLen: number, pad = true): Buffer {
	let h = Buffer.from(header, "utf8");
	if (pad && h.length % 8 !== 0) h = Buffer.concat([h, Buffer.alloc(8 - (h.length % 8), 0x20)]);
	const len = Buffer.alloc(8);
	len.writeBigUInt64LE(BigInt(h.length));
	return Buffer.concat([len, h, Buffer.alloc(dataLen)]);
}

const good = st(
	JSON.stringify({
		__metadata__: { format: "pt" },
		"model.w": { dtype: "F32", shape: [2, 3], data_offsets: [0, 24] },
		"model.b": { dtype: "BF16", shape: [3], data_offsets: [24, 30] },
		"model.f4": { dtype: "F4", shape: [4], data_offsets: [30, 32] },
	}),
	32,
);

const check = (b: Buffer) => checkSafetensors(new BufferSource(b));

describe("safetensors", () => {
	it("gives a valid file's tensors with absolute byte ranges (export binding reads them); the broken rule otherwise", async () => {
		const layout = await readSafetensorsLayout(new BufferSource(good));
		const base = good.length - 32;
		expect(layout).toEqual({
			tensors: [
				{ name: "model.w", dtype: "F32", shape: [2, 3], begin: base, end: base + 24 },
				{ name: "model.b", dtype: "BF16", shape: [3], begin: base + 24, end: base + 30 },
				{ name: "model.f4", dtype: "F4", shape: [4], begin: base + 30, end: base + 32 },
			],
		});
		expect(await readSafetensorsLayout(new BufferSource(good.subarray(0, good.length - 1)))).toBe(
			"safetensors: MetadataIncompleteBuffer",
		);
	});

	it("accepts a valid file (the reference's own serialization example too)", async () => {
		expect(await check(good)).toBeUndefined();
		// the reference's test_serialization: 64-byte header, no padding needed
		const v = Buffer.concat([
			Buffer.from([64, 0, 0, 0, 0, 0, 0, 0]),
			Buffer.from('{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}'),
			Buffer.alloc(24),
		]);
		expect(await check(v)).toBeUndefined();
		// the file written by make_fixtures.py
		expect(
			await check(readFileSync(join(__dirname, "../../fixtures/formats/safetensors/clean.safetensors"))),
		).toBeUndefined();
		expect(await check(st("{}", 0))).toBeUndefined();
		expect(await check(st('{"__metadata__":null}', 0))).toBeUndefined();
		const r = await scanBuffer(safetensorsScanner, good, "model.safetensors");
		expect(verdictOf(r)).toBe("safe");
	});

	it("detects by content, not by name", () => {
		expect(safetensorsScanner.detect(good.subarray(0, 64), "weights.bin", good.length)).toBe(true);
		expect(safetensorsScanner.detect(Buffer.from("PK\x03\x04xxxxxxxx"), "x.safetensors", 100)).toBe(false);
		expect(safetensorsScanner.detect(good.subarray(0, 64), "x.safetensors", 20)).toBe(false);
	});

	const cases: Array<[string, Buffer, string]> = [
		["HeaderTooSmall", Buffer.from([1, 2, 3]), "HeaderTooSmall"],
		[
			"HeaderTooLarge",
			(() => {
				const b = Buffer.alloc(16);
				b.writeBigUInt64LE(100_000_001n);
				return b;
			})(),
			"HeaderTooLarge",
		],
		[
			"u64 max length",
			(() => {
				const b = Buffer.alloc(16);
				b.writeBigUInt64LE((1n << 64n) - 1n);
				return b;
			})(),
			"HeaderTooLarge",
		],
		[
			"InvalidHeaderLength",
			(() => {
				const b = Buffer.alloc(16);
				b.writeBigUInt64LE(100n);
				b.write("{}", 8);
				return b;
			})(),
			"InvalidHeaderLength",
		],
		["InvalidHeader (bad UTF-8)", st('{"a\xff":1}', 0).fill(0xff, 10, 11), "InvalidHeader"],
		["InvalidHeaderStart", st(" {}", 0), "InvalidHeaderStart"],
		["not JSON", st("{nope", 0), "InvalidHeaderDeserialization"],
		["trailing garbage", st("{}x", 0), "InvalidHeaderDeserialization"],
		[
			"unknown dtype",
			st('{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}', 16),
			"InvalidHeaderDeserialization",
		],
		["negative dim", st('{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}', 1), "InvalidHeaderDeserialization"],
		["float dim", st('{"a":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}}', 1), "InvalidHeaderDeserialization"],
		[
			"dim over u64",
			st('{"a":{"dtype":"U8","shape":[18446744073709551616],"data_offsets":[0,1]}}', 1),
			"InvalidHeaderDeserialization",
		],
		["three offsets", st('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}', 1), "InvalidHeaderDeserialization"],
		["missing shape", st('{"a":{"dtype":"U8","data_offsets":[0,1]}}', 1), "InvalidHeaderDeserialization"],
		["metadata non-string", st('{"__metadata__":{"a":1}}', 0), "InvalidHeaderDeserialization"],
		["metadata not object", st('{"__metadata__":"x"}', 0), "InvalidHeaderDeserialization"],
		[
			"duplicate key",
			st(
				'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}',
				2,
			),
			"DuplicateKey(a)",
		],
		["hole", st('{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', 2), "InvalidOffset(a)"],
		[
			"overlap",
			st(
				'{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}',
				2,
			),
			"InvalidOffset",
		],
		[
			"end before begin",
			st(
				'{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"c":{"dtype":"U8","shape":[1],"data_offsets":[1,0]}}',
				1,
			),
			"InvalidOffset",
		],
		["size mismatch", st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', 4), "TensorInvalidInfo(a)"],
		[
			"overflow",
			st('{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}', 4),
			"ValidationOverflow",
		],
		["sub-byte misaligned", st('{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}', 2), "MisalignedSlice(a)"],
		["buffer too long", st('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', 2), "MetadataIncompleteBuffer"],
		["buffer too short", st('{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}', 2), "MetadataIncompleteBuffer"],
	];
	for (const [what, buf, rule] of cases) {
		it(`malformed: ${what} → ${rule}`, async () => {
			const r = await scanBuffer(safetensorsScanner, buf, "m.safetensors");
			expect(r.malformed).toContain(`safetensors: ${rule}`);
			expect(verdictOf(r)).toBe("malformed");
		});
	}

	it("reads only the header, never tensor bytes", async () => {
		const big = st('{"a":{"dtype":"U8","shape":[1048576],"data_offsets":[0,1048576]}}', 1 << 20);
		const src = new BufferSource(big);
		expect(await checkSafetensors(src)).toBeUndefined();
		expect(src.bytesRead).toBeLessThan(200);
	});

	it("strict JSON keeps big integers and refuses deep nesting", () => {
		expect(() => parseStrictJson("[".repeat(200) + "]".repeat(200))).toThrow();
		expect(parseStrictJson('{"a": 18446744073709551615}')).toBeTruthy();
	});

	it("fuzz: every mutant gets a result", async () => {
		await fuzzScanner(safetensorsScanner, [{ name: "model.safetensors", bytes: good }], { runs: 300 });
	});
});
