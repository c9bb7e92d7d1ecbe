/**
 * The file-safety engine: lists the files under the given paths, picks a scanner
 * for each by content, runs it, and derives one verdict per file.
 *
 * Fail closed at every step: a scanner that throws gives a `scanner-error`
 * finding (unsafe), an archive no scanner claims is still searched for pickles,
 * and a file with a pickle-like name that no scanner claims is analysed as a
 * pickle — so renaming or re-ordering a payload cannot turn it into "unknown".
 */
import { join, resolve } from "node:path";
import { toFtguardError } from "../errors";
import { DEFAULT_IGNORE_PATHS } from "../integrity/manifest";
import { normalizeIgnorePaths, walkModel } from "../integrity/walk";
import { mayBeUnpickled } from "./pickle";
import { FileSource } from "./source";
import {
	type ByteSource,
	type Finding,
	type FormatName,
	type Scanner,
	type ScanPolicy,
	type ScanResult,
	type Verdict,
	verdictOf,
} from "./types";
import { isZip } from "./zip";

export interface FileReport {
	/** As given on the command line, or joined under the directory given. */
	path: string;
	format: FormatName;
	verdict: Verdict;
	findings: Finding[];
	/** The rule a malformed file broke. */
	malformed?: string;
	size: number;
	bytesRead: number;
}

export interface ScanSummary {
	files: number;
	safe: number;
	unsafe: number;
	malformed: number;
	unknown: number;
	bytesRead: number;
}

export interface ScanReport {
	files: FileReport[];
	summary: ScanSummary;
}

export interface ScanOptions {
	policy: ScanPolicy;
	/** The scanners to use, in detection order. */
	scanners: readonly Scanner[];
	/** Used for archives (zip) that no scanner claims: searches every entry for pickles. */
	archiveFallback?: Scanner;
	/** Used for unclaimed files whose name says pickle (.pkl, .pt, .bin, …). */
	pickleFallback?: Scanner;
	/** Also run on files another scanner claimed, when their `alsoIn` finds their format there too (polyglots). */
	polyglots?: readonly Scanner[];
	/** Unknown formats are unsafe (`--strict`). @default false */
	strict?: boolean;
	/** @default 100_000 */
	maxFiles?: number;
	/** Files scanned at once. @default 4 */
	concurrency?: number;
}

const HEAD_BYTES = 64 * 1024;

/** Picks the scanner for a file: content first, fallbacks for archives and pickle-named files. */
export function chooseScanner(head: Buffer, name: string, size: number, options: ScanOptions): Scanner | undefined {
	const claimed = options.scanners.find((s) => s.detect(head, name, size));
	if (claimed) return claimed;
	if (options.archiveFallback && isZip(head)) return options.archiveFallback;
	// pickle.load executes from the first byte: a pickle-named file whose first byte
	// is a valid opcode is analysed as a pickle even if the heuristics doubted it; one
	// whose first byte is not (raw weights, ONNX external data) cannot be unpickled.
	if (options.pickleFallback && mayBeUnpickled(head, name, size)) {
		return options.pickleFallback;
	}
	return undefined;
}

async function scanOne(
	openPath: string,
	displayPath: string,
	name: string,
	modelDir: string | undefined,
	options: ScanOptions,
): Promise<FileReport> {
	const source = await FileSource.open(openPath).catch((e) => {
		throw toFtguardError(e, `cannot open ${displayPath}`);
	});
	try {
		return await scanSource(source, { displayPath, name, path: openPath, modelDir }, options);
	} finally {
		await source.close();
	}
}

/** What the engine needs to know about a source besides its bytes. */
export interface SourceTarget {
	/** how the report names it */
	displayPath: string;
	/** its file name (some detections and the pickle fallback look at it) */
	name: string;
	/** a filesystem path for scanners that resolve references next to it (ONNX external data) */
	path: string;
	/** the model directory, when the source is one file of a model */
	modelDir: string | undefined;
}

/**
 * The engine for one source — a file on disk or an object read by ranged GETs:
 * choose the scanner by content, run it (a throw is a finding), and search any
 * zip for pickles even when another scanner claimed it. Read errors propagate.
 */
export async function scanSource(source: ByteSource, t: SourceTarget, options: ScanOptions): Promise<FileReport> {
	const head = await source.read(0, HEAD_BYTES);
	// nothing in the head: a format whose loader looks further (an HDF5 superblock after a large user block)
	const scanner =
		chooseScanner(head, t.name, source.size, options) ?? (await foundPastHead(source, head, t.name, options));
	if (!scanner) {
		const finding: Finding = {
			id: "unknown-format",
			severity: options.strict ? "high" : "low",
			message: options.strict
				? "format not recognised; strict mode treats unknown files as unsafe"
				: "format not recognised: nothing in it was checked",
		};
		return report(t.displayPath, "unknown", { findings: [finding] }, source);
	}
	let result = await runScanner(scanner, source, t.path, t.name, t.modelDir, options, head);
	// Any zip may be handed to torch.load whatever its first entry says (a
	// "Keras" or "npz" archive with an archive/data.pkl inside loads as a torch
	// checkpoint): zips claimed by another scanner are searched for pickles too.
	if (options.archiveFallback && scanner !== options.archiveFallback && isZip(head)) {
		const extra = await runScanner(options.archiveFallback, source, t.path, t.name, t.modelDir, options, head);
		result = { ...result, findings: [...result.findings, ...extra.findings] };
	}
	// A file can be two formats at once, each loader reading the one it looks for: the claimed format's verdict
	// alone would pass whatever the other one holds.
	for (const also of options.polyglots ?? []) {
		if (also.format === scanner.format || !(await also.alsoIn?.(source, head, t.name, scanner.format))) continue;
		const extra = await runScanner(also, source, t.path, t.name, t.modelDir, options, head);
		const tagged = extra.findings.map((f) => ({ ...f, message: `read as ${also.format}: ${f.message}` }));
		result = { ...result, findings: [...result.findings, ...tagged] };
	}
	return report(t.displayPath, scanner.format, result, source);
}

/** The first polyglot format found in a file nothing claimed by its head. */
async function foundPastHead(
	source: ByteSource,
	head: Buffer,
	name: string,
	options: ScanOptions,
): Promise<Scanner | undefined> {
	for (const s of options.polyglots ?? []) if (await s.alsoIn?.(source, head, name, "unknown")) return s;
	return undefined;
}

/** Runs one scanner; a scanner that throws yields a finding, never a pass. */
async function runScanner(
	scanner: Scanner,
	source: ByteSource,
	path: string,
	name: string,
	modelDir: string | undefined,
	options: ScanOptions,
	head?: Buffer,
): Promise<ScanResult> {
	try {
		return await scanner.scan({
			source,
			name,
			path,
			policy: options.policy,
			...(head !== undefined ? { head } : {}),
			...(modelDir !== undefined ? { modelDir } : {}),
		});
	} catch (e) {
		const err = toFtguardError(e);
		return {
			findings: [
				{ id: "scanner-error", severity: "high", message: `the ${scanner.format} scanner failed: ${err.message}` },
			],
		};
	}
}

function report(
	path: string,
	format: FormatName,
	result: { findings: Finding[]; malformed?: string },
	source: ByteSource,
): FileReport {
	return {
		path,
		format,
		verdict: verdictOf(result),
		findings: result.findings,
		...(result.malformed !== undefined ? { malformed: result.malformed } : {}),
		size: source.size,
		bytesRead: source.bytesRead,
	};
}

interface Target {
	openPath: string;
	displayPath: string;
	name: string;
	modelDir: string | undefined;
}

async function targets(paths: readonly string[], maxFiles: number): Promise<Target[]> {
	const out: Target[] = [];
	const ignorePaths = normalizeIgnorePaths(DEFAULT_IGNORE_PATHS);
	for (const given of paths) {
		// Symlinks inside a directory are followed only within it (walkModel refuses escapes).
		const walk = await walkModel(given, { allowSymlinks: true, ignorePaths, maxFiles, maxDepth: 128 });
		for (const f of walk.files) {
			out.push({
				openPath: f.openPath,
				displayPath: walk.isFile ? given : join(given, f.name),
				name: walk.isFile ? walk.modelName : f.name,
				modelDir: walk.isFile ? undefined : resolve(given),
			});
			if (out.length > maxFiles) break;
		}
	}
	return out;
}

/** Scans every file under `paths` (files or directories, recursed). */
export async function scanPaths(paths: readonly string[], options: ScanOptions): Promise<ScanReport> {
	const list = await targets(paths, options.maxFiles ?? 100_000);
	const files: FileReport[] = new Array(list.length);
	let next = 0;
	const worker = async () => {
		for (let i = next++; i < list.length; i = next++) {
			const t = list[i] as Target;
			files[i] = await scanOne(t.openPath, t.displayPath, t.name, t.modelDir, options);
		}
	};
	await Promise.all(Array.from({ length: Math.min(options.concurrency ?? 4, Math.max(list.length, 1)) }, worker));
	files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
	const count = (v: Verdict) => files.filter((f) => f.verdict === v).length;
	return {
		files,
		summary: {
			files: files.length,
			safe: count("safe"),
			unsafe: count("unsafe"),
			malformed: count("malformed"),
			unknown: files.filter((f) => f.format === "unknown").length,
			bytesRead: files.reduce((n, f) => n + f.bytesRead, 0),
		},
	};
}
