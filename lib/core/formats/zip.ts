/**
 * Zip readers for scanners (torch zip checkpoints, .npz, .keras), one per loader that opens zips:
 *
 * - **python view** (`listZipView(src, "python")`): what CPython's `zipfile` lists and `open(name)` reads —
 *   numpy.load (.npz), Keras, joblib, any Python code. Mirrored from zipfile (3.8 … 3.13 agree on every input
 *   of the differential corpus): the end record found as `_EndRecData` finds it (the last 22 bytes when they
 *   are a comment-less record, else the last signature in the final 64 KiB, which must have 22 bytes after
 *   it), the ZIP64 records right before it, the central directory located by the `concat` shift
 *   (`EOCD position - size - offset`: bytes prepended to an archive move it, and every entry's offset with it),
 *   entries parsed while the running total is below the declared size, names decoded as UTF-8 (flag 0x800,
 *   strictly) or cp437 and cut at the first NUL, `open(name)` returning the *last* entry of that name, the
 *   local header's name compared with the central one, flags 0x20 / 0x40 / encryption refused, and the data
 *   cut at the central uncompressed size. CRCs are not checked (the bytes before a bad CRC are read — and
 *   unpickled — all the same), nor are overlapping entries (older releases allow them).
 * - **miniz view** (`listZipView(src, "miniz")`): what torch.load's reader (PyTorch's miniz) sees: the last end
 *   record with 22 bytes after it within ~64 KiB of the end, the central directory at the offset the record
 *   names (no shift: prepended bytes make it fail), exactly the declared number of entries with miniz's
 *   sanity checks, names as raw bytes, lookups case-insensitive by miniz's own heap sort and binary search
 *   (`findEntry`), and records read whole, inflated to exactly their declared size.
 * - **lenient** (`listZip`): every entry either view lists plus, tolerantly, the central directory the end
 *   record names even where a loader refuses it, or the local headers walked from offset 0 when no central
 *   directory is usable — for a scanner that searches every entry of every view for pickles.
 *
 * Everything is read through a ByteSource (end record, central directory, then only the entries asked for),
 * and every count and size is attacker-controlled and bounded. What a view cannot decode (bzip2 and LZMA
 * entries, which CPython reads) is an error, never an empty read: callers fail closed on errors.
 */
import { inflateRawSync, constants as zc } from "node:zlib";
import type { ByteSource } from "./types";

/** Which loader's reading of the archive. */
export type ZipView = "python" | "miniz";

export interface ZipEntry {
	/**
	 * The name the loader looks entries up by: python view, the decoded name cut at its first NUL (`ZipInfo.filename`);
	 * miniz view, the raw bytes as latin1 (one char per byte); lenient entries, as their view, or UTF-8.
	 */
	name: string;
	/** 0 = stored, 8 = deflated; 12 (bzip2) and 14 (LZMA) are read by CPython but not decoded here. */
	method: number;
	flags: number;
	compressedSize: number;
	uncompressedSize: number;
	/** Offset of the entry's local header (python view: after the `concat` shift). */
	localHeaderOffset: number;
	/** The view that listed it: `readEntry` then reads it as that loader does. Absent: read leniently. */
	view?: ZipView;
	/** Python view: the decoded name before the NUL cut (`orig_filename`, which the local header must repeat). */
	origName?: string;
	/** The central directory's CRC-32. */
	crc?: number;
	/** miniz view: the entry is a directory to miniz (name ends in "/" or the DOS directory attribute), so it reads no data. */
	directory?: boolean;
}

export interface ZipListing {
	entries: ZipEntry[];
	/** Irregularities that a strict reader would reject (tolerated here, reported as malformed by callers if they wish). */
	problems: string[];
	/** True when no central directory was usable and local headers were walked. */
	fromLocalHeaders: boolean;
	/** The view this listing is (absent: the lenient union). */
	view?: ZipView;
	/**
	 * miniz view: the folder torch.load prefixes every record name with (the first entry's name up to its first
	 * "/"), or undefined where torch refuses the archive ("file in archive is not in a subdirectory").
	 */
	archiveName?: string;
	/** miniz view: entry indices in miniz's sorted order (what its binary search walks). */
	sorted?: number[];
}

export interface ZipLimits {
	/** @default 100_000 */
	maxEntries?: number;
	/** Largest central directory read in one piece. @default 64 MiB */
	maxCentralDirectory?: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOC = 0x07064b50;
const EOCD_MIN = 22;
const MAX_COMMENT = 0xffff;
const U32_MAX = 0xffffffff;

/** True if the buffer starts like a zip (local header, or an empty archive's EOCD). */
export function isZip(head: Buffer): boolean {
	return head.length >= 4 && (head.readUInt32LE(0) === SIG_LOCAL || head.readUInt32LE(0) === SIG_EOCD);
}

/**
 * Little-endian reads for callers that have checked the bounds: Buffer's readUInt16LE /
 * readUInt32LE validate again and run cold in the interpreter on a CLI's only scan, once per entry.
 */
export function le16(b: Buffer, at: number): number {
	return (b[at] as number) | ((b[at + 1] as number) << 8);
}

export function le32(b: Buffer, at: number): number {
	return (
		((b[at] as number) |
			((b[at + 1] as number) << 8) |
			((b[at + 2] as number) << 16) |
			((b[at + 3] as number) << 24)) >>>
		0
	);
}

/** A 64-bit field; values past 2^53 lose precision but stay far beyond any file size, which is all that is compared. */
function u64(b: Buffer, at: number): number {
	return b.readUInt32LE(at + 4) * 0x1_0000_0000 + b.readUInt32LE(at);
}

// ---------------------------------------------------------------- name decoding

/** cp437's upper half (CPython's codec; the lower half is ASCII, control characters included). */
const CP437_HIGH =
	"ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0";

function cp437(b: Buffer): string {
	let s = "";
	for (const c of b) s += c < 0x80 ? String.fromCharCode(c) : (CP437_HIGH[c - 0x80] as string);
	return s;
}

/** Python's strict UTF-8 (no BOM stripping); undefined where `bytes.decode("utf-8")` raises. */
const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
function utf8Strict(b: Buffer): string | undefined {
	try {
		return UTF8.decode(b);
	} catch {
		return undefined;
	}
}

/** zipfile's name decoding: UTF-8 with flag 0x800, else cp437. */
function pyDecode(b: Buffer, flags: number): string | undefined {
	return flags & 0x800 ? utf8Strict(b) : cp437(b);
}

// ---------------------------------------------------------------- finding the end record

/** The file's tail, read once for the end-record searches of all views. */
class Tail {
	private buf = Buffer.alloc(0);
	private from: number;
	constructor(readonly src: ByteSource) {
		this.from = src.size;
	}
	/** Bytes [start, size) of the file (start clamped at 0), and where they start. */
	async from_(start: number): Promise<{ buf: Buffer; at: number }> {
		const s = Math.max(0, start);
		if (s < this.from) {
			this.buf = Buffer.concat([await this.src.read(s, this.from - s), this.buf]);
			this.from = s;
		}
		return { buf: this.buf.subarray(s - this.from), at: s };
	}
}

/** The start of the last block miniz scans for the end record (it gives up ~64 KiB from the end). */
function minizScanStart(size: number): number {
	let cur = Math.max(size - 4096, 0);
	while (cur !== 0 && size - cur < MAX_COMMENT + EOCD_MIN) cur = Math.max(cur - (4096 - 3), 0);
	return cur;
}

/** miniz's `mz_zip_reader_locate_header_sig`: the last signature with a whole record after it, or -1. */
async function minizEocd(tail: Tail): Promise<number> {
	const size = tail.src.size;
	if (size < EOCD_MIN) return -1;
	// Most archives end with their record: look in a small tail first (the last match there is the last match).
	for (const start of [Math.max(size - 1024, 0), minizScanStart(size)]) {
		const { buf, at } = await tail.from_(start);
		for (let i = buf.length - EOCD_MIN; i >= 0; i--) if (le32(buf, i) === SIG_EOCD) return at + i;
		if (start <= minizScanStart(size)) break;
	}
	return -1;
}

/** CPython's `_EndRecData` position: the record's offset, or a reason it finds none. */
async function pythonEocd(tail: Tail): Promise<number | string> {
	const size = tail.src.size;
	if (size < EOCD_MIN) return "File is not a zip file";
	const last = (await tail.from_(size - EOCD_MIN)).buf;
	if (le32(last, 0) === SIG_EOCD && last[20] === 0 && last[21] === 0) return size - EOCD_MIN;
	const { buf, at } = await tail.from_(size - (1 << 16) - EOCD_MIN);
	const start = buf.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
	if (start < 0 || start + EOCD_MIN > buf.length) return "File is not a zip file";
	return at + start;
}

// ---------------------------------------------------------------- python view

interface CdLimits {
	maxEntries: number;
	maxCd: number;
}

async function listPython(src: ByteSource, tail: Tail, lim: CdLimits): Promise<ZipListing | string> {
	const eocd = await pythonEocd(tail);
	if (typeof eocd === "string") return eocd;
	const rec = await src.read(eocd, EOCD_MIN);
	let sizeCd = le32(rec, 12);
	let offsetCd = le32(rec, 16);
	let zip64 = false;
	// _EndRecData64: the locator right before the record, the ZIP64 record right before the locator (not where the
	// locator points). On a real file a seek before byte 0 fails and ZIP64 is skipped.
	if (eocd >= 20) {
		const loc = await src.read(eocd - 20, 20);
		if (le32(loc, 0) === SIG_EOCD64_LOC) {
			if (le32(loc, 4) !== 0 || le32(loc, 16) > 1) return "zipfiles that span multiple disks are not supported";
			if (eocd >= 76) {
				const r64 = await src.read(eocd - 76, 56);
				if (le32(r64, 0) === SIG_EOCD64) {
					zip64 = true;
					sizeCd = u64(r64, 40);
					offsetCd = u64(r64, 48);
				}
			}
		}
	}
	const concat = eocd - sizeCd - offsetCd - (zip64 ? 76 : 0);
	const startDir = offsetCd + concat;
	if (startDir < 0) return "Bad offset for central directory";
	const avail = Math.max(0, Math.min(sizeCd, src.size - startDir));
	if (avail > lim.maxCd) return `central directory of ${avail} bytes (limit ${lim.maxCd})`;
	const cd = await src.read(startDir, avail);
	const entries: ZipEntry[] = [];
	let total = 0;
	while (total < sizeCd) {
		if (entries.length >= lim.maxEntries) return `more than ${lim.maxEntries} entries`;
		if (total + 46 > cd.length) return "Truncated central directory";
		const p = total;
		if (le32(cd, p) !== SIG_CENTRAL) return "Bad magic number for central directory";
		const nameLen = le16(cd, p + 28);
		const extraLen = le16(cd, p + 30);
		const commentLen = le16(cd, p + 32);
		const flags = le16(cd, p + 8);
		// Reads past the directory's end come back short, silently.
		const end = (a: number, n: number) => Math.min(cd.length, a + n);
		const nameStart = p + 46;
		const nameEnd = end(nameStart, nameLen);
		const orig = pyDecode(cd.subarray(nameStart, nameEnd), flags);
		if (orig === undefined) return "UnicodeDecodeError: entry name is not UTF-8";
		if ((cd[p + 6] as number) > 63) return `zip file version ${(cd[p + 6] as number) / 10}`;
		const nul = orig.indexOf("\0");
		const e: ZipEntry = {
			name: nul >= 0 ? orig.slice(0, nul) : orig,
			origName: orig,
			method: le16(cd, p + 10),
			flags,
			crc: le32(cd, p + 16),
			compressedSize: le32(cd, p + 20),
			uncompressedSize: le32(cd, p + 24),
			localHeaderOffset: le32(cd, p + 42),
			view: "python",
		};
		const extra = cd.subarray(nameEnd, end(nameEnd, extraLen));
		const bad = pyDecodeExtra(extra, e);
		if (bad !== undefined) return bad;
		e.localHeaderOffset += concat;
		entries.push(e);
		total += 46 + nameLen + extraLen + commentLen;
	}
	return { entries, problems: [], fromLocalHeaders: false, view: "python" };
}

/** `ZipInfo._decodeExtra`: every ZIP64 field (id 1) fills the values still at their 32-bit maximum. */
function pyDecodeExtra(extra: Buffer, e: ZipEntry): string | undefined {
	let p = 0;
	while (extra.length - p >= 4) {
		const tp = le16(extra, p);
		const ln = le16(extra, p + 2);
		if (ln + 4 > extra.length - p) return `Corrupt extra field ${tp.toString(16).padStart(4, "0")} (size=${ln})`;
		if (tp === 1) {
			let q = p + 4;
			const stop = p + 4 + ln;
			const next = (field: string): number | string => {
				if (q + 8 > stop) return `Corrupt zip64 extra field. ${field} not found.`;
				const v = u64(extra, q);
				q += 8;
				return v;
			};
			// file_size is compared with 2^64-1 too: a value a previous ZIP64 field set
			if (e.uncompressedSize === U32_MAX || e.uncompressedSize === 2 ** 64 - 1) {
				const v = next("File size");
				if (typeof v === "string") return v;
				e.uncompressedSize = v;
			}
			if (e.compressedSize === U32_MAX) {
				const v = next("Compress size");
				if (typeof v === "string") return v;
				e.compressedSize = v;
			}
			if (e.localHeaderOffset === U32_MAX) {
				const v = next("Header offset");
				if (typeof v === "string") return v;
				e.localHeaderOffset = v;
			}
		}
		p += 4 + ln;
	}
	return undefined;
}

// ---------------------------------------------------------------- miniz view

async function listMiniz(src: ByteSource, tail: Tail, lim: CdLimits): Promise<ZipListing | string> {
	const size = src.size;
	if (size < EOCD_MIN) return "not an archive";
	const eocd = await minizEocd(tail);
	if (eocd < 0) return "failed finding central directory";
	const rec = await src.read(eocd, EOCD_MIN);
	let zip64 = false;
	let loc: Buffer | undefined;
	let r64: Buffer | undefined;
	if (eocd >= 76) {
		loc = await src.read(eocd - 20, 20);
		if (le32(loc, 0) === SIG_EOCD64_LOC) {
			const at = u64(loc, 8);
			if (at > size - 56) return "not an archive";
			r64 = await src.read(at, 56);
			if (le32(r64, 0) === SIG_EOCD64) zip64 = true;
		}
	}
	let total = le16(rec, 10);
	let onDisk = le16(rec, 8);
	let thisDisk = le16(rec, 4);
	let cdDisk = le16(rec, 6);
	let cdSize = le32(rec, 12);
	let cdOfs = le32(rec, 16);
	if (zip64 && loc && r64) {
		if (u64(r64, 4) < 44) return "invalid header or archive is corrupted";
		if (le32(loc, 16) !== 1) return "unsupported multidisk archive";
		if (u64(r64, 32) > U32_MAX || u64(r64, 24) > U32_MAX) return "too many files";
		if (u64(r64, 40) > U32_MAX) return "unsupported central directory size";
		total = u64(r64, 32);
		onDisk = u64(r64, 24);
		cdSize = u64(r64, 40);
		thisDisk = le32(r64, 16);
		cdDisk = le32(r64, 20);
		cdOfs = u64(r64, 48);
	}
	if (total !== onDisk) return "unsupported multidisk archive";
	if ((thisDisk | cdDisk) !== 0 && (thisDisk !== 1 || cdDisk !== 1)) return "unsupported multidisk archive";
	if (cdSize < total * 46) return "invalid header or archive is corrupted";
	if (cdOfs + cdSize > size) return "invalid header or archive is corrupted";
	if (total > lim.maxEntries) return `${total} entries (limit ${lim.maxEntries})`;
	if (cdSize > lim.maxCd) return `central directory of ${cdSize} bytes (limit ${lim.maxCd})`;
	const cd = total > 0 ? await src.read(cdOfs, cdSize) : Buffer.alloc(0);
	const entries: ZipEntry[] = [];
	const offsets: number[] = [];
	let p = 0;
	for (let i = 0; i < total; i++) {
		const n = cd.length - p;
		if (n < 46 || le32(cd, p) !== SIG_CENTRAL) return "invalid header or archive is corrupted";
		let comp = le32(cd, p + 20);
		let decomp = le32(cd, p + 24);
		let lho = le32(cd, p + 42);
		const nameLen = le16(cd, p + 28);
		const extraLen = le16(cd, p + 30);
		if (extraLen && Math.max(comp, decomp, lho) === U32_MAX) {
			// miniz reads an extra field that runs past the remaining directory from the file at the directory's
			// *start* plus 46 + name length (its bug, reproduced: it is what it parses).
			const extra =
				46 + nameLen + extraLen > n
					? await src.read(cdOfs + 46 + nameLen, extraLen)
					: cd.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen);
			if (extra.length < extraLen) return "file read failed";
			let q = 0;
			let rem = extraLen;
			do {
				if (rem < 4) return "invalid header or archive is corrupted";
				const id = le16(extra, q);
				const len = le16(extra, q + 2);
				if (len + 4 > rem) return "invalid header or archive is corrupted";
				if (id === 1) break;
				q += 4 + len;
				rem -= 4 + len;
			} while (rem);
			if (rem >= 4) {
				rem -= 4;
				q += 4;
				if (decomp === U32_MAX && rem >= 8) {
					decomp = u64(extra, q);
					rem -= 8;
					q += 8;
				}
				if (comp === U32_MAX && rem >= 8) {
					comp = u64(extra, q);
					rem -= 8;
					q += 8;
				}
				if (lho === U32_MAX && rem >= 8) {
					lho = u64(extra, q);
					rem -= 8;
					q += 8;
				}
			}
		}
		// miniz reads the method as a 32-bit field (method and time together): a stored entry is checked only at time 0.
		if (comp !== U32_MAX && decomp !== U32_MAX) {
			if ((le32(cd, p + 10) === 0 && decomp !== comp) || (decomp && !comp))
				return "invalid header or archive is corrupted";
		}
		const disk = le16(cd, p + 34);
		if (disk === 0xffff || (disk !== thisDisk && disk !== 1)) return "unsupported multidisk archive";
		if (comp !== U32_MAX && lho + 30 + comp > size) return "invalid header or archive is corrupted";
		const flags = le16(cd, p + 8);
		if (flags & 0x2000) return "unsupported encryption";
		const headerSize = 46 + nameLen + extraLen + le16(cd, p + 32);
		if (headerSize > n) return "invalid header or archive is corrupted";
		const name = cd.toString("latin1", p + 46, p + 46 + nameLen);
		entries.push({
			name,
			method: le16(cd, p + 10),
			flags,
			crc: le32(cd, p + 16),
			compressedSize: comp,
			uncompressedSize: decomp,
			localHeaderOffset: lho,
			view: "miniz",
			directory: name.endsWith("/") || (le32(cd, p + 38) & 0x10) !== 0,
		});
		offsets.push(p);
		p += headerSize;
	}
	const listing: ZipListing = {
		entries,
		problems: [],
		fromLocalHeaders: false,
		view: "miniz",
		sorted: minizSort(entries),
	};
	// torch: the first entry's name (as a C string) up to its first "/" prefixes every record name
	const first = entries[0]?.name;
	if (first !== undefined) {
		const cstr = first.includes("\0") ? first.slice(0, first.indexOf("\0")) : first;
		const slash = cstr.indexOf("/");
		if (slash >= 0) listing.archiveName = cstr.slice(0, slash);
	}
	return listing;
}

/**
 * miniz's `mz_zip_reader_filename_less` compares code by code with only A–Z lowercased; the same order is JS's own
 * string `<` on the names with only A–Z lowercased (a prefix sorts first in both), which V8 runs natively.
 */
const minizKey = (name: string): string => name.replace(/[A-Z]+/g, (s) => s.toLowerCase());

/** miniz's heap sort of the entries by lowercased name (not stable: which duplicate a lookup finds depends on it). */
function minizSort(entries: ZipEntry[]): number[] {
	const size = entries.length;
	const idx = entries.map((_, i) => i);
	if (size <= 1) return idx;
	const keys = entries.map((e) => minizKey(e.name));
	const less = (a: number, b: number) => (keys[a] as string) < (keys[b] as string);
	const swap = (a: number, b: number) => {
		const t = idx[a] as number;
		idx[a] = idx[b] as number;
		idx[b] = t;
	};
	let start = (size - 2) >>> 1;
	for (;;) {
		let root = start;
		for (;;) {
			let child = root * 2 + 1;
			if (child >= size) break;
			if (child + 1 < size && less(idx[child] as number, idx[child + 1] as number)) child++;
			if (!less(idx[root] as number, idx[child] as number)) break;
			swap(root, child);
			root = child;
		}
		if (!start) break;
		start--;
	}
	for (let end = size - 1; end > 0; end--) {
		swap(end, 0);
		let root = 0;
		for (;;) {
			let child = root * 2 + 1;
			if (child >= end) break;
			if (child + 1 < end && less(idx[child] as number, idx[child + 1] as number)) child++;
			if (!less(idx[root] as number, idx[child] as number)) break;
			swap(root, child);
			root = child;
		}
	}
	return idx;
}

/**
 * The entry a loader opens for `name`: python view, the last entry of exactly that name (`NameToInfo`);
 * miniz view, miniz's case-insensitive binary search (the name as bytes in latin1, cut at a NUL as a C string
 * is; torch.load asks for `${archiveName}/data.pkl` and so on); a lenient listing, the last exact match.
 */
export function findEntry(listing: ZipListing, name: string): ZipEntry | undefined {
	if (listing.view !== "miniz") {
		for (let i = listing.entries.length - 1; i >= 0; i--) {
			const e = listing.entries[i] as ZipEntry;
			if (e.name === name) return e;
		}
		return undefined;
	}
	const want = name.includes("\0") ? name.slice(0, name.indexOf("\0")) : name;
	const sorted = listing.sorted ?? minizSort(listing.entries);
	let l = 0;
	let h = sorted.length - 1;
	while (l <= h) {
		const m = l + ((h - l) >> 1);
		const e = listing.entries[sorted[m] as number] as ZipEntry;
		const c = minizCompare(e.name, want);
		if (c === 0) return e;
		if (c < 0) l = m + 1;
		else h = m - 1;
	}
	return undefined;
}

/** miniz's `mz_zip_filename_compare` (its sign: see minizKey). */
function minizCompare(a: string, b: string): number {
	const x = minizKey(a);
	const y = minizKey(b);
	return x < y ? -1 : x > y ? 1 : 0;
}

// ---------------------------------------------------------------- lenient listing

/**
 * Lists a zip's entries leniently: every entry the python and miniz views list, plus the central directory the
 * end record names read tolerantly; the local headers walked from offset 0 when none is usable. Returns a
 * string (why) when the file is no zip at all. Entries carry their view: `readEntry` reads each as its loader.
 */
export async function listZip(src: ByteSource, limits: ZipLimits = {}): Promise<ZipListing | string> {
	const lim = { maxEntries: limits.maxEntries ?? 100_000, maxCd: limits.maxCentralDirectory ?? 64 * 1024 * 1024 };
	// The views read the same end record and, mostly, the same central directory: read each range once.
	const cached = new CachedSource(src);
	const tail = new Tail(cached);
	const central = await readCentral(cached, tail, lim);
	const py = await listPython(cached, tail, lim);
	const mz = await listMiniz(cached, tail, lim);
	// A bound we impose is no loader's verdict: what lies past it is unknown, so the listing fails.
	for (const r of [central, py, mz]) if (typeof r === "string" && OVER_LIMIT.test(r)) return r;
	const views = [py, mz].filter((v): v is ZipListing => typeof v !== "string");
	if (typeof central === "string" && views.length === 0) {
		const local = await walkLocal(src, lim.maxEntries);
		if (typeof local === "string") return `${central}; ${local}`;
		local.problems.unshift(`central directory unusable (${central}): walked local headers`);
		return local;
	}
	const base: ZipListing =
		typeof central === "string"
			? {
					entries: [],
					problems: [`central directory unusable as named by the end record (${central})`],
					fromLocalHeaders: false,
				}
			: central;
	const seen = new Set(base.entries.map(key));
	const out: ZipListing = { entries: [...base.entries], problems: [...base.problems], fromLocalHeaders: false };
	for (const v of views) {
		let added = 0;
		for (const e of v.entries) {
			if (seen.has(key(e))) continue;
			if (out.entries.length >= lim.maxEntries) return `more than ${lim.maxEntries} entries`;
			seen.add(key(e));
			out.entries.push(e);
			added++;
		}
		if (added > 0)
			out.problems.push(`${v.view} view lists ${added} entries the end record's central directory does not`);
	}
	if (typeof py === "string" && typeof mz !== "string")
		out.problems.push(`CPython's zipfile refuses the archive: ${py}`);
	if (typeof mz === "string" && typeof py !== "string") out.problems.push(`miniz refuses the archive: ${mz}`);
	return out;
}

const OVER_LIMIT = /\(limit \d+\)|^more than \d+ entries/;

/** Remembers the ranges read while listing (end record, central directory): the views read them once. */
class CachedSource implements ByteSource {
	private readonly seen = new Map<string, Buffer>();
	constructor(private readonly src: ByteSource) {}
	get size(): number {
		return this.src.size;
	}
	get bytesRead(): number {
		return this.src.bytesRead;
	}
	async read(offset: number, length: number): Promise<Buffer> {
		const k = `${offset}:${length}`;
		let b = this.seen.get(k);
		if (b === undefined) {
			b = await this.src.read(offset, length);
			if (this.seen.size < 64) this.seen.set(k, b);
		}
		return b;
	}
}

const key = (e: ZipEntry) => `${e.localHeaderOffset}:${e.method}:${e.compressedSize}:${e.name}`;

/** The central directory at the offset the last end record names, read tolerantly (sizes and counts may disagree). */
async function readCentral(src: ByteSource, tail: Tail, lim: CdLimits): Promise<ZipListing | string> {
	const size = src.size;
	if (size < EOCD_MIN) return "too small for a zip";
	const eocd = await minizEocd(tail);
	if (eocd < 0) return "no end-of-central-directory record";
	const rec = await src.read(eocd, EOCD_MIN);
	const problems: string[] = [];
	let count = le16(rec, 10);
	let cdSize = le32(rec, 12);
	let cdOffset = le32(rec, 16);
	if (eocd + EOCD_MIN + le16(rec, 20) !== size) problems.push("end-of-central-directory comment length disagrees");
	// ZIP64: the locator sits right before the EOCD and points at the ZIP64 EOCD record.
	if (eocd >= 20) {
		const loc = await src.read(eocd - 20, 20);
		if (le32(loc, 0) === SIG_EOCD64_LOC) {
			const recOff = u64(loc, 8);
			if (recOff + 56 <= size) {
				const r64 = await src.read(recOff, 56);
				if (r64.length === 56 && le32(r64, 0) === SIG_EOCD64) {
					count = Math.max(count === 0xffff ? 0 : count, Math.min(u64(r64, 32), Number.MAX_SAFE_INTEGER));
					cdSize = u64(r64, 40);
					cdOffset = u64(r64, 48);
				} else problems.push("ZIP64 locator points at no ZIP64 record");
			}
		}
	}
	if (count > lim.maxEntries) return `${count} entries (limit ${lim.maxEntries})`;
	if (cdOffset + cdSize > size) return "central directory lies beyond the end of the file";
	if (cdSize > lim.maxCd) return `central directory of ${cdSize} bytes (limit ${lim.maxCd})`;
	const cd = await src.read(cdOffset, cdSize);
	const entries: ZipEntry[] = [];
	let p = 0;
	// One central record per iteration, 201 for a 200-tensor checkpoint: reads inlined (bounds checked here).
	while (p + 46 <= cd.length && le32(cd, p) === SIG_CENTRAL) {
		if (entries.length >= lim.maxEntries) return `more than ${lim.maxEntries} entries`;
		const nameLen = le16(cd, p + 28);
		const extraLen = le16(cd, p + 30);
		const commentLen2 = le16(cd, p + 32);
		const e: ZipEntry = {
			flags: le16(cd, p + 8),
			method: le16(cd, p + 10),
			crc: le32(cd, p + 16),
			compressedSize: le32(cd, p + 20),
			uncompressedSize: le32(cd, p + 24),
			localHeaderOffset: le32(cd, p + 42),
			name: cd.toString("utf8", p + 46, Math.min(cd.length, p + 46 + nameLen)),
		};
		if (extraLen > 0) applyZip64(cd.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen), e, true);
		entries.push(e);
		p += 46 + nameLen + extraLen + commentLen2;
	}
	if (p > cd.length) problems.push("central directory entry runs past its end");
	if (entries.length === 0 && count > 0) return "central directory holds no entries";
	if (entries.length !== count && count !== 0xffff)
		problems.push(`central directory lists ${entries.length} entries, EOCD says ${count}`);
	return { entries, problems, fromLocalHeaders: false };
}

/** Applies the ZIP64 extended-information extra field (id 1) to the fields that overflowed. */
function applyZip64(extra: Buffer, e: ZipEntry, hasOffset: boolean): void {
	for (let p = 0; p + 4 <= extra.length; ) {
		const id = le16(extra, p);
		const size = le16(extra, p + 2);
		const body = extra.subarray(p + 4, p + 4 + size);
		p += 4 + size;
		if (id !== 1) continue;
		let q = 0;
		const next = (): number | undefined => {
			if (q + 8 > body.length) return undefined;
			const v = u64(body, q);
			q += 8;
			return v;
		};
		if (e.uncompressedSize === U32_MAX) e.uncompressedSize = next() ?? e.uncompressedSize;
		if (e.compressedSize === U32_MAX) e.compressedSize = next() ?? e.compressedSize;
		if (hasOffset && e.localHeaderOffset === U32_MAX) e.localHeaderOffset = next() ?? e.localHeaderOffset;
		return;
	}
}

/** Walks local headers from offset 0 (fallback when the central directory is broken). */
async function walkLocal(src: ByteSource, maxEntries: number): Promise<ZipListing | string> {
	const entries: ZipEntry[] = [];
	const problems: string[] = [];
	let off = 0;
	while (off + 30 <= src.size && entries.length < maxEntries) {
		const h = await src.read(off, 30);
		if (h.length < 30 || le32(h, 0) !== SIG_LOCAL) break;
		const nameLen = le16(h, 26);
		const extraLen = le16(h, 28);
		const ne = await src.read(off + 30, nameLen + extraLen);
		const e: ZipEntry = {
			flags: le16(h, 6),
			method: le16(h, 8),
			compressedSize: le32(h, 18),
			uncompressedSize: le32(h, 22),
			localHeaderOffset: off,
			name: ne.toString("utf8", 0, nameLen),
		};
		applyZip64(ne.subarray(nameLen), e, false);
		const dataStart = off + 30 + nameLen + extraLen;
		if (e.flags & 0x08 && e.compressedSize === 0) {
			// Sizes follow the data (data descriptor): find the next header to bound the entry.
			const next = await findSignature(src, dataStart);
			e.compressedSize = Math.max(0, next - dataStart);
			problems.push(`${e.name}: size only in a data descriptor`);
		}
		entries.push(e);
		off = dataStart + e.compressedSize;
		// Skip an optional data descriptor (with or without its signature) by resynchronising.
		if (e.flags & 0x08) {
			const d = await src.read(off, 4);
			if (d.length === 4 && le32(d, 0) !== SIG_LOCAL) off = await findSignature(src, off);
		}
	}
	if (entries.length === 0) return "no local file header at offset 0";
	return { entries, problems, fromLocalHeaders: true };
}

/** Offset of the next local or central header signature at or after `from` (or the file size). */
async function findSignature(src: ByteSource, from: number): Promise<number> {
	const chunk = 1 << 20;
	for (let off = from; off < src.size; off += chunk - 3) {
		const b = await src.read(off, chunk);
		for (let i = b.indexOf(0x50); i >= 0 && i + 4 <= b.length; i = b.indexOf(0x50, i + 1)) {
			const s = le32(b, i);
			if (s === SIG_LOCAL || s === SIG_CENTRAL || s === SIG_EOCD) return off + i;
		}
		if (b.length < chunk) break;
	}
	return src.size;
}

/**
 * Lists the entries one loader sees, or the loader's reason for refusing the archive (a string: it reads nothing).
 * `findEntry` then finds what that loader opens for a name, `readEntry` reads it as that loader does.
 */
export async function listZipView(
	src: ByteSource,
	view: ZipView,
	limits: ZipLimits = {},
): Promise<ZipListing | string> {
	const lim = { maxEntries: limits.maxEntries ?? 100_000, maxCd: limits.maxCentralDirectory ?? 64 * 1024 * 1024 };
	const tail = new Tail(src);
	return view === "python" ? listPython(src, tail, lim) : listMiniz(src, tail, lim);
}

// ---------------------------------------------------------------- reading entries

/** Where an entry's data starts: after the *local* header's name and extra field (as both loaders compute it). */
export async function entryDataOffset(src: ByteSource, e: ZipEntry): Promise<number | string> {
	const h = await src.read(e.localHeaderOffset, 30);
	if (h.length < 30) return `${e.name}: local header beyond the end of the file`;
	if (le32(h, 0) !== SIG_LOCAL) return `${e.name}: no local header at its offset`;
	const start = e.localHeaderOffset + 30 + le16(h, 26) + le16(h, 28);
	if (start > src.size) return `${e.name}: data beyond the end of the file`;
	return start;
}

export type EntryRead =
	| {
			data: Buffer;
			/** Set when the bytes are a prefix: the loader reads this much, then fails or stops (or `maxBytes` cut it). */
			truncated?: string;
			/** The data's CRC-32 is not the central directory's (CPython reads it anyway; miniz may refuse it). */
			crcMismatch?: boolean;
	  }
	| { error: string };

/**
 * Reads (and inflates) an entry, at most `maxBytes` of output, as the loader of its view does (lenient entries:
 * the whole compressed size). A stored entry can be read as a prefix (`maxBytes` smaller than its size):
 * `truncated` says so.
 */
export async function readEntry(src: ByteSource, e: ZipEntry, maxBytes: number): Promise<EntryRead> {
	if (e.view === "python") return readPython(src, e, maxBytes);
	if (e.view === "miniz") return readMiniz(src, e, maxBytes);
	const start = await entryDataOffset(src, e);
	if (typeof start === "string") return { error: start };
	return readData(src, e, start, e.compressedSize, Number.POSITIVE_INFINITY, maxBytes);
}

/** Stored or deflated data at `start`: `compLen` bytes in, output cut at `outLimit` (the loader's) and `maxBytes` (ours). */
async function readData(
	src: ByteSource,
	e: ZipEntry,
	start: number,
	compLen: number,
	outLimit: number,
	maxBytes: number,
): Promise<EntryRead> {
	const avail = Math.max(0, src.size - start);
	if (e.method === 0) {
		const loaderReads = Math.min(compLen, outLimit);
		const want = Math.min(loaderReads, avail);
		const n = Math.min(want, maxBytes);
		const data = await src.read(start, n);
		if (n < loaderReads)
			return { data, truncated: n < want ? `read limit ${maxBytes} bytes` : "entry runs past the end of the file" };
		return { data };
	}
	if (e.method === 8) {
		// Compressed input is bounded by the file and by a generous ratio of the output limit.
		const n = Math.min(compLen, avail, maxBytes + 1024 * 1024);
		const inf = inflateUpTo(await src.read(start, n), Math.min(outLimit, maxBytes));
		if (inf.tooLarge && outLimit > maxBytes) return { error: `${e.name}: inflates past ${maxBytes} bytes` };
		// The loader reads what inflates before corrupt data, and stops at the declared size.
		if (inf.failed && inf.data.length < outLimit)
			return { data: inf.data, truncated: "corrupt deflate data after these bytes" };
		if (n < compLen && !inf.ended && inf.data.length < outLimit)
			return { data: inf.data, truncated: "compressed data cut short" };
		return { data: inf.data };
	}
	const what = e.method === 12 ? " (bzip2)" : e.method === 14 ? " (LZMA)" : "";
	return { error: `${e.name}: compression method ${e.method}${what} is not decoded here` };
}

/** `ZipFile.open(name).read()`: the local header checks, then the data cut at the central uncompressed size. */
async function readPython(src: ByteSource, e: ZipEntry, maxBytes: number): Promise<EntryRead> {
	if (e.localHeaderOffset < 0) return { error: `${e.name}: negative header offset` };
	const h = await src.read(e.localHeaderOffset, 30);
	if (h.length < 30) return { error: `${e.name}: Truncated file header` };
	if (le32(h, 0) !== SIG_LOCAL) return { error: `${e.name}: Bad magic number for file header` };
	const nameLen = le16(h, 26);
	const extraLen = le16(h, 28);
	if (e.flags & 0x20) return { error: `${e.name}: compressed patched data (flag bit 5)` };
	if (e.flags & 0x40) return { error: `${e.name}: strong encryption (flag bit 6)` };
	const fname = await src.read(e.localHeaderOffset + 30, nameLen);
	const local = pyDecode(fname, le16(h, 6));
	if (local === undefined) return { error: `${e.name}: local header name is not UTF-8` };
	if (local !== (e.origName ?? e.name)) return { error: `${e.name}: File name in directory and header differ` };
	if (e.flags & 0x01) return { error: `${e.name}: encrypted, password required` };
	if (e.method !== 0 && e.method !== 8 && e.method !== 12 && e.method !== 14)
		return { error: `${e.name}: compression type ${e.method} not supported` };
	const start = e.localHeaderOffset + 30 + nameLen + extraLen;
	const r = await readData(src, e, start, e.compressedSize, e.uncompressedSize, maxBytes);
	return withCrc(r, e);
}

/** miniz's `mz_zip_reader_extract_to_mem`: the whole record, inflated to exactly its declared size. */
async function readMiniz(src: ByteSource, e: ZipEntry, maxBytes: number): Promise<EntryRead> {
	if (e.directory || e.compressedSize === 0) {
		// miniz returns without reading: torch gets an uninitialised buffer of the declared size
		return e.uncompressedSize === 0 ? { data: Buffer.alloc(0) } : { error: `${e.name}: miniz reads no data for it` };
	}
	if (e.flags & (0x01 | 0x40 | 0x20)) return { error: `${e.name}: unsupported encryption` };
	if (e.method !== 0 && e.method !== 8) return { error: `${e.name}: unsupported method` };
	if (e.uncompressedSize > maxBytes)
		return { error: `${e.name}: ${e.uncompressedSize} bytes (read limit ${maxBytes})` };
	const h = await src.read(e.localHeaderOffset, 30);
	if (h.length < 30) return { error: `${e.name}: file read failed` };
	if (le32(h, 0) !== SIG_LOCAL) return { error: `${e.name}: invalid header or archive is corrupted` };
	const start = e.localHeaderOffset + 30 + le16(h, 26) + le16(h, 28);
	if (start + e.compressedSize > src.size) return { error: `${e.name}: invalid header or archive is corrupted` };
	if (e.method === 0) {
		const data = await src.read(start, e.uncompressedSize);
		if (data.length !== e.uncompressedSize) return { error: `${e.name}: file read failed` };
		return withCrc({ data }, e);
	}
	// torch checks only what miniz reports: a stream that ends must give exactly the declared size; one that does
	// not end (cut short, corrupt, or longer) is not an error — torch gets its first bytes, the rest of the buffer
	// uninitialised. CRCs are not checked (torch builds miniz without).
	const inf = inflateUpTo(await src.read(start, e.compressedSize), e.uncompressedSize);
	if (inf.ended && !inf.tooLarge && inf.data.length !== e.uncompressedSize)
		return { error: `${e.name}: unexpected decompressed size` };
	if (inf.data.length < e.uncompressedSize)
		return { data: inf.data, truncated: "deflate data ends early: the rest of torch's buffer is uninitialised memory" };
	return withCrc({ data: inf.data }, e);
}

/**
 * Inflates raw deflate data up to `limit` bytes of output: `ended` when the stream's final block was reached
 * within `comp` (with no more output than `limit`), `tooLarge` when it produces more than `limit`, `failed` when
 * it is corrupt; `data` is what it produces before any of these (at most `limit` bytes).
 */
export function inflateUpTo(
	comp: Buffer,
	limit: number,
): { data: Buffer; ended: boolean; tooLarge: boolean; failed: boolean } {
	try {
		const data = inflateRawSync(comp, { maxOutputLength: limit + 1 });
		if (data.length <= limit) return { data, ended: true, tooLarge: false, failed: false };
	} catch {
		// cut short, corrupt or too large: find out which, and what came before, below
	}
	// Output grows with input, and a prefix of the input that inflates without error (sync flush) gives the output
	// up to there: the longest such prefix, bounded in output, is what a streaming loader produced before stopping.
	const slack = limit + 64 * 1024;
	const tryPrefix = (len: number): Buffer | undefined => {
		try {
			return inflateRawSync(comp.subarray(0, len), {
				maxOutputLength: Math.max(1, slack),
				finishFlush: zc.Z_SYNC_FLUSH,
			});
		} catch {
			return undefined;
		}
	};
	let lo = 0; // the longest prefix known to inflate without error
	let best: Buffer = Buffer.alloc(0);
	let hi = comp.length;
	while (lo < hi) {
		const mid = Math.ceil((lo + hi) / 2);
		const out = tryPrefix(mid);
		if (out === undefined) hi = mid - 1;
		else {
			lo = mid;
			best = out;
			if (out.length > limit) break;
		}
	}
	if (best.length > limit) return { data: best.subarray(0, limit), ended: false, tooLarge: true, failed: false };
	return { data: best, ended: false, tooLarge: false, failed: lo < comp.length };
}

function withCrc(r: EntryRead, e: ZipEntry): EntryRead {
	if ("error" in r || e.crc === undefined || r.truncated !== undefined) return r;
	return crc32(r.data) === e.crc ? r : { ...r, crcMismatch: true };
}

let CRC_TABLE: Uint32Array | undefined;
function crc32(b: Buffer): number {
	if (!CRC_TABLE) {
		CRC_TABLE = new Uint32Array(256);
		for (let n = 0; n < 256; n++) {
			let c = n;
			for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
			CRC_TABLE[n] = c >>> 0;
		}
	}
	let c = 0xffffffff;
	for (const x of b) c = (CRC_TABLE[(c ^ x) & 0xff] as number) ^ (c >>> 8);
	return (c ^ 0xffffffff) >>> 0;
}
