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
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { median } from "./common";

const REPO = join(import.meta.dirname, "..");
const FIX = join(REPO, "test/fixtures/backdoor");
const PYTHON = "/usr/bin/python3";

const { values: o } = parseArgs({
	options: {
		model: { type: "string", default: "digits8/cnn-badnets-t3-p10.onnx" },
		steps: { type: "string", default: "300" },
		batch: { type: "string", default: "32" },
		reps: { type: "string", default: "3" },
		threads: { type: "string", default: "1" },
		seed: { type: "string", default: "0" },
		stability: { type: "boolean", default: false },
		seeds: { type: "string", default: "0,1,2" },
		"stability-models": {
			type: "string",
			default: "digits8/cnn-badnets-t7-p3.onnx,digits8/mlp-clean-s2.onnx,digits16c/mlp-clean-s2.onnx",
		},
		json: { type: "boolean", default: false },
	},
});

const hasGnuTime = existsSync("/usr/bin/time");
/** JSON printed by the processes measured, navigated freely. */
type Json = ReturnType<typeof JSON.parse>;

interface Measured {
	stdout: string;
	wallS: number;
	rssMB: number;
	status: number | null;
	stderr: string;
}

/** Runs a command under /usr/bin/time -v (for peak RSS) and measures its wall time. */
function measure(cmd: string, args: string[]): Measured {
	const t0 = process.hrtime.bigint();
	const r = hasGnuTime
		? spawnSync("/usr/bin/time", ["-v", cmd, ...args], { encoding: "utf8", maxBuffer: 64 << 20 })
		: spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20 });
	const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
	const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr ?? "");
	return {
		stdout: r.stdout ?? "",
		stderr: r.stderr ?? "",
		wallS,
		rssMB: m ? (Number(m[1]) * 1024) / 1e6 : Number.NaN,
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
		...extra,
	]);
	if (m.status !== 0 && m.status !== 1) throw new Error(`ftguard failed (${m.status}): ${m.stderr.slice(-500)}`);
	return { json: JSON.parse(m.stdout), m };
}

function runReference(model: string): { json: Json; m: Measured } {
	const m = measure(PYTHON, [
		join(REPO, "bench/reference/neural_cleanse.py"),
		join(FIX, model),
		...dataArgs(model),
		"--steps",
		o.steps,
		"--batch",
		o.batch,
		"--seed",
		o.seed,
		"--threads",
		o.threads,
		"--json",
	]);
	if (m.status !== 0) throw new Error(`reference failed (${m.status}): ${m.stderr.slice(-500)}`);
	return { json: JSON.parse(m.stdout), m };
}

function preflight(): void {
	const py = spawnSync(PYTHON, ["-c", "import torch, onnx, numpy"], { encoding: "utf8" });
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

async function main(): Promise<void> {
	preflight();
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
