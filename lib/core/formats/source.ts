/** ByteSource implementations: a file on disk (random access, counted) and an in-memory buffer. */
import { type FileHandle, open } from "node:fs/promises";
import type { ByteSource } from "./types";

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

	async read(offset: number, length: number): Promise<Buffer> {
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

	async read(offset: number, length: number): Promise<Buffer> {
		const start = Math.max(0, Math.min(offset, this.buf.length));
		const out = this.buf.subarray(start, Math.min(this.buf.length, start + Math.max(0, length)));
		this.read_ += out.length;
		return out;
	}
}
