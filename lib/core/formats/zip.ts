/**
 * A minimal, tolerant zip reader for scanners (torch zip checkpoints, .npz, .keras).
 *
 * It reads through a ByteSource — the end-of-central-directory, the central
 * directory, and then only the entries a scanner asks for — so a 1 GiB
 * checkpoint costs a few KiB of reads. It is deliberately as lenient as
 * PyTorch's loader (miniz): CRCs are ignored, local names and flags may
 * disagree with the central directory (the central one wins, as in miniz), and
 * when the central directory is broken the local headers are walked instead,
 * because a scanner that gives up where some loader still loads is a bypass.
 * Every count and size is attacker-controlled and bounded.
 */
import { inflateRawSync, constants as zc } from "node:zlib";
import type { ByteSource } from "./types";

export interface ZipEntry {
	/** Name from the central directory (or the local header when walking local headers). */
	name: string;
	/** 0 = stored, 8 = deflated; anything else cannot be read here. */
	method: number;
	flags: number;
	compressedSize: number;
	uncompressedSize: number;
	/** Offset of the entry's local header. */
	localHeaderOffset: number;
}

export interface ZipListing {
	entries: ZipEntry[];
	/** Irregularities that a strict reader would reject (tolerated here, reported as malformed by callers if they wish). */
	problems: string[];
	/** True when the central directory was unusable and local headers were walked. */
	fromLocalHeaders: boolean;
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

function u64(b: Buffer, at: number): number {
	return b.readUInt32LE(at + 4) * 0x1_0000_0000 + b.readUInt32LE(at);
}

/** Applies the ZIP64 extended-information extra field (id 1) to the fields that overflowed. */
function applyZip64(extra: Buffer, e: ZipEntry, hasOffset: boolean): void {
	for (let p = 0; p + 4 <= extra.length; ) {
		const id = extra.readUInt16LE(p);
		const size = extra.readUInt16LE(p + 2);
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
		if (e.uncompressedSize === 0xffffffff) e.uncompressedSize = next() ?? e.uncompressedSize;
		if (e.compressedSize === 0xffffffff) e.compressedSize = next() ?? e.compressedSize;
		if (hasOffset && e.localHeaderOffset === 0xffffffff) e.localHeaderOffset = next() ?? e.localHeaderOffset;
		return;
	}
}

/**
 * Lists a zip's entries. Returns a string (why) when the file is no zip at all:
 * neither a usable central directory nor a single local header.
 */
export async function listZip(src: ByteSource, limits: ZipLimits = {}): Promise<ZipListing | string> {
	const maxEntries = limits.maxEntries ?? 100_000;
	const central = await readCentral(src, maxEntries, limits.maxCentralDirectory ?? 64 * 1024 * 1024);
	if (typeof central !== "string") return central;
	const local = await walkLocal(src, maxEntries);
	if (typeof local === "string") return `${central}; ${local}`;
	local.problems.unshift(`central directory unusable (${central}): walked local headers`);
	return local;
}

const FULL_TAIL = EOCD_MIN + MAX_COMMENT + 20;
const SMALL_TAIL = 1024;

/** Offset of the last EOCD signature in `tail` (from which a whole record could start), or -1. */
function lastEocd(tail: Buffer): number {
	for (let i = tail.length - EOCD_MIN; i >= 0; i--) {
		if (tail.readUInt32LE(i) === SIG_EOCD) return i;
	}
	return -1;
}

async function readCentral(src: ByteSource, maxEntries: number, maxCd: number): Promise<ZipListing | string> {
	const size = src.size;
	if (size < EOCD_MIN) return "too small for a zip";
	// The EOCD is searched from the end: first in a small tail (archives rarely carry a comment),
	// then in the largest tail a comment allows. The last signature found in the small tail is the
	// last one in the large tail too, so both find the same record; a record too close to the small
	// tail's start for the ZIP64 locator before it is looked for again in the large tail.
	let tailLen = Math.min(size, SMALL_TAIL);
	let tail = await src.read(size - tailLen, tailLen);
	let eocd = lastEocd(tail);
	if (eocd < 20 && tailLen < size && tailLen < FULL_TAIL) {
		tailLen = Math.min(size, FULL_TAIL);
		tail = await src.read(size - tailLen, tailLen);
		eocd = lastEocd(tail);
	}
	if (eocd < 0) return "no end-of-central-directory record";
	const problems: string[] = [];
	let count = tail.readUInt16LE(eocd + 10);
	let cdSize = tail.readUInt32LE(eocd + 12);
	let cdOffset = tail.readUInt32LE(eocd + 16);
	const commentLen = tail.readUInt16LE(eocd + 20);
	if (eocd + EOCD_MIN + commentLen !== tail.length) problems.push("end-of-central-directory comment length disagrees");
	// ZIP64: the locator sits right before the EOCD and points at the ZIP64 EOCD record.
	if (eocd >= 20 && tail.readUInt32LE(eocd - 20) === SIG_EOCD64_LOC) {
		const recOff = u64(tail, eocd - 20 + 8);
		if (recOff + 56 <= size) {
			const rec = await src.read(recOff, 56);
			if (rec.length === 56 && rec.readUInt32LE(0) === SIG_EOCD64) {
				count = Math.max(count === 0xffff ? 0 : count, Math.min(u64(rec, 32), Number.MAX_SAFE_INTEGER));
				cdSize = u64(rec, 40);
				cdOffset = u64(rec, 48);
			} else problems.push("ZIP64 locator points at no ZIP64 record");
		}
	}
	if (count > maxEntries) return `${count} entries (limit ${maxEntries})`;
	if (cdOffset + cdSize > size) return "central directory lies beyond the end of the file";
	if (cdSize > maxCd) return `central directory of ${cdSize} bytes (limit ${maxCd})`;
	const cd = await src.read(cdOffset, cdSize);
	const entries: ZipEntry[] = [];
	let p = 0;
	// One central record per iteration, 201 for a 200-tensor checkpoint: reads inlined (bounds checked here).
	while (p + 46 <= cd.length && le32(cd, p) === SIG_CENTRAL) {
		if (entries.length >= maxEntries) return `more than ${maxEntries} entries`;
		const nameLen = le16(cd, p + 28);
		const extraLen = le16(cd, p + 30);
		const commentLen2 = le16(cd, p + 32);
		const e: ZipEntry = {
			flags: le16(cd, p + 8),
			method: le16(cd, p + 10),
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

/** Walks local headers from offset 0 (fallback when the central directory is broken). */
async function walkLocal(src: ByteSource, maxEntries: number): Promise<ZipListing | string> {
	const entries: ZipEntry[] = [];
	const problems: string[] = [];
	let off = 0;
	while (off + 30 <= src.size && entries.length < maxEntries) {
		const h = await src.read(off, 30);
		if (h.length < 30 || h.readUInt32LE(0) !== SIG_LOCAL) break;
		const nameLen = h.readUInt16LE(26);
		const extraLen = h.readUInt16LE(28);
		const ne = await src.read(off + 30, nameLen + extraLen);
		const e: ZipEntry = {
			flags: h.readUInt16LE(6),
			method: h.readUInt16LE(8),
			compressedSize: h.readUInt32LE(18),
			uncompressedSize: h.readUInt32LE(22),
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
			if (d.length === 4 && d.readUInt32LE(0) !== SIG_LOCAL) off = await findSignature(src, off);
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
			const s = b.readUInt32LE(i);
			if (s === SIG_LOCAL || s === SIG_CENTRAL || s === SIG_EOCD) return off + i;
		}
		if (b.length < chunk) break;
	}
	return src.size;
}

/** Where an entry's data starts: after the *local* header's name and extra field (as miniz computes it). */
export async function entryDataOffset(src: ByteSource, e: ZipEntry): Promise<number | string> {
	const h = await src.read(e.localHeaderOffset, 30);
	if (h.length < 30) return `${e.name}: local header beyond the end of the file`;
	if (h.readUInt32LE(0) !== SIG_LOCAL) return `${e.name}: no local header at its offset`;
	const start = e.localHeaderOffset + 30 + h.readUInt16LE(26) + h.readUInt16LE(28);
	if (start > src.size) return `${e.name}: data beyond the end of the file`;
	return start;
}

export type EntryRead = { data: Buffer; truncated?: string } | { error: string };

/**
 * Reads (and inflates) an entry, at most `maxBytes` of output. A stored entry
 * can be read as a prefix (`maxBytes` smaller than its size): `truncated` says so.
 */
export async function readEntry(src: ByteSource, e: ZipEntry, maxBytes: number): Promise<EntryRead> {
	const start = await entryDataOffset(src, e);
	if (typeof start === "string") return { error: start };
	const avail = Math.max(0, src.size - start);
	if (e.method === 0) {
		const want = Math.min(e.compressedSize, avail);
		const n = Math.min(want, maxBytes);
		const data = await src.read(start, n);
		if (n < e.compressedSize)
			return { data, truncated: n < want ? `read limit ${maxBytes} bytes` : "entry runs past the end of the file" };
		return { data };
	}
	if (e.method === 8) {
		// Compressed input is bounded by the file and by a generous ratio of the output limit.
		const n = Math.min(e.compressedSize, avail, maxBytes + 1024 * 1024);
		const comp = await src.read(start, n);
		try {
			const data = inflateRawSync(comp, { maxOutputLength: maxBytes, finishFlush: zc.Z_SYNC_FLUSH });
			return n < e.compressedSize ? { data, truncated: "compressed data cut short" } : { data };
		} catch (err) {
			const code = (err as NodeJS.ErrnoException).code;
			if (code === "ERR_BUFFER_TOO_LARGE" || err instanceof RangeError)
				return { error: `${e.name}: inflates past ${maxBytes} bytes` };
			return { error: `${e.name}: corrupt deflate data` };
		}
	}
	return { error: `${e.name}: unsupported compression method ${e.method}` };
}
