/**
 * A minimal protobuf wire-format writer: the counterpart of formats/protobuf.ts
 * for the few messages the backdoor engine writes back (ONNX ModelProto). Messages
 * are built bottom-up as byte chunks, so a nested message's length is known
 * before it is framed.
 */

const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);

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
		this.tag(field, 0);
		this.rawVarint(b);
	}

	float(field: number, v: number): void {
		this.tag(field, 5);
		const b = new Uint8Array(4);
		new DataView(b.buffer).setFloat32(0, v, true);
		this.push(b);
	}

	bytes(field: number, b: Uint8Array): void {
		this.tag(field, 2);
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
