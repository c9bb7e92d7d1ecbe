/** A small ustar writer for tests: headers as tarfile writes them, with knobs for the odd ones. */

export interface HeaderOpts {
	type?: string;
	prefix?: string;
	linkname?: string;
	/** raw bytes for the size field (12 bytes), instead of octal */
	sizeField?: Buffer;
	signedChecksum?: boolean;
}

export function header(name: string | Buffer, size: number, o: HeaderOpts = {}): Buffer {
	const h = Buffer.alloc(512);
	(typeof name === "string" ? Buffer.from(name) : name).copy(h, 0, 0, 100);
	h.write("0000600\0", 100, "latin1");
	h.write("0001750\0", 108, "latin1");
	h.write("0001750\0", 116, "latin1");
	if (o.sizeField) o.sizeField.copy(h, 124);
	else h.write(`${size.toString(8).padStart(11, "0")}\0`, 124, "latin1");
	h.write("13122741000\0", 136, "latin1");
	h.write(o.type ?? "0", 156, "latin1");
	if (o.linkname) h.write(o.linkname, 157, "utf8");
	h.write("ustar\0" + "00", 257, "latin1");
	if (o.prefix) h.write(o.prefix, 345, "utf8");
	setChecksum(h, 0, o.signedChecksum);
	return h;
}

export function setChecksum(b: Buffer, at: number, signed = false): void {
	b.fill(0x20, at + 148, at + 156);
	let sum = 0;
	for (let i = 0; i < 512; i++) {
		const c = b[at + i] as number;
		sum += signed && c > 127 ? c - 256 : c;
	}
	b.write(`${sum.toString(8).padStart(6, "0")}\0 `, at + 148, "latin1");
}

export const pad = (data: Buffer) => Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
export const member = (name: string, data: Buffer, o: HeaderOpts = {}) =>
	Buffer.concat([header(name, data.length, o), pad(data)]);
