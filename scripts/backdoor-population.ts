/**
 * npm run calibrate:backdoor — scans every model of the calibration population
 * (test/fixtures/backdoor-wide/manifest.json, made by make_population.py) with
 * `ftguard backdoor --json` as a user would (default policy unless --policy), two
 * processes at a time with one thread each, and writes what the calibrated verdict
 * is fitted on and tested against: per model, the detectors' per-class statistics
 * and the verdict (test/fixtures/backdoor-wide/scan-results.json).
 *
 *   npm run calibrate:backdoor -- [--jobs 2] [--policy p.json] [--only <substring>] [--out file.json]
 *       [--manifest other-manifest.json] [--resume]
 *
 * With --fit it scans nothing: it fits the calibrations on the fit split's clean models of that
 * file (lib/core/backdoor/calibration-fit.ts) and prints, per split and kind, the models judged
 * right under each detector set, and every model judged wrong.
 *
 *   npm run calibrate:backdoor -- --fit [--results file.json] [--false-alarm-rate 0.01] [--write]
 *
 * --write also writes the policy's calibrated rule's table (lib/core/backdoor/calibration-table.ts) from the
 * default detector sets' fits (calibration-fit.ts DEFAULT_SETS).
 */
import { spawn, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { type Calibration, calibratedSearch } from "../lib/core/backdoor/calibration";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");
if (process.argv.includes("--help") || process.argv.includes("-h")) {
	// the usage is this file's opening comment: print it rather than start a quarter-hour scan
	const head = readFileSync(new URL(import.meta.url), "utf8").split("*/")[0] ?? "";
	process.stdout.write(`${head.replace(/^\/\*\*\n?/, "").replace(/^ \* ?/gm, "")}\n`);
	process.exit(0);
}
const DIR = join(ROOT, "test/fixtures/backdoor-wide");
const arg = (name: string) => {
	const i = process.argv.indexOf(name);
	return i >= 0 ? process.argv[i + 1] : undefined;
};
const jobs = Number(arg("--jobs") ?? 2);
const policy = arg("--policy");
const only = arg("--only");
const out = arg("--out") ?? join(DIR, "scan-results.json");

interface Entry {
	file: string;
	dataset: string;
	kind: string;
	split: string;
	[k: string]: unknown;
}
// the fit split's clean models first (the calibration is fitted on them alone), then the test split's clean models
// and the backdoored ones alternately, so that a partial run measures both rates
const order = new Map<string, number>();
const rank = (m: Entry) => order.get(m.file) ?? 0;
const manifest = (JSON.parse(readFileSync(arg("--manifest") ?? join(DIR, "manifest.json"), "utf8")) as Entry[])
	.filter((m) => only === undefined || m.file.includes(only))
	.map((m, i, all) => {
		const group = all.filter(
			(o) => (o.kind === "clean" && o.split === "fit") === (m.kind === "clean" && m.split === "fit"),
		);
		const sameKind = group.filter((o) => (o.kind === "clean") === (m.kind === "clean"));
		order.set(
			m.file,
			m.kind === "clean" && m.split === "fit" ? i : 1000 + 2 * sameKind.indexOf(m) + (m.kind === "clean" ? 0 : 1),
		);
		return m;
	})
	.sort((a, b) => rank(a) - rank(b));

function scan(m: Entry): Promise<Record<string, unknown>> {
	const dataDir = join(DIR, m.dataset);
	const args = [
		join(ROOT, "bin/ftguard.mjs"),
		"backdoor",
		join(DIR, m.file),
		"--data",
		join(dataDir, "ref-x.npy"),
		"--labels",
		join(dataDir, "ref-y.npy"),
		"--json",
		"--threads",
		"1",
		...(policy ? ["--policy", policy] : []),
	];
	return new Promise((done, fail) => {
		const p = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
		let stdout = "";
		let stderr = "";
		p.stdout.on("data", (d) => {
			stdout += d;
		});
		p.stderr.on("data", (d) => {
			stderr += d;
		});
		p.on("close", (code) => {
			if (code !== 0 && code !== 1) return fail(new Error(`${m.file}: exit ${code}: ${stderr.trim()}`));
			const r = JSON.parse(stdout);
			const d = r.detectors;
			done({
				file: m.file,
				verdict: r.verdict,
				suspect_classes: r.suspect_classes,
				num_classes: r.model.num_classes,
				mask_size: d.neural_cleanse?.mask_size,
				nc_l1: d.neural_cleanse?.l1_norms,
				nc_concentration: d.neural_cleanse?.concentration,
				// Neural Cleanse's own (ftguard) rule's flags: reported whichever rule decides
				nc_ftguard_flagged: d.neural_cleanse?.flagged_classes,
				pairs_l1: d.neural_cleanse_pairs?.l1,
				margins: d.max_margin?.margins,
				natural_margins: d.max_margin?.natural_margins,
				strip_fraction: d.strip?.reversed_triggers?.map((t: { fraction_below: number }) => t.fraction_below),
				calibrated: d.calibrated,
				// the search the statistics come from: the calibration holds for it
				search: calibratedSearch(r.policy),
				timings: r.timings,
			});
		});
	});
}

if (process.argv.includes("--fit")) {
	const { loadPopulation } = await import("../test/helpers/backdoor-population");
	const { fitAll, judgePopulation, rates, DEFAULT_SETS, tableSource } = await import(
		"../lib/core/backdoor/calibration-fit"
	);
	const { populationSearch } = await import("../test/helpers/backdoor-population");
	const models = loadPopulation(arg("--results"), arg("--manifest"));
	const cals = fitAll(models, "test/fixtures/backdoor-wide (fit split, clean)", populationSearch(arg("--results")));
	const rate = Number(arg("--false-alarm-rate") ?? 0.01);
	const sets: Array<[string, Calibration | Calibration[]]> = [
		...Object.entries(cals),
		// as the policy judges: its tables, the relative one for a model outside the population (judgeModel)
		[`policy (${DEFAULT_SETS.join(", ")} beyond the shift limit)`, DEFAULT_SETS.map((k) => cals[k] as Calibration)],
	];
	for (const [key, cal] of sets) {
		const outcomes = judgePopulation(models, cal, rate);
		process.stdout.write(`\n${key} (false-alarm rate ${rate}):\n`);
		for (const [k, r] of Object.entries(rates(outcomes)).sort())
			process.stdout.write(
				`  ${k}: ${r.correct}/${r.models}${r.uncheckable > 0 ? ` (could not check: ${r.uncheckable})` : ""}\n`,
			);
		for (const o of outcomes.filter((x) => !x.correct))
			process.stdout.write(
				`  wrong: ${o.split} ${o.file} targets [${o.targets}] flagged [${o.flagged}] min p ${o.minP.toPrecision(2)}${o.outside ? " (outside: relative statistics)" : ""}\n`,
			);
		// a backdoored model caught, but with classes that are not its targets named too
		for (const o of outcomes.filter((x) => x.correct && x.kind !== "clean" && x.wrong.length > 0))
			process.stdout.write(
				`  also named: ${o.split} ${o.file} targets [${o.targets}] flagged [${o.flagged}] (not targets: [${o.wrong}])\n`,
			);
	}
	if (process.argv.includes("--write")) {
		const table = join(ROOT, "lib/core/backdoor/calibration-table.ts");
		writeFileSync(table, tableSource(DEFAULT_SETS.map((k) => cals[k] as NonNullable<(typeof cals)[string]>)));
		spawnSync(process.execPath, [join(ROOT, "node_modules/@biomejs/biome/bin/biome"), "format", "--write", table], {
			stdio: "inherit",
		});
		process.stdout.write(`\nwrote ${table} (${DEFAULT_SETS.join(", ")})\n`);
	}
	process.exit(0);
}

// --resume: keep what an earlier run of the same output measured
const results: Array<Record<string, unknown>> = process.argv.includes("--resume")
	? (JSON.parse(readFileSync(out, "utf8")) as { results: Array<Record<string, unknown>> }).results
	: [];
const done = new Set(results.map((r) => r.file));
const todo = manifest.filter((m) => !done.has(m.file));
let next = 0;
const t0 = performance.now();
await Promise.all(
	Array.from({ length: jobs }, async () => {
		while (next < todo.length) {
			const m = todo[next++] as Entry;
			const r = await scan(m);
			results.push(r);
			// written after every model, so an interrupted run keeps what it measured
			writeFileSync(out, `${JSON.stringify({ policy: policy ?? "default", results }, null, 1)}\n`);
			process.stderr.write(
				`${results.length}/${manifest.length} ${m.file} ${m.kind} → ${r.verdict} ${JSON.stringify(r.suspect_classes)} (${Math.round(Number((r.timings as Record<string, number>).total_ms) / 1000)} s)\n`,
			);
		}
	}),
);
results.sort((a, b) => String(a.file).localeCompare(String(b.file)));
writeFileSync(out, `${JSON.stringify({ policy: policy ?? "default", results }, null, 1)}\n`);
process.stderr.write(`wrote ${out} (${results.length} models, ${Math.round((performance.now() - t0) / 1000)} s)\n`);
