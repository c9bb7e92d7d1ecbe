import { crc32, inflateSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { encodePng } from "../../../lib/core/backdoor/png";

/** A small independent PNG reader: chunk walk with CRC checks, then inflate. */
function decode(png: Buffer): { width: number; height: number; colourType: number; rows: Buffer[] } {
	expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
	let off = 8;
	let width = 0;
	let height = 0;
	let colourType = -1;
	const idat: Buffer[] = [];
	const types: string[] = [];
	while (off < png.length) {
		const len = png.readUInt32BE(off);
		const type = png.toString("ascii", off + 4, off + 8);
		const data = png.subarray(off + 8, off + 8 + len);
		expect(png.readUInt32BE(off + 8 + len)).toBe(crc32(png.subarray(off + 4, off + 8 + len)));
		types.push(type);
		if (type === "IHDR") {
			width = data.readUInt32BE(0);
			height = data.readUInt32BE(4);
			expect(data[8]).toBe(8);
			colourType = data[9] ?? -1;
		}
		if (type === "IDAT") idat.push(data);
		off += 12 + len;
	}
	expect(types).toEqual(["IHDR", "IDAT", "IEND"]);
	const channels = colourType === 0 ? 1 : 3;
	const raw = inflateSync(Buffer.concat(idat));
	const rowBytes = 1 + width * channels;
	expect(raw.length).toBe(rowBytes * height);
	const rows = Array.from({ length: height }, (_, y) => {
		expect(raw[y * rowBytes]).toBe(0);
		return raw.subarray(y * rowBytes + 1, (y + 1) * rowBytes);
	});
	return { width, height, colourType, rows };
}

describe("encodePng", () => {
	it("writes greyscale pixels, clamped, scaled", () => {
		const px = new Float32Array([0, 0.5, 1, 2, -1, Number.NaN]); // 2×3
		const img = decode(encodePng(px, 1, 2, 3, 2));
		expect(img).toMatchObject({ width: 6, height: 4, colourType: 0 });
		expect([...(img.rows[0] ?? [])]).toEqual([0, 0, 128, 128, 255, 255]);
		expect([...(img.rows[1] ?? [])]).toEqual([0, 0, 128, 128, 255, 255]);
		expect([...(img.rows[2] ?? [])]).toEqual([255, 255, 0, 0, 0, 0]);
	});

	it("interleaves channel-first RGB into RGB pixels", () => {
		// 1×2 image: pixel 0 red, pixel 1 blue
		const px = new Float32Array([1, 0, /* G */ 0, 0, /* B */ 0, 1]);
		const img = decode(encodePng(px, 3, 1, 2));
		expect(img.colourType).toBe(2);
		expect([...(img.rows[0] ?? [])]).toEqual([255, 0, 0, 0, 0, 255]);
	});

	it("refuses a pixel count that does not match the shape", () => {
		expect(() => encodePng(new Float32Array(5), 1, 2, 3)).toThrow(RangeError);
	});
});
