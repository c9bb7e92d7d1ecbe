/** `ftguard files`: is every file of a model safe to load? Nothing is loaded or unpickled. */
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import type { Command } from "commander";
import { FtguardError, toFtguardError } from "../core/errors";
import type { ScanReport } from "../core/formats/scan";
import { type CodeCacheOptions, type CodeCacheStatus, requireWithCodeCache } from "./code-cache";
import type * as FilesEngineModule from "./files-engine";
import { type Io, printJson, processIo, runCommand } from "./io";
import { VERSION } from "./version";

/** Set by scripts/build.mjs in the bundle: the engine's CommonJS file, relative to this code's output file. */
declare const FTGUARD_FILES_ENGINE: string | undefined;

export type FilesEngine = typeof FilesEngineModule;

/**
 * V8 tiering for a process that scans once: TurboFan's background compile of the hot pickle loop takes the scan's
 * core on a small machine and finishes after the scan (first scan of a 1 GiB torch zip, Node 20: 12.0 → 8.4 ms).
 * 8× the default tier-up threshold still optimises within a large pickle's first megabytes. Set before the engine
 * is compiled (its code cache is made under the same flags); only on the V8 versions measured, since an unknown
 * flag is reported on stderr.
 */
function tuneTieringForOneScan(): void {
	const v8 = process.versions.v8;
	if (v8.startsWith("11.3.")) setFlagsFromString("--interrupt-budget=540672");
	else if (v8.startsWith("12.4.")) setFlagsFromString("--invocation-count-for-turbofan=24000");
}

export interface LoadedEngine {
	engine: FilesEngine;
	/** The code cache: "hit" when a cache the CLI wrote earlier was used; "off" from the sources. */
	cache: CodeCacheStatus;
	cacheFile: string | undefined;
	/** Writes the code cache if it was missing or stale; call it after the scan. */
	save: () => void;
}

/**
 * The scan engine: in the bundle, dist/files-engine.cjs run with a V8 code cache (see
 * code-cache.ts: Node 20 would otherwise compile the scanners again during every first
 * scan); from the sources, the modules themselves. `file` (the benchmark's) names the
 * engine bundle explicitly; `options` is the code cache's.
 */
export async function loadFilesEngine(file?: string, options: CodeCacheOptions = {}): Promise<LoadedEngine> {
	tuneTieringForOneScan();
	const bundled =
		file ??
		(typeof FTGUARD_FILES_ENGINE === "string"
			? fileURLToPath(new URL(FTGUARD_FILES_ENGINE, import.meta.url))
			: undefined);
	if (bundled !== undefined && existsSync(bundled)) {
		const m = requireWithCodeCache<FilesEngine>(bundled, options);
		return { engine: m.exports, cache: m.cache, cacheFile: m.cacheFile, save: m.save };
	}
	return { engine: await import("./files-engine"), cache: "off", cacheFile: undefined, save: () => {} };
}

interface FilesFlags {
	allowPickle?: boolean;
	strict?: boolean;
	inert?: string[];
	sarif?: string;
	json?: boolean;
}

export function registerFiles(program: Command, setExit: (code: number) => void): void {
	program
		.command("files")
		.description("decide, without loading anything, whether each model file is safe to load")
		.argument("<path...>", "files or directories (recursed)")
		.option("--allow-pickle", "judge pickles by analysis (allow-list) instead of refusing them")
		.option("--strict", "accept only formats ftguard parses (not text, JSON, images known by name and content)")
		.option(
			"--inert <glob>",
			"declare files matching the glob inert: accepted when no loader runs code from them (repeatable)",
			(g: string, all: string[]) => [...all, g],
			[] as string[],
		)
		.option("--sarif <out.sarif>", "also write SARIF 2.1.0 for code-scanning dashboards")
		.option("--json", "machine-readable output")
		.addHelpText(
			"after",
			`
Every file is judged by what each loader that may open it would do: any file is read
as a pickle from byte 0 (pickle.load, joblib.load, torch.load and numpy.load open files
whatever their name), compressed streams (gzip, zlib, bz2, xz, lzma) and tar/zip archives
are opened and their content scanned, and every format the bytes also are is checked.
Formats: pickle (protocols 0-5), PyTorch zip / legacy / tar, NumPy .npy/.npz, safetensors,
ONNX (+ external data), GGUF, Keras .keras/.h5, Hugging Face configs, chat templates, *.py.
A file no loader explains is unsafe (unknown-format), unless inert by name and content
(text, JSON, YAML, images, tokenizer models) or declared with --inert.
Default policy refuses pickle-bearing files (pickle-forbidden): convert to safetensors,
or pass --allow-pickle to accept exactly what torch.load(weights_only=True) loads.

Exit codes: 0 every file safe, 1 a file is unsafe or malformed, 2 could not scan.`,
		)
		.action(async (paths: string[], flags: FilesFlags) => {
			const io = processIo(Boolean(flags.json));
			setExit(await runCommand(io, () => files(io, paths, flags)));
		});
}

async function files(io: Io, paths: string[], flags: FilesFlags): Promise<0 | 1> {
	if (paths.length === 0) throw new FtguardError("USAGE", "give at least one file or directory");
	// Loaded on use: a CLI start pays only for the command it runs.
	const { engine, save } = await loadFilesEngine();
	const { defaultScanOptions, scanPaths, toSarif } = engine;
	const report = await scanPaths(paths, {
		...defaultScanOptions(),
		policy: { allowPickle: Boolean(flags.allowPickle), inertNames: flags.inert ?? [] },
		strict: Boolean(flags.strict),
	}).catch((e: unknown) => {
		// The bundled engine has its own copy of FtguardError: keep the code and message it threw.
		if (!(e instanceof FtguardError) && e instanceof engine.FtguardError) {
			throw new FtguardError(e.code, e.message, { cause: e.cause, ...(e.details ? { details: e.details } : {}) });
		}
		throw e;
	});
	if (flags.sarif !== undefined) {
		try {
			await writeFile(flags.sarif, `${JSON.stringify(toSarif(report, VERSION), null, 2)}\n`);
		} catch (e) {
			throw toFtguardError(e, `cannot write SARIF to ${flags.sarif}`);
		}
	}
	if (io.json) printJson(io, jsonReport(report));
	else render(io, report);
	save();
	return report.summary.unsafe + report.summary.malformed > 0 ? 1 : 0;
}

function jsonReport(report: ScanReport): object {
	return {
		ok: true,
		files: report.files.map((f) => ({
			path: f.path,
			format: f.format,
			verdict: f.verdict,
			findings: f.findings,
			...(f.malformed !== undefined ? { malformed: f.malformed } : {}),
		})),
		summary: report.summary,
	};
}

function render(io: Io, report: ScanReport): void {
	for (const f of report.files) {
		io.out(`${f.verdict.toUpperCase().padEnd(9)} ${f.format.padEnd(20)} ${f.path}`);
		if (f.malformed !== undefined) io.out(`          malformed: ${f.malformed}`);
		for (const x of f.findings) {
			io.out(`          ${x.severity.padEnd(8)} ${x.id}: ${x.message}${x.location ? ` (${x.location})` : ""}`);
		}
	}
	const s = report.summary;
	io.out(
		`${s.files} files: ${s.safe} safe, ${s.unsafe} unsafe, ${s.malformed} malformed (${s.unknown} of unknown format)`,
	);
}
