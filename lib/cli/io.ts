/**
 * What every command shares: where output goes, JSON vs. human rendering, the
 * TTY progress line, and the one place where errors become exit codes.
 *
 * Exit codes across the whole CLI: 0 passed, 1 the check failed (a finding),
 * 2 could not check. Anything unexpected is mapped to 2 by `toFtguardError`, so
 * a crash can never look like a pass or a finding.
 */
import { readFile } from "node:fs/promises";
import { type FtguardError, toFtguardError } from "../core/errors";
import type { HashProgress } from "../core/integrity/types";

export type ExitCode = 0 | 1 | 2;

export interface Io {
	/** Machine output requested: exactly one JSON document on stdout, nothing else there. */
	json: boolean;
	out: (text: string) => void;
	/** stdout as it is, no newline added (a large document written in pieces); absent: pieces are joined for `out` */
	write?: (text: string) => void;
	err: (text: string) => void;
	/** stderr is a terminal: progress may be drawn. */
	interactive: boolean;
}

export function processIo(json: boolean): Io {
	return {
		json,
		out: (text) => process.stdout.write(text.endsWith("\n") ? text : `${text}\n`),
		write: (text) => process.stdout.write(text),
		err: (text) => process.stderr.write(text.endsWith("\n") ? text : `${text}\n`),
		interactive: Boolean(process.stderr.isTTY) && !json && process.env.CI === undefined,
	};
}

/** Prints a JSON document (stable 2-space layout, trailing newline). */
export function printJson(io: Io, value: unknown): void {
	io.out(JSON.stringify(value, null, 2));
}

/** The JSON shape of an error, shared by every command. */
export function errorJson(e: FtguardError): Record<string, unknown> {
	return {
		ok: false,
		error: { code: e.code, message: e.message, ...(e.details ? { details: e.details } : {}) },
		exitCode: e.exitCode,
	};
}

/**
 * Runs a command body and turns its outcome into an exit code. The body returns
 * its own exit code (0 or 1) after rendering; a thrown error is rendered here as
 * one line (or one JSON document) with its stable code — never a stack trace,
 * unless FTGUARD_DEBUG is set for a developer.
 */
export async function runCommand(io: Io, body: () => Promise<ExitCode>): Promise<ExitCode> {
	try {
		return await body();
	} catch (raw) {
		const e = toFtguardError(raw);
		if (io.json) printJson(io, errorJson(e));
		io.err(`ftguard: ${e.code}: ${e.message}`);
		if (process.env.FTGUARD_DEBUG && raw instanceof Error && raw.stack) io.err(raw.stack);
		return e.exitCode;
	}
}

/**
 * A single self-overwriting line on stderr, only on a TTY and never in JSON
 * mode (scripts and CI logs get clean output). Throttled to 10 redraws a second
 * so fast work (hashing at GB/s) does not spend its time drawing; `final` draws
 * regardless.
 */
function ttyLine(io: Io): { draw: (text: string, final: boolean) => void; done: () => void } {
	if (!io.interactive) return { draw: () => {}, done: () => {} };
	let last = 0;
	let drawn = false;
	return {
		draw(text, final) {
			const now = Date.now();
			if (now - last < 100 && !final) return;
			last = now;
			process.stderr.write(`\r${text}\x1b[K`);
			drawn = true;
		},
		done() {
			if (drawn) process.stderr.write("\r\x1b[K");
		},
	};
}

/** Hashing progress: percent, bytes, files and throughput. */
export function progressLine(io: Io, label: string): { update: (p: HashProgress) => void; done: () => void } {
	const line = ttyLine(io);
	const started = Date.now();
	return {
		update(p) {
			const pct = p.bytesTotal > 0 ? Math.floor((100 * p.bytesDone) / p.bytesTotal) : 100;
			const secs = Math.max((Date.now() - started) / 1000, 0.001);
			const rate = p.bytesDone / secs / 1e6;
			line.draw(
				`${label} ${pct}%  ${formatBytes(p.bytesDone)}/${formatBytes(p.bytesTotal)}  ${p.filesDone}/${p.filesTotal} files  ${rate.toFixed(0)} MB/s`,
				p.bytesDone >= p.bytesTotal,
			);
		},
		done: line.done,
	};
}

/** Progress of counted work (optimisation steps): percent, count and an estimate of the time left. */
export function stepProgress(io: Io): {
	update: (label: string, done: number, total: number) => void;
	done: () => void;
} {
	const line = ttyLine(io);
	const started = Date.now();
	return {
		update(label, done, total) {
			const pct = total > 0 ? Math.floor((100 * done) / total) : 100;
			const secs = (Date.now() - started) / 1000;
			const left = done > 0 && total > done ? ` ~${Math.ceil((secs * (total - done)) / done)} s left` : "";
			line.draw(`${label} ${pct}%  ${done}/${total}${left}`, done >= total);
		},
		done: line.done,
	};
}

export function formatBytes(n: number): string {
	const units = ["B", "KiB", "MiB", "GiB", "TiB"];
	let v = n;
	let i = 0;
	while (v >= 1024 && i < units.length - 1) {
		v /= 1024;
		i++;
	}
	return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** Splits a comma-separated CLI list, dropping empties ("a,,b" → ["a", "b"]). */
export function commaList(value: string, previous: string[] = []): string[] {
	return previous.concat(
		value
			.split(",")
			.map((s) => s.trim())
			.filter((s) => s.length > 0),
	);
}

/** A file a flag or argument names, read whole; a failure is one line saying which (NOT_FOUND, IO_ERROR, …). */
export async function readArgFile(path: string, what: string): Promise<Buffer> {
	try {
		return await readFile(path);
	} catch (e) {
		throw toFtguardError(e, `cannot read ${what}`);
	}
}

/** {@link readArgFile} as UTF-8 text. */
export async function readArgText(path: string, what: string): Promise<string> {
	return (await readArgFile(path, what)).toString("utf8");
}
