import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseNpyFloat32, parseNpyInt64, readNpyFloat32, readNpyInt64, writeNpy } from "../../../lib/core/backdoor/npy";
import { FtguardError } from "../../../lib/core/errors";

const fixture = (name: string) => `test/fixtures/pickle/${name}`;

/** Builds an .npy by hand (independent of writeNpy) with the given descr, shape text and body bytes. */
function handNpy(descr: string, shape: string, body: Uint8Array, fortran = "False"): Buffer {
	let header = `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }`;
	header += `${" ".repeat((64 - ((10 + header.length + 1) % 64)) % 64)}\n`;
	const head = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length & 0xff, header.length >> 8]);
	return Buffer.concat([head, Buffer.from(header, "latin1"), Buffer.from(body)]);
}

function code(f: () => unknown): string {
	try {
		f();
	} catch (e) {
		return e instanceof FtguardError ? `${e.code}: ${e.message}` : `other: ${String(e)}`;
	}
	return "no error";
}

describe("npy reader", () => {
	it("reads numpy's own float32 and int64 files", async () => {
		const f = await readNpyFloat32(fixture("benign-float32.npy"));
		expect(f.shape).toEqual([3, 4]);
		expect(Array.from(f.data)).toEqual(Array.from({ length: 12 }, (_, i) => i));
		const l = await readNpyInt64(fixture("benign-int64.npy"));
		expect(l.shape).toEqual([5]);
		expect(Array.from(l.data)).toEqual([0n, 1n, 2n, 3n, 4n]);
	});

	it("reads the backdoor fixtures' reference data, labels and uint8 ground truth", async () => {
		const dir = "test/fixtures/backdoor/digits8";
		const x = await readNpyFloat32(`${dir}/ref-x.npy`);
		expect(x.shape).toEqual([200, 1, 8, 8]);
		expect(x.data).toHaveLength(200 * 64);
		expect(Math.min(...x.data)).toBeGreaterThanOrEqual(0);
		expect(Math.max(...x.data)).toBeLessThanOrEqual(1);
		const y = await readNpyInt64(`${dir}/ref-y.npy`);
		expect(y.shape).toEqual([200]);
		const counts = new Map<bigint, number>();
		for (const v of y.data) counts.set(v, (counts.get(v) ?? 0) + 1);
		expect([...counts.entries()].sort((a, b) => Number(a[0] - b[0]))).toEqual(
			Array.from({ length: 10 }, (_, c) => [BigInt(c), 20]),
		);
		const flags = await readNpyInt64(`${dir}/cnn-badnets-t3-p10-train-poisoned.npy`);
		expect(flags.shape).toEqual([300]);
		expect(flags.data.every((v) => v === 0n || v === 1n)).toBe(true);
		expect(flags.data.some((v) => v === 1n)).toBe(true);
	});

	it("refuses object, structured and wrong-kind dtypes with DATA_INVALID", () => {
		expect(code(() => parseNpyFloat32(readFileSync(fixture("benign-object.npy")), "o.npy"))).toMatch(
			/^DATA_INVALID: o\.npy: object dtype/,
		);
		expect(code(() => parseNpyFloat32(readFileSync(fixture("benign-structured.npy")), "s.npy"))).toMatch(
			/^DATA_INVALID: s\.npy: structured dtype/,
		);
		expect(code(() => parseNpyFloat32(readFileSync(fixture("benign-int64.npy")), "l.npy"))).toMatch(
			/^DATA_INVALID: .*not a float dtype/,
		);
		expect(code(() => parseNpyInt64(readFileSync(fixture("benign-float32.npy")), "x.npy"))).toMatch(
			/^DATA_INVALID: .*not an integer dtype/,
		);
		expect(code(() => parseNpyFloat32(handNpy("<c8", "(1,)", new Uint8Array(8))))).toMatch(/^DATA_INVALID: .*<c8/);
		expect(code(() => parseNpyFloat32(handNpy("<f2", "(1,)", new Uint8Array(2))))).toMatch(/^DATA_INVALID: .*<f2/);
	});

	it("refuses truncated data, trailing bytes, fortran order and bad magic", () => {
		const good = readFileSync(fixture("benign-float32.npy"));
		expect(code(() => parseNpyFloat32(good.subarray(0, good.length - 1), "t.npy"))).toMatch(
			/^DATA_INVALID: t\.npy: truncated: data is 47 bytes, shape × itemsize says 48$/,
		);
		expect(code(() => parseNpyFloat32(Buffer.concat([good, Buffer.alloc(4)])))).toMatch(/^DATA_INVALID: .*trailing/);
		expect(code(() => parseNpyFloat32(handNpy("<f4", "(2, 2)", new Uint8Array(16), "True")))).toMatch(
			/^DATA_INVALID: .*fortran_order/,
		);
		expect(code(() => parseNpyFloat32(good.subarray(0, 20)))).toMatch(/^DATA_INVALID: .*not a readable \.npy/);
		expect(code(() => parseNpyFloat32(Buffer.from("PK\x03\x04 not numpy at all")))).toMatch(/^DATA_INVALID: .*magic/);
	});

	it("refuses non-finite floats unless allowed", () => {
		const body = new Float32Array([1, Number.NaN]);
		const buf = handNpy("<f4", "(2,)", new Uint8Array(body.buffer));
		expect(code(() => parseNpyFloat32(buf))).toMatch(/^DATA_INVALID: .*element 1 is NaN/);
		expect(Number.isNaN(parseNpyFloat32(buf, "a", { allowNonFinite: true }).data[1])).toBe(true);
	});

	it("converts float64, big-endian floats and narrow / unsigned / big-endian integer labels", () => {
		const f8 = new Float64Array([0.5, -2.25, 1e3]);
		expect(Array.from(parseNpyFloat32(handNpy("<f8", "(3,)", new Uint8Array(f8.buffer))).data)).toEqual([
			0.5, -2.25, 1000,
		]);
		const be = Buffer.alloc(8);
		be.writeFloatBE(1.5, 0);
		be.writeFloatBE(-3, 4);
		expect(Array.from(parseNpyFloat32(handNpy(">f4", "(2,)", be)).data)).toEqual([1.5, -3]);
		const i4 = new Int32Array([3, -1, 7]);
		expect(Array.from(parseNpyInt64(handNpy("<i4", "(3,)", new Uint8Array(i4.buffer))).data)).toEqual([3n, -1n, 7n]);
		expect(Array.from(parseNpyInt64(handNpy("|u1", "(3,)", new Uint8Array([0, 9, 255]))).data)).toEqual([0n, 9n, 255n]);
		const bi = Buffer.alloc(16);
		bi.writeBigInt64BE(5n, 0);
		bi.writeBigInt64BE(-2n, 8);
		expect(Array.from(parseNpyInt64(handNpy(">i8", "(2,)", bi)).data)).toEqual([5n, -2n]);
		const big = Buffer.alloc(8);
		big.writeBigUInt64LE(1n << 63n, 0);
		expect(code(() => parseNpyInt64(handNpy("<u8", "(1,)", big)))).toMatch(/^DATA_INVALID: .*does not fit int64/);
	});

	it("reads empty and 0-d arrays", () => {
		expect(parseNpyFloat32(handNpy("<f4", "(0, 3)", new Uint8Array(0)))).toEqual({
			shape: [0, 3],
			data: new Float32Array(0),
		});
		const one = new Float32Array([4.5]);
		expect(parseNpyFloat32(handNpy("<f4", "()", new Uint8Array(one.buffer)))).toEqual({ shape: [], data: one });
	});
});

describe("npy writer", () => {
	it("writes byte-identical files to numpy's for the fixtures", () => {
		const f = readFileSync(fixture("benign-float32.npy"));
		expect(
			writeNpy(
				Float32Array.from({ length: 12 }, (_, i) => i),
				[3, 4],
			).equals(f),
		).toBe(true);
		const l = readFileSync(fixture("benign-int64.npy"));
		expect(writeNpy(BigInt64Array.from([0n, 1n, 2n, 3n, 4n]), [5]).equals(l)).toBe(true);
	});

	it("round-trips every writable dtype with a 64-byte aligned header", () => {
		const cases = [
			new Float32Array([1.5, -2, 3]),
			new Float64Array([1e-300, 2, -3]),
			new Int32Array([-5, 0, 5]),
			new Uint8Array([0, 128, 255]),
			new BigInt64Array([-(1n << 62n), 0n, 7n]),
		];
		for (const a of cases) {
			const buf = writeNpy(a, [1, 3]);
			expect((buf.readUInt16LE(8) + 10) % 64).toBe(0);
			const back =
				a instanceof BigInt64Array || a instanceof Int32Array || a instanceof Uint8Array
					? Array.from(parseNpyInt64(buf).data, Number)
					: Array.from(parseNpyFloat32(buf).data);
			expect(back).toEqual(Array.from(a as ArrayLike<number | bigint>, (v) => Math.fround(Number(v))));
		}
		expect(() => writeNpy(new Float32Array(3), [2, 2])).toThrow(/holds 4 elements/);
	});
});
