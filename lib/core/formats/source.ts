/** ByteSource implementations: a file on disk (random access, counted) and an in-memory buffer. */
import { readSync } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import type { ByteSource } from "./types";

/** Reads up to this size are done with readSync (see `FileSource.read`). */
const SYNC_READ_MAX = 1024 * 1024;

export class FileSource implements ByteSource {
	private constructor(
		private readonly fh: FileHandle,
		readonly size: number,
	) {}
	private read_ = 0;

	static async open(path: string): Promise<FileSource> {
		const fh = await open(path, "r");
		try {
			const st = await fh.stat();
			return new FileSource(fh, st.size);
		} catch (e) {
			await fh.close();
			throw e;
		}
	}

	get bytesRead(): number {
		return this.read_;
	}

	/**
	 * Reads synchronously (what `read` does for small reads): for callers doing many tiny reads,
	 * such as the zip scanner's 64-byte sniffs, where a promise per read costs more than the read.
	 */
	readSync(offset: number, length: number): Buffer {
		const start = Math.max(0, Math.min(offset, this.size));
		const n = Math.max(0, Math.min(length, this.size - start));
		const buf = Buffer.allocUnsafe(n);
		let got = 0;
		while (got < n) {
			const r = readSync(this.fh.fd, buf, got, n - got, start + got);
			if (r === 0) break; // file shrank under us: return what exists
			got += r;
		}
		this.read_ += got;
		return got === n ? buf : buf.subarray(0, got);
	}

	async read(offset: number, length: number): Promise<Buffer> {
		// Small reads (headers, sniffs, pickles) are synchronous: a FileHandle.read round trip
		// through the thread pool costs far more than the copy from the page cache.
		if (length <= SYNC_READ_MAX) return this.readSync(offset, length);
		const start = Math.max(0, Math.min(offset, this.size));
		const n = Math.max(0, Math.min(length, this.size - start));
		const buf = Buffer.allocUnsafe(n);
		let got = 0;
		while (got < n) {
			const { bytesRead } = await this.fh.read(buf, got, n - got, start + got);
			if (bytesRead === 0) break; // file shrank under us: return what exists
			got += bytesRead;
		}
		this.read_ += got;
		return got === n ? buf : buf.subarray(0, got);
	}

	close(): Promise<void> {
		return this.fh.close();
	}
}

export class BufferSource implements ByteSource {
	private read_ = 0;
	constructor(private readonly buf: Buffer) {}

	get size(): number {
		return this.buf.length;
	}

	get bytesRead(): number {
		return this.read_;
	}

	readSync(offset: number, length: number): Buffer {
		const start = Math.max(0, Math.min(offset, this.buf.length));
		const out = this.buf.subarray(start, Math.min(this.buf.length, start + Math.max(0, length)));
		this.read_ += out.length;
		return out;
	}

	async read(offset: number, length: number): Promise<Buffer> {
		return this.readSync(offset, length);
	}
}
