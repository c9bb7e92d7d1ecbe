/**
 * A tensor's bytes wherever they are (a range of a file, memory), read in bounded chunks, and the exact
 * re-encodings export binding compares them under: float16 / bfloat16 widened to float32 (exact: every value of
 * the narrow type is a float32), and a matrix transposed. Little-endian, row-major throughout, as ONNX raw_data,
 * safetensors and torch storages all are.
 */
import { createHash } from "node:crypto";
import { FtguardError } from "../errors";
import { DataType } from "../formats/onnx-wire";
import type { ByteSource } from "../formats/types";

/** The floating-point element types binding compares, by their safetensors names. */
export type FloatDtype = "F32" | "F16" | "BF16" | "F64";

export const FLOAT_SIZE: Readonly<Record<FloatDtype, number>> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

export function isFloatDtype(dtype: string): dtype is FloatDtype {
	return Object.hasOwn(FLOAT_SIZE, dtype);
}

/** The ONNX TensorProto data type as a FloatDtype; undefined for every non-float type. */
export function onnxFloatDtype(dataType: number): FloatDtype | undefined {
	switch (dataType) {
		case DataType.FLOAT:
			return "F32";
		case DataType.FLOAT16:
			return "F16";
		case DataType.BFLOAT16:
			return "BF16";
		case DataType.DOUBLE:
			return "F64";
		default:
			return undefined;
	}
}

/** Reads of this size keep memory bounded while hashing multi-GiB tensors at full speed. */
const CHUNK = 4 * 1024 * 1024;

/** A tensor's bytes, readable in order any number of times. */
export interface TensorBytes {
	readonly length: number;
	chunks(): AsyncIterable<Buffer>;
}

/** `length` bytes of `source` from `offset`; a short read (the file changed under us) is an I/O error. */
export function rangeBytes(source: ByteSource, offset: number, length: number, what: string): TensorBytes {
	return {
		length,
		async *chunks() {
			for (let done = 0; done < length; ) {
				const n = Math.min(CHUNK, length - done);
				const b = await source.read(offset + done, n);
				if (b.length !== n) throw new FtguardError("IO_ERROR", `${what}: short read at byte ${offset + done}`);
				done += n;
				yield b;
			}
		},
	};
}

export function memoryBytes(buf: Buffer): TensorBytes {
	return {
		length: buf.length,
		async *chunks() {
			if (buf.length > 0) yield buf;
		},
	};
}

/** Derived encodings (widened, transposed) are built in memory, one tensor at a time, up to this size. */
export const MAX_DERIVED_BYTES = 1024 * 1024 * 1024;

export async function allBytes(t: TensorBytes): Promise<Buffer> {
	if (t.length > MAX_DERIVED_BYTES) throw new RangeError(`${t.length} bytes is more than ${MAX_DERIVED_BYTES}`);
	const parts: Buffer[] = [];
	for await (const c of t.chunks()) parts.push(c);
	return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, t.length);
}

/** SHA-256 of the bytes, hex. */
export async function sha256Of(t: TensorBytes): Promise<string> {
	const h = createHash("sha256");
	for await (const c of t.chunks()) h.update(c);
	return h.digest("hex");
}

export function sha256Hex(buf: Buffer): string {
	return createHash("sha256").update(buf).digest("hex");
}

/** float16 bits → float32 bits, exactly (subnormals normalised, infinities and NaN payloads kept). */
function halfToFloatBits(h: number): number {
	const sign = (h & 0x8000) << 16;
	const exp = (h >> 10) & 0x1f;
	let mant = h & 0x3ff;
	if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
	if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
	if (mant === 0) return sign >>> 0;
	// subnormal: shift the mantissa up to an implicit leading one
	let e = 113;
	while ((mant & 0x400) === 0) {
		mant <<= 1;
		e--;
	}
	return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

/** float16 or bfloat16 little-endian bytes widened to float32 little-endian bytes. */
export function widenToF32(buf: Buffer, from: "F16" | "BF16"): Buffer {
	const n = buf.length >> 1;
	const out = Buffer.allocUnsafe(n * 4);
	for (let i = 0; i < n; i++) {
		const h = buf.readUInt16LE(i * 2);
		out.writeUInt32LE(from === "BF16" ? (h << 16) >>> 0 : halfToFloatBits(h), i * 4);
	}
	return out;
}

const WORDS = { 2: Uint16Array, 4: Uint32Array, 8: BigUint64Array } as const;

/** A row-major rows × cols matrix of `size`-byte elements, transposed (cols × rows). */
export function transpose2d(buf: Buffer, rows: number, cols: number, size: 2 | 4 | 8): Buffer {
	// integer words (never floats: a NaN payload must survive) over aligned copies of the bytes
	const Words = WORDS[size];
	const src = new Words(rows * cols);
	new Uint8Array(src.buffer).set(buf.subarray(0, rows * cols * size));
	const dst = new Words(rows * cols);
	for (let r = 0; r < rows; r++) {
		const row = r * cols;
		for (let c = 0; c < cols; c++) dst[c * rows + r] = src[row + c] as never;
	}
	return Buffer.from(dst.buffer, 0, dst.byteLength);
}
