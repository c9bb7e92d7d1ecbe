/**
 * A ByteSource over ranged GETs of one pinned object version, so the format
 * scanners read only the bytes they ask for (a safetensors header, a zip's
 * central directory, a pickle) instead of downloading multi-GiB weights.
 *
 * Scanners make many small reads close together (headers, zip sniffs), so reads
 * go through a small LRU cache of aligned blocks; a read larger than a few
 * blocks is fetched directly and not cached.
 */
import type { S3Client } from "@aws-sdk/client-s3";
import { FtguardError } from "../core/errors";
import type { ByteSource } from "../core/formats/types";
import { getPinned, type PinnedObject } from "./objects";

export interface S3SourceOptions {
	/** @default 1 MiB */
	blockSize?: number;
	/** Blocks kept in memory. @default 16 */
	maxBlocks?: number;
}

export class S3Source implements ByteSource {
	readonly size: number;
	private read_ = 0;
	/** Bytes transferred from S3 (what a scan costs). */
	bytesFetched = 0;
	requests = 0;
	private readonly blockSize: number;
	private readonly maxBlocks: number;
	private readonly blocks = new Map<number, Promise<Buffer>>();

	constructor(
		private readonly s3: S3Client,
		private readonly object: PinnedObject,
		options: S3SourceOptions = {},
	) {
		this.size = object.size;
		this.blockSize = options.blockSize ?? 1 << 20;
		this.maxBlocks = options.maxBlocks ?? 16;
	}

	get bytesRead(): number {
		return this.read_;
	}

	/** `[offset, offset + length)` clamped to the object. */
	private span(offset: number, length: number): { start: number; end: number } {
		const start = Math.max(0, Math.min(offset, this.size));
		return { start, end: Math.max(start, Math.min(this.size, start + Math.max(0, length))) };
	}

	async read(offset: number, length: number): Promise<Buffer> {
		const { start, end } = this.span(offset, length);
		if (end === start) return Buffer.alloc(0);
		let out: Buffer;
		if (end - start > this.blockSize * 4) {
			out = await this.fetch(start, end);
		} else {
			const first = Math.floor(start / this.blockSize);
			const last = Math.floor((end - 1) / this.blockSize);
			const parts: Buffer[] = [];
			for (let b = first; b <= last; b++) parts.push(await this.block(b));
			const joined = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
			const base = first * this.blockSize;
			out = joined.subarray(start - base, end - base);
		}
		this.read_ += out.length;
		return out;
	}

	/** One exact ranged GET (or the cached block that holds the bytes), not a whole block for a few bytes. */
	async probe(offset: number, length: number): Promise<Buffer> {
		const { start, end } = this.span(offset, length);
		const index = Math.floor(start / this.blockSize);
		if (end === start || (this.blocks.has(index) && end <= (index + 1) * this.blockSize))
			return this.read(offset, length);
		const out = await this.fetch(start, end);
		this.read_ += out.length;
		return out;
	}

	private block(index: number): Promise<Buffer> {
		const hit = this.blocks.get(index);
		if (hit) {
			// refresh its place in the LRU order
			this.blocks.delete(index);
			this.blocks.set(index, hit);
			return hit;
		}
		const start = index * this.blockSize;
		const p = this.fetch(start, Math.min(this.size, start + this.blockSize));
		p.catch(() => this.blocks.delete(index));
		this.blocks.set(index, p);
		while (this.blocks.size > this.maxBlocks) {
			const oldest = this.blocks.keys().next().value as number;
			this.blocks.delete(oldest);
		}
		return p;
	}

	private async fetch(start: number, end: number): Promise<Buffer> {
		this.requests++;
		const r = await getPinned(this.s3, this.object, { start, end });
		if (!r.Body) throw new FtguardError("IO_ERROR", `s3://${this.object.bucket}/${this.object.key}: empty body`);
		const buf = Buffer.from(await r.Body.transformToByteArray());
		this.bytesFetched += buf.length;
		if (buf.length !== end - start) {
			throw new FtguardError(
				"IO_ERROR",
				`s3://${this.object.bucket}/${this.object.key}: asked for bytes ${start}-${end - 1}, got ${buf.length}`,
			);
		}
		return buf;
	}
}
