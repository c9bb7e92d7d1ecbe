/**
 * A dataset version's manifest: each file's SHA-256, byte and record counts, and a Merkle root over the records —
 * each leaf the SHA-256 of the record as canonical JSON (RFC 8785), so the root names the records whatever their
 * file layout (the same records as JSONL or Parquet, sharded or not, give the same root), and one changed record
 * changes it. The tree is RFC 6962's (0x00 leaf and 0x01 node prefixes, split at the largest power of two), built
 * incrementally in O(log N) memory. The manifest also keeps an 8-byte prefix of every leaf, so a later scan can say
 * which records were added or removed between two versions.
 */
import { createHash, hash } from "node:crypto";
import canonicalize from "canonicalize";

export const LINEAGE_VERSION = 1;

export interface LineageFile {
	readonly path: string;
	readonly sha256: string;
	readonly bytes: number;
	readonly records: number;
}

export interface Lineage {
	readonly version: typeof LINEAGE_VERSION;
	readonly records: number;
	/** RFC 6962 Merkle tree head over the records' canonical JSON, hex */
	readonly merkle_root: string;
	readonly files: readonly LineageFile[];
	/** base64 of the first 8 bytes of every leaf hash, in record order */
	readonly leaf_prefixes: string;
}

export interface LineageDiff {
	/** records of the new version whose content is not in the old one (0-based, new numbering) */
	readonly added: readonly number[];
	/** records of the old version whose content is not in the new one (0-based, old numbering) */
	readonly removed: readonly number[];
}

function sha256(...parts: Uint8Array[]): Buffer {
	const h = createHash("sha256");
	for (const p of parts) h.update(p);
	return h.digest();
}

const LEAF = Buffer.from([0]);
const NODE = Buffer.from([1]);

/** The canonical bytes of a parsed record (RFC 8785); a record that did not parse is hashed as its raw text. */
export function canonicalBytes(value: unknown): Buffer {
	return Buffer.from(canonicalJson(value), "utf8");
}

const keySet = new Set<string>();

/**
 * RFC 8785 canonical JSON of a parsed value, byte for byte what `canonicalize` writes, about twice as fast: that is
 * `JSON.stringify` with every object's keys in sorted order, and `JSON.stringify` given the sorted list of all keys
 * the value uses writes each object's keys in that order. Values that are not plain JSON data (another prototype, a
 * `__proto__` key, which the list would look up on objects that lack it) go to `canonicalize`.
 */
export function canonicalJson(value: unknown): string {
	keySet.clear();
	if (typeof value === "object" && value !== null && collectKeys(value, keySet, 0))
		return JSON.stringify(value, [...keySet].sort());
	try {
		return canonicalize(value) ?? "null";
	} catch (e) {
		// RFC 8785 has no text for NaN or ±Infinity (a JSON number like 1e400 parses to Infinity; Parquet doubles hold NaN)
		if (e instanceof Error && /^(NaN|Infinity) is not allowed/.test(e.message)) throw new NotCanonicalError(e.message);
		throw e;
	}
}

/** A value RFC 8785 cannot write (a number that is NaN or ±Infinity once parsed): the record cannot be canonicalised. */
export class NotCanonicalError extends Error {}

/** Stand-in text for a record that has no canonical form and no raw text (a Parquet row with NaN): its leaf's input. */
export function nonCanonicalText(value: unknown): string {
	return JSON.stringify(value, (_k, x) => (typeof x === "number" && !Number.isFinite(x) ? `\u0000${x}` : x)) ?? "";
}

function collectKeys(v: object, keys: Set<string>, depth: number): boolean {
	if (depth > 64) return false;
	if (Array.isArray(v)) {
		for (const x of v) {
			if (typeof x === "object" && x !== null) {
				if (!collectKeys(x, keys, depth + 1)) return false;
			} else if (typeof x === "number" && !Number.isFinite(x)) return false;
		}
		return true;
	}
	if (Object.getPrototypeOf(v) !== Object.prototype) return false;
	for (const k in v) {
		if (k === "__proto__" || !Object.hasOwn(v, k)) return false;
		keys.add(k);
		const x = (v as Record<string, unknown>)[k];
		if (typeof x === "object" && x !== null && !collectKeys(x, keys, depth + 1)) return false;
		if (
			typeof x !== "string" &&
			typeof x !== "boolean" &&
			typeof x !== "object" &&
			!(typeof x === "number" && Number.isFinite(x))
		)
			return false;
	}
	return true;
}

/**
 * A record's leaf hash, SHA-256(0x00 ‖ canonical bytes), as a string of 32 latin1 characters (a string costs the
 * garbage collector far less than a buffer, one per record); `scratch` is reused (grown when too small).
 */
export function leafHash(canonical: string, scratch: { buf: Buffer }): string {
	let buf = scratch.buf;
	if (canonical.length * 3 + 1 > buf.length) {
		buf = Buffer.allocUnsafe(canonical.length * 3 + 1024);
		scratch.buf = buf;
	}
	buf[0] = 0;
	const n = buf.write(canonical, 1, "utf8");
	return hash("sha256", buf.subarray(0, n + 1), "binary");
}

/**
 * A record's leaf hash from its JSON text's UTF-8 bytes (that JSON.parse accepted), without parsing it into values:
 * the canonical form is written from the bytes — whitespace dropped, each object's members in key order, strings
 * copied when their escapes are already JSON.stringify's (re-encoded otherwise), numbers copied when already in
 * canonical form — then hashed. Undefined when the text needs the general path (a key that is not plain ASCII, a
 * repeated key, a byte-order mark); `canonicalJson` of the parsed value gives the same bytes.
 */
export function leafFromBytes(src: Uint8Array, scratch: { buf: Buffer }): string | undefined {
	// the text and its canonical form share one buffer (the text first): every copy is a native copyWithin
	const n = src.length;
	if (n * 4 + 64 > scratch.buf.length) scratch.buf = Buffer.allocUnsafe(n * 4 + 1024);
	const b = scratch.buf;
	b.set(src, 0);
	const w = writer;
	w.b = b;
	w.end = n;
	w.pos = 0;
	const start = n + 8;
	w.o = start + 1;
	b[start] = 0;
	w.backslash = -1;
	// only numbers can come out longer than they went in; past half of what is left, the general path (a write
	// beyond a typed array's end would be dropped without a word)
	w.limit = start + ((b.length - start) >> 1);
	w.reset();
	if (!w.value()) return undefined;
	w.ws();
	if (w.pos !== n) return undefined;
	return hash("sha256", b.subarray(start, w.o), "binary");
}

const HEX = "0123456789abcdef";

/**
 * One pass over the bytes: every value's canonical form is written as it is read; an object's members are written in
 * the order they come, then moved into key order (a copy of the object's bytes, when they were not in order already).
 */
class ByteCanonicalizer {
	/** the text at [0, end), its canonical form written from `o` on */
	b: Buffer = Buffer.alloc(0);
	end = 0;
	limit = 0;
	pos = 0;
	o = 0;
	/** where the next backslash of `src` is at or after `pos` (-1: not looked for yet; src.length: none) */
	backslash = -1;
	/** per member: key start, key end (in src), segment start, segment end (in out): `members[0, mn)` */
	private members = new Int32Array(256);
	private mn = 0;

	/** Copy text bytes [from, to) to the output (which lies after the text: they never overlap). */
	private copy(from: number, to: number): void {
		const n = to - from;
		const b = this.b;
		// (a short run costs less copied here than through a native call)
		if (n < 48) for (let i = 0, o = this.o; i < n; i++) b[o + i] = b[from + i] as number;
		else b.copyWithin(this.o, from, to);
		this.o += n;
	}

	reset(): void {
		this.mn = 0;
	}

	/** A member's four numbers onto `members`; returns where they are. */
	private member(ks: number, ke: number, out: number): number {
		if (this.mn + 4 > this.members.length) {
			const next = new Int32Array(this.members.length * 2);
			next.set(this.members);
			this.members = next;
		}
		const at = this.mn;
		const m = this.members;
		m[at] = ks;
		m[at + 1] = ke;
		m[at + 2] = out;
		m[at + 3] = 0;
		this.mn = at + 4;
		return at;
	}

	ws(): void {
		const s = this.b;
		let p = this.pos;
		while (p < this.end) {
			const c = s[p] as number;
			if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
			p++;
		}
		this.pos = p;
	}

	value(): boolean {
		this.ws();
		const c = this.b[this.pos];
		if (c === 0x22) return this.string();
		if (c === 0x7b) return this.object();
		if (c === 0x5b) return this.array();
		if (c === 0x74) return this.literal(4); // true
		if (c === 0x66) return this.literal(5); // false
		if (c === 0x6e) return this.literal(4); // null
		return this.number();
	}

	private literal(n: number): boolean {
		if (this.pos + n > this.end) return false;
		this.copy(this.pos, this.pos + n);
		this.pos += n;
		return true;
	}

	private array(): boolean {
		this.b[this.o++] = 0x5b;
		this.pos++;
		this.ws();
		if (this.b[this.pos] === 0x5d) {
			this.pos++;
			this.b[this.o++] = 0x5d;
			return true;
		}
		for (;;) {
			if (!this.value()) return false;
			this.ws();
			const c = this.b[this.pos++];
			if (c === 0x5d) break;
			if (c !== 0x2c) return false;
			this.b[this.o++] = 0x2c;
		}
		this.b[this.o++] = 0x5d;
		return true;
	}

	private object(): boolean {
		const s = this.b;
		const base = this.mn;
		this.pos++;
		this.b[this.o++] = 0x7b;
		const first = this.o;
		this.ws();
		let sorted = true;
		if (s[this.pos] === 0x7d) this.pos++;
		else {
			for (;;) {
				this.ws();
				if (s[this.pos] !== 0x22) return false;
				const ks = this.pos + 1;
				let p = ks;
				// a plain ASCII key: no escapes, so its bytes order as its UTF-16 code units do
				while (p < this.end && s[p] !== 0x22) {
					const c = s[p] as number;
					if (c === 0x5c || c >= 0x80) return false;
					p++;
				}
				const at = this.member(ks, p, this.o);
				if (at > base) {
					const d = this.compareKeys(at - 4, at);
					// a repeated key: JSON.parse keeps the last value; left to the general path
					if (d === 0) return false;
					if (d > 0) sorted = false;
				}
				this.copy(ks - 1, p + 1);
				this.pos = p + 1;
				this.ws();
				if (s[this.pos++] !== 0x3a) return false;
				this.b[this.o++] = 0x3a;
				if (!this.value()) return false;
				this.members[at + 3] = this.o;
				this.ws();
				const c = s[this.pos++];
				if (c === 0x7d) break;
				if (c !== 0x2c) return false;
				// the comma is written when the members are placed
			}
		}
		const m = this.members;
		const n = (this.mn - base) / 4;
		if (n > 1) {
			if (!sorted) {
				for (let i = 1; i < n; i++) {
					for (let j = i; j > 0 && this.compareKeys(base + 4 * (j - 1), base + 4 * j) > 0; j--) {
						for (let k = 0; k < 4; k++) {
							const t = m[base + 4 * j + k] as number;
							m[base + 4 * j + k] = m[base + 4 * (j - 1) + k] as number;
							m[base + 4 * (j - 1) + k] = t;
						}
					}
				}
				for (let i = 1; i < n; i++) if (this.compareKeys(base + 4 * (i - 1), base + 4 * i) === 0) return false;
			}
			// the members, in key order and comma-separated, from a copy of their bytes placed after them (the
			// buffer holds four times the text: the text, the output, this copy)
			const t = this.o;
			this.b.copyWithin(t, first, this.o);
			let o = first;
			for (let i = 0; i < n; i++) {
				if (i > 0) this.b[o++] = 0x2c;
				const at = base + 4 * i;
				this.b.copyWithin(o, t + (m[at + 2] as number) - first, t + (m[at + 3] as number) - first);
				o += (m[at + 3] as number) - (m[at + 2] as number);
			}
			this.o = o;
		}
		this.b[this.o++] = 0x7d;
		this.mn = base;
		return true;
	}

	private compareKeys(a: number, b: number): number {
		const m = this.members;
		const s = this.b;
		const as = m[a] as number;
		const ae = m[a + 1] as number;
		const bs = m[b] as number;
		const be = m[b + 1] as number;
		const n = Math.min(ae - as, be - bs);
		for (let i = 0; i < n; i++) {
			const d = (s[as + i] as number) - (s[bs + i] as number);
			if (d !== 0) return d;
		}
		return ae - as - (be - bs);
	}

	/** A string: copied when it has no escape, or only those JSON.stringify writes the same way; else re-encoded. */
	private string(): boolean {
		const s = this.b;
		const start = this.pos;
		if (this.backslash < start) {
			this.backslash = s.indexOf(0x5c, start);
			if (this.backslash < 0 || this.backslash >= this.end) this.backslash = this.end;
		}
		const q = s.indexOf(0x22, start + 1);
		if (q < 0 || q >= this.end) return false;
		if (q < this.backslash) {
			// no escape at all: the bytes are the canonical form
			this.copy(start, q + 1);
			this.pos = q + 1;
			return true;
		}
		let p = start + 1;
		let plain = true;
		while (p < this.end) {
			const c = s[p] as number;
			if (c === 0x22) break;
			if (c === 0x5c) {
				const e = s[p + 1];
				// \" \\ \b \f \n \r \t are JSON.stringify's own; \/ and \u are not always
				if (e !== 0x22 && e !== 0x5c && e !== 0x62 && e !== 0x66 && e !== 0x6e && e !== 0x72 && e !== 0x74)
					plain = false;
				p += 2;
			} else p++;
		}
		if (p >= s.length) return false;
		this.pos = p + 1;
		if (plain) {
			this.copy(start, p + 1);
			return true;
		}
		return this.reencode(start + 1, p);
	}

	/** The string `src[a, b)` (between its quotes) decoded and written as JSON.stringify writes it, in UTF-8. */
	private reencode(a: number, b: number): boolean {
		const s = this.b;
		const units: number[] = [];
		let lit = a;
		const out = this.b;
		out[this.o++] = 0x22;
		const flushUnits = () => {
			for (let i = 0; i < units.length; i++) {
				const u = units[i] as number;
				if (
					u >= 0xd800 &&
					u <= 0xdbff &&
					i + 1 < units.length &&
					(units[i + 1] as number) >= 0xdc00 &&
					(units[i + 1] as number) <= 0xdfff
				) {
					const cp = 0x10000 + ((u - 0xd800) << 10) + ((units[i + 1] as number) - 0xdc00);
					out[this.o++] = 0xf0 | (cp >> 18);
					out[this.o++] = 0x80 | ((cp >> 12) & 0x3f);
					out[this.o++] = 0x80 | ((cp >> 6) & 0x3f);
					out[this.o++] = 0x80 | (cp & 0x3f);
					i++;
				} else if (u >= 0xd800 && u <= 0xdfff) this.escape(u);
				else if (u < 0x20 || u === 0x22 || u === 0x5c) this.escape(u);
				else if (u < 0x80) out[this.o++] = u;
				else if (u < 0x800) {
					out[this.o++] = 0xc0 | (u >> 6);
					out[this.o++] = 0x80 | (u & 0x3f);
				} else {
					out[this.o++] = 0xe0 | (u >> 12);
					out[this.o++] = 0x80 | ((u >> 6) & 0x3f);
					out[this.o++] = 0x80 | (u & 0x3f);
				}
			}
			units.length = 0;
		};
		let p = a;
		while (p < b) {
			if (s[p] !== 0x5c) {
				p++;
				continue;
			}
			// literal bytes before the escape: as they are (they cannot be a surrogate half)
			if (units.length > 0 && p > lit) flushUnits();
			this.copy(lit, p);
			const e = s[p + 1] as number;
			let u: number;
			if (e === 0x75) {
				const hex = s.toString("latin1", p + 2, p + 6);
				if (!/^[0-9a-fA-F]{4}$/.test(hex)) return false;
				u = Number.parseInt(hex, 16);
				p += 6;
			} else {
				u = e === 0x62 ? 8 : e === 0x66 ? 12 : e === 0x6e ? 10 : e === 0x72 ? 13 : e === 0x74 ? 9 : e;
				p += 2;
			}
			units.push(u);
			lit = p;
			// a high surrogate waits for the escape that may complete it
			if (!(u >= 0xd800 && u <= 0xdbff && s[p] === 0x5c && s[p + 1] === 0x75)) flushUnits();
		}
		flushUnits();
		this.copy(lit, b);
		out[this.o++] = 0x22;
		return true;
	}

	/** JSON.stringify's escape of one code unit. */
	private escape(u: number): void {
		const out = this.b;
		out[this.o++] = 0x5c;
		const short =
			u === 0x22
				? 0x22
				: u === 0x5c
					? 0x5c
					: u === 8
						? 0x62
						: u === 12
							? 0x66
							: u === 10
								? 0x6e
								: u === 13
									? 0x72
									: u === 9
										? 0x74
										: 0;
		if (short !== 0) {
			out[this.o++] = short;
			return;
		}
		out[this.o++] = 0x75;
		for (let k = 12; k >= 0; k -= 4) out[this.o++] = HEX.charCodeAt((u >> k) & 0xf);
	}

	/** A number: copied when already canonical (a plain integer of up to 15 digits, not -0), else as JSON.stringify writes it. */
	private number(): boolean {
		const s = this.b;
		const start = this.pos;
		let p = start;
		while (p < this.end) {
			const c = s[p] as number;
			if ((c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2b || c === 0x2e || c === 0x65 || c === 0x45) p++;
			else break;
		}
		if (p === start) return false;
		this.pos = p;
		const neg = s[start] === 0x2d;
		const ds = neg ? start + 1 : start;
		let integer = p - ds <= 15 && p > ds;
		for (let i = ds; i < p && integer; i++) if ((s[i] as number) < 0x30 || (s[i] as number) > 0x39) integer = false;
		if (integer && !(s[ds] === 0x30 && (p - ds > 1 || neg))) {
			this.copy(start, p);
			return true;
		}
		const v = Number(s.toString("latin1", start, p));
		// Infinity (1e400): canonicalize refuses it, and so does the general path
		if (!Number.isFinite(v)) return false;
		const text = JSON.stringify(v);
		if (this.o + text.length > this.limit) return false;
		this.o += this.b.write(text, this.o, "latin1");
		return true;
	}
}

const writer = new ByteCanonicalizer();

const nodeBuf = Buffer.alloc(65, 1);

/** RFC 6962 interior node: SHA-256(0x01 ‖ left ‖ right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
	nodeBuf.set(left, 1);
	nodeBuf.set(right, 33);
	return hash("sha256", nodeBuf, "buffer");
}

/** `nodeHash` of two hashes given as latin1 strings (as `leafHash` makes them), as one. */
function nodeHashText(left: string, right: string): string {
	const b = nodeBuf;
	for (let k = 0; k < 32; k++) {
		b[1 + k] = left.charCodeAt(k);
		b[33 + k] = right.charCodeAt(k);
	}
	return hash("sha256", b, "binary");
}

/**
 * The perfect subtrees of leaves `[first, first + leaves.length)` (latin1 strings, as `leafHash` makes them) that
 * start at a multiple of their size, largest possible first: pushed in order onto a LineageBuilder whose count is
 * `first`, they give the tree of adding the leaves one by one (so the hashing can happen where the leaves are made, on
 * another thread).
 */
export function alignedSubtrees(first: number, leaves: readonly string[]): { hash: string; size: number }[] {
	const out: { hash: string; size: number }[] = [];
	let i = 0;
	while (i < leaves.length) {
		const at = first + i;
		let size = 1;
		while ((at % (size * 2) === 0 || at === 0) && i + size * 2 <= leaves.length) size *= 2;
		let level: string[] = leaves.slice(i, i + size);
		while (level.length > 1) {
			const up: string[] = [];
			for (let k = 0; k < level.length; k += 2) up.push(nodeHashText(level[k] as string, level[k + 1] as string));
			level = up;
		}
		out.push({ hash: level[0] as string, size });
		i += size;
	}
	return out;
}

/** 8 bytes per record in 64 Ki-record pages: no copying as it grows, no doubling past what is needed. */
export class PrefixPages {
	private readonly pages: Buffer[] = [];
	count = 0;

	push(leaf: Uint8Array): void {
		const page = this.count >>> 16;
		if (page === this.pages.length) this.pages.push(Buffer.allocUnsafe(8 << 16));
		(this.pages[page] as Buffer).set(leaf.subarray(0, 8), (this.count & 0xffff) * 8);
		this.count++;
	}

	/** `push` of each 8 bytes of `prefixes`, in order. */
	pushAll(prefixes: Uint8Array): void {
		let i = 0;
		while (i + 8 <= prefixes.length) {
			const page = this.count >>> 16;
			if (page === this.pages.length) this.pages.push(Buffer.allocUnsafe(8 << 16));
			// as many as fit in this page, in one copy
			const n = Math.min((prefixes.length - i) >>> 3, (1 << 16) - (this.count & 0xffff));
			(this.pages[page] as Buffer).set(prefixes.subarray(i, i + 8 * n), (this.count & 0xffff) * 8);
			this.count += n;
			i += 8 * n;
		}
	}

	/** Page `p`: the prefixes of records `[p · 2^16, (p + 1) · 2^16)`. */
	page(p: number): Uint8Array {
		return this.pages[p] as Buffer;
	}

	concat(): Buffer {
		const out = Buffer.allocUnsafe(this.count * 8);
		for (let p = 0; p < this.pages.length; p++) {
			const n = Math.min(1 << 16, this.count - (p << 16));
			(this.pages[p] as Buffer).copy(out, p * (8 << 16), 0, n * 8);
		}
		return out;
	}
}

export class LineageBuilder {
	/** perfect subtrees, largest first: [hash, leaves] */
	private readonly stack: [Buffer, number][] = [];
	readonly prefixes = new PrefixPages();
	private readonly files: LineageFile[] = [];
	private readonly scratch = { buf: Buffer.allocUnsafe(1 << 16) };

	get records(): number {
		return this.prefixes.count;
	}

	/** Add a record's canonical bytes; returns its leaf hash. */
	addRecord(canonical: Uint8Array): Buffer {
		const leaf = sha256(LEAF, canonical);
		this.addLeaf(leaf);
		return leaf;
	}

	/** Add a record by its leaf hash. */
	addLeaf(leaf: Uint8Array): void {
		this.prefixes.push(leaf);
		this.push(Buffer.from(leaf.subarray(0, 32)), 1);
	}

	/**
	 * Add records made elsewhere: their leaves' 8-byte prefixes (concatenated) and the aligned subtrees over them
	 * (`alignedSubtrees`, for a first leaf at the current count).
	 */
	addLeaves(prefixes: Uint8Array, subtrees: readonly { hash: string; size: number }[]): void {
		this.prefixes.pushAll(prefixes);
		for (const t of subtrees) this.push(Buffer.from(t.hash, "latin1"), t.size);
	}

	/** The leaf hash of canonical JSON text (the scratch buffer reused). */
	leafOf(canonical: string): Buffer {
		return Buffer.from(leafHash(canonical, this.scratch), "latin1");
	}

	private push(hash: Buffer, size: number): void {
		let node: [Buffer, number] = [hash, size];
		while (this.stack.length > 0 && (this.stack[this.stack.length - 1] as [Buffer, number])[1] === node[1]) {
			const left = this.stack.pop() as [Buffer, number];
			node = [nodeHash(left[0], node[0]), left[1] * 2];
		}
		this.stack.push(node);
	}

	addFile(file: LineageFile): void {
		this.files.push(file);
	}

	finish(): Lineage {
		let root: Buffer;
		if (this.stack.length === 0) root = sha256();
		else {
			root = (this.stack[this.stack.length - 1] as [Buffer, number])[0];
			for (let i = this.stack.length - 2; i >= 0; i--)
				root = sha256(NODE, (this.stack[i] as [Buffer, number])[0], root);
		}
		return {
			version: LINEAGE_VERSION,
			records: this.prefixes.count,
			merkle_root: root.toString("hex"),
			files: this.files,
			leaf_prefixes: this.prefixes.concat().toString("base64"),
		};
	}
}

/** Records added and removed between two versions, by content (a moved record is neither). */
export function diffLineage(older: Pick<Lineage, "leaf_prefixes">, newer: Pick<Lineage, "leaf_prefixes">): LineageDiff {
	const a = Buffer.from(older.leaf_prefixes, "base64");
	const b = Buffer.from(newer.leaf_prefixes, "base64");
	const count = (buf: Buffer) => {
		const m = new Map<string, number[]>();
		for (let i = 0; i * 8 < buf.length; i++) {
			const k = buf.toString("hex", i * 8, i * 8 + 8);
			const l = m.get(k);
			if (l === undefined) m.set(k, [i]);
			else l.push(i);
		}
		return m;
	};
	const ma = count(a);
	const mb = count(b);
	const added: number[] = [];
	const removed: number[] = [];
	for (const [k, ids] of mb) added.push(...ids.slice(ma.get(k)?.length ?? 0));
	for (const [k, ids] of ma) removed.push(...ids.slice(mb.get(k)?.length ?? 0));
	return { added: added.sort((x, y) => x - y), removed: removed.sort((x, y) => x - y) };
}
