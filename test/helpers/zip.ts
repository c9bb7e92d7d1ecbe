/** Test archives built byte by byte (no zip library, no Python). */
import { deflateRawSync } from "node:zlib";

/** A minimal zip writer: stored or deflated entries, optional method override. */
export function zip(files: Array<{ name: string; data: Buffer; method?: number; rawMethod?: number }>): Buffer {
	const locals: Buffer[] = [];
	const central: Buffer[] = [];
	let off = 0;
	for (const f of files) {
		const method = f.method ?? 8;
		const body = method === 8 ? deflateRawSync(f.data) : f.data;
		const name = Buffer.from(f.name);
		const lh = Buffer.alloc(30);
		lh.writeUInt32LE(0x04034b50, 0);
		lh.writeUInt16LE(f.rawMethod ?? method, 8);
		lh.writeUInt32LE(body.length, 18);
		lh.writeUInt32LE(f.data.length, 22);
		lh.writeUInt16LE(name.length, 26);
		const ch = Buffer.alloc(46);
		ch.writeUInt32LE(0x02014b50, 0);
		ch.writeUInt16LE(f.rawMethod ?? method, 10);
		ch.writeUInt32LE(body.length, 20);
		ch.writeUInt32LE(f.data.length, 24);
		ch.writeUInt16LE(name.length, 28);
		ch.writeUInt32LE(off, 42);
		locals.push(lh, name, body);
		central.push(ch, name);
		off += 30 + name.length + body.length;
	}
	const cd = Buffer.concat(central);
	const eocd = Buffer.alloc(22);
	eocd.writeUInt32LE(0x06054b50, 0);
	eocd.writeUInt16LE(files.length, 8);
	eocd.writeUInt16LE(files.length, 10);
	eocd.writeUInt32LE(cd.length, 12);
	eocd.writeUInt32LE(off, 16);
	return Buffer.concat([...locals, cd, eocd]);
}
