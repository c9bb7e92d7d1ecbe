/** The exact re-encodings export binding compares under: float16 / bfloat16 widened to float32, matrices transposed. */
import { describe, expect, it } from "vitest";
import { allBytes, rangeBytes, sha256Of, transpose2d, widenToF32 } from "../../../lib/core/backdoor/tensor-bytes";
import { BufferSource } from "../../../lib/core/formats/source";

const u16 = (...v: number[]) => Buffer.from(Uint16Array.from(v).buffer);
const f32bits = (b: Buffer) => Array.from(new Uint32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)));

describe("widenToF32", () => {
	it("widens float16 exactly: normals, the smallest subnormal, signed zero, infinity, NaN payloads", () => {
		const out = widenToF32(u16(0x3c00, 0xc000, 0x0001, 0x03ff, 0x8000, 0x7c00, 0xfc00, 0x7e01, 0x7bff), "F16");
		expect(Array.from(new Float32Array(out.buffer, out.byteOffset, 9)).slice(0, 6)).toEqual([
			1,
			-2,
			2 ** -24,
			1023 * 2 ** -24,
			-0,
			Number.POSITIVE_INFINITY,
		]);
		expect(f32bits(out).slice(6)).toEqual([0xff800000, 0x7fc02000, 0x477fe000]);
	});

	it("widens bfloat16 by shifting: the high half of a float32", () => {
		expect(f32bits(widenToF32(u16(0x3f80, 0xbf80, 0x7f81), "BF16"))).toEqual([0x3f800000, 0xbf800000, 0x7f810000]);
	});
});

describe("transpose2d", () => {
	it("transposes a 2 × 3 matrix of any element width, bit for bit", () => {
		const m = Buffer.from(Float32Array.from([1, 2, 3, 4, 5, 6]).buffer);
		expect(Array.from(new Float32Array(transpose2d(m, 2, 3, 4).buffer))).toEqual([1, 4, 2, 5, 3, 6]);
		expect(Array.from(new Uint16Array(transpose2d(u16(1, 2, 3, 4, 5, 6), 3, 2, 2).buffer))).toEqual([1, 3, 5, 2, 4, 6]);
	});
});

describe("rangeBytes", () => {
	it("streams a range in chunks (same digest as the bytes), and a short read is IO_ERROR", async () => {
		const data = Buffer.alloc(9 * 1024 * 1024, 7);
		const src = new BufferSource(data);
		const r = rangeBytes(src, 1, data.length - 1, "t");
		expect((await allBytes(r)).equals(data.subarray(1))).toBe(true);
		expect(await sha256Of(r)).toBe(
			await sha256Of({
				length: r.length,
				chunks: async function* () {
					yield data.subarray(1);
				},
			}),
		);
		await expect(allBytes(rangeBytes(src, 10, data.length, "t"))).rejects.toMatchObject({ code: "IO_ERROR" });
	});
});
