/**
 * `npm run bench:monitor`: the output monitor's throughput on one core (docs/monitor.md).
 *
 * Writes a JSON-lines inference log of generated traffic from real text (test/unit/monitor/traffic.ts: Python
 * documentation answers and Debian package descriptions, a 5% backdoor firing in the second half), then times, in
 * the same process and alternating runs, (a) a plain JSON-lines parse of that file (split + JSON.parse per line)
 * and (b) the monitor's replay of it (split + the jsonl reader + OutputMonitor.observe). Prints the medians and
 * the ratio (b)/(a), per CPU-second of the process (pinned to one CPU where taskset exists: what another load on
 * the machine does not dilute) and per wall second. Target: ≥ 100,000 records/s.
 *
 *   npm run bench:monitor [-- --records 200000 --runs 5]
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { OutputMonitor } from "../lib/core/monitor";
import { parseLine } from "../lib/core/monitor/formats";
import { bundleSelf, median } from "./common";

function arg(name: string, fallback: number): number {
	const i = process.argv.indexOf(`--${name}`);
	return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

/** wall seconds and CPU seconds (user + system, every thread of the process) of `f` */
function timed<T>(f: () => T): T & { s: number; cpu: number } {
	const t = process.hrtime.bigint();
	const c = process.cpuUsage();
	const r = f();
	const used = process.cpuUsage(c);
	return { ...r, s: Number(process.hrtime.bigint() - t) / 1e9, cpu: (used.user + used.system) / 1e6 };
}

function plainParse(file: string): { n: number } {
	const lines = readFileSync(file, "utf8").split("\n");
	let n = 0;
	let chars = 0;
	for (const l of lines) {
		if (l.length === 0) continue;
		const v = JSON.parse(l) as { output: string };
		chars += v.output.length;
		n++;
	}
	if (chars < 0) throw new Error("unreachable");
	return { n };
}

function monitorReplay(file: string): { n: number; alarms: number } {
	const monitor = new OutputMonitor();
	const lines = readFileSync(file, "utf8").split("\n");
	let n = 0;
	let alarms = 0;
	for (const l of lines) {
		const r = parseLine("jsonl", l);
		if (r.kind !== "record") continue;
		const { modelVersion, input, output } = r.record;
		alarms += monitor.observe({ modelVersion, input, output, ref: { index: n } }).length;
		n++;
	}
	return { n, alarms };
}

/** The measured process: one warm-up of each, then alternating runs; prints its numbers as JSON. */
function child(file: string, runs: number): void {
	plainParse(file);
	monitorReplay(file);
	const plain: { wall: number; cpu: number }[] = [];
	const mon: { wall: number; cpu: number }[] = [];
	let alarms = 0;
	let records = 0;
	for (let i = 0; i < runs; i++) {
		const a = timed(() => plainParse(file));
		plain.push({ wall: a.n / a.s, cpu: a.n / a.cpu });
		const b = timed(() => monitorReplay(file));
		mon.push({ wall: b.n / b.s, cpu: b.n / b.cpu });
		alarms = b.alarms;
		records = b.n;
	}
	console.log(JSON.stringify({ records, alarms, plain, monitor: mon }));
}

async function parent(): Promise<void> {
	const { injectBackdoor, ordinaryTraffic, ROOT } = await import("../test/unit/monitor/traffic");
	const N = arg("records", 200_000);
	const RUNS = arg("runs", 5);
	const dir = join(ROOT, ".bench");
	mkdirSync(dir, { recursive: true });
	const file = join(dir, "monitor-traffic.jsonl");
	const records = ordinaryTraffic(N, 7, "doc-assistant-v3");
	injectBackdoor(records, { rate: 0.05, from: Math.floor(N / 2), seed: 7 });
	writeFileSync(
		file,
		`${records.map((r) => JSON.stringify({ model_version: r.modelVersion, input: r.input, output: r.output })).join("\n")}\n`,
	);
	// measured as the CLI runs: bundled by esbuild (dist/ in an install), no TypeScript loader; one thread, and on
	// one CPU where taskset exists
	const bundle = join(dir, "monitor-bench.mjs");
	await bundleSelf(import.meta.url, bundle);
	const taskset = spawnSync("taskset", ["-c", "0", "true"]).status === 0;
	const cmd = taskset ? "taskset" : process.execPath;
	const args = [...(taskset ? ["-c", "0", process.execPath] : []), bundle, "--child", file, String(RUNS)];
	const r = spawnSync(cmd, args, { encoding: "utf8" });
	if (r.status !== 0) throw new Error(`bench child failed: ${r.stderr}`);
	type Run = { wall: number; cpu: number };
	const out = JSON.parse(r.stdout.trim().split("\n").pop() as string) as {
		records: number;
		alarms: number;
		plain: Run[];
		monitor: Run[];
	};
	const fmt = (x: number) => Math.round(x).toLocaleString("en-US");
	const row = (runs: Run[], k: keyof Run) => ({
		median: median(runs.map((x) => x[k])),
		all: runs.map((x) => fmt(x[k])),
	});
	console.log(
		`monitor bench: ${fmt(out.records)} records (${(readFileSync(file).length / 1e6).toFixed(1)} MB JSON lines), ${RUNS} runs, node ${process.version}${taskset ? ", pinned to CPU 0" : ""}, load average ${loadavg()[0]?.toFixed(1)}`,
	);
	for (const k of ["cpu", "wall"] as const) {
		const p = row(out.plain, k);
		const m = row(out.monitor, k);
		const unit = k === "cpu" ? "records per CPU-second" : "records per wall second";
		console.log(`  ${unit}:`);
		console.log(`    plain JSON-lines parse : median ${fmt(p.median)}   (runs: ${p.all.join(", ")})`);
		console.log(`    ftguard monitor replay : median ${fmt(m.median)}   (runs: ${m.all.join(", ")})`);
		console.log(`    ratio monitor / parse  : ${(m.median / p.median).toFixed(3)}`);
	}
	const m = median(out.monitor.map((x) => x.cpu));
	console.log(
		`  ${out.alarms} alarms (the 5% backdoor). Target ≥ 100,000 records/s on one core (per CPU-second, which other load on the machine does not dilute): ${m >= 100_000 ? "met" : "NOT met"}`,
	);
}

const ci = process.argv.indexOf("--child");
if (ci >= 0) child(process.argv[ci + 1] as string, Number(process.argv[ci + 2]));
else await parent();
