/**
 * Streaming reader of dataset files: JSON lines, a JSON array (split element by element, never parsed whole), either
 * gzip-compressed (found by magic bytes, not by name), and Parquet; a directory is its dataset shards in sorted
 * order. Memory is one chunk plus one record whatever the file size. A line that does not parse is an item with an
 * error (a finding, the scan goes on); a file that is no dataset at all throws DATA_INVALID.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { join, relative } from "node:path";
import { createGunzip } from "node:zlib";
import { FtguardError } from "../errors";
import type { LineageFile } from "./lineage";
import { readParquet } from "./parquet";

export interface DatasetItem {
	readonly file: string;
	/** 1-based line of the record's start (Parquet: 1-based row) */
	readonly line: number;
	readonly value?: unknown;
	readonly error?: string;
	/** the record's text as stored, for a record that did not parse */
	readonly raw?: string;
}

const SHARD = /\.(?:jsonl|ndjson|json|parquet)(?:\.gz)?$/i;
const MAX_LINE = 64 << 20;

/** The files of the given paths: files as given, directories as their dataset shards (recursive, sorted). */
export async function datasetFiles(paths: readonly string[]): Promise<string[]> {
	const out: string[] = [];
	for (const p of paths) {
		const s = await stat(p);
		if (s.isDirectory()) {
			const found: string[] = [];
			await walk(p, found);
			if (found.length === 0)
				throw new FtguardError("DATA_INVALID", `${p}: no dataset files (.jsonl, .json, .parquet, optionally .gz)`);
			out.push(...found.sort((a, b) => (relative(p, a) < relative(p, b) ? -1 : 1)));
		} else if (s.isFile()) out.push(p);
		else throw new FtguardError("DATA_INVALID", `${p}: not a regular file or directory`);
	}
	return out;
}

/**
 * A directory's shards: its files named as data, and — so that nothing a trainer may load goes unscanned — any other
 * file, hidden ones included, whose first bytes are data (JSON, gzip, Parquet). Hidden directories (.git, caches) are
 * not entered.
 */
async function walk(dir: string, out: string[]): Promise<void> {
	for (const e of await readdir(dir, { withFileTypes: true })) {
		const p = join(dir, e.name);
		if (e.isDirectory()) {
			if (!e.name.startsWith(".")) await walk(p, out);
		} else if (e.isFile() && (SHARD.test(e.name) || looksLikeData(await firstBytes(p, 8)))) out.push(p);
	}
}

/** JSON (after a BOM and blanks), gzip or Parquet by the first bytes. */
function looksLikeData(head: Buffer): boolean {
	if (head.toString("latin1", 0, 4) === "PAR1" || (head[0] === 0x1f && head[1] === 0x8b)) return true;
	let i = head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf ? 3 : 0;
	while (i < head.length && (head[i] === 0x20 || head[i] === 0x0a || head[i] === 0x0d || head[i] === 0x09)) i++;
	return head[i] === 0x7b || head[i] === 0x5b;
}

export interface ReadProgress {
	/** the files' stored bytes read so far */
	bytes: number;
	/** the data's bytes as read (gzip inflated) so far, counted only with `maxRead` */
	read?: number;
	/** past this many bytes as read the scan stops (TOO_LARGE): a runner's budget, gzip bombs included */
	maxRead?: number;
}

/** Count `n` more bytes as read; past the budget, stop. */
function countRead(progress: ReadProgress | undefined, n: number, file: string): void {
	if (progress?.maxRead === undefined) return;
	progress.read = (progress.read ?? 0) + n;
	if (progress.read > progress.maxRead)
		throw new FtguardError(
			"TOO_LARGE",
			`${file}: the data is larger than this runner scans (more than ${progress.maxRead} bytes as read, gzip inflated)`,
		);
}

/** The stream's chunks, counted against the budget as they are read. */
async function* counted(stream: AsyncIterable<unknown>, progress: ReadProgress, file: string): AsyncIterable<unknown> {
	for await (const chunk of stream) {
		countRead(progress, (chunk as Buffer).length, file);
		yield chunk;
	}
}

/** Every item of the files, in order; `onFile` receives each file's lineage entry once it has been read. */
export async function* readDataset(
	files: readonly string[],
	onFile?: (f: Omit<LineageFile, "records">) => void,
	progress?: ReadProgress,
): AsyncGenerator<DatasetItem> {
	for (const file of files) {
		const head = await firstBytes(file, 4);
		if (head.toString("latin1") === "PAR1") {
			const hash = createHash("sha256");
			let bytes = 0;
			for await (const chunk of createReadStream(file)) {
				hash.update(chunk as Buffer);
				bytes += (chunk as Buffer).length;
			}
			// (stored bytes: what a Parquet file inflates to is its column chunks', read by the Parquet reader)
			countRead(progress, bytes, file);
			yield* readParquet(file);
			if (progress) progress.bytes += bytes;
			onFile?.({ path: file, sha256: hash.digest("hex"), bytes });
			continue;
		}
		yield* readJson(file, head[0] === 0x1f && head[1] === 0x8b, onFile, progress);
	}
}

async function firstBytes(file: string, n: number): Promise<Buffer> {
	for await (const chunk of createReadStream(file, { start: 0, end: n - 1 })) return chunk as Buffer;
	return Buffer.alloc(0);
}

/** The file's byte stream (gunzipped when it is gzip), hashing and counting the stored bytes as they are read. */
function openJson(
	file: string,
	gzip: boolean,
	progress: ReadProgress | undefined,
): { stream: AsyncIterable<unknown>; digest: () => { sha256: string; bytes: number } } {
	const hash = createHash("sha256");
	let bytes = 0;
	const raw = createReadStream(file, { highWaterMark: 1 << 20 });
	raw.on("data", (c) => {
		hash.update(c as Buffer);
		bytes += (c as Buffer).length;
		if (progress) progress.bytes += (c as Buffer).length;
	});
	let stream: AsyncIterable<unknown> = raw;
	if (gzip) {
		// pipe() does not pass the file's read errors on: without this one would be an uncaught exception
		const gunzip = createGunzip();
		raw.on("error", (e) => gunzip.destroy(e));
		stream = raw.pipe(gunzip);
	}
	if (progress?.maxRead !== undefined) stream = counted(stream, progress, file);
	return { stream, digest: () => ({ sha256: hash.digest("hex"), bytes }) };
}

/** JSON lines or one JSON array, by the first character that is not space or a BOM; undefined: none yet. */
function jsonMode(buf: Buffer, file: string): "lines" | "array" | undefined {
	const i = buf.findIndex(
		(b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09 && b !== 0xef && b !== 0xbb && b !== 0xbf,
	);
	if (i < 0) return undefined;
	if (buf[i] === 0x5b) return "array";
	if (buf[i] === 0x7b) return "lines";
	throw new FtguardError("DATA_INVALID", `${file}: not a dataset (neither JSON lines, a JSON array nor Parquet)`);
}

/** JSON lines or one JSON array, decided by the first non-space character. */
async function* readJson(
	file: string,
	gzip: boolean,
	onFile: ((f: Omit<LineageFile, "records">) => void) | undefined,
	progress: ReadProgress | undefined,
): AsyncGenerator<DatasetItem> {
	const { stream, digest } = openJson(file, gzip, progress);
	const decoder = new TextDecoder("utf-8", { fatal: true });
	let mode: "lines" | "array" | undefined;
	const array = new ArraySplitter();
	let pending: Buffer = Buffer.alloc(0);
	let line = 1;
	try {
		for await (const chunk of stream) {
			let buf = pending.length > 0 ? Buffer.concat([pending, chunk as Buffer]) : (chunk as Buffer);
			if (mode === undefined) {
				mode = jsonMode(buf, file);
				if (mode === undefined) {
					pending = buf;
					continue;
				}
			}
			if (mode === "array") {
				yield* array.push(buf, file, decoder);
				pending = Buffer.alloc(0);
				continue;
			}
			let start = 0;
			for (let nl = buf.indexOf(0x0a); nl >= 0; nl = buf.indexOf(0x0a, start)) {
				const item = parseLine(buf.subarray(start, nl), file, line, decoder);
				if (item) yield item;
				line++;
				start = nl + 1;
			}
			buf = buf.subarray(start);
			if (buf.length > MAX_LINE)
				throw new FtguardError("DATA_INVALID", `${file}:${line}: a line longer than ${MAX_LINE >> 20} MiB`);
			pending = Buffer.from(buf);
		}
	} catch (e) {
		if (e instanceof FtguardError) throw e;
		throw new FtguardError(
			"DATA_INVALID",
			`${file}: ${gzip ? "not a readable gzip stream" : "unreadable"}: ${(e as Error).message}`,
		);
	}
	if (mode === "lines" && pending.length > 0) {
		const item = parseLine(pending, file, line, decoder);
		if (item) yield item;
	}
	if (mode === "array") array.end(file);
	if (mode === undefined) throw new FtguardError("DATA_INVALID", `${file}: empty file`);
	onFile?.({ path: file, ...digest() });
}

/** Is the file Parquet (by its magic bytes)? */
export async function isParquet(file: string): Promise<boolean> {
	return (await firstBytes(file, 4)).toString("latin1") === "PAR1";
}

/**
 * Records of a JSON-lines or JSON-array file as their raw text, in batches: what `readDataset` yields one parsed item
 * at a time, left unparsed so that another thread can parse them (`parseRecord` gives the same item). Blank lines and
 * elements are dropped here, exactly as `readDataset` drops them, so the records' numbering is known as they are read.
 */
export interface RecordBatch {
	/** the records' bytes: record i is `bytes[starts[i], ends[i])` (what lies between records is no record's) */
	readonly bytes: Uint8Array;
	readonly starts: Int32Array;
	readonly ends: Int32Array;
	/** 1-based line where each record starts */
	readonly lines: Int32Array;
	readonly count: number;
	/** the file's first batch */
	readonly first: boolean;
}

/**
 * A batch as it is read. The lines of a chunk of the file are taken as one region of it — copied in one go, newlines
 * and blank lines with them — with each record's range in it: one copy of the bytes, none per line.
 */
class BatchBuilder {
	private bytes = new Uint8Array(1 << 20);
	private used = 0;
	private starts = new Int32Array(1024);
	private ends = new Int32Array(1024);
	private lines = new Int32Array(1024);
	private n = 0;
	/** the records' bytes (what the batch's size is counted in) */
	private recordBytes = 0;
	private first = true;
	/** the region being taken: `src` from `from`, to go at `base` */
	private src: Uint8Array | undefined;
	private from = 0;
	private base = 0;

	/** A record of its own (copied now). */
	add(b: Uint8Array, line: number): void {
		this.flush();
		this.room(b.length);
		this.bytes.set(b, this.used);
		this.push(this.used, this.used + b.length, line);
		this.used += b.length;
	}

	/** Lines of `src` from `from` on follow (`line`), until `flush(to)`. */
	region(src: Uint8Array, from: number): void {
		this.flush();
		this.src = src;
		this.from = from;
		this.base = this.used;
	}

	/** The record `src[start, end)` of the current region. */
	line(start: number, end: number, line: number): void {
		this.push(this.base + start - this.from, this.base + end - this.from, line);
	}

	/** Copy the current region up to `to` (its records' bytes are then in place). */
	flush(to?: number): void {
		const src = this.src;
		if (src === undefined) return;
		this.src = undefined;
		// (without `to`: up to its last record's end)
		const end = to ?? (this.n > 0 ? this.from + (this.ends[this.n - 1] as number) - this.base : this.from);
		if (end <= this.from) return;
		this.room(end - this.from);
		this.bytes.set(src.subarray(this.from, end), this.base);
		this.used = this.base + end - this.from;
	}

	private room(n: number): void {
		if (this.used + n <= this.bytes.length) return;
		const next = new Uint8Array(Math.max(this.bytes.length * 2, this.used + n));
		next.set(this.bytes.subarray(0, this.used));
		this.bytes = next;
	}

	private push(start: number, end: number, line: number): void {
		if (this.n === this.lines.length) {
			const grow = (a: Int32Array) => {
				const next = new Int32Array(a.length * 2);
				next.set(a);
				return next;
			};
			this.starts = grow(this.starts);
			this.ends = grow(this.ends);
			this.lines = grow(this.lines);
		}
		this.starts[this.n] = start;
		this.ends[this.n] = end;
		this.lines[this.n] = line;
		this.n++;
		this.recordBytes += end - start;
	}

	get count(): number {
		return this.n;
	}

	get size(): number {
		return this.recordBytes;
	}

	take(): RecordBatch {
		this.flush();
		// buffers of its own: the batch may be transferred to a worker
		const batch = {
			bytes: this.bytes,
			starts: this.starts.slice(0, this.n),
			ends: this.ends.slice(0, this.n),
			lines: this.lines.slice(0, this.n),
			count: this.n,
			first: this.first,
		};
		this.first = false;
		this.bytes = new Uint8Array(Math.max(1 << 20, this.used + (this.used >> 2)));
		this.used = 0;
		this.n = 0;
		this.recordBytes = 0;
		return batch;
	}
}

/**
 * Is this line (or array element) blank, so that `readDataset` yields nothing for it? Decided from its bytes: a first
 * byte that is neither ASCII whitespace nor beyond ASCII settles it; otherwise it is decoded as `parseLine` does.
 */
function blank(b: Uint8Array, line: number, element: boolean, decoder: InstanceType<typeof TextDecoder>): boolean {
	return blankRange(b, 0, b.length, line, element, decoder);
}

/** `blank` of `src[start, end)` (a view of it made only when the bytes do not settle it). */
function blankRange(
	src: Uint8Array,
	start: number,
	end: number,
	line: number,
	element: boolean,
	decoder: InstanceType<typeof TextDecoder>,
): boolean {
	let i = start;
	while (i < end && (src[i] === 0x20 || ((src[i] as number) >= 0x09 && (src[i] as number) <= 0x0d))) i++;
	if (i === end) return true;
	if ((src[i] as number) < 0x80) return false;
	const b = src.subarray(start, end);
	if (element && Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("latin1").trim() === "") return true;
	let text: string;
	try {
		text = decoder.decode(b);
	} catch {
		return false;
	}
	if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
	return text.trim() === "";
}

/** The item `readDataset` yields for a record's bytes (never blank: `readRecordBatches` dropped those). */
export function parseRecord(
	bytes: Uint8Array,
	file: string,
	line: number,
	decoder: InstanceType<typeof TextDecoder>,
): DatasetItem {
	return parseLine(bytes, file, line, decoder) ?? { file, line, error: "blank record" };
}

/**
 * The records of one JSON-lines or JSON-array file (plain or gzip) in batches of at most `maxRecords` (the first batch
 * at most `firstRecords`, so the layout is known early) or about `maxBytes`; `onFile` receives the file's lineage entry
 * once it has been read. Errors are those of `readDataset`.
 */
export async function* readRecordBatches(
	file: string,
	opts: { maxRecords: number; firstRecords: number; maxBytes: number },
	onFile?: (f: Omit<LineageFile, "records">) => void,
	progress?: ReadProgress,
): AsyncGenerator<RecordBatch> {
	const head = await firstBytes(file, 4);
	const gzip = head[0] === 0x1f && head[1] === 0x8b;
	const { stream, digest } = openJson(file, gzip, progress);
	const decoder = new TextDecoder("utf-8", { fatal: true });
	let mode: "lines" | "array" | undefined;
	const array = new ArraySplitter();
	const batch = new BatchBuilder();
	const full = () => batch.count >= (batchIsFirst ? opts.firstRecords : opts.maxRecords) || batch.size >= opts.maxBytes;
	let batchIsFirst = true;
	const take = () => {
		batchIsFirst = false;
		return batch.take();
	};
	let pending: Buffer = Buffer.alloc(0);
	let line = 1;
	try {
		for await (const chunk of stream) {
			let buf = chunk as Buffer;
			if (mode === undefined) {
				buf = pending.length > 0 ? Buffer.concat([pending, buf]) : buf;
				pending = Buffer.alloc(0);
				mode = jsonMode(buf, file);
				if (mode === undefined) {
					pending = buf;
					continue;
				}
			}
			if (mode === "array") {
				for (const e of array.elements(buf, file)) {
					if (blank(e.bytes, e.line, true, decoder)) continue;
					batch.add(e.bytes, e.line);
					if (full()) yield take();
				}
				continue;
			}
			let start = 0;
			if (pending.length > 0) {
				// the line the last chunk left unfinished: only it is put together, not the whole chunk
				const nl = buf.indexOf(0x0a);
				if (nl < 0) {
					pending = Buffer.concat([pending, buf]);
					if (pending.length > MAX_LINE)
						throw new FtguardError("DATA_INVALID", `${file}:${line}: a line longer than ${MAX_LINE >> 20} MiB`);
					continue;
				}
				const first = Buffer.concat([pending, buf.subarray(0, nl)]);
				pending = Buffer.alloc(0);
				if (!blank(first, line, false, decoder)) {
					batch.add(first, line);
					if (full()) yield take();
				}
				line++;
				start = nl + 1;
			}
			batch.region(buf, start);
			for (let nl = buf.indexOf(0x0a, start); nl >= 0; nl = buf.indexOf(0x0a, start)) {
				if (!blankRange(buf, start, nl, line, false, decoder)) {
					batch.line(start, nl, line);
					if (full()) {
						batch.flush(nl);
						yield take();
						batch.region(buf, nl + 1);
					}
				}
				line++;
				start = nl + 1;
			}
			batch.flush(start);
			buf = buf.subarray(start);
			if (buf.length > MAX_LINE)
				throw new FtguardError("DATA_INVALID", `${file}:${line}: a line longer than ${MAX_LINE >> 20} MiB`);
			pending = Buffer.from(buf);
		}
	} catch (e) {
		// the records before the error first, as readDataset yields them before it throws
		if (batch.count > 0) yield take();
		if (e instanceof FtguardError) throw e;
		throw new FtguardError(
			"DATA_INVALID",
			`${file}: ${gzip ? "not a readable gzip stream" : "unreadable"}: ${(e as Error).message}`,
		);
	}
	if (mode === "lines" && pending.length > 0 && !blank(pending, line, false, decoder)) batch.add(pending, line);
	if (mode === "array") array.end(file);
	if (mode === undefined) throw new FtguardError("DATA_INVALID", `${file}: empty file`);
	if (batch.count > 0) yield take();
	onFile?.({ path: file, ...digest() });
}

function parseLine(
	bytes: Uint8Array,
	file: string,
	line: number,
	decoder: InstanceType<typeof TextDecoder>,
): DatasetItem | undefined {
	let text: string;
	try {
		text = decoder.decode(bytes);
	} catch {
		const raw = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1").slice(0, 200);
		return { file, line, error: "not valid UTF-8", raw };
	}
	if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
	if (text.trim() === "") return undefined;
	try {
		return { file, line, value: JSON.parse(text) };
	} catch (e) {
		return { file, line, error: `not valid JSON: ${(e as Error).message}`, raw: text.slice(0, 200) };
	}
}

/**
 * Splits a top-level JSON array into its elements without parsing the whole: tracks depth and strings byte by byte
 * (JSON's structural characters are ASCII, so UTF-8 continuation bytes never look like them).
 */
class ArraySplitter {
	private depth = 0;
	private inString = false;
	private escaped = false;
	private started = false;
	private closed = false;
	private element: Buffer[] = [];
	private line = 1;
	private elementLine = 1;
	/** the next element's first byte is still to come: its line is where that byte is, not where the comma was */
	private awaiting = true;

	*push(buf: Buffer, file: string, decoder: InstanceType<typeof TextDecoder>): Generator<DatasetItem> {
		for (const e of this.elements(buf, file)) {
			if (Buffer.from(e.bytes.buffer, e.bytes.byteOffset, e.bytes.byteLength).toString("latin1").trim() === "")
				continue;
			const item = parseLine(
				Buffer.from(e.bytes.buffer, e.bytes.byteOffset, e.bytes.byteLength),
				file,
				e.line,
				decoder,
			);
			if (item) yield item;
		}
	}

	/** The array's elements completed by this chunk, as raw bytes with the line each starts on. */
	*elements(buf: Buffer, file: string): Generator<{ bytes: Uint8Array; line: number }> {
		let from = 0;
		for (let i = 0; i < buf.length; i++) {
			const b = buf[i] as number;
			if (b === 0x0a) this.line++;
			if (this.inString) {
				if (this.escaped) this.escaped = false;
				else if (b === 0x5c) this.escaped = true;
				else if (b === 0x22) this.inString = false;
				continue;
			}
			if (this.closed) {
				if (b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09)
					throw new FtguardError("DATA_INVALID", `${file}:${this.line}: data after the JSON array`);
				continue;
			}
			if (!this.started) {
				if (b === 0x5b) {
					this.started = true;
					from = i + 1;
					this.awaiting = true;
				}
				continue;
			}
			if (this.awaiting && b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) {
				this.awaiting = false;
				this.elementLine = this.line;
			}
			if (b === 0x22) this.inString = true;
			else if (b === 0x7b || b === 0x5b) this.depth++;
			else if ((b === 0x7d || b === 0x5d) && this.depth > 0) this.depth--;
			else if (this.depth === 0 && (b === 0x2c || b === 0x5d)) {
				this.element.push(buf.subarray(from, i));
				const bytes = Buffer.concat(this.element);
				this.element = [];
				yield { bytes, line: this.elementLine };
				from = i + 1;
				this.awaiting = true;
				if (b === 0x5d) this.closed = true;
			}
		}
		if (!this.closed) this.element.push(Buffer.from(buf.subarray(from)));
		if (this.element.reduce((n, e) => n + e.length, 0) > MAX_LINE)
			throw new FtguardError("DATA_INVALID", `${file}:${this.elementLine}: a record larger than ${MAX_LINE >> 20} MiB`);
	}

	end(file: string): void {
		if (!this.closed) throw new FtguardError("DATA_INVALID", `${file}: the JSON array is not closed`);
	}
}
