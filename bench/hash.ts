/**
 * `npm run bench:hash`: how fast ftguard builds OMS manifests, against
 * `openssl dgst -sha256` on one core, and how much memory it takes.
 *
 *   npm run bench:hash -- [--size-mib 2048] [--files 4] [--file-mib 512]
 *                         [--reps 3] [--chunk-kib 4096] [--concurrency N]
 *                         [--dir .bench/hash] [--keep]
 *
 * Scenarios, each repeated (median reported), interleaved so that drift in a
 * shared machine's speed hits all of them alike:
 *   (1) a directory of --files × --file-mib MiB, method "files"   target ≥ 1.5× openssl
 *   (2) one --size-mib MiB file, method "shards" (1 GB shards)      target ≥ 1.5× openssl
 *   (3) the same file, method "files" (one range: one core)        target ≥ 0.9× openssl
 *   (4) openssl dgst -sha256 on that file: the single-core reference
 * Peak RSS of every ftguard run must stay under 150 MB.
 *
 * ftguard runs in a child process built from this file by esbuild, so the
 * RSS is the library's own (no TypeScript loader in the process) and the
 * worker-from-a-string design is exercised exactly as a bundled deployment
 * runs it. Data is warmed into the page cache first: this measures hashing,
 * not the disk. Exit status is non-zero only on errors (a wrong digest
 * included); targets are reported as PASS / MISS.
 */
import { spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readSync, rmSync, statSync, writeSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { join, resolve } from "node:path";
import { buildManifest } from "../lib/core/integrity/manifest";
import { bundleSelf, median } from "./common";

const MiB = 1 << 20;
const RSS_TARGET_MB = 150;

interface ChildResult {
	seconds: number;
	root: string;
	resources: number;
	firstDigest: string;
	maxRssMB: number;
}

// ---------------------------------------------------------------- child mode
async function child(argv: string[]): Promise<void> {
	const [method, path, chunkKib, concurrency] = argv;
	const t0 = process.hrtime.bigint();
	const m = await buildManifest(path as string, {
		method: method as "files" | "shards",
		...(chunkKib ? { chunkSize: Number(chunkKib) * 1024 } : {}),
		...(concurrency ? { concurrency: Number(concurrency) } : {}),
		onProgress: () => {}, // as the CLI does: progress is part of the cost
	});
	const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
	const result: ChildResult = {
		seconds,
		root: m.root,
		resources: m.resources.length,
		firstDigest: m.resources[0]?.digest ?? "",
		// maxRSS is in KiB; reported in decimal MB, the stricter reading of "150 MB".
		maxRssMB: (process.resourceUsage().maxRSS * 1024) / 1e6,
	};
	process.stdout.write(`${JSON.stringify(result)}\n`);
}

// ---------------------------------------------------------------- parent mode
interface Options {
	sizeMib: number;
	files: number;
	fileMib: number;
	reps: number;
	chunkKib?: number;
	concurrency?: number;
	dir: string;
	keep: boolean;
}

function parseArgs(argv: string[]): Options {
	const o: Options = { sizeMib: 2048, files: 4, fileMib: 512, reps: 3, dir: ".bench/hash", keep: false };
	for (let i = 0; i < argv.length; i++) {
		const a = argv[i];
		const num = () => {
			const v = Number(argv[++i]);
			if (!Number.isFinite(v) || v <= 0) throw new Error(`${a} needs a positive number`);
			return v;
		};
		if (a === "--size-mib") o.sizeMib = num();
		else if (a === "--files") o.files = Math.round(num());
		else if (a === "--file-mib") o.fileMib = num();
		else if (a === "--reps") o.reps = Math.round(num());
		else if (a === "--chunk-kib") o.chunkKib = num();
		else if (a === "--concurrency") o.concurrency = Math.round(num());
		else if (a === "--dir") o.dir = argv[++i] ?? o.dir;
		else if (a === "--keep") o.keep = true;
		else throw new Error(`unknown argument ${a}`);
	}
	return o;
}

/** Writes `bytes` of incompressible-looking data (content does not change SHA-256 speed). */
function makeFile(path: string, bytes: number, seed: number): void {
	if (existsSync(path) && statSync(path).size === bytes) return;
	const block = Buffer.alloc(4 * MiB);
	let x = (seed * 2654435761) >>> 0 || 1;
	for (let i = 0; i < block.length; i += 4) {
		x ^= x << 13;
		x ^= x >>> 17;
		x ^= x << 5;
		block.writeUInt32LE(x >>> 0, i);
	}
	const fd = openSync(path, "w");
	try {
		for (let off = 0, n = 0; off < bytes; off += block.length, n++) {
			block.writeUInt32LE(n, 0); // no two blocks alike
			const len = Math.min(block.length, bytes - off);
			writeSync(fd, block, 0, len, off);
		}
	} finally {
		closeSync(fd);
	}
}

function warm(path: string): void {
	const buf = Buffer.allocUnsafe(16 * MiB);
	const fd = openSync(path, "r");
	try {
		let pos = 0;
		for (let n = readSync(fd, buf, 0, buf.length, pos); n > 0; n = readSync(fd, buf, 0, buf.length, pos)) pos += n;
	} finally {
		closeSync(fd);
	}
}

function runChild(bundle: string, method: string, path: string, o: Options): ChildResult {
	const args = [bundle, "--child", method, path, String(o.chunkKib ?? ""), String(o.concurrency ?? "")];
	const r = spawnSync(process.execPath, args, { encoding: "utf8", maxBuffer: 16 * MiB });
	if (r.status !== 0) throw new Error(`ftguard ${method} ${path} failed (${r.status}): ${r.stderr.trim()}`);
	return JSON.parse(r.stdout.trim().split("\n").pop() as string) as ChildResult;
}

function runOpenssl(path: string): { seconds: number; digest: string } {
	const t0 = process.hrtime.bigint();
	const r = spawnSync("openssl", ["dgst", "-sha256", path], { encoding: "utf8" });
	const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
	if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
	const digest = /=\s*([0-9a-f]{64})\s*$/.exec(r.stdout)?.[1];
	if (!digest) throw new Error(`cannot read openssl output: ${r.stdout}`);
	return { seconds, digest };
}

/**
 * The machine's own parallel ceiling: one `openssl dgst` per CPU over the
 * directory's files at once. On a VM whose vCPUs share a physical core this is
 * barely faster than one openssl, and no parallel hasher can beat it.
 */
async function runOpensslParallel(paths: string[], parallel: number): Promise<number> {
	const queue = [...paths];
	const t0 = process.hrtime.bigint();
	const lane = async () => {
		for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
			const file = p;
			await new Promise<void>((ok, fail) => {
				const c = spawn("openssl", ["dgst", "-sha256", file], { stdio: "ignore" });
				c.on("error", fail);
				c.on("exit", (code) => (code === 0 ? ok() : fail(new Error(`openssl exited ${code}`))));
			});
		}
	};
	await Promise.all(Array.from({ length: parallel }, lane));
	return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function parent(argv: string[]): Promise<void> {
	const o = parseArgs(argv);
	const root = resolve(o.dir);
	const multiDir = join(root, "multi");
	const singleDir = join(root, "single");
	const single = join(singleDir, "model.bin");
	mkdirSync(multiDir, { recursive: true });
	mkdirSync(singleDir, { recursive: true });

	// The child is this very file, bundled: no loader in the measured process.
	const bundle = join(root, "hash-bench.mjs");
	await bundleSelf(import.meta.url, bundle);

	const multiBytes = o.files * Math.round(o.fileMib * MiB);
	const singleBytes = Math.round(o.sizeMib * MiB);
	process.stderr.write(
		`generating ${o.files} × ${o.fileMib} MiB and 1 × ${o.sizeMib} MiB under ${root} (reused if present)\n`,
	);
	const parts: string[] = [];
	for (let i = 0; i < o.files; i++) {
		const p = join(multiDir, `part-${String(i).padStart(5, "0")}.bin`);
		makeFile(p, Math.round(o.fileMib * MiB), i + 1);
		parts.push(p);
	}
	makeFile(single, singleBytes, 999);
	process.stderr.write("warming the page cache\n");
	for (const p of [...parts, single]) warm(p);

	const times = {
		multi: [] as number[],
		shards: [] as number[],
		files: [] as number[],
		openssl: [] as number[],
		opensslParallel: [] as number[],
	};
	const parallel = Math.min(availableParallelism(), parts.length);
	const rss = { multi: 0, shards: 0, files: 0 };
	let shardResources = 0;
	for (let rep = 1; rep <= o.reps; rep++) {
		const ossl = runOpenssl(single);
		times.openssl.push(ossl.seconds);
		times.opensslParallel.push(await runOpensslParallel(parts, parallel));
		const multi = runChild(bundle, "files", multiDir, o);
		const shards = runChild(bundle, "shards", singleDir, o);
		const files = runChild(bundle, "files", single, o);
		// A benchmark of wrong answers is worthless: the file-model digest must be openssl's.
		if (files.firstDigest !== ossl.digest || files.resources !== 1) {
			throw new Error(`digest mismatch: ftguard ${files.firstDigest}, openssl ${ossl.digest}`);
		}
		if (multi.resources !== o.files) throw new Error(`expected ${o.files} resources, got ${multi.resources}`);
		shardResources = shards.resources;
		times.multi.push(multi.seconds);
		times.shards.push(shards.seconds);
		times.files.push(files.seconds);
		rss.multi = Math.max(rss.multi, multi.maxRssMB);
		rss.shards = Math.max(rss.shards, shards.maxRssMB);
		rss.files = Math.max(rss.files, files.maxRssMB);
		process.stderr.write(
			`rep ${rep}/${o.reps}: openssl ${ossl.seconds.toFixed(2)} s, ${parallel}×openssl ${(times.opensslParallel.at(-1) ?? 0).toFixed(2)} s, dir ${multi.seconds.toFixed(2)} s, shards ${shards.seconds.toFixed(2)} s, files ${files.seconds.toFixed(2)} s\n`,
		);
	}

	const gbps = (bytes: number, s: number) => bytes / s / 1e9;
	const osslGbps = gbps(singleBytes, median(times.openssl));
	// Best runs too: on a shared VM the second vCPU comes and goes, and the best
	// run shows what the code does when the hardware is there.
	const osslBestGbps = gbps(singleBytes, Math.min(...times.openssl));
	const row = (label: string, bytes: number, ts: number[], target: number | undefined, rssMB: number | undefined) => {
		const rate = gbps(bytes, median(ts));
		const ratio = rate / osslGbps;
		return {
			label,
			bytes,
			medianSeconds: median(ts),
			gbPerSecond: rate,
			vsOpenssl: ratio,
			bestSeconds: Math.min(...ts),
			bestVsOpensslBest: gbps(bytes, Math.min(...ts)) / osslBestGbps,
			target,
			result: target === undefined ? "" : ratio >= target ? "PASS" : "MISS",
			peakRssMB: rssMB,
			rssResult: rssMB === undefined ? "" : rssMB < RSS_TARGET_MB ? "PASS" : "MISS",
		};
	};
	const rows = [
		row(`(1) dir ${o.files}×${o.fileMib} MiB, files`, multiBytes, times.multi, 1.5, rss.multi),
		row(`(2) ${o.sizeMib} MiB file, shards (${shardResources})`, singleBytes, times.shards, 1.5, rss.shards),
		row(`(3) ${o.sizeMib} MiB file, files`, singleBytes, times.files, 0.9, rss.files),
		row("(4) openssl dgst -sha256", singleBytes, times.openssl, undefined, undefined),
		row(`(5) ${parallel} × openssl in parallel, dir`, multiBytes, times.opensslParallel, undefined, undefined),
	];

	const cpuModel = cpus()[0]?.model ?? "unknown CPU";
	const osslVersion = spawnSync("openssl", ["version"], { encoding: "utf8" }).stdout.trim();
	console.log(
		`\nftguard hash benchmark — ${availableParallelism()} CPUs (${cpuModel}), Node ${process.version}, ${osslVersion}`,
	);
	console.log(
		`median and best of ${o.reps} runs; targets apply to medians; GB = 1e9 bytes; RSS target < ${RSS_TARGET_MB} MB`,
	);
	console.log("(5) is the hardware's parallel ceiling (one openssl per CPU): (1) and (2) cannot exceed it\n");
	const header = [
		"scenario",
		"median s",
		"GB/s",
		"vs openssl",
		"target",
		"result",
		"best s",
		"best vs best",
		"peak RSS MB",
		"RSS",
	];
	const lines = rows.map((r) => [
		r.label,
		r.medianSeconds.toFixed(2),
		r.gbPerSecond.toFixed(3),
		`${r.vsOpenssl.toFixed(2)}×`,
		r.target === undefined ? "" : `≥ ${r.target}×`,
		r.result,
		r.bestSeconds.toFixed(2),
		`${r.bestVsOpensslBest.toFixed(2)}×`,
		r.peakRssMB === undefined ? "" : r.peakRssMB.toFixed(0),
		r.rssResult,
	]);
	const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)));
	const fmt = (cells: string[]) =>
		cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join("  ");
	console.log(fmt(header));
	console.log(widths.map((w) => "-".repeat(w)).join("  "));
	for (const l of lines) console.log(fmt(l));
	console.log(
		JSON.stringify({
			bench: "hash",
			cpus: availableParallelism(),
			cpu: cpuModel,
			node: process.version,
			openssl: osslVersion,
			reps: o.reps,
			chunkKib: o.chunkKib ?? null,
			concurrency: o.concurrency ?? null,
			times,
			rows,
		}),
	);

	if (!o.keep) rmSync(root, { recursive: true, force: true });
}

const argv = process.argv.slice(2);
if (argv[0] === "--child") await child(argv.slice(1));
else await parent(argv);
