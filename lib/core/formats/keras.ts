/**
 * Keras v3 `.keras` archives: a zip holding `metadata.json`, `config.json` and
 * `model.weights.h5`. Loading rebuilds every object named in `config.json`:
 *
 * - `Lambda` layers (and `__lambda__` function objects anywhere, e.g. as an
 *   activation) carry marshalled Python bytecode that runs on load or on the
 *   first call (CVE-2024-3660; `safe_mode` is the only guard and is often
 *   turned off) → `keras-lambda` (critical).
 * - An object whose `module` is outside Keras makes the loader import that
 *   module → `keras-custom-object` (high); a module that is itself a code
 *   execution primitive (`os`, `subprocess`, `builtins` …, the CVE-2025-1550
 *   pattern) → `keras-dangerous-module` (critical). Keras utilities that reach
 *   the network or file system (`get_file`, CVE-2025-8747) → high as well.
 * - `TFOpLambda` (tf.keras) calls a TensorFlow API symbol by name: common in
 *   legitimate functional models, so medium, unless the symbol does I/O or runs
 *   Python (`io.*`, `py_function`, `numpy_function` …) → critical.
 *
 * The zip is read through its central directory (with ZIP64), as Python's
 * zipfile does; only `config.json` is inflated, with an output bound. The
 * weights (HDF5) are not read.
 */
import { inflateRawSync } from "node:zlib";
import type { ByteSource, Finding, Scanner, ScanResult } from "./types";

/** Bounds against zip bombs and absurd archives. */
const MAX_CD = 64 * 1024 * 1024;
const MAX_CONFIG = 64 * 1024 * 1024;
const MAX_ENTRIES = 1_000_000;
const MAX_DEPTH = 256;
const MAX_FINDINGS = 200;

class Malformed extends Error {}
const bad = (rule: string): never => {
	throw new Malformed(`keras: ${rule}`);
};

interface Entry {
	name: string;
	method: number;
	compSize: number;
	localOffset: number;
}

/** Reads the central directory (minimal, tolerant like Python's zipfile: CRCs and flags are not checked). */
async function centralDirectory(src: ByteSource): Promise<Entry[]> {
	if (src.size < 22) bad("too small for a zip archive");
	const tailLen = Math.min(src.size, 22 + 0xffff);
	const tailStart = src.size - tailLen;
	const tail = await src.read(tailStart, tailLen);
	let eocd = -1;
	for (let i = tail.length - 22; i >= 0; i--) {
		if (tail.readUInt32LE(i) === 0x06054b50) {
			eocd = i;
			break;
		}
	}
	if (eocd < 0) bad("no end-of-central-directory record");
	let count = tail.readUInt16LE(eocd + 10);
	let cdSize = tail.readUInt32LE(eocd + 12);
	let cdOffset = tail.readUInt32LE(eocd + 16);
	if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
		// ZIP64: the locator sits just before the EOCD record
		const loc = eocd - 20;
		if (loc < 0 || tail.readUInt32LE(loc) !== 0x07064b50) bad("ZIP64 locator missing");
		const recOff = tail.readBigUInt64LE(loc + 8);
		if (recOff + 56n > BigInt(src.size)) bad("ZIP64 record past end of file");
		const rec = await src.read(Number(recOff), 56);
		if (rec.length < 56 || rec.readUInt32LE(0) !== 0x06064b50) bad("bad ZIP64 end-of-central-directory record");
		const c = rec.readBigUInt64LE(32);
		const s = rec.readBigUInt64LE(40);
		const o = rec.readBigUInt64LE(48);
		if (c > BigInt(MAX_ENTRIES) || s > BigInt(MAX_CD) || o > BigInt(src.size))
			bad("ZIP64 directory bounds out of range");
		count = Number(c);
		cdSize = Number(s);
		cdOffset = Number(o);
	}
	if (cdSize > MAX_CD) bad(`central directory of ${cdSize} bytes`);
	if (cdOffset + cdSize > src.size) bad("central directory past end of file");
	if (count * 46 > cdSize) bad(`${count} entries do not fit a ${cdSize}-byte central directory`);
	const cd = await src.read(cdOffset, cdSize);
	const entries: Entry[] = [];
	let p = 0;
	for (let i = 0; i < count; i++) {
		if (p + 46 > cd.length || cd.readUInt32LE(p) !== 0x02014b50) bad(`bad central directory entry ${i}`);
		const method = cd.readUInt16LE(p + 10);
		let compSize = cd.readUInt32LE(p + 20);
		const uncompSize = cd.readUInt32LE(p + 24);
		const nameLen = cd.readUInt16LE(p + 28);
		const extraLen = cd.readUInt16LE(p + 30);
		const commentLen = cd.readUInt16LE(p + 32);
		let localOffset = cd.readUInt32LE(p + 42);
		const end = p + 46 + nameLen + extraLen + commentLen;
		if (end > cd.length) bad(`central directory entry ${i} past its end`);
		const name = cd.subarray(p + 46, p + 46 + nameLen).toString("utf8");
		// ZIP64 extended information: present fields replace the 0xffffffff placeholders, in order
		let x = p + 46 + nameLen;
		const xEnd = x + extraLen;
		while (x + 4 <= xEnd) {
			const id = cd.readUInt16LE(x);
			const len = cd.readUInt16LE(x + 2);
			if (id === 0x0001) {
				let q = x + 4;
				const take = () => {
					if (q + 8 > x + 4 + len) return bad(`bad ZIP64 extra field in ${name}`);
					const v = cd.readBigUInt64LE(q);
					q += 8;
					if (v > BigInt(Number.MAX_SAFE_INTEGER)) bad(`ZIP64 value out of range in ${name}`);
					return Number(v);
				};
				if (uncompSize === 0xffffffff) take();
				if (compSize === 0xffffffff) compSize = take();
				if (localOffset === 0xffffffff) localOffset = take();
			}
			x += 4 + len;
		}
		entries.push({ name, method, compSize, localOffset });
		p = end;
	}
	return entries;
}

async function readEntry(src: ByteSource, e: Entry): Promise<Buffer> {
	if (e.localOffset + 30 > src.size) bad(`${e.name}: local header past end of file`);
	const lh = await src.read(e.localOffset, 30);
	if (lh.readUInt32LE(0) !== 0x04034b50) bad(`${e.name}: bad local header`);
	const dataStart = e.localOffset + 30 + lh.readUInt16LE(26) + lh.readUInt16LE(28);
	if (e.compSize > MAX_CONFIG) bad(`${e.name}: ${e.compSize} compressed bytes`);
	if (dataStart + e.compSize > src.size) bad(`${e.name}: data past end of file`);
	const data = await src.read(dataStart, e.compSize);
	if (e.method === 0) return data;
	if (e.method === 8) {
		try {
			return inflateRawSync(data, { maxOutputLength: MAX_CONFIG });
		} catch (err) {
			return bad(`${e.name}: ${err instanceof RangeError ? `inflates past ${MAX_CONFIG} bytes` : "bad deflate data"}`);
		}
	}
	// Python's zipfile also reads bzip2 (12) and LZMA (14): a config we cannot read is never passed
	return bad(`${e.name}: compression method ${e.method} not supported here`);
}

/** Top-level modules that are code-execution primitives by themselves. */
const DANGEROUS_MODULES = new Set([
	"os",
	"posix",
	"nt",
	"subprocess",
	"builtins",
	"__builtin__",
	"sys",
	"importlib",
	"runpy",
	"shutil",
	"pty",
	"socket",
	"pickle",
	"marshal",
	"ctypes",
	"code",
	"codeop",
	"webbrowser",
	"pdb",
	"multiprocessing",
	"operator",
	"functools",
	"pkgutil",
	"io",
	"urllib",
	"requests",
	"types",
]);
/** Packages whose objects Keras deserializes as its own. */
const KERAS_PACKAGES = new Set(["keras", "keras_nlp", "keras_hub", "keras_cv", "tf_keras", "tensorflow"]);
/** Keras functions that reach the network or file system. */
const RISKY_KERAS_FUNCTIONS = new Set(["get_file", "load_model", "load_weights", "save_model"]);
/** TF symbols (TFOpLambda `function`) that do I/O or run Python. */
const RISKY_TF_OPS =
	/(^|\.)(io|gfile|py_func|py_function|numpy_function|script_ops|debugging|summary|saved_model|compat\.v1\.py_func|raw_ops\.(WriteFile|ReadFile|PyFunc|EagerPyFunc|MatchingFiles|Save|Restore))/;

const key = (path: string, k: string) =>
	/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? `${path}.${k}` : `${path}[${JSON.stringify(k)}]`;

/** Walks a Keras config tree and returns findings (see module comment). */
export function kerasConfigFindings(config: unknown, where = "config.json"): Finding[] {
	const out: Finding[] = [];
	const add = (f: Finding) => {
		if (out.length < MAX_FINDINGS) out.push(f);
	};
	const walk = (v: unknown, path: string, depth: number): void => {
		if (depth > MAX_DEPTH || v === null || typeof v !== "object") return;
		if (Array.isArray(v)) {
			v.forEach((x, i) => {
				walk(x, `${path}[${i}]`, depth + 1);
			});
			return;
		}
		const o = v as Record<string, unknown>;
		const cls = typeof o.class_name === "string" ? o.class_name : undefined;
		const mod = typeof o.module === "string" ? o.module : undefined;
		const loc = `${where} ${path}`;
		if (cls === "Lambda" || cls === "__lambda__") {
			add({
				id: "keras-lambda",
				severity: "critical",
				message: `${cls === "Lambda" ? "Lambda layer" : "lambda function"} holds Python bytecode that runs when the model is loaded or called`,
				location: loc,
			});
			return; // the layer's own `__lambda__` function is the same finding
		}
		if (cls === "TFOpLambda") {
			const cfg = o.config as Record<string, unknown> | undefined;
			const fn = cfg !== null && typeof cfg === "object" && typeof cfg.function === "string" ? cfg.function : "";
			add(
				RISKY_TF_OPS.test(fn)
					? {
							id: "keras-lambda",
							severity: "critical",
							message: `TFOpLambda calls tf.${fn}: file I/O or Python from the model`,
							location: loc,
						}
					: {
							id: "keras-tfoplambda",
							severity: "medium",
							message: `TFOpLambda calls tf.${fn || "?"} by name`,
							location: loc,
						},
			);
		}
		if (mod !== undefined && cls !== undefined) {
			const top = mod.split(".")[0] ?? "";
			if (DANGEROUS_MODULES.has(top))
				add({
					id: "keras-dangerous-module",
					severity: "critical",
					message: `object ${cls}${typeof o.config === "string" ? ` (${o.config})` : ""} from module ${mod}: loading imports and calls into it`,
					location: loc,
				});
			else if (!KERAS_PACKAGES.has(top))
				add({
					id: "keras-custom-object",
					severity: "high",
					message: `custom object ${cls} from module ${mod}: loading imports code outside Keras`,
					location: loc,
				});
			else if (RISKY_KERAS_FUNCTIONS.has(cls) || (typeof o.config === "string" && RISKY_KERAS_FUNCTIONS.has(o.config)))
				add({
					id: "keras-custom-object",
					severity: "high",
					message: `${mod}.${typeof o.config === "string" ? o.config : cls} reaches the network or file system on load`,
					location: loc,
				});
		}
		for (const [k, x] of Object.entries(o)) walk(x, key(path, k), depth + 1);
	};
	walk(config, "$", 0);
	return out;
}

/** Scans a `.keras` archive: every `config.json` entry (the loader takes the last of duplicates; all are checked). */
export async function scanKeras(source: ByteSource): Promise<ScanResult> {
	const findings: Finding[] = [];
	try {
		const entries = await centralDirectory(source);
		const configs = entries.filter((e) => e.name === "config.json");
		if (configs.length === 0) bad("no config.json in the archive");
		for (const e of configs) {
			const buf = await readEntry(source, e);
			let cfg: unknown;
			try {
				cfg = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(buf));
			} catch {
				return bad("config.json is not valid UTF-8 JSON");
			}
			findings.push(...kerasConfigFindings(cfg));
		}
		return { findings };
	} catch (e) {
		if (e instanceof Malformed) return { findings, malformed: e.message };
		throw e;
	}
}

/** Scanner for Keras v3 `.keras` archives. */
export const kerasScanner: Scanner = {
	format: "keras",
	detect(head: Buffer, name: string): boolean {
		if (head.length < 30 || head.readUInt32LE(0) !== 0x04034b50) return false;
		// Keras writes metadata.json first, then config.json; the name breaks ties for reordered archives
		const n = head.readUInt16LE(26);
		const first = head.subarray(30, 30 + n).toString("utf8");
		return first === "metadata.json" || first === "config.json" || name.toLowerCase().endsWith(".keras");
	},
	scan({ source }): Promise<ScanResult> {
		return scanKeras(source);
	},
};
