/**
 * SHA-256 of byte ranges of files, on a pool of worker threads.
 *
 * Why it looks like this:
 * - The worker is source text run with `new Worker(src, { eval: true })`: no
 *   worker file to locate, so it runs the same under tsx, from an esbuild
 *   bundle (Lambda) and from plain compiled JavaScript. Its file read is the
 *   type-checked `hashRange` below, shipped as `hashRange.toString()`.
 * - Each worker reads with `readSync` at explicit offsets into one reused
 *   buffer and feeds `crypto` directly: no streams, no per-chunk allocation,
 *   memory bounded by workers × chunk size whatever the file size.
 * - One range (a file, or one shard of a file) is hashed by one worker, start to
 *   end: SHA-256 cannot be split further, so the parallelism is across ranges.
 *   Ranges are handed out largest first, so the longest one starts at once and
 *   the tail of the run is short; small ranges travel in batches, so a directory
 *   of many small files does not pay one message round trip per file.
 * - Bytes done are counted in a SharedArrayBuffer the workers add to, so progress
 *   costs no messages; the main thread samples it at most 10 times a second.
 * - The same hashing function runs on the calling thread for tiny jobs, where
 *   starting a worker (tens of milliseconds) would cost more than the hashing.
 * - Every failure ends the run: all workers are terminated (and awaited) before
 *   the promise rejects, so nothing is left running and the process can exit.
 */

import { createHash } from "node:crypto";
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from "node:fs";
import { Worker } from "node:worker_threads";
import { FtguardError, firstLine } from "../errors";
import { checkAborted, show } from "./walk";

/** One byte range of one file to hash. */
export interface HashTask {
	/** Absolute path to open. */
	path: string;
	/** Model-relative name, for messages. */
	name: string;
	start: number;
	end: number;
	/** File size, device and inode at walk time: the opened file must still match them. */
	size: number;
	dev: bigint;
	ino: bigint;
	/**
	 * Also require end-of-file at `end`. Method "files" hashes a whole file, as the
	 * reference reads it to EOF: a file that grew since the walk is an error, not a
	 * silently shorter digest.
	 */
	toEof: boolean;
}

export interface HashPoolOptions {
	/** Worker threads, at least 1. */
	concurrency: number;
	/** Bytes per read. */
	chunkSize: number;
	/** Jobs this small run on the calling thread. */
	inlineMaxBytes: number;
	signal?: AbortSignal | undefined;
	/** Sampled bytes done, at most every `progressIntervalMs`, and once at the end. */
	onBytes?: ((bytesDone: number) => void) | undefined;
	/** Called once per finished task, with its index. */
	onTaskDone?: ((index: number) => void) | undefined;
	/** @default 100 */
	progressIntervalMs?: number;
	/** Replaces the worker program. Only for tests that simulate a crashing worker. */
	workerSource?: string;
}

/** Ranges smaller than this are batched with others into one message. */
const BATCH_TASK_BYTES = 1 << 20;
const BATCH_MAX_BYTES = 8 << 20;
const BATCH_MAX_TASKS = 256;
/**
 * Small jobs are hashed on the calling thread. Measured here: 5,000 files of
 * 4 KiB take ~110 ms on the calling thread and 250-360 ms on workers (each
 * starts in ~40 ms, cold, and per-file work is syscalls, not hashing); 16 MiB
 * of hashing costs about what starting a worker does.
 */
const INLINE_MAX_TASKS = 4096;
/** The calling thread yields this often, so timers and an abort still run. */
const INLINE_SLICE_MS = 10;

/** What crosses the thread boundary: the task without its display name. */
type WireTask = Omit<HashTask, "name">;

/** The parts of `node:fs` the read uses; the worker passes `require("node:fs")`. */
const READ_FS = { constants: fsConstants, openSync, fstatSync, readSync, closeSync };

/**
 * Hashes one range of one file. The workers and the calling thread both run
 * this function, so both paths check and read files in exactly the same way.
 *
 * O_NONBLOCK: opening a FIFO swapped in after the walk would otherwise block
 * for ever; O_NOFOLLOW: a symlink swapped in is refused (allowed symlinks were
 * resolved by the walk, so the path opened here is never a link). The opened
 * file must still be the walk's: a regular file with the same device, inode
 * and size.
 *
 * The worker receives it as source text, so it uses only its parameters and
 * JavaScript globals: `fs` and `newHash` are passed in (the calling thread may
 * be an ES module without `require`). It declares no named inner functions
 * either: tsx keeps their names by calling a `__name` helper the worker lacks.
 */
function hashRange(
	fs: typeof READ_FS,
	newHash: typeof createHash,
	task: WireTask,
	buf: Buffer,
	onBytes: (n: number) => void,
): string {
	const flags = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK || 0) | (fs.constants.O_NOFOLLOW || 0);
	const fd = fs.openSync(task.path, flags);
	try {
		const st = fs.fstatSync(fd, { bigint: true });
		if (!st.isFile()) throw Object.assign(new Error("ESPECIAL"), { code: "ESPECIAL" });
		if (st.dev !== task.dev || st.ino !== task.ino || Number(st.size) !== task.size) {
			throw Object.assign(new Error("ECHANGED"), { code: "ECHANGED" });
		}
		const h = newHash("sha256");
		let pos = task.start;
		while (pos < task.end) {
			const n = fs.readSync(fd, buf, 0, Math.min(buf.length, task.end - pos), pos);
			if (n === 0) throw Object.assign(new Error("ECHANGED"), { code: "ECHANGED" });
			h.update(n === buf.length ? buf : buf.subarray(0, n));
			pos += n;
			onBytes(n);
		}
		if (task.toEof && fs.readSync(fd, buf, 0, 1, pos) !== 0) {
			throw Object.assign(new Error("ECHANGED"), { code: "ECHANGED" });
		}
		return h.digest("hex");
	} finally {
		fs.closeSync(fd);
	}
}

/** Worker source: CommonJS (eval workers have `require`), one message per unit of tasks. */
const WORKER_SOURCE = `"use strict";
const { parentPort, workerData } = require("node:worker_threads");
const fs = require("node:fs");
const { createHash } = require("node:crypto");
const hashRange = (${hashRange.toString()});
const buf = Buffer.allocUnsafe(workerData.chunkSize);
const counters = workerData.counters;
const slot = workerData.slot;
const onBytes = (n) => { Atomics.add(counters, slot, BigInt(n)); };
parentPort.on("message", (unit) => {
	const digests = [];
	for (let i = 0; i < unit.tasks.length; i++) {
		try {
			digests.push(hashRange(fs, createHash, unit.tasks[i], buf, onBytes));
		} catch (e) {
			parentPort.postMessage({ id: unit.id, ok: false, index: i, errno: e && e.code, message: String(e && e.message) });
			return;
		}
	}
	parentPort.postMessage({ id: unit.id, ok: true, digests });
});
`;

/** Default worker count: the cores there are, at most 8 (beyond that, storage is the limit). */
export function defaultConcurrency(available: number): number {
	return Math.max(1, Math.min(available, 8));
}

/**
 * Hashes every task and returns the lower-case hex digests, in task order.
 * Rejects with an FtguardError only; on rejection no worker is left running.
 */
export async function hashTasks(tasks: readonly HashTask[], options: HashPoolOptions): Promise<string[]> {
	checkAborted(options.signal);
	if (tasks.length === 0) return [];
	const totalBytes = tasks.reduce((s, t) => s + (t.end - t.start), 0);
	if (totalBytes <= options.inlineMaxBytes && tasks.length <= INLINE_MAX_TASKS) {
		return hashInline(tasks, options);
	}
	return hashOnWorkers(tasks, options);
}

async function hashInline(tasks: readonly HashTask[], options: HashPoolOptions): Promise<string[]> {
	const buf = Buffer.allocUnsafe(Math.min(options.chunkSize, 1 << 20));
	const digests: string[] = [];
	let bytes = 0;
	let sliceStart = performance.now();
	let lastReport = sliceStart;
	const interval = options.progressIntervalMs ?? 100;
	for (let i = 0; i < tasks.length; i++) {
		const task = tasks[i] as HashTask;
		try {
			digests.push(
				hashRange(READ_FS, createHash, task, buf, (n) => {
					bytes += n;
				}),
			);
		} catch (e) {
			const err = e as NodeJS.ErrnoException;
			throw taskError(task, err.code, err.message, err);
		}
		options.onTaskDone?.(i);
		if (performance.now() - sliceStart >= INLINE_SLICE_MS) {
			await new Promise<void>((r) => setImmediate(r));
			checkAborted(options.signal);
			sliceStart = performance.now();
			if (sliceStart - lastReport >= interval) {
				lastReport = sliceStart;
				options.onBytes?.(bytes);
			}
		}
	}
	options.onBytes?.(bytes);
	return digests;
}

interface WorkerReply {
	id: number;
	ok: boolean;
	digests?: string[];
	index?: number;
	errno?: string;
	message?: string;
}

/**
 * Groups task indices into units, largest first: a large range alone, small
 * ranges together up to a batch limit.
 */
export function planUnits(tasks: readonly HashTask[]): number[][] {
	const order = tasks.map((_, i) => i);
	const len = (i: number) => (tasks[i] as HashTask).end - (tasks[i] as HashTask).start;
	order.sort((a, b) => len(b) - len(a) || a - b);
	const units: number[][] = [];
	let batch: number[] = [];
	let batchBytes = 0;
	for (const i of order) {
		const n = len(i);
		if (n >= BATCH_TASK_BYTES) {
			units.push([i]);
			continue;
		}
		if (batch.length > 0 && (batch.length >= BATCH_MAX_TASKS || batchBytes + n > BATCH_MAX_BYTES)) {
			units.push(batch);
			batch = [];
			batchBytes = 0;
		}
		batch.push(i);
		batchBytes += n;
	}
	if (batch.length > 0) units.push(batch);
	return units;
}

function hashOnWorkers(tasks: readonly HashTask[], options: HashPoolOptions): Promise<string[]> {
	const units = planUnits(tasks);
	const poolSize = Math.max(1, Math.min(options.concurrency, units.length));
	const counters = new BigInt64Array(new SharedArrayBuffer(8 * poolSize));
	const digests: string[] = new Array(tasks.length);
	const signal = options.signal;

	return new Promise<string[]>((resolvePromise, rejectPromise) => {
		const workers: Worker[] = [];
		let nextUnit = 0;
		let unitsDone = 0;
		let settled = false;
		let lastBytes = -1;

		const bytesDone = () => {
			let sum = 0n;
			for (let i = 0; i < poolSize; i++) sum += Atomics.load(counters, i);
			return Number(sum);
		};
		const report = () => {
			const b = bytesDone();
			if (b !== lastBytes) {
				lastBytes = b;
				options.onBytes?.(b);
			}
		};
		const timer = options.onBytes ? setInterval(report, options.progressIntervalMs ?? 100) : undefined;
		timer?.unref();

		const finish = (err?: FtguardError) => {
			if (settled) return;
			settled = true;
			if (timer) clearInterval(timer);
			signal?.removeEventListener("abort", onAbort);
			// Terminate before settling: a caller that exits right after must not
			// find a worker still holding the event loop open.
			void Promise.allSettled(workers.map((w) => w.terminate())).then(() => {
				if (err) rejectPromise(err);
				else {
					report();
					resolvePromise(digests);
				}
			});
		};
		const onAbort = () =>
			finish(
				new FtguardError("ABORTED", "hashing was aborted", {
					cause: signal?.reason,
				}),
			);

		const dispatch = (w: Worker) => {
			if (settled) return;
			if (nextUnit >= units.length) return;
			const id = nextUnit++;
			const unit = units[id] as number[];
			const wire: WireTask[] = unit.map((i) => {
				const { name: _name, ...t } = tasks[i] as HashTask;
				return t;
			});
			try {
				w.postMessage({ id, tasks: wire });
			} catch (e) {
				finish(
					new FtguardError(
						"INTERNAL",
						`cannot send work to a hash worker: ${firstLine(String((e as Error).message))}`,
						{ cause: e },
					),
				);
			}
		};

		for (let slot = 0; slot < poolSize; slot++) {
			let w: Worker;
			try {
				w = new Worker(options.workerSource ?? WORKER_SOURCE, {
					eval: true,
					workerData: { chunkSize: options.chunkSize, counters, slot },
					// The worker holds one buffer (outside the JS heap) and small
					// messages: a small heap keeps the pool's memory predictable.
					resourceLimits: {
						maxOldGenerationSizeMb: 64,
						maxYoungGenerationSizeMb: 8,
					},
					stdout: false,
					stderr: false,
				});
			} catch (e) {
				finish(
					new FtguardError("INTERNAL", `cannot start hash worker: ${firstLine(String((e as Error).message))}`, {
						cause: e,
					}),
				);
				break;
			}
			workers.push(w);
			w.on("message", (reply: WorkerReply) => {
				if (settled) return;
				const unit = units[reply.id];
				if (!unit) {
					finish(new FtguardError("INTERNAL", `hash worker replied for unknown unit ${reply.id}`));
					return;
				}
				if (!reply.ok) {
					const task = tasks[unit[reply.index ?? 0] ?? 0] as HashTask;
					finish(taskError(task, reply.errno, reply.message ?? "", undefined));
					return;
				}
				const got = reply.digests ?? [];
				if (got.length !== unit.length) {
					finish(new FtguardError("INTERNAL", "hash worker returned the wrong number of digests"));
					return;
				}
				for (let k = 0; k < unit.length; k++) {
					const i = unit[k] as number;
					digests[i] = got[k] as string;
					options.onTaskDone?.(i);
				}
				unitsDone++;
				if (unitsDone === units.length) finish();
				else dispatch(w);
			});
			w.on("error", (e: Error) => {
				finish(new FtguardError("INTERNAL", `hash worker failed: ${firstLine(String(e?.message))}`, { cause: e }));
			});
			w.on("messageerror", (e: Error) => {
				finish(
					new FtguardError("INTERNAL", `hash worker message could not be read: ${firstLine(String(e?.message))}`, {
						cause: e,
					}),
				);
			});
			w.on("exit", (code) => {
				// Our own terminate() also ends here, after `settled` is set.
				if (!settled) finish(new FtguardError("INTERNAL", `hash worker exited unexpectedly (exit code ${code})`));
			});
			dispatch(w);
		}
		if (signal) {
			if (signal.aborted) onAbort();
			else signal.addEventListener("abort", onAbort, { once: true });
		}
	});
}

/** Turns a failure reported for one task into the FtguardError that names its file. */
function taskError(task: HashTask, errno: string | undefined, message: string, cause: unknown): FtguardError {
	const name = show(task.name);
	const opts = cause === undefined ? { details: { path: task.name } } : { cause, details: { path: task.name } };
	switch (errno) {
		case "ECHANGED":
			return new FtguardError("IO_ERROR", `file changed while hashing: ${name}`, opts);
		case "ESPECIAL":
			return new FtguardError("SPECIAL_FILE", `not a regular file (replaced while hashing): ${name}`, opts);
		case "ENOENT":
			return new FtguardError("NOT_FOUND", `file disappeared while hashing: ${name}`, opts);
		case "ELOOP":
			return new FtguardError("SYMLINK_REFUSED", `file became a symlink while hashing: ${name}`, opts);
		default:
			if (typeof errno === "string" && /^E[A-Z]+$/.test(errno)) {
				return new FtguardError("IO_ERROR", `${errno.toLowerCase()} while reading ${name}`, opts);
			}
			return new FtguardError("INTERNAL", `hashing ${name} failed: ${firstLine(message)}`, opts);
	}
}
