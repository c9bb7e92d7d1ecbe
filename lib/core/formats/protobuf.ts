/**
 * The protobuf wire format, enough to read and write ONNX models without a
 * schema library (the field numbers are in onnx-wire.ts).
 *
 * Reading goes over a ByteSource: length-delimited fields are returned as byte
 * ranges, so a caller descends into the messages it cares about and skips the
 * rest (tensor `raw_data`, often gigabytes) without reading it. Reads go through
 * a forward read-ahead window: a depth-first walk touches the file in order.
 * Every length is checked against the enclosing message before use; a broken
 * encoding throws ProtoError, never anything else.
 *
 * Writing builds messages bottom-up as byte chunks, so a nested message's length
 * is known before it is framed.
 */
import type { ByteSource } from "./types";

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

/** Raised for any wire-format violation (bad varint, length past the end, group or unknown wire type). */
export class ProtoError extends Error {}

/** One field of a message. `value` for varint / fixed fields, `start`/`length` for length-delimited ones. */
export interface ProtoField {
	field: number;
	wire: number;
	value: bigint;
	start: number;
	length: number;
}

/** Read-ahead size: small, because each tensor after a skipped raw_data costs one window read. */
const CHUNK = 16 * 1024;

/** Random-access bytes with a forward read-ahead window. */
export class ProtoSource {
	private winStart = 0;
	private win: Buffer = Buffer.alloc(0);
	constructor(readonly src: ByteSource) {}

	get size(): number {
		return this.src.size;
	}

	/** Returns exactly `n` bytes at `pos` (n must be within the file). */
	async bytes(pos: number, n: number): Promise<Buffer> {
		if (pos < 0 || n < 0 || pos + n > this.src.size)
			throw new ProtoError(`read of ${n} bytes at ${pos} past end of file`);
		const off = pos - this.winStart;
		if (off >= 0 && off + n <= this.win.length) return this.win.subarray(off, off + n);
		const want = Math.max(n, Math.min(CHUNK, this.src.size - pos));
		const b = await this.src.read(pos, want);
		if (b.length < n) throw new ProtoError(`short read at ${pos}`);
		if (n <= CHUNK) {
			this.win = b;
			this.winStart = pos;
		}
		return b.subarray(0, n);
	}

	/** Reads a varint at `pos` no further than `end`; returns value and new position. */
	async varint(pos: number, end: number): Promise<[bigint, number]> {
		const avail = Math.min(10, end - pos);
		if (avail <= 0) throw new ProtoError(`varint at ${pos} past end of message`);
		const b = await this.bytes(pos, avail);
		let v = 0n;
		for (let i = 0; i < avail; i++) {
			const byte = b[i] as number;
			v |= BigInt(byte & 0x7f) << BigInt(7 * i);
			if ((byte & 0x80) === 0) return [v & 0xffffffffffffffffn, pos + i + 1];
		}
		throw new ProtoError(`varint at ${pos} longer than 10 bytes or past end of message`);
	}

	/** Iterates the fields of the message occupying [start, end). */
	async *fields(start: number, end: number): AsyncGenerator<ProtoField> {
		if (end > this.src.size) throw new ProtoError(`message [${start}, ${end}) past end of file`);
		let pos = start;
		while (pos < end) {
			const [tag, p] = await this.varint(pos, end);
			pos = p;
			const field = Number(tag >> 3n);
			const wire = Number(tag & 7n);
			if (field === 0 || tag >> 3n > 0x1fffffffn) throw new ProtoError(`invalid field number at ${pos}`);
			switch (wire) {
				case WIRE_VARINT: {
					const [v, q] = await this.varint(pos, end);
					pos = q;
					yield { field, wire, value: v, start: pos, length: 0 };
					break;
				}
				case WIRE_I64:
				case WIRE_I32: {
					const n = wire === WIRE_I64 ? 8 : 4;
					if (pos + n > end) throw new ProtoError(`fixed field ${field} past end of message`);
					const b = await this.bytes(pos, n);
					const v = n === 8 ? b.readBigUInt64LE(0) : BigInt(b.readUInt32LE(0));
					yield { field, wire, value: v, start: pos, length: n };
					pos += n;
					break;
				}
				case WIRE_LEN: {
					const [len, q] = await this.varint(pos, end);
					if (len > BigInt(end - q)) throw new ProtoError(`field ${field} length ${len} past end of message`);
					const n = Number(len);
					yield { field, wire, value: len, start: q, length: n };
					pos = q + n;
					break;
				}
				default:
					// 3/4 are deprecated groups (ONNX never uses them), 6/7 do not exist
					throw new ProtoError(`unsupported wire type ${wire} for field ${field}`);
			}
		}
	}

	/** Reads a length-delimited field as UTF-8, at most `max` bytes (longer values are cut). */
	async string(f: ProtoField, max = 4096): Promise<string> {
		return (await this.bytes(f.start, Math.min(f.length, max))).toString("utf8");
	}
}

/**
 * Synchronously checks that a buffer starts like a protobuf message: up to
 * `maxFields` well-formed fields whose numbers and wire types satisfy `ok`.
 * For content sniffing only.
 */
export function looksLikeMessage(
	head: Buffer,
	size: number,
	ok: (field: number, wire: number) => boolean,
	maxFields = 3,
): number {
	let pos = 0;
	let seen = 0;
	const varint = (): bigint | undefined => {
		let v = 0n;
		for (let i = 0; i < 10 && pos < head.length; i++) {
			const b = head[pos++] as number;
			v |= BigInt(b & 0x7f) << BigInt(7 * i);
			if ((b & 0x80) === 0) return v;
		}
		return undefined;
	};
	while (seen < maxFields && pos < head.length) {
		const tag = varint();
		if (tag === undefined) return seen;
		const field = Number(tag >> 3n);
		const wire = Number(tag & 7n);
		if (!ok(field, wire)) return seen;
		if (wire === WIRE_VARINT) {
			if (varint() === undefined) return seen;
		} else if (wire === WIRE_LEN) {
			const len = varint();
			if (len === undefined || BigInt(pos) + len > BigInt(size)) return seen;
			pos += Number(len);
		} else if (wire === WIRE_I64) pos += 8;
		else if (wire === WIRE_I32) pos += 4;
		else return seen;
		seen++;
	}
	return seen;
}

const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);

/** A message under construction; `finish` gives its encoding. */
export class ProtoWriter {
	private chunks: Uint8Array[] = [];
	private size = 0;

	private push(b: Uint8Array): void {
		this.chunks.push(b);
		this.size += b.length;
	}

	private rawVarint(v: bigint): void {
		// int64 fields are two's complement on the wire: negatives take ten bytes
		let u = BigInt.asUintN(64, v);
		const out: number[] = [];
		while (u >= 0x80n) {
			out.push(Number(u & 0x7fn) | 0x80);
			u >>= 7n;
		}
		out.push(Number(u));
		this.push(Uint8Array.from(out));
	}

	private tag(field: number, wire: number): void {
		this.rawVarint(BigInt((field << 3) | wire));
	}

	/** int64 / int32 / enum / bool field; numbers beyond int64 saturate (attribute ints are read as doubles). */
	varint(field: number, v: number | bigint): void {
		let b = typeof v === "bigint" ? v : BigInt(Math.trunc(v));
		if (b > INT64_MAX) b = INT64_MAX;
		if (b < INT64_MIN) b = INT64_MIN;
		this.tag(field, WIRE_VARINT);
		this.rawVarint(b);
	}

	float(field: number, v: number): void {
		this.tag(field, WIRE_I32);
		const b = new Uint8Array(4);
		new DataView(b.buffer).setFloat32(0, v, true);
		this.push(b);
	}

	bytes(field: number, b: Uint8Array): void {
		this.tag(field, WIRE_LEN);
		this.rawVarint(BigInt(b.length));
		this.push(b);
	}

	string(field: number, s: string): void {
		this.bytes(field, new TextEncoder().encode(s));
	}

	message(field: number, w: ProtoWriter): void {
		this.bytes(field, w.finish());
	}

	finish(): Uint8Array {
		const out = new Uint8Array(this.size);
		let pos = 0;
		for (const c of this.chunks) {
			out.set(c, pos);
			pos += c.length;
		}
		return out;
	}
}
