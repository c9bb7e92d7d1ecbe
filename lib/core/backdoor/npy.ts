/**
 * Reading and writing plain numeric `.npy` arrays for the backdoor engine: the
 * reference data (float32, [n, ...inputShape]) and its labels (int64, [n]).
 *
 * The header is parsed by `parseNpyHeader` (the scanner's strict literal parser,
 * never evaluated). Float data may be stored as f4 or f8 and labels as any integer
 * dtype, either byte order; they are converted. Object arrays (pickles), structured
 * dtypes, Fortran order and sizes that do not add up are refused with DATA_INVALID.
 */
import { readFile } from "node:fs/promises";
import { FtguardError, toFtguardError } from "../errors";
import { parseNpyHeader } from "../formats/numpy";

export interface NpyFloat32 {
	shape: number[];
	data: Float32Array;
}

export interface NpyInt64 {
	shape: number[];
	data: BigInt64Array;
}

type Kind = "f" | "i" | "u";

interface Parsed {
	shape: number[];
	count: number;
	kind: Kind;
	size: number;
	little: boolean;
	descr: string;
	body: DataView;
}

function invalid(name: string, msg: string): FtguardError {
	return new FtguardError("DATA_INVALID", `${name}: ${msg}`, { details: { file: name } });
}

/** Largest element count a typed array here may hold. */
const MAX_ELEMENTS = 2 ** 31 - 1;

function parse(buf: Uint8Array, name: string): Parsed {
	const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
	const h = parseNpyHeader(b);
	if (typeof h === "string") throw invalid(name, `not a readable .npy file (${h})`);
	if (h.object) throw invalid(name, "object dtype (a pickle) is not numeric data");
	if (typeof h.descr !== "string") throw invalid(name, "structured dtype is not plain numeric data");
	if (h.fortranOrder) throw invalid(name, "fortran_order arrays are not supported; save with np.ascontiguousarray");
	const m = /^([<>|=]?)([fiu])(\d+)$/.exec(h.descr);
	if (!m) throw invalid(name, `dtype ${h.descr} is not a float or integer dtype`);
	const order = m[1] ?? "";
	const kind = m[2] as Kind;
	const size = Number(m[3]);
	const okSizes = kind === "f" ? [4, 8] : [1, 2, 4, 8];
	if (!okSizes.includes(size)) throw invalid(name, `dtype ${h.descr} is not supported`);
	let count = 1n;
	for (const d of h.shape) if (count <= 1n << 64n) count *= d;
	const expected = count * BigInt(size);
	const have = BigInt(b.length - h.dataOffset);
	if (have < expected) throw invalid(name, `truncated: data is ${have} bytes, shape × itemsize says ${expected}`);
	if (have > expected) throw invalid(name, `data is ${have} bytes, shape × itemsize says ${expected} (trailing bytes)`);
	if (count > BigInt(MAX_ELEMENTS)) throw invalid(name, `${count} elements is more than this reader handles`);
	const body = new DataView(b.buffer, b.byteOffset + h.dataOffset, Number(expected));
	// "|" and "=" mean native/no order; numpy writes "|" only for 1-byte types.
	const little = order !== ">";
	return { shape: h.shape.map(Number), count: Number(count), kind, size, little, descr: h.descr, body };
}

/**
 * Float data from an .npy held in memory: f4 as is, f8 narrowed, either byte order.
 * Non-finite values are refused unless `allowNonFinite`.
 */
export function parseNpyFloat32(buf: Uint8Array, name = "array", opts: { allowNonFinite?: boolean } = {}): NpyFloat32 {
	const p = parse(buf, name);
	if (p.kind !== "f") throw invalid(name, `dtype ${p.descr} is not a float dtype (expected <f4 or <f8)`);
	const out = new Float32Array(p.count);
	const v = p.body;
	if (p.size === 4) for (let i = 0; i < p.count; i++) out[i] = v.getFloat32(i * 4, p.little);
	else for (let i = 0; i < p.count; i++) out[i] = v.getFloat64(i * 8, p.little);
	if (!opts.allowNonFinite) {
		for (let i = 0; i < out.length; i++) {
			if (!Number.isFinite(out[i] as number)) throw invalid(name, `element ${i} is ${out[i]} (not finite)`);
		}
	}
	return { shape: p.shape, data: out };
}

/** Integer data (labels) from an .npy held in memory: any integer dtype and byte order, widened to int64. */
export function parseNpyInt64(buf: Uint8Array, name = "array"): NpyInt64 {
	const p = parse(buf, name);
	if (p.kind === "f") throw invalid(name, `dtype ${p.descr} is not an integer dtype (expected <i8)`);
	const out = new BigInt64Array(p.count);
	const v = p.body;
	const { little, size } = p;
	const signed = p.kind === "i";
	for (let i = 0; i < p.count; i++) {
		const o = i * size;
		let x: bigint;
		if (size === 1) x = BigInt(signed ? v.getInt8(o) : v.getUint8(o));
		else if (size === 2) x = BigInt(signed ? v.getInt16(o, little) : v.getUint16(o, little));
		else if (size === 4) x = BigInt(signed ? v.getInt32(o, little) : v.getUint32(o, little));
		else {
			const u = v.getBigUint64(o, little);
			if (!signed && u > BigInt.asUintN(64, (1n << 63n) - 1n)) throw invalid(name, `element ${i} does not fit int64`);
			x = BigInt.asIntN(64, u);
		}
		out[i] = x;
	}
	return { shape: p.shape, data: out };
}

async function readAll(path: string): Promise<Buffer> {
	try {
		return await readFile(path);
	} catch (e) {
		throw toFtguardError(e, path);
	}
}

/** Reads a float .npy file (see parseNpyFloat32). */
export async function readNpyFloat32(path: string, opts: { allowNonFinite?: boolean } = {}): Promise<NpyFloat32> {
	return parseNpyFloat32(await readAll(path), path, opts);
}

/** Reads an integer .npy file (see parseNpyInt64). */
export async function readNpyInt64(path: string): Promise<NpyInt64> {
	return parseNpyInt64(await readAll(path), path);
}

export type NpyWritable = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;

function descrOf(a: NpyWritable): string {
	if (a instanceof Float32Array) return "<f4";
	if (a instanceof Float64Array) return "<f8";
	if (a instanceof BigInt64Array) return "<i8";
	if (a instanceof Int32Array) return "<i4";
	return "|u1";
}

/** Serialises a C-order array as .npy version 1.0 (header padded to 64 bytes, like numpy). */
export function writeNpy(data: NpyWritable, shape: readonly number[]): Buffer {
	let count = 1;
	for (const d of shape) {
		if (!Number.isInteger(d) || d < 0) throw new FtguardError("USAGE", `writeNpy: bad dimension ${d}`);
		count *= d;
	}
	if (count !== data.length)
		throw new FtguardError(
			"USAGE",
			`writeNpy: shape (${shape.join(", ")}) holds ${count} elements, data has ${data.length}`,
		);
	const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
	let header = `{'descr': '${descrOf(data)}', 'fortran_order': False, 'shape': ${shapeText}, }`;
	const total = 10 + header.length + 1;
	header += " ".repeat((64 - (total % 64)) % 64);
	header += "\n";
	const head = Buffer.alloc(10);
	Buffer.from("\x93NUMPY", "latin1").copy(head, 0);
	head[6] = 1;
	head[7] = 0;
	head.writeUInt16LE(header.length, 8);
	const body = Buffer.alloc(data.byteLength);
	const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
	for (let i = 0; i < data.length; i++) {
		if (data instanceof Float32Array) v.setFloat32(i * 4, data[i] as number, true);
		else if (data instanceof Float64Array) v.setFloat64(i * 8, data[i] as number, true);
		else if (data instanceof BigInt64Array) v.setBigInt64(i * 8, data[i] as bigint, true);
		else if (data instanceof Int32Array) v.setInt32(i * 4, data[i] as number, true);
		else v.setUint8(i, data[i] as number);
	}
	return Buffer.concat([head, Buffer.from(header, "latin1"), body]);
}
