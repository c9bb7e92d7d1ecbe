/**
 * The contract every file-format scanner implements. A scanner never loads,
 * unpickles or executes anything: it reads bytes through a ByteSource and
 * returns findings. Scanners are pure functions of (bytes, policy); the verdict
 * is derived in one place (`verdictOf`) so that no scanner can forget to fail.
 */

export type Severity = "critical" | "high" | "medium" | "low";

/** safe: nothing runs on load; unsafe: something can or may; malformed: not a valid file of its format. */
export type Verdict = "safe" | "unsafe" | "malformed";

export type FormatName =
	| "pickle"
	| "pytorch-zip"
	| "pytorch-legacy"
	| "pytorch-tar"
	| "numpy"
	| "numpy-npz"
	| "safetensors"
	| "onnx"
	| "gguf"
	| "keras"
	| "keras-h5"
	| "hf-config"
	| "hf-tokenizer-config"
	| "python"
	// containers the loaders open (their content is scanned as a file of its own)
	| "gzip"
	| "zlib"
	| "bz2"
	| "xz"
	| "lzma"
	| "lz4"
	| "zfile"
	| "tar"
	| "zip"
	// inert by name and content (inert.ts), and raw weights a model in the artefact references
	| "text"
	| "json"
	| "image"
	| "sentencepiece"
	| "raw-weights"
	| "unknown";

export interface Finding {
	/** Stable id, kebab-case, e.g. "pickle-forbidden", "dangerous-global", "external-data-escape". */
	id: string;
	severity: Severity;
	/** One line for a human. */
	message: string;
	/** Where: "opcode 0x1f3", "archive/data.pkl @ opcode 0x12", "tensor model.w", "$.auto_map". */
	location?: string;
}

/** Random access to a file's bytes; counts what it reads so benchmarks can report it. */
export interface ByteSource {
	readonly size: number;
	/** Reads up to `length` bytes at `offset` (fewer only at end of file). */
	read(offset: number, length: number): Promise<Buffer>;
	/** Bytes returned by `read` so far. */
	readonly bytesRead: number;
	/**
	 * A few bytes on their own, with nothing else read near them (a signature looked for far into a file). Sources
	 * that read in blocks fetch just these bytes; without it, `read` is used.
	 */
	probe?(offset: number, length: number): Promise<Buffer>;
}

export interface ScanPolicy {
	/** Judge pickles by analysis (allow-list) instead of refusing them outright. @default false */
	allowPickle: boolean;
	/**
	 * Globs (relative names, `*`, `**`, `?`) of files the user declares inert: accepted when no modelled loader runs
	 * code from them, although ftguard does not know their format. @default none
	 */
	inertNames?: readonly string[];
}

export interface ScanInput {
	source: ByteSource;
	/** The file's name relative to the scanned root, POSIX separators (for messages and locations). */
	name: string;
	/** Absolute path of the model directory the file belongs to, when scanning a directory (ONNX external data). */
	modelDir?: string;
	/** Absolute path of the file itself. */
	path: string;
	policy: ScanPolicy;
	/**
	 * The file's first bytes as the engine already read them (for detection), so
	 * that a scanner need not read them again. Optional: scanners must work without it.
	 */
	head?: Buffer;
}

export interface ScanResult {
	findings: Finding[];
	/**
	 * Set when the file is not a valid file of its format: the rule it broke, one
	 * line. Findings gathered before the error are kept (a payload followed by
	 * garbage still runs in pickle).
	 */
	malformed?: string;
	/** Absolute paths of files this file's loader reads as raw bytes (ONNX external data): raw weights, not unknown. */
	rawReferences?: string[];
}

export interface Scanner {
	format: FormatName;
	/** Claims a file by its first bytes (and, only as a tie-breaker, its name). Never by extension alone. */
	detect(head: Buffer, name: string, size: number): boolean;
	scan(input: ScanInput): Promise<ScanResult>;
	/**
	 * Polyglots: whether this format is also in a file that another scanner (`claimed`) claimed, where a loader of
	 * this format would find it — the engine then runs this scanner too and adds its findings. Only formats whose
	 * loaders look past what another format puts first define it (ScanOptions.polyglots).
	 */
	alsoIn?(source: ByteSource, head: Buffer, name: string, claimed: FormatName): Promise<boolean>;
}

/** Unsafe if any critical or high finding; else malformed if the format is broken; else safe. */
export function verdictOf(result: ScanResult): Verdict {
	if (result.findings.some((f) => f.severity === "critical" || f.severity === "high")) return "unsafe";
	if (result.malformed !== undefined) return "malformed";
	return "safe";
}

/** Runs a scan body; an unexpected exception becomes `malformed` (never a pass) instead of escaping. */
export async function guarded(body: () => Promise<ScanResult>): Promise<ScanResult> {
	try {
		return await body();
	} catch (e) {
		return {
			findings: [
				{
					id: "scan-incomplete",
					severity: "high",
					message: `scan stopped: ${e instanceof Error ? e.message.split("\n", 1)[0] : String(e)}`,
				},
			],
			malformed: "file could not be fully parsed",
		};
	}
}
