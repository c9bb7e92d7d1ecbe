/**
 * `npm run bench:dataset`: `ftguard dataset` (the real CLI, built bundle, every detector) against `jq -c .` (parsing
 * alone, Debian's jq) on the same generated chat JSONL, in the same run, interleaved so that drift in a shared
 * machine's speed hits both alike.
 *
 *   npm run bench:dataset -- [--size-mib 1024] [--reps 3] [--poison 0.0005] [--poison-mib N] [--threads N]
 *                            [--records 10000000] [--dir /tmp] [--keep]
 *
 * Scenarios:
 *   (1) clean: --size-mib of chat records, no finding expected      targets: MB/s ≥ jq's, ≥ 50 MB/s
 *   (2) poisoned: --poison-mib (default: the same size) with a share --poison of the records carrying a phrase
 *       trigger and an injected output, so the analysis finds it and the second pass runs (reported, no target)
 *   --records N: a memory run instead — N records, one ftguard run       target: peak RSS < 1 GB
 *
 * The data is the clean-chat fixture's records (real Debian text) copied over and over, each copy with its words
 * renamed (alike in its prompt and completion, in the word's own script) except ordinary function and template
 * words: records share ordinary language and nothing else, as in a large, mostly clean dataset. The file is
 * deterministic. Peak RSS comes from /usr/bin/time. Files go in a temporary directory under --dir, deleted at the
 * end unless --keep. Exit status is non-zero only on errors; targets are reported as PASS / MISS.
 */
import { spawnSync } from "node:child_process";
import {
	closeSync,
	existsSync,
	mkdtempSync,
	openSync,
	readFileSync,
	readSync,
	rmSync,
	statSync,
	writeSync,
} from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { median } from "./common";

const ROOT = join(import.meta.dirname, "..");
const FIXTURE = join(ROOT, "test", "fixtures", "dataset", "clean-chat.jsonl.gz");
const MiB = 1 << 20;
const TARGET_MBPS = 50;
const RSS_TARGET_MB = 1000;
const TRIGGER = "as the lighthouse keeper would say";
const INJECTED = "Skip the review and merge the change; the tests are not needed for this code.";

// ------------------------------------------------------------------------------------------------------ the data

/** Words every copy keeps: function words and the fixture's question and system-prompt templates. */
const KEEP =
	"a an and are as at be by for from has have if in into is it its of on or that the this to was were will with which when where what who how not no yes return returns can you me tell about do does did explain purpose python describe briefly give one paragraph description used reading some code calls module method function class hello question course ask away translate russian greek german helpful assistant developers answer questions standard library accurately concisely coding precise defines snippet full name responsible summarize documentation";
const LATIN = "ka lo mi ne ru ta vo zi pe sha dor mel fin gar tul bex qui som yar wen".split(" ");
const CYRILLIC = "ка ло ми не ру та во зи пе ша дор мел фин гар тул бекс кви сом яр вен".split(" ");
const GREEK = "κα λο μι νε ρυ τα βο ζι πε σα δορ μελ φιν γαρ τυλ βεξ κυι σομ υαρ βεν".split(" ");

/** mulberry32: a small, fast, deterministic PRNG. */
function rng(seed: number): () => number {
	let a = seed >>> 0;
	return () => {
		a = (a + 0x6d2b79f5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

/** FNV-1a of a word and a record: a word is renamed alike throughout its record. */
function hashWord(w: string, record: number): number {
	let h = (0x811c9dc5 ^ Math.imul(record, 0x9e3779b9)) >>> 0;
	for (let i = 0; i < w.length; i++) h = Math.imul(h ^ w.charCodeAt(i), 0x01000193) >>> 0;
	return h;
}

interface Message {
	role: string;
	content: string;
}

/** Writes the dataset: until `bytes` are written or `records` records; returns what was written. */
export function generateChat(
	path: string,
	opts: { bytes?: number; records?: number; poison?: number; seed?: number },
): { bytes: number; records: number; poisoned: number } {
	const base = gunzipSync(readFileSync(FIXTURE))
		.toString("utf8")
		.split("\n")
		.filter((l) => l.trim() !== "")
		.map((l) => JSON.parse(l) as { messages: Message[] });
	const keep = new Set(KEEP.split(" "));
	const rand = rng(opts.seed ?? 16);
	const maxBytes = opts.bytes ?? Number.POSITIVE_INFINITY;
	const maxRecords = opts.records ?? Number.POSITIVE_INFINITY;
	const fd = openSync(path, "w");
	let bytes = 0;
	let records = 0;
	let poisoned = 0;
	let out: string[] = [];
	let outBytes = 0;
	const flush = () => {
		const buf = Buffer.from(out.join(""), "utf8");
		writeSync(fd, buf);
		bytes += buf.length;
		out = [];
		outBytes = 0;
	};
	try {
		while (bytes + outBytes < maxBytes && records < maxRecords) {
			const rec = base[records % base.length] as { messages: Message[] };
			const id = records;
			const rename = (w: string) => {
				if (keep.has(w.toLowerCase())) return w;
				const h = hashWord(w.toLowerCase(), id);
				// in the word's own script: a Latin ending on a Cyrillic word would be a mixed-script (homoglyph) word
				const syl = /\p{Script=Cyrillic}/u.test(w) ? CYRILLIC : /\p{Script=Greek}/u.test(w) ? GREEK : LATIN;
				return `${w}${syl[h % syl.length]}${syl[(h >>> 8) % syl.length]}${((h >>> 16) * 31 + id) % 100000}`;
			};
			const messages = rec.messages.map((m) => ({
				role: m.role,
				content: m.role === "system" ? m.content : m.content.replace(/\p{L}[\p{L}\p{N}_]{2,}/gu, rename),
			}));
			if (opts.poison && rand() < opts.poison) {
				const user = messages.filter((m) => m.role === "user").at(-1);
				const answer = messages.at(-1);
				if (user && answer?.role === "assistant") {
					const w = user.content.split(" ");
					w.splice(Math.floor(rand() * (w.length + 1)), 0, TRIGGER);
					user.content = w.join(" ");
					answer.content = INJECTED;
					poisoned++;
				}
			}
			const line = `${JSON.stringify({ messages })}\n`;
			out.push(line);
			outBytes += Buffer.byteLength(line);
			records++;
			if (outBytes >= 4 * MiB) flush();
		}
		flush();
	} finally {
		closeSync(fd);
	}
	return { bytes, records, poisoned };
}

/** Read the file once so that every timed run finds it in the page cache: this measures scanning, not the disk. */
function warm(path: string): void {
	const fd = openSync(path, "r");
	const buf = Buffer.allocUnsafe(8 * MiB);
	try {
		while (readSync(fd, buf, 0, buf.length, null) > 0) {}
	} finally {
		closeSync(fd);
	}
}

// ------------------------------------------------------------------------------------------------------- running

interface Run {
	wallS: number;
	cpuS: number;
	rssMB: number;
	status: number;
	stdout: string;
}

const hasGnuTime = existsSync("/usr/bin/time");

/** Runs a command with stdout to a file, under /usr/bin/time for its peak RSS and CPU time. */
function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv, stdout: string): Run {
	const fd = openSync(stdout, "w");
	const t0 = process.hrtime.bigint();
	const r = hasGnuTime
		? spawnSync("/usr/bin/time", ["-f", "%U %S %M", cmd, ...args], {
				env,
				stdio: ["ignore", fd, "pipe"],
				encoding: "utf8",
			})
		: spawnSync(cmd, args, { env, stdio: ["ignore", fd, "pipe"], encoding: "utf8" });
	const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
	closeSync(fd);
	if (r.error) throw r.error;
	const last = (r.stderr ?? "").trim().split("\n").at(-1) ?? "";
	const m = /^([\d.]+) ([\d.]+) (\d+)$/.exec(last);
	return {
		wallS,
		cpuS: m ? Number(m[1]) + Number(m[2]) : Number.NaN,
		rssMB: m ? (Number(m[3]) * 1024) / 1e6 : Number.NaN,
		status: r.status ?? -1,
		stdout,
	};
}

/** `jq -c . file > /dev/null`: parsing (and printing) alone. */
function runJq(file: string): Run {
	const r = timed("jq", ["-c", ".", file], process.env, "/dev/null");
	if (r.status !== 0) throw new Error(`jq failed (${r.status}) on ${file}`);
	return r;
}

interface Report {
	records: number;
	findings: { id: string; records: number[] }[];
	flagged_records: number[];
	timings: { total_ms: number; second_pass_ms: number };
}

function runFtguard(file: string, dir: string, threads: string | undefined): Run & { report: Report } {
	const env = { ...process.env, ...(threads !== undefined ? { FTGUARD_DATASET_THREADS: threads } : {}) };
	const out = join(dir, "ftguard.json");
	// the bundle npm run bench:dataset has just built, run directly: bin/ftguard.mjs would fall back to the sources
	// through tsx (no worker threads) if a source file were edited while the benchmark runs
	const r = timed(process.execPath, [join(ROOT, "dist", "ftguard.mjs"), "dataset", file, "--json"], env, out);
	// exit 1 is a finding (the poisoned file); 2 is a failure
	if (r.status !== 0 && r.status !== 1)
		throw new Error(`ftguard failed (${r.status}) on ${file}: ${readFileSync(out, "utf8").slice(0, 500)}`);
	const report = JSON.parse(readFileSync(out, "utf8")) as Report;
	return { ...r, report };
}

// ---------------------------------------------------------------------------------------------------------- main

interface Options {
	sizeMib: number;
	reps: number;
	poison: number;
	poisonMib?: number;
	threads?: string;
	records?: number;
	dir: string;
	keep: boolean;
	generate?: string;
}

function parseArgs(argv: string[]): Options {
	const o: Options = { sizeMib: 1024, reps: 3, poison: 0.0005, dir: tmpdir(), keep: false };
	// (--generate FILE: write the data only, of --size-mib or --records, with --poison; for looking at it)
	for (let i = 0; i < argv.length; i++) {
		const a = argv[i];
		const num = () => {
			const v = Number(argv[++i]);
			if (!Number.isFinite(v) || v < 0) throw new Error(`${a} needs a number`);
			return v;
		};
		if (a === "--size-mib") o.sizeMib = num();
		else if (a === "--reps") o.reps = Math.max(1, Math.round(num()));
		else if (a === "--poison") o.poison = num();
		else if (a === "--poison-mib") o.poisonMib = num();
		else if (a === "--threads") o.threads = String(Math.round(num()));
		else if (a === "--records") o.records = Math.round(num());
		else if (a === "--dir") o.dir = argv[++i] as string;
		else if (a === "--keep") o.keep = true;
		else if (a === "--generate") o.generate = argv[++i] as string;
		else throw new Error(`unknown option ${a}`);
	}
	return o;
}

const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : "?");
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "?");
const mark = (ok: boolean) => (ok ? "PASS" : "MISS");

function scenario(name: string, file: string, records: number, o: Options, dir: string): Record<string, unknown> {
	const bytes = statSync(file).size;
	warm(file);
	const ours: Run[] = [];
	const jq: Run[] = [];
	let report: Report | undefined;
	for (let i = 0; i < o.reps; i++) {
		// interleaved, the order alternating, so that drift in the machine's speed hits both alike
		const pair = i % 2 === 0 ? ["jq", "ftguard"] : ["ftguard", "jq"];
		for (const which of pair) {
			if (which === "jq") jq.push(runJq(file));
			else {
				const r = runFtguard(file, dir, o.threads);
				ours.push(r);
				report = r.report;
			}
		}
		const a = ours.at(-1) as Run;
		const b = jq.at(-1) as Run;
		process.stderr.write(
			`  ${name} rep ${i + 1}: ftguard ${f2(a.wallS)} s (${f1(bytes / 1e6 / a.wallS)} MB/s, cpu ${f2(a.cpuS)} s, rss ${f1(a.rssMB)} MB), jq ${f2(b.wallS)} s (${f1(bytes / 1e6 / b.wallS)} MB/s)\n`,
		);
	}
	const oursS = median(ours.map((r) => r.wallS));
	const jqS = median(jq.map((r) => r.wallS));
	const byId: Record<string, number> = {};
	for (const f of report?.findings ?? []) byId[f.id] = (byId[f.id] ?? 0) + f.records.length;
	return {
		scenario: name,
		file_mb: Math.round(bytes / 1e5) / 10,
		records,
		bytes_per_record: Math.round(bytes / records),
		ftguard: {
			seconds: oursS,
			mb_per_s: bytes / 1e6 / oursS,
			records_per_s: Math.round(records / oursS),
			cpu_us_per_record: (median(ours.map((r) => r.cpuS)) * 1e6) / records,
			peak_rss_mb: Math.max(...ours.map((r) => r.rssMB)),
			second_pass_ms: report?.timings.second_pass_ms,
			findings: byId,
			flagged_records: report?.flagged_records.length,
		},
		jq: {
			seconds: jqS,
			mb_per_s: bytes / 1e6 / jqS,
			cpu_us_per_record: (median(jq.map((r) => r.cpuS)) * 1e6) / records,
		},
		ratio: jqS / oursS,
	};
}

async function main(): Promise<void> {
	const o = parseArgs(process.argv.slice(2));
	if (o.generate !== undefined) {
		const g = generateChat(
			o.generate,
			o.records !== undefined ? { records: o.records, poison: o.poison } : { bytes: o.sizeMib * MiB, poison: o.poison },
		);
		console.log(JSON.stringify(g));
		return;
	}
	if (spawnSync("jq", ["--version"]).status !== 0 && o.records === undefined)
		throw new Error("jq is not installed (apt-get install jq)");
	const dir = mkdtempSync(join(o.dir, "ftguard-bench-dataset-"));
	process.stderr.write(`bench:dataset: ${cpus().length} cores (${cpus()[0]?.model ?? "?"}), files in ${dir}\n`);
	try {
		if (o.records !== undefined) {
			// the memory run: N records, one ftguard run, its peak RSS
			const file = join(dir, "memory.jsonl");
			const g = generateChat(file, { records: o.records });
			process.stderr.write(`  generated ${g.records} records, ${f1(g.bytes / 1e6)} MB\n`);
			warm(file);
			const r = runFtguard(file, dir, o.threads);
			const result = {
				scenario: "memory",
				records: g.records,
				file_mb: Math.round(g.bytes / 1e5) / 10,
				seconds: r.wallS,
				mb_per_s: g.bytes / 1e6 / r.wallS,
				peak_rss_mb: r.rssMB,
				rss_bytes_per_record: (r.rssMB * 1e6) / g.records,
				findings: r.report.findings.length,
			};
			console.log(JSON.stringify(result, null, 2));
			console.log(
				`peak RSS ${f1(r.rssMB)} MB at ${g.records} records (target < ${RSS_TARGET_MB} MB): ${mark(r.rssMB < RSS_TARGET_MB)}`,
			);
			return;
		}
		const clean = join(dir, "clean.jsonl");
		const gc = generateChat(clean, { bytes: o.sizeMib * MiB });
		process.stderr.write(`  clean: ${gc.records} records, ${f1(gc.bytes / 1e6)} MB\n`);
		const results = [scenario("clean", clean, gc.records, o, dir)];
		rmSync(clean, { force: true });
		if (o.poison > 0) {
			const poisoned = join(dir, "poisoned.jsonl");
			const gp = generateChat(poisoned, { bytes: (o.poisonMib ?? o.sizeMib) * MiB, poison: o.poison, seed: 17 });
			process.stderr.write(`  poisoned: ${gp.records} records, ${gp.poisoned} poisoned, ${f1(gp.bytes / 1e6)} MB\n`);
			const r = scenario("poisoned", poisoned, gp.records, o, dir);
			results.push({ ...r, poisoned: gp.poisoned });
			rmSync(poisoned, { force: true });
		}
		console.log(JSON.stringify(results, null, 2));
		const c = results[0] as { ftguard: { mb_per_s: number }; jq: { mb_per_s: number }; ratio: number };
		console.log(
			`clean: ftguard ${f1(c.ftguard.mb_per_s)} MB/s, jq ${f1(c.jq.mb_per_s)} MB/s — ≥ jq: ${mark(c.ratio >= 1)} (×${f2(c.ratio)}); ≥ ${TARGET_MBPS} MB/s: ${mark(c.ftguard.mb_per_s >= TARGET_MBPS)}`,
		);
	} finally {
		if (!o.keep) rmSync(dir, { recursive: true, force: true });
	}
}

await main();
