/**
 * Keras 2 HDF5 models (`model.save("x.h5")`, tf.keras, and Keras 3's legacy
 * `.h5` loader). `load_model` reads the root group's `model_config` attribute
 * (`f.attrs.get("model_config")`, `.decode("utf-8")` if bytes, `json.loads`)
 * and rebuilds every layer in it: a `Lambda` layer's `function` is marshalled
 * Python bytecode that runs while the model is built (CVE-2024-3660). The
 * config is judged with the same rules as `.keras` archives (keras.ts:
 * `keras-lambda`, `keras-custom-object`, `keras-dangerous-module` …), and so is
 * `training_config` (loss / metric / optimizer objects, also deserialized).
 *
 * A minimal, bounded HDF5 reader gets there: the superblock (versions 0–3, at
 * offset 0 or after a user block at 512 · 2^k, as H5Fopen searches), the root
 * group's object header (version 1, or version 2 "OHDR"), its continuation
 * blocks, and its attribute messages (versions 1–3, compact storage) whose
 * value is a fixed-length string or a variable-length string held in a global
 * heap collection ("GCOL"). Nothing else of the file is read (no datasets, no
 * B-trees). Checksums are not verified: a block HDF5 would reject cannot load,
 * so reading it anyway can only add findings.
 *
 * Fail closed: what h5py could read but this reader does not follow — dense
 * attribute storage (a fractal heap, used by the new file format once a
 * group's attributes outgrow the header: a config over 64 KiB), shared
 * (SOHM) attribute messages or datatypes, sizes of offsets other than 2/4/8,
 * structures that look broken to this reader (HDF5 is more lenient in places),
 * unknown superblock / header / attribute versions, loops, budgets — gives
 * `keras-h5-config-unreadable` (high, so unsafe): the config may hold a Lambda
 * we could not see. A config that is there but that Keras itself cannot load
 * (not a single string, not JSON) is `malformed`. An HDF5 file with no
 * `model_config` (a weights file) is safe: loading weights runs no code.
 */
import { kerasConfigFindings } from "./keras";
import { type ByteSource, type Finding, guarded, type ScanInput, type Scanner, type ScanResult } from "./types";

const SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);
/** Messages read from one object header, all blocks together. */
const MAX_MESSAGES = 100_000;
/** Continuation blocks followed. */
const MAX_BLOCKS = 1_000;
/** Largest header block or global heap collection read. */
const MAX_BLOCK = 64 * 1024 * 1024;
/** Largest config string decoded. */
const MAX_CONFIG = 64 * 1024 * 1024;
/** The attributes Keras deserializes objects from. */
const CONFIG_ATTRS = ["model_config", "training_config"];

class Unreadable extends Error {}
class Broken extends Error {}
const unreadable = (why: string): never => {
	throw new Unreadable(why);
};

/** True if `b` holds the HDF5 signature at `at`. */
function signatureAt(b: Buffer, at: number): boolean {
	return b.length >= at + 8 && b.subarray(at, at + 8).equals(SIGNATURE);
}

/** Offsets where HDF5 looks for the superblock: 0, 512, 1024, 2048, … */
function* superblockOffsets(limit: number): Generator<number> {
	yield 0;
	for (let o = 512; o < limit; o *= 2) yield o;
}

/** An unsigned little-endian integer of `n` bytes (2, 4 or 8); `Infinity` if beyond 2^53. */
function uint(b: Buffer, at: number, n: number): number {
	if (at + n > b.length) throw new Broken("structure runs past its block");
	if (n === 1) return b[at] as number;
	if (n === 2) return b.readUInt16LE(at);
	if (n === 4) return b.readUInt32LE(at);
	const v = b.readBigUInt64LE(at);
	return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.POSITIVE_INFINITY : Number(v);
}

/** An address field that is all ones: "undefined address". */
function isUndefined(b: Buffer, at: number, n: number): boolean {
	for (let i = 0; i < n; i++) if (b[at + i] !== 0xff) return false;
	return true;
}

interface Ctx {
	src: ByteSource;
	/** Size of offsets and lengths (bytes). */
	O: number;
	L: number;
	/** Base address: file addresses are relative to it. */
	base: number;
}

async function readAt(ctx: Ctx, addr: number, length: number, what: string): Promise<Buffer> {
	const at = ctx.base + addr;
	if (!Number.isFinite(at) || length > MAX_BLOCK) unreadable(`${what} of ${length} bytes at ${addr}`);
	if (at + length > ctx.src.size) throw new Broken(`${what} at ${addr} runs past the end of the file`);
	return ctx.src.read(at, length);
}

interface Superblock {
	ctx: Ctx;
	version: number;
	rootHeader: number;
	/** End-of-file address: H5Fopen refuses a file shorter than it ("truncated file"). */
	eof: number;
}

async function superblock(src: ByteSource, head: Buffer | undefined): Promise<Superblock | undefined> {
	for (const at of superblockOffsets(src.size)) {
		const b = head !== undefined && at + 96 <= head.length ? head.subarray(at, at + 96) : await src.read(at, 96);
		if (!signatureAt(b, 0)) continue;
		const version = b[8] as number;
		if (version === 0 || version === 1) {
			const O = b[13] as number;
			const L = b[14] as number;
			if (![2, 4, 8].includes(O) || ![2, 4, 8].includes(L)) unreadable(`sizes of offsets/lengths ${O}/${L}`);
			const p = version === 0 ? 24 : 28;
			const baseAddr = uint(b, p, O);
			// the root group's symbol table entry: link name offset, then its object header address
			const rootHeader = uint(b, p + 4 * O + O, O);
			return { ctx: { src, O, L, base: baseAddr }, version, rootHeader, eof: uint(b, p + 2 * O, O) };
		}
		if (version === 2 || version === 3) {
			const O = b[9] as number;
			const L = b[10] as number;
			if (![2, 4, 8].includes(O) || ![2, 4, 8].includes(L)) unreadable(`sizes of offsets/lengths ${O}/${L}`);
			const baseAddr = uint(b, 12, O);
			const rootHeader = uint(b, 12 + 3 * O, O);
			return { ctx: { src, O, L, base: baseAddr }, version, rootHeader, eof: uint(b, 12 + 2 * O, O) };
		}
		unreadable(`superblock version ${version}`);
	}
	return undefined;
}

interface Message {
	type: number;
	flags: number;
	data: Buffer;
}

/** The messages of the object header at `addr`, continuation blocks included (versions 1 and 2). */
async function headerMessages(ctx: Ctx, addr: number): Promise<Message[]> {
	const out: Message[] = [];
	const blocks: { addr: number; length: number }[] = [];
	const seen = new Set<number>();
	const prefix = await readAt(ctx, addr, 16, "object header");
	let v2 = false;
	let creationOrder = false;
	if (prefix.subarray(0, 4).toString("latin1") === "OHDR") {
		v2 = true;
		if (prefix[4] !== 2) unreadable(`object header version ${prefix[4]}`);
		const flags = prefix[5] as number;
		creationOrder = (flags & 0x04) !== 0;
		let p = 6 + (flags & 0x20 ? 16 : 0) + (flags & 0x10 ? 4 : 0);
		const w = 1 << (flags & 0x03);
		const hdr = await readAt(ctx, addr, p + w, "object header");
		const size = uint(hdr, p, w);
		p += w;
		blocks.push({ addr: addr + p, length: size });
	} else {
		if (prefix[0] !== 1) unreadable(`object header version ${prefix[0]}`);
		// version 1: 12 bytes of prefix, padded to 16; the first block's size at 8
		blocks.push({ addr: addr + 16, length: prefix.readUInt32LE(8) });
	}
	for (let i = 0; i < blocks.length; i++) {
		if (i >= MAX_BLOCKS) unreadable(`more than ${MAX_BLOCKS} object header blocks`);
		const blk = blocks[i] as { addr: number; length: number };
		if (seen.has(blk.addr)) unreadable("object header continuation loop");
		seen.add(blk.addr);
		let buf = await readAt(ctx, blk.addr, blk.length, "object header block");
		if (v2 && i > 0) {
			// a continuation block is "OCHK", messages, a 4-byte checksum (chunk 0's size leaves its checksum out)
			if (buf.subarray(0, 4).toString("latin1") !== "OCHK") throw new Broken("continuation block without OCHK");
			buf = buf.subarray(4, Math.max(4, buf.length - 4));
		}
		const hsize = v2 ? 4 + (creationOrder ? 2 : 0) : 8;
		let p = 0;
		while (p + hsize <= buf.length) {
			if (out.length >= MAX_MESSAGES) unreadable(`more than ${MAX_MESSAGES} header messages`);
			const type = v2 ? (buf[p] as number) : buf.readUInt16LE(p);
			const size = v2 ? buf.readUInt16LE(p + 1) : buf.readUInt16LE(p + 2);
			const flags = v2 ? (buf[p + 3] as number) : (buf[p + 4] as number);
			const start = p + hsize;
			if (start + size > buf.length) throw new Broken("header message runs past its block");
			const data = buf.subarray(start, start + size);
			out.push({ type, flags, data });
			if (type === 0x10) {
				// continuation: address and length of another block of messages
				blocks.push({ addr: uint(data, 0, ctx.O), length: uint(data, ctx.O, ctx.L) });
			}
			p = start + size;
			// version 1 messages are padded to multiples of 8 in their size already
		}
	}
	return out;
}

interface Attribute {
	name: string;
	/** The string values, or why the value is not a string Keras can use. */
	values: Buffer[] | { notString: string };
	elements: number;
}

/** Parses an attribute message (versions 1–3) and reads its string value(s). */
async function attribute(ctx: Ctx, m: Message, wanted: (name: string) => boolean): Promise<Attribute | undefined> {
	const d = m.data;
	const version = d[0] as number;
	if (version < 1 || version > 3) unreadable(`attribute message version ${version}`);
	const flags = version >= 2 ? (d[1] as number) : 0;
	const nameSize = uint(d, 2, 2);
	const typeSize = uint(d, 4, 2);
	const spaceSize = uint(d, 6, 2);
	const pad8 = (n: number) => (version === 1 ? Math.ceil(n / 8) * 8 : n);
	let p = version === 3 ? 9 : 8;
	const rawName = d.subarray(p, p + nameSize);
	const z = rawName.indexOf(0);
	const name = (z < 0 ? rawName : rawName.subarray(0, z)).toString("utf8");
	if (!wanted(name)) return undefined;
	if (flags & 0x03) unreadable(`attribute ${name} uses a shared datatype or dataspace`);
	p += pad8(nameSize);
	const type = d.subarray(p, p + typeSize);
	p += pad8(typeSize);
	const space = d.subarray(p, p + spaceSize);
	p += pad8(spaceSize);
	const data = d.subarray(p);
	const elements = dataspaceElements(ctx, space);
	// Keras needs exactly one string; a huge array (of empty strings, say) cannot be a config it loads.
	if (!Number.isSafeInteger(elements) || elements > 1_000_000)
		throw new Broken(`attribute ${name} has ${elements} elements`);
	const cls = (type[0] as number) & 0x0f;
	const typeBytes = uint(type, 4, 4);
	if (cls === 3) {
		// fixed-length string: `typeBytes` per element (numpy strips trailing NULs)
		if (typeBytes * elements > data.length) throw new Broken(`attribute ${name}: value runs past its message`);
		const values = Array.from({ length: elements }, (_, i) => {
			const v = data.subarray(i * typeBytes, (i + 1) * typeBytes);
			let e = v.length;
			while (e > 0 && v[e - 1] === 0) e--;
			return v.subarray(0, e);
		});
		return { name, values, elements };
	}
	if (cls === 9) {
		// variable-length: bits 0-3 of the class bit field say sequence (0) or string (1)
		if (((type[1] as number) & 0x0f) !== 1)
			return { name, values: { notString: "a variable-length sequence" }, elements };
		// on disk each element is: length (4), global heap collection address (O), object index (4)
		const w = 4 + ctx.O + 4;
		if (w * elements > data.length) throw new Broken(`attribute ${name}: value runs past its message`);
		const values: Buffer[] = [];
		for (let i = 0; i < elements; i++) {
			const at = i * w;
			const len = uint(data, at, 4);
			if (isUndefined(data, at + 4, ctx.O) || len === 0) {
				values.push(Buffer.alloc(0));
				continue;
			}
			values.push(await globalHeapObject(ctx, uint(data, at + 4, ctx.O), uint(data, at + 4 + ctx.O, 4), len));
		}
		return { name, values, elements };
	}
	return { name, values: { notString: `datatype class ${cls}` }, elements };
}

/** Number of elements of a dataspace message (versions 1 and 2). */
function dataspaceElements(ctx: Ctx, s: Buffer): number {
	const version = s[0] as number;
	const ndims = s[1] as number;
	if (version === 1) {
		let n = 1;
		for (let i = 0; i < ndims; i++) n *= uint(s, 8 + i * ctx.L, ctx.L);
		return ndims === 0 ? 1 : n;
	}
	if (version === 2) {
		const kind = s[3] as number;
		if (kind === 0) return 1;
		if (kind === 2) return 0;
		let n = 1;
		for (let i = 0; i < ndims; i++) n *= uint(s, 4 + i * ctx.L, ctx.L);
		return n;
	}
	return unreadable(`dataspace version ${version}`);
}

/** Object `index` of the global heap collection at `addr` (its first `len` bytes: the string). */
async function globalHeapObject(ctx: Ctx, addr: number, index: number, len: number): Promise<Buffer> {
	if (len > MAX_CONFIG) unreadable(`variable-length string of ${len} bytes`);
	const head = await readAt(ctx, addr, 8 + ctx.L, "global heap");
	if (head.subarray(0, 4).toString("latin1") !== "GCOL") throw new Broken("global heap collection without GCOL");
	if (head[4] !== 1) unreadable(`global heap version ${head[4]}`);
	const size = uint(head, 8, ctx.L);
	const col = await readAt(ctx, addr, size, "global heap collection");
	let p = 8 + ctx.L;
	const objHead = 8 + ctx.L;
	while (p + objHead <= col.length) {
		const idx = col.readUInt16LE(p);
		const osize = uint(col, p + 8, ctx.L);
		if (idx === index) {
			if (len > osize || p + objHead + len > col.length) throw new Broken("global heap object shorter than its string");
			return col.subarray(p + objHead, p + objHead + len);
		}
		if (idx === 0) break; // free space: the rest of the collection
		p += objHead + Math.ceil(osize / 8) * 8;
	}
	throw new Broken(`global heap object ${index} not found`);
}

/** Python's json.loads also reads NaN / Infinity / -Infinity (json.dumps writes them): map them to null outside strings. */
function pythonJson(text: string): unknown {
	let out = "";
	let inStr = false;
	for (let i = 0; i < text.length; i++) {
		const c = text[i] as string;
		if (inStr) {
			out += c;
			if (c === "\\") out += text[++i] ?? "";
			else if (c === '"') inStr = false;
			continue;
		}
		if (c === '"') inStr = true;
		else if (text.startsWith("NaN", i)) {
			out += "null";
			i += 2;
			continue;
		} else if (text.startsWith("Infinity", i)) {
			out += "null";
			i += 7;
			continue;
		} else if (c === "-" && text.startsWith("-Infinity", i)) {
			out += "null";
			i += 8;
			continue;
		}
		out += c;
	}
	return JSON.parse(out);
}

async function scanH5(input: ScanInput): Promise<ScanResult> {
	const findings: Finding[] = [];
	const { source: src, head } = input;
	try {
		const sb = await superblock(src, head);
		if (sb === undefined) return { findings, malformed: "no HDF5 superblock signature" };
		// H5Fopen compares the stored end-of-file address (it counts the user block) with the file's size:
		// a shorter file does not open at all.
		if (sb.eof > src.size)
			return { findings, malformed: `hdf5: truncated file: ${src.size} bytes, the superblock says ${sb.eof}` };
		const messages = await headerMessages(sb.ctx, sb.rootHeader);
		const found: Attribute[] = [];
		for (const m of messages) {
			if (m.type === 0x15) {
				// Attribute Info: a defined fractal heap address means dense attribute storage
				const fl = m.data[1] as number;
				const at = 2 + (fl & 0x01 ? 2 : 0);
				if (!isUndefined(m.data, at, sb.ctx.O))
					unreadable("the root group keeps its attributes in dense storage (fractal heap)");
			}
			if (m.type !== 0x0c) continue;
			if (m.flags & 0x02) unreadable("the root group has a shared attribute message");
			try {
				const a = await attribute(sb.ctx, m, (n) => CONFIG_ATTRS.includes(n));
				if (a) found.push(a);
			} catch (e) {
				// One attribute we cannot read does not hide the others (model_config's Lambda runs
				// before Keras reads training_config); it is reported on its own.
				if (!(e instanceof Broken)) throw e;
				findings.push(unreadableFinding(e.message));
			}
		}
		if (!found.some((a) => a.name === "model_config")) return { findings };
		// (an unreadable attribute above may have been model_config: its finding stands)
		let malformed: string | undefined;
		for (const a of found) {
			if (!Array.isArray(a.values)) {
				malformed ??= `${a.name} is ${a.values.notString}, not a string: Keras cannot load it`;
				continue;
			}
			if (a.elements !== 1) malformed ??= `${a.name} holds ${a.elements} strings, not one: Keras cannot load it`;
			for (const v of a.values) {
				let cfg: unknown;
				try {
					// Not strict UTF-8: h5py 3 hands variable-length strings over decoded with surrogateescape,
					// so invalid bytes in one do not stop Keras (a fixed-length one it decodes strictly).
					cfg = pythonJson(v.toString("utf8"));
				} catch {
					malformed ??= `${a.name} is not JSON: Keras cannot load it`;
					continue;
				}
				findings.push(...kerasConfigFindings(cfg, a.name));
			}
		}
		return malformed !== undefined ? { findings, malformed } : { findings };
	} catch (e) {
		if (e instanceof Unreadable) {
			findings.push({
				id: "keras-h5-config-unreadable",
				severity: "high",
				message: `the root group's attributes cannot be read here (${e.message}); model_config may hold a Lambda layer`,
			});
			return { findings };
		}
		if (e instanceof Broken) {
			// Broken as this reader sees it; HDF5 is more lenient in places (h5py reads a string from a
			// heap object shorter than its declared length, for one), so a config we did not reach is unsafe.
			findings.push(unreadableFinding(e.message));
			return { findings, malformed: `hdf5: ${e.message}` };
		}
		throw e;
	}
}

function unreadableFinding(why: string): Finding {
	return {
		id: "keras-h5-config-unreadable",
		severity: "high",
		message: `the HDF5 structure cannot be followed here (${why}); model_config was not checked`,
	};
}

/** Scans a Keras 2 / tf.keras HDF5 model (any HDF5 file: one without model_config is safe). */
function scan(input: ScanInput): Promise<ScanResult> {
	return guarded(() => scanH5(input));
}

/** Whether the HDF5 signature is at one of the offsets where HDF5 looks for a superblock, anywhere in the file. */
async function hdf5SignatureIn(src: ByteSource, head: Buffer): Promise<boolean> {
	const beyond: number[] = [];
	for (const at of superblockOffsets(src.size - 7)) {
		if (at + 8 <= head.length) {
			if (signatureAt(head, at)) return true;
		} else beyond.push(at);
	}
	// one 8-byte read per power of two past the head (about 14 for 1 GiB), all at once: from S3 each is a GET
	const found = await Promise.all(
		beyond.map(async (at) => signatureAt(await (src.probe ? src.probe(at, 8) : src.read(at, 8)), 0)),
	);
	return found.includes(true);
}

/**
 * HDF5 files whose superblock signature is in the head (at 0, or after a user block of 512 · 2^k bytes). Also
 * looked for in files another scanner claimed: h5py finds the superblock after a user block of any size, whatever
 * the block holds, and tf.keras `load_model` opens any file `h5py.is_hdf5` accepts, whatever its name — a pickle,
 * a torch zip whose stored entry sits at a power of two, a .keras archive, can carry a Keras 2 model too.
 */
export const kerasH5Scanner: Scanner = {
	format: "keras-h5",
	detect(head) {
		for (const at of superblockOffsets(head.length)) if (signatureAt(head, at)) return true;
		return false;
	},
	scan,
	alsoIn: (source, head) => hdf5SignatureIn(source, head),
};

/**
 * Files named `.h5` / `.hdf5` that nothing else claimed: h5py (H5Fopen) also finds a
 * superblock after a user block larger than the engine's head, so the scan searches
 * the whole file. Registered last, so that content-detected formats win.
 */
export const kerasH5NamedScanner: Scanner = {
	format: "keras-h5",
	detect(_head, name) {
		return /\.(h5|hdf5|he5)$/i.test(name);
	},
	scan,
};
