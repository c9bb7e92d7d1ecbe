/**
 * A bounded TAR reader that lists members exactly as Python's `tarfile`
 * (`tarfile.open(fileobj=f, mode="r:")`, the way torch.load opens a pre-1.0
 * checkpoint) would, so that a scanner looks at the same bytes the loader
 * reads. Only headers, PAX records and GNU long names are read; member data
 * never is. Checked against tarfile 3.8–3.13 on 3,000 archives and mutations
 * (test/fixtures/differential/make_differential.py).
 *
 * Mirrored from tarfile:
 * - a header is 512 bytes; its checksum is valid if it matches the unsigned or
 *   the signed byte sum (chksum field counted as spaces); number fields are
 *   octal text cut at the first NUL (whitespace, sign, `0o` and `_` allowed, as
 *   `int(s.strip() or "0", 8)`) or GNU base-256; any field that does not parse
 *   makes the header invalid; text fields are UTF-8 with surrogateescape (a
 *   byte that is not UTF-8 becomes U+DC80 + byte);
 * - the ustar `prefix` is joined with "/" (not for GNU types), an AREGTYPE name
 *   ending in "/" is a directory, directory names lose trailing slashes;
 * - PAX `x` records patch the next member (`path`, `linkpath`, `size`, the path
 *   right-stripped of "/"), `g` records patch every later member; a PAX `size`
 *   moves the next header, a global one does not (tarfile skips the data by the
 *   header's size before applying it); GNU `L`/`K` records set the next
 *   member's name / link name (cut at NUL);
 * - types: regular (`0`, NUL, `7`) and unknown types carry data; links,
 *   directories and devices do not, whatever their size field says;
 * - the end: at offset 0 a bad header means "not a tar" (ReadError), an
 *   all-zero block an empty archive; later an all-zero, invalid, truncated or
 *   missing header ends the archive silently, except after a PAX / GNU record
 *   (SubsequentHeaderError → ReadError); a member whose (block-rounded) data
 *   runs past the end of the file is a ReadError ("unexpected end of data") the
 *   next time tarfile advances.
 * - PAX records are read as tarfile has since its 2024 fix (CVE-2024-6232: a
 *   record must be framed exactly, else the header is invalid). Earlier
 *   releases (3.12.5, 3.11.9 … and older) read records leniently: where that
 *   reading differs, this reader says `unsupported`.
 *
 * What this reader does not follow, it says (`unsupported`) and stops: GNU
 * sparse members (old `S` type and PAX `GNU.sparse.*`), negative, huge or
 * non-ASCII sizes (tarfile raises ValueError / OverflowError, which are no
 * TarError: torch.load fails outright), oversized PAX / long-name records,
 * PAX records older releases read otherwise, deep record chains and too many
 * members. The caller must fail closed on `unsupported`.
 */
import { isUtf8 } from "node:buffer";
import type { ByteSource } from "./types";

export const BLOCK = 512;
/** Members listed at most (tarfile has no limit; a scanner needs one). */
export const MAX_MEMBERS = 100_000;
/** PAX records / GNU long names larger than this are not read. */
const MAX_RECORD = 1024 * 1024;
/** Extension records (PAX / GNU long name) chained in front of one member. */
const MAX_CHAIN = 32;

export interface TarMember {
	/** The name tarfile gives the member (what `getmember` matches exactly). */
	name: string;
	linkname: string;
	/** The type flag byte as a one-character string ("0", "\0", "5", "x" is never a member …). */
	type: string;
	/** Data size tarfile extracts (a PAX `size` overrides the header's). */
	size: number;
	/** Offset of the member's first header (its PAX / long-name record, if any). */
	headerOffset: number;
	/** Offset of the member's data. */
	dataOffset: number;
}

export interface TarListing {
	members: TarMember[];
	/**
	 * Set when tarfile would raise ReadError while loading the member list
	 * (torch.load then reads the file as a legacy pickle stream from byte 0).
	 */
	readError?: string;
	/** Set when this reader stopped at something it does not follow: the listing is incomplete. */
	unsupported?: string;
}

/** `tarinfo.isreg()` or a type tarfile does not know (extracted as a regular file). */
export function hasData(type: string): boolean {
	return REGULAR.has(type) || !SUPPORTED.has(type);
}

export function isLink(type: string): boolean {
	return type === "1" || type === "2";
}

const REGULAR = new Set(["0", "\0", "7", "S"]);
const SUPPORTED = new Set(["0", "\0", "1", "2", "5", "6", "7", "3", "4", "L", "K", "S"]);
const GNU_TYPES = new Set(["L", "K", "S"]);

class HeaderError extends Error {
	constructor(
		readonly kind: "empty" | "truncated" | "eof" | "invalid",
		message: string,
	) {
		super(message);
	}
}
class ReadError extends Error {}
class Unsupported extends Error {}

/** Python's `str.strip()` whitespace, restricted to ASCII (the only text nti accepts). */
const PY_WS = new Set([0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20]);
/** `s.strip()` for ASCII text. */
function pyStrip(s: string): string {
	let a = 0;
	let b = s.length;
	while (a < b && PY_WS.has(s.charCodeAt(a))) a++;
	while (b > a && PY_WS.has(s.charCodeAt(b - 1))) b--;
	return s.slice(a, b);
}
const OCTAL = /^[+-]?(?:0[oO]_?)?[0-7](?:_?[0-7])*$/;
const DECIMAL = /^[+-]?[0-9](?:_?[0-9])*$/;

/** `nts`: the bytes up to the first NUL. */
function nts(b: Buffer): Buffer {
	const z = b.indexOf(0);
	return z < 0 ? b : b.subarray(0, z);
}

/** `b.decode("utf-8", "surrogateescape")` (tarfile's encoding and errors): each byte not in a valid sequence → U+DC80+byte. */
export function decodeSurrogateescape(b: Buffer): string {
	if (isUtf8(b)) return b.toString("utf8");
	let out = "";
	for (let i = 0; i < b.length; ) {
		const c = b[i] as number;
		if (c < 0x80) {
			out += String.fromCharCode(c);
			i++;
			continue;
		}
		const n = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
		let cp = c & (0x3f >> n);
		let ok = n > 0;
		for (let j = 1; ok && j <= n; j++) {
			const d = b[i + j];
			if (d === undefined || (d & 0xc0) !== 0x80) ok = false;
			else cp = (cp << 6) | (d & 0x3f);
		}
		const min = n === 1 ? 0x80 : n === 2 ? 0x800 : 0x10000;
		if (ok && (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))) ok = false;
		if (ok) {
			out += String.fromCodePoint(cp);
			i += n + 1;
		} else {
			out += String.fromCharCode(0xdc00 + c);
			i++;
		}
	}
	return out;
}

/** tarfile's `nti`: a number field; throws HeaderError("invalid") where tarfile raises InvalidHeaderError. */
export function nti(b: Buffer): number {
	const first = b[0];
	if (first === 0x80 || first === 0xff) {
		let n = 0n;
		for (let i = 1; i < b.length; i++) n = (n << 8n) + BigInt(b[i] as number);
		if (first === 0xff) n = -(256n ** BigInt(b.length - 1) - n);
		return Number(n);
	}
	const s = nts(b);
	if (s.some((c) => c > 0x7f)) throw new HeaderError("invalid", "invalid header");
	const t = pyStrip(s.toString("latin1"));
	if (t === "") return 0;
	if (!OCTAL.test(t)) throw new HeaderError("invalid", "invalid header");
	const neg = t.startsWith("-");
	const digits = t
		.replace(/^[+-]/, "")
		.replace(/^0[oO]/, "")
		.replaceAll("_", "");
	const v = Number.parseInt(digits, 8);
	return neg ? -v : v;
}

/** tarfile's `calc_chksums`: unsigned and signed sums with the checksum field as spaces. */
function checksums(buf: Buffer): [number, number] {
	let u = 256;
	let s = 256;
	for (let i = 0; i < BLOCK; i++) {
		if (i >= 148 && i < 156) continue;
		const c = buf[i] as number;
		u += c;
		s += c > 127 ? c - 256 : c;
	}
	return [u, s];
}

interface Header {
	name: string;
	linkname: string;
	type: string;
	size: number;
	/** GNU `S` header (its sparse structs were validated, not kept). */
	sparse: boolean;
}

/** tarfile's `TarInfo.frombuf`: throws HeaderError as tarfile would. */
function frombuf(buf: Buffer): Header {
	if (buf.length === 0) throw new HeaderError("empty", "empty header");
	if (buf.length !== BLOCK) throw new HeaderError("truncated", "truncated header");
	if (buf.every((c) => c === 0)) throw new HeaderError("eof", "end of file header");
	const chksum = nti(buf.subarray(148, 156));
	if (!checksums(buf).includes(chksum)) throw new HeaderError("invalid", "bad checksum");
	let name = decodeSurrogateescape(nts(buf.subarray(0, 100)));
	for (const [a, b] of [
		[100, 108], // mode
		[108, 116], // uid
		[116, 124], // gid
		[136, 148], // mtime
		[329, 337], // devmajor
		[337, 345], // devminor
	] as const)
		nti(buf.subarray(a, b));
	const size = nti(buf.subarray(124, 136));
	let type = String.fromCharCode(buf[156] as number);
	const linkname = decodeSurrogateescape(nts(buf.subarray(157, 257)));
	const prefix = decodeSurrogateescape(nts(buf.subarray(345, 500)));
	if (type === "\0" && name.endsWith("/")) type = "5";
	if (type === "S") {
		// frombuf parses the old GNU sparse structs; a field that does not parse is an invalid header
		for (let i = 0, p = 386; i < 4; i++, p += 24) {
			nti(buf.subarray(p, p + 12));
			nti(buf.subarray(p + 12, p + 24));
		}
		nti(buf.subarray(483, 495));
	}
	if (type === "5") name = name.replace(/\/+$/, "");
	if (prefix !== "" && !GNU_TYPES.has(type)) name = `${prefix}/${name}`;
	return { name, linkname, type, size, sparse: type === "S" };
}

/** True if `head` starts with a header tarfile accepts (what makes `tarfile.open` succeed). */
export function isTarHeader(head: Buffer): boolean {
	if (head.length < BLOCK) return false;
	try {
		frombuf(head.subarray(0, BLOCK));
		return true;
	} catch {
		return false;
	}
}

const blockUp = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

/** Python's `int(value)` for a PAX number; `undefined` where int() raises (tarfile then uses 0). */
function paxInt(v: string): number | undefined {
	// int() also accepts non-ASCII digits: a value this reader cannot judge exactly.
	if ([...v].some((c) => c.charCodeAt(0) > 0x7f))
		throw new Unsupported(`PAX number ${JSON.stringify(v.slice(0, 40))} is not ASCII`);
	const t = pyStrip(v);
	if (!DECIMAL.test(t)) return undefined;
	return Number(t.replaceAll("_", ""));
}

/** Raised where tarfile since its 2024 fix finds a PAX record malformed (InvalidHeaderError). */
class PaxInvalid extends HeaderError {
	constructor() {
		super("invalid", "invalid header");
	}
}

/**
 * tarfile's `_proc_pax` record parsing: since the 2024 fix (CVE-2024-6232) every record must be framed exactly
 * (PaxInvalid otherwise); before it (`lenient`) records were matched as `(\d+) ([^=]+)=` from each one's start, the
 * value taken up to the length given (whatever it holds), stopping quietly where no record starts, raising only on a
 * length of 0. Keywords and values are UTF-8, else (as tarfile falls back) UTF-8 with surrogateescape.
 */
function parsePax(buf: Buffer, lenient: boolean): Map<string, string> {
	const out = new Map<string, string>();
	if (lenient) {
		const text = buf.toString("latin1");
		const re = /(\d+) ([^=]+)=/y;
		for (let pos = 0; pos < buf.length; ) {
			re.lastIndex = pos;
			const m = re.exec(text);
			if (!m) break;
			const length = Number(m[1]);
			if (length === 0) throw new HeaderError("invalid", "invalid header");
			const from = pos + (m[0] as string).length;
			const key = buf.subarray(pos + (m[1] as string).length + 1, from - 1);
			const value = buf.subarray(from, Math.max(from, Math.min(buf.length, pos + length - 1)));
			out.set(decodeSurrogateescape(key), decodeSurrogateescape(value));
			pos += length;
		}
		return out;
	}
	let pos = 0;
	while (buf.length > pos && buf[pos] !== 0) {
		const m = /^([0-9]{1,20}) /.exec(buf.subarray(pos, pos + 21).toString("latin1"));
		if (!m) throw new PaxInvalid();
		const length = Number(m[1]);
		if (length < 5 || pos + length > buf.length) throw new PaxInvalid();
		const end = pos + length - 1;
		const kv = buf.subarray(pos + (m[1] as string).length + 1, end);
		const eq = kv.indexOf(0x3d);
		if (eq <= 0 || buf[end] !== 0x0a) throw new PaxInvalid();
		out.set(decodeSurrogateescape(kv.subarray(0, eq)), decodeSurrogateescape(kv.subarray(eq + 1)));
		pos += length;
	}
	return out;
}

interface Member extends TarMember {
	sparse: boolean;
}

/**
 * Lists the members of the tar in `src` as tarfile would. Returns a string
 * (tarfile's error) when the file is not a tar at all.
 */
export async function listTar(src: ByteSource, maxMembers = MAX_MEMBERS): Promise<TarListing | string> {
	const strict = await list(src, maxMembers, false);
	if (!strict.paxInvalid) return strict.listing;
	// A PAX record the current tarfile finds malformed: do releases before the fix list the same?
	const lenient = (await list(src, maxMembers, true)).listing;
	const a = strict.listing;
	if (typeof a === "string" || typeof lenient === "string") {
		if (typeof a === "string" && typeof lenient === "string") return a;
	} else if (
		a.unsupported !== undefined ||
		(JSON.stringify(a.members) === JSON.stringify(lenient.members) &&
			(a.readError === undefined) === (lenient.readError === undefined) &&
			lenient.unsupported === undefined)
	)
		return a;
	const members: TarMember[] = [];
	if (typeof a !== "string" && typeof lenient !== "string")
		for (const [i, m] of a.members.entries()) {
			if (JSON.stringify(m) !== JSON.stringify(lenient.members[i])) break;
			members.push(m);
		}
	return { members, unsupported: "PAX records read otherwise by tarfile before its 2024 fix (3.12.5 and older)" };
}

async function list(
	src: ByteSource,
	maxMembers: number,
	lenient: boolean,
): Promise<{ listing: TarListing | string; paxInvalid: boolean }> {
	let paxInvalid = false;
	const members: Member[] = [];
	const globalPax = new Map<string, string>();
	let offset = 0; // tarfile.offset: where the next header starts
	let tell = 0; // the file position after the last read

	const readBlock = async (at: number): Promise<Buffer> => {
		const b = await src.read(at, BLOCK);
		tell = at + b.length;
		return b;
	};

	/** `_apply_pax_info`: path / linkpath / size from a PAX dictionary (GNU's sparse name and sizes included). */
	const applyPax = (h: Member, pax: Map<string, string>): void => {
		for (const [k, v] of pax) {
			if (k === "path") h.name = v.replace(/\/+$/, "");
			else if (k === "GNU.sparse.name") h.name = v;
			else if (k === "linkpath") h.linkname = v;
			else if (k === "size") h.size = paxInt(v) ?? 0;
			else if (k === "GNU.sparse.size" || k === "GNU.sparse.realsize") {
				const n = paxInt(v);
				// int() raises ValueError here, which tarfile lets through
				if (n === undefined) throw new Unsupported(`PAX ${k} is not an integer`);
				h.size = n;
			}
		}
	};

	/** `fromtarfile` + `_proc_member`: the member whose header chain starts at `at`. */
	const fromtarfile = async (at: number, depth: number): Promise<Member> => {
		if (depth > MAX_CHAIN) throw new Unsupported(`more than ${MAX_CHAIN} extension records in a row`);
		const h = frombuf(await readBlock(at));
		const m: Member = { ...h, headerOffset: at, dataOffset: tell };
		if (h.type === "L" || h.type === "K" || h.type === "x" || h.type === "g" || h.type === "X") {
			if (h.size < 0 || h.size > MAX_RECORD) throw new Unsupported(`extension record of ${h.size} bytes`);
			const data = await src.read(tell, blockUp(h.size));
			tell += data.length;
			if (h.type === "L" || h.type === "K") {
				const next = await subsequent(tell, depth);
				next.headerOffset = at;
				const text = decodeSurrogateescape(nts(data));
				if (h.type === "L") next.name = text;
				else next.linkname = text;
				if (next.type === "5" && next.name.endsWith("/")) next.name = next.name.slice(0, -1);
				return next;
			}
			let records: Map<string, string>;
			try {
				records = parsePax(data, lenient);
			} catch (e) {
				if (e instanceof PaxInvalid) paxInvalid = true;
				throw e;
			}
			const pax = h.type === "g" ? globalPax : new Map(globalPax);
			for (const [k, v] of records) pax.set(k, v);
			const next = await subsequent(tell, depth);
			if (
				pax.has("GNU.sparse.map") ||
				pax.has("GNU.sparse.size") ||
				(pax.get("GNU.sparse.major") === "1" && pax.get("GNU.sparse.minor") === "0")
			)
				throw new Unsupported("GNU sparse member (PAX)");
			if (h.type !== "g") {
				applyPax(next, pax);
				next.headerOffset = at;
				if (pax.has("size")) {
					if (next.size < 0) throw new Unsupported("negative PAX size");
					offset = next.dataOffset + (hasData(next.type) ? blockUp(next.size) : 0);
				}
			}
			return next;
		}
		if (h.sparse) throw new Unsupported("GNU sparse member");
		if (h.size < 0) throw new Unsupported("negative member size");
		// _proc_builtin: skip the data by the header's size, then apply the global PAX records.
		offset = m.dataOffset + (hasData(h.type) ? blockUp(h.size) : 0);
		applyPax(m, globalPax);
		if (m.size < 0) throw new Unsupported("negative member size");
		if (m.type === "5") m.name = m.name.replace(/\/+$/, "");
		return m;
	};

	/** The header after an extension record: any HeaderError is a SubsequentHeaderError (ReadError). */
	const subsequent = async (at: number, depth: number): Promise<Member> => {
		try {
			return await fromtarfile(at, depth + 1);
		} catch (e) {
			if (e instanceof HeaderError) throw new ReadError(`bad header after an extension record: ${e.message}`);
			throw e;
		}
	};

	const listing = await (async (): Promise<TarListing | string> => {
		try {
			for (;;) {
				// next(): advancing past data that is not there is "unexpected end of data" — unless the offset is past
				// what a seek takes (OverflowError, no TarError)
				if (offset > src.size) {
					if (offset - 1 >= 2 ** 63) throw new Unsupported(`size beyond what tarfile can seek to`);
					throw new ReadError("unexpected end of data");
				}
				if (members.length >= maxMembers) throw new Unsupported(`more than ${maxMembers} members`);
				let m: Member;
				try {
					m = await fromtarfile(offset, 0);
				} catch (e) {
					if (!(e instanceof HeaderError)) throw e;
					// at offset 0: an all-zero block is an empty archive, anything else not a tar
					if (offset === 0 && e.kind !== "eof") return e.kind === "empty" ? "empty file" : e.message;
					break; // end of the archive (zero block, junk or a short block after the last member)
				}
				members.push(m);
			}
			return { members: members.map(strip) };
		} catch (e) {
			if (e instanceof ReadError) {
				if (members.length === 0 && offset === 0) return e.message;
				return { members: members.map(strip), readError: e.message };
			}
			if (e instanceof Unsupported) return { members: members.map(strip), unsupported: e.message };
			throw e;
		}
	})();
	return { listing, paxInvalid };
}

function strip(m: Member): TarMember {
	const { sparse: _s, ...rest } = m;
	return rest;
}

/** `getmember(name)`: the last member with exactly this name. */
export function getMember(listing: TarListing, name: string): TarMember | undefined {
	for (let i = listing.members.length - 1; i >= 0; i--) {
		const m = listing.members[i] as TarMember;
		if (m.name === name) return m;
	}
	return undefined;
}
