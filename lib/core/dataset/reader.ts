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
			if (found.length === 0) throw new FtguardError("DATA_INVALID", `${p}: no dataset files (.jsonl, .json, .parquet, optionally .gz)`);
			out.push(...found.sort((a, b) => (relative(p, a) < relative(p, b) ? -1 : 1)));
		} else if (s.isFile()) out.push(p);
		else throw new FtguardError("DATA_INVALID", `${p}: not a regular file or directory`);
	}
	return out;
}

async function walk(dir: string, out: string[]): Promise<void> {
	for (const e of await readdir(dir, { withFileTypes: true })) {
		if (e.name.startsWith(".")) continue;
		const p = join(dir, e.name);
		if (e.isDirectory()) await walk(p, out);
		else if (e.isFile() && SHARD.test(e.name)) out.push(p);
	}
}

export interface ReadProgress {
	bytes: number;
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

/** JSON lines or one JSON array, decided by the first non-space character. */
async function* readJson(
	file: string,
	gzip: boolean,
	onFile: ((f: Omit<LineageFile, "records">) => void) | undefined,
	progress: ReadProgress | undefined,
): AsyncGenerator<DatasetItem> {
	const hash = createHash("sha256");
	let bytes = 0;
	const raw = createReadStream(file, { highWaterMark: 1 << 20 });
	raw.on("data", (c) => {
		hash.update(c as Buffer);
		bytes += (c as Buffer).length;
		if (progress) progress.bytes += (c as Buffer).length;
	});
	const stream = gzip ? raw.pipe(createGunzip()) : raw;
	const decoder = new TextDecoder("utf-8", { fatal: true });
	let mode: "lines" | "array" | undefined;
	const array = new ArraySplitter();
	let pending: Buffer = Buffer.alloc(0);
	let line = 1;
	try {
		for await (const chunk of stream) {
			let buf = pending.length > 0 ? Buffer.concat([pending, chunk as Buffer]) : (chunk as Buffer);
			if (mode === undefined) {
				const i = buf.findIndex((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09 && b !== 0xef && b !== 0xbb && b !== 0xbf);
				if (i < 0) {
					pending = buf;
					continue;
				}
				if (buf[i] === 0x5b) mode = "array";
				else if (buf[i] === 0x7b) mode = "lines";
				else throw new FtguardError("DATA_INVALID", `${file}: not a dataset (neither JSON lines, a JSON array nor Parquet)`);
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
			if (buf.length > MAX_LINE) throw new FtguardError("DATA_INVALID", `${file}:${line}: a line longer than ${MAX_LINE >> 20} MiB`);
			pending = Buffer.from(buf);
		}
	} catch (e) {
		if (e instanceof FtguardError) throw e;
		throw new FtguardError("DATA_INVALID", `${file}: ${gzip ? "not a readable gzip stream" : "unreadable"}: ${(e as Error).message}`);
	}
	if (mode === "lines" && pending.length > 0) {
		const item = parseLine(pending, file, line, decoder);
		if (item) yield item;
	}
	if (mode === "array") array.end(file);
	if (mode === undefined) throw new FtguardError("DATA_INVALID", `${file}: empty file`);
	onFile?.({ path: file, sha256: hash.digest("hex"), bytes });
}

function parseLine(bytes: Buffer, file: string, line: number, decoder: InstanceType<typeof TextDecoder>): DatasetItem | undefined {
	let text: string;
	try {
		text = decoder.decode(bytes);
	} catch {
		return { file, line, error: "not valid UTF-8", raw: bytes.toString("latin1").slice(0, 200) };
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
	private elementStart = 0;
	private line = 1;
	private elementLine = 1;

	*push(buf: Buffer, file: string, decoder: InstanceType<typeof TextDecoder>): Generator<DatasetItem> {
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
				if (b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) throw new FtguardError("DATA_INVALID", `${file}:${this.line}: data after the JSON array`);
				continue;
			}
			if (!this.started) {
				if (b === 0x5b) {
					this.started = true;
					from = i + 1;
					this.elementLine = this.line;
				}
				continue;
			}
			if (b === 0x22) this.inString = true;
			else if (b === 0x7b || b === 0x5b) this.depth++;
			else if ((b === 0x7d || b === 0x5d) && this.depth > 0) this.depth--;
			else if (this.depth === 0 && (b === 0x2c || b === 0x5d)) {
				this.element.push(buf.subarray(from, i));
				const item = this.emit(file, decoder);
				if (item) yield item;
				from = i + 1;
				this.elementLine = this.line;
				if (b === 0x5d) this.closed = true;
			}
		}
		if (!this.closed) this.element.push(Buffer.from(buf.subarray(from)));
		if (this.element.reduce((n, e) => n + e.length, 0) > MAX_LINE)
			throw new FtguardError("DATA_INVALID", `${file}:${this.elementLine}: a record larger than ${MAX_LINE >> 20} MiB`);
	}

	private emit(file: string, decoder: InstanceType<typeof TextDecoder>): DatasetItem | undefined {
		const bytes = Buffer.concat(this.element);
		this.element = [];
		this.elementStart++;
		if (bytes.toString("latin1").trim() === "") return undefined;
		return parseLine(bytes, file, this.elementLine, decoder);
	}

	end(file: string): void {
		if (!this.closed) throw new FtguardError("DATA_INVALID", `${file}: the JSON array is not closed`);
	}
}
