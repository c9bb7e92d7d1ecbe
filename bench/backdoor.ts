/**
 * npm run bench:backdoor — full Neural Cleanse (all classes) on a fixture CNN,
 * ftguard against the PyTorch reference implementation of the same algorithm
 * (bench/reference/neural_cleanse.py), same steps, batch size, seed and thread
 * count, interleaved in one run on this machine.
 *
 *   ftguard    `ftguard backdoor <model> --detectors nc --restarts 1` (the reference
 *              has no restarts) as a CLI process; time = its in-process Neural Cleanse
 *              time (report timings.neural_cleanse_ms), also its wall time and peak RSS
 *   reference  the same algorithm in PyTorch, one class after another as the original
 *              code does; time = its in-process optimisation time ("seconds")
 *
 * Target (issue 4): ftguard's time ≤ the reference's. Prints medians, the ratio and
 * peak RSS (from /usr/bin/time -v). With --stability, also runs ftguard's default
 * search (3 restarts) over several seeds on chosen fixtures and prints the flagged
 * classes per seed under both verdict rules.
 *
 *   npm run bench:backdoor -- [--model digits8/cnn-badnets-t3-p10.onnx] [--steps 300]
 *       [--reps 3] [--threads 1] [--stability] [--seeds 0,1,2] [--json]
 *
 * With --text (issue 17): the token-level trigger search of a text classifier (all labels,
 * trigger lengths 1..3) on a fixture encoder, against bench/reference/text_trigger.py (the same
 * search in PyTorch on the same weights, tokenizer and random streams), same steps, batch, seed
 * and threads, interleaved.
 *
 *   ftguard    `ftguard backdoor <model.onnx> --texts ref.jsonl --tokenizer tokenizer.json --json
 *              --threads N` (steps, batch, seed through a policy file); time = its in-process token
 *              search (report timings.token_search_ms: graph, session and search per length, not the
 *              judging or the continuous search); peak RSS is the whole scan's
 *   reference  time = its in-process search over the same lengths ("seconds")
 *
 * Both also get their whole process's peak RSS and user + system CPU time (/usr/bin/time -v): on a
 * shared machine CPU time moves less with load than the wall-clock timings the ratio is taken of.
 *
 *   npm run bench:backdoor -- --text [--model test/fixtures/backdoor-text/backdoor-rareword-t4]
 *       [--steps 120] [--batch 16] [--seed 17] [--reps 3] [--threads 1] [--json]
 *
 * With --cost (issue 20): the default image scan's cost before and after the calibrated verdict, on a 3×16×16
 * 10-class CNN, as a user runs it (all cores), interleaved: before = the old defaults (nc,strip; Neural Cleanse
 * 300 steps × 3 restarts; ftguard rule), after = today's (nc,pairs,mm,strip; 100 × 1; pairs 60; calibrated).
 * Target: after ≤ 2 × before. Prints medians of wall and CPU time, the ratio and each run's verdict.
 *
 *   npm run bench:backdoor -- --cost [--model digits16c/cnn-badnets-t4-p10.onnx] [--reps 3] [--json]
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { isAbsolute, join } from "node:path";
import { parseArgs } from "node:util";
import { median } from "./common";

const REPO = join(import.meta.dirname, "..");
const FIX = join(REPO, "test/fixtures/backdoor");
const TEXT_FIX = join(REPO, "test/fixtures/backdoor-text");
const PYTHON = "/usr/bin/python3";
/** Debian's numpy may not find liblapack.so.3 without it (the same libraries the alternatives point to). */
const OPENBLAS = "/usr/lib/x86_64-linux-gnu/openblas-pthread";

const { values: args } = parseArgs({
	options: {
		// defaults per mode: images digits8/cnn-badnets-t3-p10.onnx, 300 steps, batch 32, seed 0;
		// --text test/fixtures/backdoor-text/backdoor-rareword-t4, 120 steps, batch 16, seed 17 (the policy's)
		model: { type: "string" },
		steps: { type: "string" },
		batch: { type: "string" },
		reps: { type: "string", default: "3" },
		threads: { type: "string", default: "1" },
		seed: { type: "string" },
		text: { type: "boolean", default: false },
		cost: { type: "boolean", default: false },
		stability: { type: "boolean", default: false },
		seeds: { type: "string", default: "0,1,2" },
		"stability-models": {
			type: "string",
			default: "digits8/cnn-badnets-t7-p3.onnx,digits8/mlp-clean-s2.onnx,digits16c/mlp-clean-s2.onnx",
		},
		json: { type: "boolean", default: false },
	},
});
const o = {
	...args,
	model:
		args.model ??
		(args.text
			? "test/fixtures/backdoor-text/backdoor-rareword-t4"
			: args.cost
				? "digits16c/cnn-badnets-t4-p10.onnx"
				: "digits8/cnn-badnets-t3-p10.onnx"),
	steps: args.steps ?? (args.text ? "120" : "300"),
	batch: args.batch ?? (args.text ? "16" : "32"),
	seed: args.seed ?? (args.text ? "17" : "0"),
};

const hasGnuTime = existsSync("/usr/bin/time");
/** JSON printed by the processes measured, navigated freely. */
type Json = ReturnType<typeof JSON.parse>;

interface Measured {
	stdout: string;
	wallS: number;
	rssMB: number;
	/** user + system CPU seconds of the whole process (from /usr/bin/time -v): steadier than wall time on a shared machine */
	cpuS: number;
	status: number | null;
	stderr: string;
}

/** Runs a command under /usr/bin/time -v (for peak RSS) and measures its wall time. */
function measure(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Measured {
	const t0 = process.hrtime.bigint();
	const r = hasGnuTime
		? spawnSync("/usr/bin/time", ["-v", cmd, ...args], { encoding: "utf8", maxBuffer: 64 << 20, env })
		: spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20, env });
	const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
	const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr ?? "");
	const cpu = (what: string) => Number(new RegExp(`${what} time \\(seconds\\): ([\\d.]+)`).exec(r.stderr ?? "")?.[1]);
	return {
		stdout: r.stdout ?? "",
		stderr: r.stderr ?? "",
		wallS,
		rssMB: m ? (Number(m[1]) * 1024) / 1e6 : Number.NaN,
		cpuS: cpu("User") + cpu("System"),
		status: r.status,
	};
}

function dataArgs(model: string): string[] {
	const family = model.split("/")[0] as string;
	return ["--data", join(FIX, family, "ref-x.npy"), "--labels", join(FIX, family, "ref-y.npy")];
}

function runFtguard(model: string, extra: string[]): { json: Json; m: Measured } {
	const m = measure(process.execPath, [
		join(REPO, "bin/ftguard.mjs"),
		"backdoor",
		join(FIX, model),
		...dataArgs(model),
		"--batch",
		o.batch,
		"--threads",
		o.threads,
		"--json",
		// a search of the bench's own steps: Neural Cleanse's rule judges (the calibrated one holds for its own search)
		"--rule",
		"ftguard",
		...extra,
	]);
	if (m.status !== 0 && m.status !== 1) throw new Error(`ftguard failed (${m.status}): ${m.stderr.slice(-500)}`);
	return { json: JSON.parse(m.stdout), m };
}

/** The reference's search settings, the same for the image and the text search. */
const searchArgs = () => ["--steps", o.steps, "--batch", o.batch, "--seed", o.seed, "--threads", o.threads, "--json"];

function runReference(model: string): { json: Json; m: Measured } {
	const m = measure(PYTHON, [
		join(REPO, "bench/reference/neural_cleanse.py"),
		join(FIX, model),
		...dataArgs(model),
		...searchArgs(),
	]);
	if (m.status !== 0) throw new Error(`reference failed (${m.status}): ${m.stderr.slice(-500)}`);
	return { json: JSON.parse(m.stdout), m };
}

/** The reference's environment: liblapack found where Debian's alternatives put it. */
function pythonEnv(): NodeJS.ProcessEnv {
	if (!existsSync(OPENBLAS)) return process.env;
	const lib = process.env.LD_LIBRARY_PATH;
	return { ...process.env, LD_LIBRARY_PATH: lib ? `${lib}:${OPENBLAS}` : OPENBLAS };
}

function preflight(): void {
	const py = spawnSync(PYTHON, ["-c", "import torch, onnx, numpy"], { encoding: "utf8", env: pythonEnv() });
	if (py.status !== 0) {
		process.stderr.write(
			"bench:backdoor needs Debian's python3-torch, python3-onnx and python3-numpy for the reference:\n  apt-get install -y python3-torch python3-onnx python3-numpy\n",
		);
		process.exit(2);
	}
	if (!existsSync(join(REPO, "dist/ftguard.mjs"))) {
		process.stderr.write("bench:backdoor: run `npm run build` first\n");
		process.exit(2);
	}
}

const fmt = (v: number, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : "n/a");

/** --text: the model directory (model.onnx, model.safetensors, config.json) from a path or a fixture name. */
function textModel(m: string): { dir: string; onnx: string; name: string } {
	const found = [isAbsolute(m) ? m : join(REPO, m), join(TEXT_FIX, m)].find((p) => existsSync(p));
	if (found === undefined) throw new Error(`--model ${m}: not found (a directory of ${TEXT_FIX} or a path)`);
	const dir = statSync(found).isDirectory() ? found : join(found, "..");
	return { dir, onnx: join(dir, "model.onnx"), name: dir.split("/").at(-1) as string };
}

function runFtguardText(onnx: string, policyFile: string): { json: Json; m: Measured } {
	const m = measure(process.execPath, [
		join(REPO, "bin/ftguard.mjs"),
		"backdoor",
		onnx,
		"--texts",
		join(TEXT_FIX, "ref.jsonl"),
		"--tokenizer",
		join(TEXT_FIX, "tokenizer.json"),
		"--policy",
		policyFile,
		"--threads",
		o.threads,
		"--json",
	]);
	if (m.status !== 0 && m.status !== 1) throw new Error(`ftguard failed (${m.status}): ${m.stderr.slice(-500)}`);
	return { json: JSON.parse(m.stdout), m };
}

function runReferenceText(dir: string): { json: Json; m: Measured } {
	const m = measure(
		PYTHON,
		[
			join(REPO, "bench/reference/text_trigger.py"),
			dir,
			"--texts",
			join(TEXT_FIX, "ref.jsonl"),
			"--tokenizer",
			join(TEXT_FIX, "tokenizer.json"),
			...searchArgs(),
		],
		pythonEnv(),
	);
	if (m.status !== 0) throw new Error(`reference failed (${m.status}): ${m.stderr.slice(-500)}`);
	return { json: JSON.parse(m.stdout), m };
}

/** `npm run bench:backdoor -- --text`: the token-level search, ftguard against the PyTorch reference. */
function mainText(): void {
	const { dir, onnx, name } = textModel(o.model);
	const reps = Number(o.reps);
	const manifest = JSON.parse(readFileSync(join(TEXT_FIX, "manifest.json"), "utf8")) as {
		models: Array<{ name: string; backdoor: { trigger: string; target: number } | null }>;
	};
	const backdoor = manifest.models.find((e) => e.name === name)?.backdoor ?? null;
	const tmp = mkdtempSync(join(tmpdir(), "bench-text-"));
	const policyFile = join(tmp, "policy.json");
	const text = { steps: Number(o.steps), batch: Number(o.batch), seed: Number(o.seed) };
	writeFileSync(policyFile, JSON.stringify({ backdoor: { text } }));
	const ours: number[] = [];
	const oursWall: number[] = [];
	const oursRss: number[] = [];
	const oursCpu: number[] = [];
	const ref: number[] = [];
	const refRss: number[] = [];
	const refWall: number[] = [];
	const refCpu: number[] = [];
	let last: { ours?: Json; ref?: Json } = {};
	process.stderr.write(
		`bench:backdoor --text ${name}: ${o.steps} steps, batch ${o.batch}, seed ${o.seed}, ${o.threads} thread(s), ${reps} reps\n`,
	);
	try {
		for (let i = 0; i < reps; i++) {
			// interleaved, so that machine load hits both alike
			const a = runFtguardText(onnx, policyFile);
			ours.push((a.json.timings.token_search_ms as number) / 1000);
			oursWall.push(a.m.wallS);
			oursRss.push(a.m.rssMB);
			oursCpu.push(a.m.cpuS);
			const b = runReferenceText(dir);
			ref.push(b.json.seconds as number);
			refRss.push(b.m.rssMB);
			refWall.push(b.m.wallS);
			refCpu.push(b.m.cpuS);
			last = { ours: a.json, ref: b.json };
			process.stderr.write(
				`  rep ${i + 1}: ftguard ${fmt(ours.at(-1) ?? Number.NaN)} s (scan wall ${fmt(a.m.wallS)} s, CPU ${fmt(a.m.cpuS)} s), reference ${fmt(ref.at(-1) ?? Number.NaN)} s (wall ${fmt(b.m.wallS)} s, CPU ${fmt(b.m.cpuS)} s)\n`,
			);
		}
	} finally {
		rmSync(tmp, { recursive: true, force: true });
	}
	const ratio = median(ours) / median(ref);
	const K = (last.ref?.trials as number) ?? 0;
	// per label: ftguard's verdict pick, the reference's best by search attack success, and the candidates both kept
	// (ftguard's search's own: the distinct tokens, pieces and [UNK] it judges besides are not the search's)
	const labels = Array.from({ length: K }, (_, k) => {
		const f = last.ours?.labels[k];
		const r = last.ref?.labels[k];
		const own = (f?.candidates ?? []).filter((c: Json) => (c.origin ?? "search") === "search");
		const mine = new Set<string>(own.map((c: Json) => `${c.length}:${c.trigger}`));
		const theirs = new Set<string>((r?.candidates ?? []).map((c: Json) => `${c.length}:${c.trigger}`));
		return {
			label: k,
			ftguard: { trigger: f?.trigger, attack_success: f?.attack_success, flagged: f?.flagged },
			reference: { trigger: r?.candidates[0]?.trigger, search_attack_success: r?.candidates[0]?.search_attack_success },
			shared_candidates: [...mine].filter((c) => theirs.has(c)).length,
			candidates: { ftguard: mine.size, reference: theirs.size },
		};
	});
	const result = {
		model: name,
		backdoor,
		settings: { ...text, threads: Number(o.threads), lengths: last.ref?.max_trigger_length, trials: K, reps },
		ftguard: {
			token_search_s: median(ours),
			scan_wall_s: median(oursWall),
			scan_cpu_s: median(oursCpu),
			peak_rss_mb: Math.max(...oursRss),
			verdict: last.ours?.verdict,
			suspect_classes: last.ours?.suspect_classes,
		},
		reference: {
			seconds: median(ref),
			wall_s: median(refWall),
			cpu_s: median(refCpu),
			per_length_seconds: last.ref?.per_length_seconds,
			peak_rss_mb: Math.max(...refRss),
			torch: last.ref?.torch,
		},
		ratio,
		target_met: ratio <= 1,
		labels,
	};
	if (o.json) {
		process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
		return;
	}
	const what = backdoor ? `backdoor ${JSON.stringify(backdoor.trigger)} → label ${backdoor.target}` : "clean";
	const lines = [
		`Token-level trigger search, ${name} (${what}), ${K} labels at once, lengths 1–${result.settings.lengths}, ${o.steps} steps, batch ${o.batch}, seed ${o.seed}, ${o.threads} thread(s); medians of ${reps}`,
		`  ${"ftguard (onnxruntime-node, gradient graph)".padEnd(44)}${fmt(median(ours))} s   scan wall ${fmt(median(oursWall))} s   scan CPU ${fmt(median(oursCpu))} s   peak RSS ${fmt(result.ftguard.peak_rss_mb, 0)} MB (whole scan)   ${result.ftguard.verdict} [${result.ftguard.suspect_classes}]`,
		`  ${`reference (PyTorch ${result.reference.torch}, same search)`.padEnd(44)}${fmt(median(ref))} s   wall ${fmt(median(refWall))} s   CPU ${fmt(median(refCpu))} s   peak RSS ${fmt(result.reference.peak_rss_mb, 0)} MB`,
		`  ratio ftguard / reference: ${fmt(ratio, 2)}  (target ≤ 1: ${ratio <= 1 ? "PASS" : "MISS"})`,
		"  label  ftguard's pick (held-out ASR, flagged)      reference's best (search ASR)       candidates in both",
		...labels.map(
			(l) =>
				`  ${String(l.label).padEnd(5)}  ${`${JSON.stringify(l.ftguard.trigger)} (${fmt(l.ftguard.attack_success, 2)}${l.ftguard.flagged ? ", flagged" : ""})`.padEnd(42)}  ${`${JSON.stringify(l.reference.trigger)} (${fmt(l.reference.search_attack_success, 2)})`.padEnd(34)}  ${l.shared_candidates}/${l.candidates.ftguard}`,
		),
	];
	process.stdout.write(`${lines.join("\n")}\n`);
}

/** --cost: the old default scan against today's, as a user runs them (all cores), interleaved. */
function mainCost(): void {
	const before = ["--detectors", "nc,strip", "--steps", "300", "--restarts", "3", "--rule", "ftguard"];
	const reps = Number(o.reps);
	const runs: Record<"before" | "after", Array<{ wall: number; cpu: number; verdict: string; suspects: number[] }>> = {
		before: [],
		after: [],
	};
	for (let i = 0; i < reps; i++)
		for (const [name, extra] of [
			["before", before],
			["after", []],
		] as const) {
			const m = measure(process.execPath, [
				join(REPO, "bin/ftguard.mjs"),
				"backdoor",
				join(FIX, o.model),
				...dataArgs(o.model),
				"--json",
				...extra,
			]);
			if (m.status !== 0 && m.status !== 1) throw new Error(`ftguard failed (${m.status}): ${m.stderr.slice(-500)}`);
			const j = JSON.parse(m.stdout);
			runs[name].push({
				wall: j.timings.total_ms / 1000,
				cpu: m.cpuS,
				verdict: j.verdict,
				suspects: j.suspect_classes,
			});
			if (!o.json)
				process.stderr.write(
					`  ${name} rep ${i + 1}: ${fmt(j.timings.total_ms / 1000)} s, ${j.verdict} [${j.suspect_classes}]\n`,
				);
		}
	const med = (k: "before" | "after", f: "wall" | "cpu") => median(runs[k].map((r) => r[f]));
	const ratio = med("after", "wall") / med("before", "wall");
	const result = {
		model: o.model,
		reps,
		before: { wall_s: med("before", "wall"), cpu_s: med("before", "cpu"), runs: runs.before },
		after: { wall_s: med("after", "wall"), cpu_s: med("after", "cpu"), runs: runs.after },
		ratio,
	};
	if (o.json) {
		process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
		return;
	}
	process.stdout.write(
		[
			`Default image scan of ${o.model}, all cores, medians of ${reps} (scan time; CPU = user + system of the process)`,
			`  before (nc,strip; NC 300 × 3; ftguard rule)               ${fmt(result.before.wall_s)} s   CPU ${fmt(result.before.cpu_s)} s   verdicts ${runs.before.map((r) => `${r.verdict}[${r.suspects}]`).join(" ")}`,
			`  after  (nc,pairs,mm,strip; NC 100 × 1, pairs 60; calibrated) ${fmt(result.after.wall_s)} s   CPU ${fmt(result.after.cpu_s)} s   verdicts ${runs.after.map((r) => `${r.verdict}[${r.suspects}]`).join(" ")}`,
			`  ratio after / before: ${fmt(ratio, 2)}  (target ≤ 2: ${ratio <= 2 ? "PASS" : "MISS"})`,
		].join("\n") + "\n",
	);
}

async function main(): Promise<void> {
	preflight();
	if (o.text) return mainText();
	if (o.cost) return mainCost();
	const model = o.model;
	const reps = Number(o.reps);
	const manifest = JSON.parse(readFileSync(join(FIX, "manifest.json"), "utf8")) as Array<{
		file: string;
		target: number | null;
	}>;
	const target = manifest.find((e) => e.file === model)?.target ?? null;
	const ours: number[] = [];
	const oursWall: number[] = [];
	const oursRss: number[] = [];
	const ref: number[] = [];
	const refRss: number[] = [];
	let last: { ours?: Json; ref?: Json } = {};
	process.stderr.write(
		`bench:backdoor ${model}: ${o.steps} steps, batch ${o.batch}, ${o.threads} thread(s), ${reps} reps\n`,
	);
	for (let i = 0; i < reps; i++) {
		// interleaved, so that machine load hits both alike
		const a = runFtguard(model, ["--detectors", "nc", "--restarts", "1", "--steps", o.steps, "--seed", o.seed]);
		ours.push((a.json.timings.neural_cleanse_ms as number) / 1000);
		oursWall.push(a.m.wallS);
		oursRss.push(a.m.rssMB);
		const b = runReference(model);
		ref.push(b.json.seconds as number);
		refRss.push(b.m.rssMB);
		last = { ours: a.json, ref: b.json };
		process.stderr.write(
			`  rep ${i + 1}: ftguard ${fmt(ours.at(-1) ?? Number.NaN)} s (wall ${fmt(a.m.wallS)} s), reference ${fmt(ref.at(-1) ?? Number.NaN)} s\n`,
		);
	}
	const ratio = median(ours) / median(ref);
	const result: Record<string, unknown> = {
		model,
		target,
		settings: { steps: Number(o.steps), batch: Number(o.batch), threads: Number(o.threads), restarts: 1, reps },
		ftguard: {
			neural_cleanse_s: median(ours),
			wall_s: median(oursWall),
			peak_rss_mb: Math.max(...oursRss),
			flagged: last.ours?.detectors.neural_cleanse.flagged_classes,
			flagged_vanilla: last.ours?.detectors.neural_cleanse.flagged_classes_vanilla,
			l1_norms: last.ours?.detectors.neural_cleanse.l1_norms,
		},
		reference: {
			seconds: median(ref),
			peak_rss_mb: Math.max(...refRss),
			flagged_vanilla: last.ref?.flagged_classes,
			l1_norms: last.ref?.l1_norms,
		},
		ratio,
		target_met: ratio <= 1,
	};

	if (o.stability) {
		const rows: Array<Record<string, unknown>> = [];
		for (const m of o["stability-models"].split(",")) {
			const t = manifest.find((e) => e.file === m)?.target ?? null;
			for (const seed of o.seeds.split(",")) {
				const r = runFtguard(m, ["--detectors", "nc", "--seed", seed]);
				const nc = r.json.detectors.neural_cleanse;
				rows.push({
					model: m,
					target: t,
					seed: Number(seed),
					flagged: nc.flagged_classes,
					flagged_vanilla: nc.flagged_classes_vanilla,
					seconds: r.json.timings.neural_cleanse_ms / 1000,
				});
				process.stderr.write(
					`  stability ${m} seed ${seed}: ftguard [${nc.flagged_classes}] vanilla [${nc.flagged_classes_vanilla}] (target ${t})\n`,
				);
			}
		}
		result.stability = rows;
	}

	if (o.json) {
		process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
		return;
	}
	const f = result.ftguard as Json;
	const r = result.reference as Json;
	const lines = [
		`Neural Cleanse, all classes, ${model} (target ${target ?? "none"}), ${o.steps} steps, batch ${o.batch}, ${o.threads} thread(s); medians of ${reps}`,
		`  ftguard (onnxruntime-node, gradient graph)  ${fmt(f.neural_cleanse_s)} s   wall ${fmt(f.wall_s)} s   peak RSS ${fmt(f.peak_rss_mb, 0)} MB   flagged [${f.flagged}] (vanilla [${f.flagged_vanilla}])`,
		`  reference (PyTorch, class by class)         ${fmt(r.seconds)} s   peak RSS ${fmt(r.peak_rss_mb, 0)} MB   flagged [${r.flagged_vanilla}] (vanilla rule)`,
		`  ratio ftguard / reference: ${fmt(ratio, 2)}  (target ≤ 1: ${ratio <= 1 ? "PASS" : "MISS"})`,
	];
	if (result.stability) {
		lines.push("", "Verdict stability across seeds (ftguard default search: 300 steps × 3 restarts):");
		for (const row of result.stability as Array<Json>)
			lines.push(
				`  ${String(row.model).padEnd(34)} seed ${row.seed}  ftguard [${row.flagged}]  vanilla [${row.flagged_vanilla}]  target ${row.target ?? "none"}  ${fmt(row.seconds)} s`,
			);
	}
	process.stdout.write(`${lines.join("\n")}\n`);
}

await main();
