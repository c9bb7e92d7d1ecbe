/**
 * SHA-256 of a byte stream, computed on a worker thread while the calling thread
 * keeps receiving it.
 *
 * Why: reading an object from S3 costs the receiving thread real CPU (socket
 * reads, HTTP framing, TLS in AWS); hashing on that same thread serialises the
 * two. Here what the caller receives is copied into 1 MiB buffers, each
 * transferred (not cloned) to a worker that hashes it on another core and hands
 * the buffer back to be filled again.
 * Memory is bounded: `update` returns a promise that waits whenever more than
 * `maxInFlight` bytes are queued for the worker, so awaiting it in a
 * `for await` loop slows the download to the hashing speed instead of
 * buffering the object.
 *
 * Like hash-pool.ts, the worker is a JavaScript string run with `eval: true`,
 * so it runs the same under tsx, from an esbuild bundle and in Lambda.
 */
import { Worker } from "node:worker_threads";
import { FtguardError } from "../errors";

const WORKER_SOURCE = `"use strict";
const { parentPort } = require("node:worker_threads");
const { createHash } = require("node:crypto");
const h = createHash("sha256");
parentPort.on("message", (m) => {
	if (m.type === "data") {
		h.update(new Uint8Array(m.buffer, 0, m.length));
		// the buffer goes back to be filled again: no allocation per batch
		parentPort.postMessage({ type: "ack", bytes: m.length, buffer: m.buffer }, [m.buffer]);
	} else if (m.type === "end") {
		parentPort.postMessage({ type: "digest", digest: h.digest("hex") });
	}
});
`;

export interface StreamHasherOptions {
	/** bytes gathered before one message to the worker; @default 1 MiB */
	batchBytes?: number;
	/** bytes sent and not yet hashed before `update` waits; @default 32 MiB */
	maxInFlight?: number;
}

export class OffThreadHasher {
	private readonly worker: Worker;
	private readonly batchBytes: number;
	private readonly maxInFlight: number;
	private readonly spare: ArrayBuffer[] = [];
	private current: Uint8Array | undefined;
	private filled = 0;
	private inFlight = 0;
	private failure: Error | undefined;
	private drained: (() => void) | undefined;
	private finished: ((digest: string) => void) | undefined;
	private failed: ((e: Error) => void) | undefined;
	private closed = false;

	constructor(options: StreamHasherOptions = {}) {
		this.batchBytes = options.batchBytes ?? 1 << 20;
		this.maxInFlight = options.maxInFlight ?? 32 << 20;
		this.worker = new Worker(WORKER_SOURCE, { eval: true });
		this.worker.on("message", (m: { type: string; bytes?: number; digest?: string; buffer?: ArrayBuffer }) => {
			if (m.type === "ack") {
				this.inFlight -= m.bytes ?? 0;
				if (m.buffer && m.buffer.byteLength === this.batchBytes && this.spare.length < 8) this.spare.push(m.buffer);
				if (this.inFlight <= this.maxInFlight / 2) this.wake();
			} else if (m.type === "digest") this.finished?.(m.digest ?? "");
		});
		const fail = (e: Error) => {
			this.failure ??= new FtguardError("INTERNAL", `hashing worker failed: ${e.message}`, { cause: e });
			this.wake();
			this.failed?.(this.failure);
		};
		this.worker.on("error", fail);
		this.worker.on("exit", (code) => {
			if (!this.closed) fail(new Error(`exited with code ${code}`));
		});
	}

	private wake(): void {
		const d = this.drained;
		this.drained = undefined;
		d?.();
	}

	/** Sends the current buffer (its filled part) to the worker. */
	private flush(): void {
		if (this.current === undefined || this.filled === 0) return;
		const buffer = this.current.buffer as ArrayBuffer;
		this.worker.postMessage({ type: "data", buffer, length: this.filled }, [buffer]);
		this.inFlight += this.filled;
		this.current = undefined;
		this.filled = 0;
	}

	/** Adds bytes; resolves at once unless too much is waiting for the worker. */
	async update(chunk: Uint8Array): Promise<void> {
		if (this.failure) throw this.failure;
		// Copied into buffers of exactly batchBytes, each sent when full: the caller's chunks stay the caller's,
		// and the buffers come back from the worker to be filled again (a long stream allocates a handful).
		let at = 0;
		while (at < chunk.length) {
			this.current ??= new Uint8Array(this.spare.pop() ?? new ArrayBuffer(this.batchBytes));
			const n = Math.min(chunk.length - at, this.batchBytes - this.filled);
			this.current.set(chunk.subarray(at, at + n), this.filled);
			this.filled += n;
			at += n;
			if (this.filled === this.batchBytes) this.flush();
		}
		while (this.inFlight > this.maxInFlight && !this.failure) {
			await new Promise<void>((resolve) => {
				this.drained = resolve;
			});
		}
		if (this.failure) throw this.failure;
	}

	/** The hex digest of everything given to `update`; the worker is stopped. */
	async digest(): Promise<string> {
		if (this.failure) {
			await this.close();
			throw this.failure;
		}
		this.flush();
		try {
			return await new Promise<string>((resolve, reject) => {
				this.finished = resolve;
				this.failed = reject;
				this.worker.postMessage({ type: "end" });
			});
		} finally {
			await this.close();
		}
	}

	/** Stops the worker (after a failure of the caller's stream, or once the digest is in). */
	async close(): Promise<void> {
		if (this.closed) return;
		this.closed = true;
		await this.worker.terminate();
	}
}
