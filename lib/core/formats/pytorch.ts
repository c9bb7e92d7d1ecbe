/**
 * Scanners for pickle-bearing files: plain pickles, `torch.save` zip archives
 * and legacy (pre-1.6, `_use_new_zipfile_serialization=False`) torch files.
 *
 * Only the pickle streams are read. Pickles are read in growing chunks through
 * the ByteSource and re-analysed until they end, so a 1 GiB legacy checkpoint
 * costs the few KiB of its five pickles, and tensor bytes are never touched.
 */
import {
	type AnalyzeOptions,
	analyzePickle,
	isPickleOpcode,
	looksLikePickle,
	mayBeUnpickled,
	type PickleAnalysis,
	startsWithProto,
} from "./pickle";
import {
	type ByteSource,
	type Finding,
	guarded,
	type ScanInput,
	type Scanner,
	type ScanPolicy,
	type ScanResult,
} from "./types";
import { entryDataOffset, isZip, le16, le32, listZip, readEntry, type ZipEntry } from "./zip";

/** Largest pickle stream analysed (per file, or per archive entry). */
export const MAX_PICKLE_BYTES = 256 * 1024 * 1024;
const FIRST_CHUNK = 64 * 1024;
const GROWTH = 4;

/** A window onto part of another source; reads count towards the parent's `bytesRead`. */
export class SliceSource implements ByteSource {
	constructor(
		private readonly parent: ByteSource,
		private readonly start: number,
		readonly size: number,
	) {}
	get bytesRead(): number {
		return this.parent.bytesRead;
	}
	read(offset: number, length: number): Promise<Buffer> {
		const o = Math.max(0, Math.min(offset, this.size));
		const n = Math.max(0, Math.min(length, this.size - o));
		return this.parent.read(this.start + o, n);
	}
}

export type StreamOptions = Omit<AnalyzeOptions, "partial" | "start" | "baseOffset"> & {
	/** Offset in `src` where the pickle stream starts. @default 0 */
	offset?: number;
	/** Upper bound on bytes read. @default MAX_PICKLE_BYTES */
	maxBytes?: number;
	/** First read size (pass the stream's known size to analyse it in one pass). @default 64 KiB */
	firstChunk?: number;
};

/** What `analyzeStream` returns: the analysis and how many bytes it analysed (for budgets). */
export type StreamAnalysis = PickleAnalysis & { bytes: number };

/**
 * Analyses the pickle stream(s) starting at `offset`, reading in growing
 * chunks and re-analysing until the stream ends (or `maxPickles` are done), so
 * that what follows the pickles (tensor storage) is never read.
 *
 * The first chunk (64 KiB unless told) covers typical checkpoint pickles in one
 * pass; after that each read quadruples the buffer, so re-analysing from the
 * start costs at most ~4/3 of a single pass over the final size.
 */
export async function analyzeStream(src: ByteSource, opts: StreamOptions): Promise<StreamAnalysis> {
	const { offset: _o, maxBytes: _m, firstChunk: _f, ...rest } = opts;
	const offset = opts.offset ?? 0;
	const total = Math.max(0, src.size - offset);
	const maxBytes = Math.min(opts.maxBytes ?? MAX_PICKLE_BYTES, total);
	const want = Math.min(Math.max(1, opts.firstChunk ?? FIRST_CHUNK), maxBytes);
	let buf = await src.read(offset, want);
	for (;;) {
		const done = buf.length >= maxBytes;
		const r: StreamAnalysis = Object.assign(analyzePickle(buf, { ...rest, baseOffset: offset, partial: !done }), {
			bytes: buf.length,
		});
		// A buffer that ends exactly after a STOP may be followed by another pickle: read on
		// (unless the pickles wanted are all there), or a second pickle at a chunk boundary goes unseen.
		const atBoundary =
			!done && r.malformed === undefined && r.end === buf.length && (opts.maxPickles ?? Infinity) > r.pickles;
		if (!r.incomplete && !atBoundary) {
			if (done && maxBytes < total && r.malformed?.startsWith("truncated")) {
				r.findings.push({
					id: "pickle-too-large",
					severity: "high",
					message: `pickle stream longer than ${maxBytes} bytes; the rest was not checked`,
					...(opts.location ? { location: opts.location } : {}),
				});
			}
			return r;
		}
		const next = Math.min(maxBytes, buf.length * GROWTH);
		const more = await src.read(offset + buf.length, next - buf.length);
		if (more.length === 0) {
			return Object.assign(analyzePickle(buf, { ...rest, baseOffset: offset }), { bytes: buf.length });
		}
		buf = Buffer.concat([buf, more]);
	}
}

/**
 * A source that serves reads inside an already-read prefix of the file (the
 * engine's 64 KiB head) from memory: those bytes are not read (nor counted) twice.
 */
export class HeadCachedSource implements ByteSource {
	constructor(
		private readonly parent: ByteSource,
		private readonly head: Buffer,
	) {}
	get size(): number {
		return this.parent.size;
	}
	get bytesRead(): number {
		return this.parent.bytesRead;
	}
	/** `read`, synchronously, when the parent can read synchronously. */
	syncReader(): SyncRead | undefined {
		const parent = syncReader(this.parent);
		if (parent === undefined) return undefined;
		return (offset, length) => {
			const h = this.head;
			const start = Math.max(0, Math.min(offset, this.parent.size));
			const n = Math.max(0, Math.min(length, this.parent.size - start));
			if (start + n <= h.length) return h.subarray(start, start + n);
			if (start >= h.length) return parent(start, n);
			return Buffer.concat([h.subarray(start), parent(h.length, start + n - h.length)]);
		};
	}
	/** `syncReader`, reading into a caller's buffer (no allocation per read). */
	syncReaderInto(): SyncReadInto | undefined {
		const parent = syncReaderInto(this.parent);
		if (parent === undefined) return undefined;
		return (offset, length, into, at) => {
			const h = this.head;
			const start = Math.max(0, Math.min(offset, this.parent.size));
			const n = Math.max(0, Math.min(length, this.parent.size - start));
			if (start + n <= h.length) return h.copy(into, at, start, start + n);
			if (start >= h.length) return parent(start, n, into, at);
			const k = h.copy(into, at, start);
			return k + parent(h.length, start + n - h.length, into, at + k);
		};
	}
	async read(offset: number, length: number): Promise<Buffer> {
		const h = this.head;
		const start = Math.max(0, Math.min(offset, this.parent.size));
		const n = Math.max(0, Math.min(length, this.parent.size - start));
		if (start + n <= h.length) return h.subarray(start, start + n);
		if (start >= h.length) return this.parent.read(start, n);
		const rest = await this.parent.read(h.length, start + n - h.length);
		return Buffer.concat([h.subarray(start), rest]);
	}
}

type SyncRead = (offset: number, length: number) => Buffer;

/** A synchronous reader for sources that offer one (FileSource, BufferSource, and those over them). */
function syncReader(src: ByteSource): SyncRead | undefined {
	if (src instanceof HeadCachedSource) return src.syncReader();
	const r = (src as { readSync?: unknown }).readSync;
	return typeof r === "function" ? (r as SyncRead).bind(src) : undefined;
}

/** Reads up to `length` bytes at `offset` into `into` at `at`; returns how many it read. */
type SyncReadInto = (offset: number, length: number, into: Buffer, at: number) => number;

/** `syncReader`, into a caller's buffer. */
function syncReaderInto(src: ByteSource): SyncReadInto | undefined {
	if (src instanceof HeadCachedSource) return src.syncReaderInto();
	const r = (src as { readSyncInto?: unknown }).readSyncInto;
	return typeof r === "function" ? (r as SyncReadInto).bind(src) : undefined;
}

/** The input's source, with the engine's head (if it passed one) served from memory. */
function sourceOf(input: ScanInput): ByteSource {
	const { source, head } = input;
	return head !== undefined && head.length > 0 && head.length <= source.size
		? new HeadCachedSource(source, head)
		: source;
}

function forbidden(policy: ScanPolicy, location?: string): Finding[] {
	if (policy.allowPickle) return [];
	return [
		{
			id: "pickle-forbidden",
			severity: "high",
			message: "pickle can run code on load; convert to safetensors or pass --allow-pickle",
			...(location ? { location } : {}),
		},
	];
}

/** A plain pickle file (`.pkl`, `.pickle`, old `.bin` / `.ckpt` …), recognised by its first opcodes. */
export const pickleScanner: Scanner = {
	format: "pickle",
	detect(head) {
		return looksLikePickle(head) && !isLegacyTorch(head);
	},
	scan(input: ScanInput) {
		return guarded(async () => {
			const r = await analyzeStream(sourceOf(input), { policy: input.policy });
			return toResult(r);
		});
	},
	// pickle.load (and torch.load's legacy path) runs a pickle from byte 0 and ignores what follows it. An HDF5
	// file's user block is bytes of the writer's choosing before the superblock: one named like a pickle whose
	// first byte is an opcode is analysed as the pickle it may also be (the engine's rule for unclaimed files).
	alsoIn: async (source, head, name, claimed) => claimed === "keras-h5" && mayBeUnpickled(head, name, source.size),
};

function toResult(r: PickleAnalysis): ScanResult {
	return r.malformed !== undefined ? { findings: r.findings, malformed: r.malformed } : { findings: r.findings };
}

// Legacy torch.save writes the magic number 0x1950a86a20f9469cfc6c as a LONG1 pickle first.
const LEGACY_MAGIC = Buffer.from([0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);

function isLegacyTorch(head: Buffer): boolean {
	return startsWithProto(head) && head.subarray(2, 2 + LEGACY_MAGIC.length).equals(LEGACY_MAGIC);
}

/**
 * Legacy torch.save: magic-number, protocol, sys_info, main object and
 * storage-keys pickles in a row, then raw storage bytes. The five pickles are
 * analysed; the storage bytes are not read.
 */
export const pytorchLegacyScanner: Scanner = {
	format: "pytorch-legacy",
	detect(head) {
		return isLegacyTorch(head);
	},
	scan(input: ScanInput) {
		return guarded(async () => {
			const r = await analyzeStream(sourceOf(input), { policy: input.policy, maxPickles: 5 });
			if (r.malformed === undefined && r.pickles < 5)
				return { findings: r.findings, malformed: `legacy torch file holds ${r.pickles} of 5 pickles` };
			return toResult(r);
		});
	},
};

const SNIFF_BYTES = 64;
/** First read of a named pickle entry: its whole size up to this (checkpoint pickles are far smaller). */
const NAMED_FIRST_CHUNK = 16 * 1024 * 1024;
/** Budget for entries that are not named `*.pkl` but start like a pickle. */
const SNIFFED_MAX_BYTES = 16 * 1024 * 1024;
/** Pickle bytes analysed per archive, all entries together. */
const ARCHIVE_BUDGET = 512 * 1024 * 1024;

/** The local-header read that usually covers a stored entry's sniff (name, torch's 64-byte alignment padding). */
function sniffGuess(e: ZipEntry): number {
	return 30 + Buffer.byteLength(e.name) + 128 + SNIFF_BYTES;
}

/**
 * A stored entry's sniff from the read at its local header: the bytes, `undefined` when
 * there is no local header, or the data's offset (from the header) when the read fell short.
 */
function storedSniff(h: Buffer, e: ZipEntry): Buffer | number | undefined {
	if (h.length < 30 || le32(h, 0) !== 0x04034b50) return undefined;
	const start = 30 + le16(h, 26) + le16(h, 28);
	const n = Math.min(SNIFF_BYTES, e.compressedSize);
	if (start + n <= h.length) return h.subarray(start, start + n);
	return start;
}

/** Whether an entry's first bytes (its sniff: `undefined` without a local header) may be a pickle to analyse. */
function sniffLooksLikePickle(head: Buffer | undefined): boolean {
	return head !== undefined && (startsWithProto(head) || looksLikePickle(head));
}

/**
 * `sniffLooksLikePickle(entryHead(…))` for a stored entry, read synchronously into `buf`
 * (at least `sniffGuess(e)` bytes, reused for every entry): one pread and no allocation
 * per tensor unless its first byte is a pickle opcode.
 */
function storedSniffSync(read: SyncReadInto, e: ZipEntry, buf: Buffer): boolean {
	const n = read(e.localHeaderOffset, sniffGuess(e), buf, 0);
	if (n < 30 || le32(buf, 0) !== 0x04034b50) return false; // no local header: no head, as in storedSniff
	const start = 30 + le16(buf, 26) + le16(buf, 28);
	const want = Math.min(SNIFF_BYTES, e.compressedSize);
	let from = start;
	let len = want;
	if (start + want > n) {
		from = 0;
		len = read(e.localHeaderOffset + start, want, buf, 0);
	}
	// Fewer than 2 bytes, or a first byte no unpickler accepts: both tests below are false.
	if (len < 2 || !isPickleOpcode(buf[from])) return false;
	return sniffLooksLikePickle(buf.subarray(from, from + len));
}

/** First bytes of an entry's data (inflated if need be), for sniffing pickles under other names. */
async function entryHead(src: ByteSource, e: ZipEntry): Promise<Buffer | undefined> {
	if (e.method === 0) {
		const r = storedSniff(await src.read(e.localHeaderOffset, sniffGuess(e)), e);
		return typeof r === "number" ? src.read(e.localHeaderOffset + r, Math.min(SNIFF_BYTES, e.compressedSize)) : r;
	}
	if (e.method === 8) {
		// 4 KiB of deflate output at most ~4 MiB: the output limit is never what stops the sniff.
		const r = await readEntry(src, { ...e, compressedSize: Math.min(e.compressedSize, 4096) }, 8 * 1024 * 1024);
		return "data" in r ? r.data.subarray(0, SNIFF_BYTES) : undefined;
	}
	return undefined;
}

function isPickleName(name: string): boolean {
	return name.endsWith(".pkl") || name.endsWith(".pickle");
}

/** Analyses one archive entry as a pickle stream (stored: read in growing chunks; deflated: inflated, bounded). */
async function analyzeEntry(
	src: ByteSource,
	e: ZipEntry,
	policy: ScanPolicy,
	maxBytes: number,
	named: boolean,
): Promise<(PickleAnalysis & { bytes?: number }) | { error: string }> {
	const base = { policy, location: e.name, forbiddenFinding: false, maxBytes };
	if (e.method === 0) {
		const start = await entryDataOffset(src, e);
		if (typeof start === "string") return { error: start };
		const size = Math.min(e.compressedSize, src.size - start);
		// Offsets are reported relative to the entry: the location names the entry. A named
		// pickle entry's size is known: it is read whole (up to 16 MiB, then in growing chunks up
		// to maxBytes) and analysed in one pass. Sniffed entries may be tensor data that merely
		// starts like a pickle: read in growing chunks from 64 KiB.
		const first = named ? Math.min(size, NAMED_FIRST_CHUNK) : undefined;
		return analyzeStream(
			new SliceSource(src, start, size),
			first !== undefined ? { ...base, firstChunk: first } : base,
		);
	}
	const r = await readEntry(src, e, maxBytes);
	if ("error" in r) return { error: r.error };
	const a: PickleAnalysis & { bytes?: number } = analyzePickle(r.data, base);
	a.bytes = r.data.length;
	return a;
}

/**
 * `torch.save` zip archives (and TorchScript / other zips holding pickles).
 * Every `.pkl` entry is analysed whatever its name, and every other entry whose
 * first bytes look like a pickle; tensor data is only sniffed (64 bytes), never read.
 */
export const pytorchZipScanner: Scanner = {
	format: "pytorch-zip",
	detect(head, name) {
		if (!isZip(head)) return false;
		if (head.includes(".pkl")) return true;
		// First entry's data is a pickle, or a torch-like name with nothing that marks npz / keras.
		const nameLen = head.length >= 30 ? head.readUInt16LE(26) : 0;
		const extraLen = head.length >= 30 ? head.readUInt16LE(28) : 0;
		if (startsWithProto(head, 30 + nameLen + extraLen)) return true;
		return /\.(pt|pth|bin|ckpt|tar|mar)$/i.test(name) && !head.includes(".npy") && !head.includes("config.json");
	},
	scan(input: ScanInput) {
		const { policy } = input;
		const source = sourceOf(input);
		return guarded(async () => {
			const listing = await listZip(source);
			if (typeof listing === "string") return { findings: forbidden(policy), malformed: `not a zip: ${listing}` };
			const findings: Finding[] = [];
			let malformed: string | undefined = listing.fromLocalHeaders ? listing.problems[0] : undefined;
			let pickles = 0;
			// Sniff the entries not named *.pkl a batch at a time: hundreds of tensors cost hundreds of small reads.
			// Stored entries are sniffed synchronously where the source allows it (one pread each).
			// `sniffed`: for each entry not named *.pkl, whether its first bytes may be a pickle.
			const sniffed = new Map<ZipEntry, boolean>();
			const read = syncReaderInto(source);
			let buf = Buffer.alloc(0);
			const others = listing.entries.filter((e) => {
				if (isPickleName(e.name)) return false;
				if (read === undefined || e.method !== 0) return true;
				if (buf.length < sniffGuess(e)) buf = Buffer.allocUnsafe(Math.max(4096, sniffGuess(e)));
				sniffed.set(e, storedSniffSync(read, e, buf));
				return false;
			});
			for (let i = 0; i < others.length; i += 32) {
				const batch = others.slice(i, i + 32);
				const got = await Promise.all(batch.map((e) => entryHead(source, e)));
				batch.forEach((e, k) => {
					sniffed.set(e, sniffLooksLikePickle(got[k]));
				});
			}
			let budget = ARCHIVE_BUDGET;
			for (const e of listing.entries) {
				const named = isPickleName(e.name);
				if (!named && sniffed.get(e) !== true) continue;
				// Tensor data that happens to start like a pickle must not make us read a whole tensor:
				// sniffed entries get a smaller budget (reaching it is itself a finding, pickle-too-large).
				if (budget <= 0) {
					findings.push({
						id: "archive-too-large",
						severity: "high",
						message: `pickle entries beyond ${ARCHIVE_BUDGET} bytes in all were not checked`,
						location: e.name,
					});
					break;
				}
				const limit = Math.min(budget, named ? MAX_PICKLE_BYTES : SNIFFED_MAX_BYTES);
				const before = source.bytesRead;
				const r = await analyzeEntry(source, e, policy, limit, named);
				// Entries are charged what was read or analysed (bytes served from the cached head are
				// analysed, not read), deflated ones what was inflated: overlapping entries or a pile
				// of bombs cannot multiply the work.
				budget -= Math.max(source.bytesRead - before, "bytes" in r ? (r.bytes ?? 0) : 0, 1);
				if ("error" in r) {
					if (named) {
						pickles++;
						malformed ??= r.error;
						findings.push({
							id: "unreadable-pickle-entry",
							severity: "high",
							message: `pickle entry cannot be read: ${r.error}`,
							location: e.name,
						});
					}
					continue;
				}
				// Tensor bytes that merely start like a pickle: count them only if they parse or import something.
				if (!named && r.pickles === 0 && r.findings.length === 0) continue;
				pickles++;
				findings.push(...r.findings);
				if (r.malformed !== undefined) malformed ??= `${e.name}: ${r.malformed}`;
			}
			if (pickles === 0) return { findings, malformed: malformed ?? "zip archive holds no pickle entry" };
			findings.unshift(...forbidden(policy, listing.entries.find((e) => isPickleName(e.name))?.name));
			return malformed !== undefined ? { findings, malformed } : { findings };
		});
	},
};
