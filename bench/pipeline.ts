/**
 * npm run bench:pipeline — upload → verdict latency of the local pipeline
 * (`ftguard pipeline`: s3rver, the synthesized state machine, the real handlers):
 *
 *   (a) a generated ~1 GiB signed safetensors checkpoint (no backdoor stage), timed
 *       from the commit marker's upload to its verdict, against `ftguard verify` on
 *       the same directory (a CLI process, wall time) in the same run. The data is
 *       uploaded first and flushed to disk (`sync`: S3 answers a PUT once the object
 *       is durable), neither timed as pipeline latency.
 *       Target (issue 6): pipeline ≤ 2 × verify — pipeline overhead must not dominate.
 *   (b) the small backdoored ONNX fixture with its backdoor stage (Batch job as a
 *       child process, a short Neural Cleanse).
 *
 * The pipeline runs in this process, started with the Node flags `ftguard
 * pipeline` runs with (bin/node-flags.mjs). Each stage's share comes from timing the handlers the state machine calls; the
 * backdoor share is what remains. Prints medians of --reps runs.
 *
 *   npm run bench:pipeline -- [--size-mib 1024] [--reps 3] [--json] [--without-pipeline-flags]
 *
 * With --burst N, instead: N artefacts committed at once (lib/local/burst.ts: half signed, half tampered) against the
 * stack's own reserved concurrency and retry definition, as the local runner enforces them (a throttled invoke is
 * Lambda.TooManyRequestsException). Prints the verdicts by kind (expected vs got), the objects left SCANNING (none
 * expected) and the time from the commits to the last verdict, the median of --reps runs (a fresh pipeline each).
 *
 *   npm run bench:pipeline -- --burst 100 [--reps 3] [--json]
 */
import { spawnSync } from "node:child_process";
import {
	createReadStream,
	createWriteStream,
	existsSync,
	mkdirSync,
	readFileSync,
	statSync,
	writeFileSync,
} from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { DeleteObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { PIPELINE_NODE_FLAGS, rerunWith, startedWith } from "../bin/node-flags.mjs";
import { handler as files } from "../lambdas/files";
import { handler as manifest } from "../lambdas/manifest";
import { handler as mark } from "../lambdas/mark";
import { handler as record } from "../lambdas/record";
import { handler as signature } from "../lambdas/signature";
import { buildManifest } from "../lib/core/integrity/manifest";
import { type BurstResult, burstPolicy, runBurst } from "../lib/local/burst";
import { demoSetup, TRUSTED_BUCKET } from "../lib/local/demo";
import { createDemoSigner } from "../lib/local/demo-signer";
import { LocalPipeline } from "../lib/local/pipeline";
import type { TaskHandler } from "../lib/local/runner";
import { median } from "./common";

const REPO = join(import.meta.dirname, "..");
const { values: o } = parseArgs({
	options: {
		"size-mib": { type: "string", default: "1024" },
		reps: { type: "string", default: "3" },
		json: { type: "boolean", default: false },
		// for the comparison: the pipeline under Node's default GC, not as `ftguard pipeline` runs it
		"without-pipeline-flags": { type: "boolean", default: false },
		burst: { type: "string" },
	},
});
const sizeMib = Number(o["size-mib"]);
const reps = Number(o.reps);

/** A valid safetensors file of about `mib` MiB (one F32 tensor), written in 8 MiB blocks. */
async function writeSafetensors(path: string, mib: number): Promise<void> {
	const n = Math.floor((mib * 1024 * 1024) / 4);
	const header = Buffer.from(JSON.stringify({ weight: { dtype: "F32", shape: [n], data_offsets: [0, n * 4] } }));
	const len = Buffer.alloc(8);
	len.writeBigUInt64LE(BigInt(header.length));
	const fh = await open(path, "w");
	try {
		await fh.write(Buffer.concat([len, header]));
		const block = Buffer.alloc(8 * 1024 * 1024);
		for (let i = 0; i < block.length; i += 4) block.writeFloatLE(Math.sin(i), i);
		let left = n * 4;
		while (left > 0) {
			const k = Math.min(left, block.length);
			await fh.write(block.subarray(0, k));
			left -= k;
		}
	} finally {
		await fh.close();
	}
}

const STEPS = ["mark", "manifest", "signature", "files", "decide", "record"] as const;
type Step = (typeof STEPS)[number];
const REAL: Record<Exclude<Step, "decide">, TaskHandler> = {
	mark: (e) => mark(e),
	manifest: (e) => manifest(e),
	signature: (e) => signature(e),
	files: (e) => files(e),
	record: (e) => record(e),
};

async function put(s3: S3Client, bucket: string, key: string, body: Uint8Array | string): Promise<void> {
	await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
}

async function main(): Promise<void> {
	const work = join(REPO, ".bench/pipeline");
	const dir = join(work, `ckpt-${sizeMib}m`);
	mkdirSync(dir, { recursive: true });
	const weights = join(dir, "model.safetensors");
	if (!existsSync(weights) || statSync(weights).size < sizeMib * 1024 * 1024) {
		process.stderr.write(`bench:pipeline: writing ${sizeMib} MiB checkpoint to ${dir}\n`);
		await writeSafetensors(weights, sizeMib);
		writeFileSync(join(dir, "config.json"), JSON.stringify({ model_type: "bench", hidden_size: 8 }));
	}
	const signer = createDemoSigner();
	writeFileSync(join(dir, "model.sig"), signer.signManifest(await buildManifest(dir, { ignorePaths: ["model.sig"] })));
	const pub = join(work, "signer.pub.pem");
	writeFileSync(pub, signer.publicKeyPem);

	// (a) reference: ftguard verify on the same directory, a CLI process
	const verifyS: number[] = [];
	for (let i = 0; i < reps; i++) {
		const t0 = process.hrtime.bigint();
		const r = spawnSync(
			process.execPath,
			[join(REPO, "bin/ftguard.mjs"), "verify", dir, "--signature", join(dir, "model.sig"), "--public-key", pub],
			{ encoding: "utf8" },
		);
		if (r.status !== 0) throw new Error(`ftguard verify failed (${r.status}): ${r.stderr}`);
		verifyS.push(Number(process.hrtime.bigint() - t0) / 1e9);
	}

	const setup = demoSetup(REPO, signer);
	const timings = new Map<string, Partial<Record<Step, number>>>();
	const timed =
		(step: Step, h: TaskHandler): TaskHandler =>
		async (input) => {
			const t0 = performance.now();
			try {
				return await h(input);
			} finally {
				const id = (input as { scanId?: string }).scanId ?? "?";
				const t = timings.get(id) ?? {};
				t[step] = (t[step] ?? 0) + (performance.now() - t0) / 1000;
				timings.set(id, t);
			}
		};
	const { handler: decide } = await import("../lambdas/decide");
	const pipeline = await LocalPipeline.start({
		port: 0,
		policy: setup.policy,
		extraBuckets: [TRUSTED_BUCKET],
		handlerLog: createWriteStream(join(work, "handlers.log")),
		lambdaOverrides: {
			mark: timed("mark", REAL.mark),
			manifest: timed("manifest", REAL.manifest),
			signature: timed("signature", REAL.signature),
			files: timed("files", REAL.files),
			decide: timed("decide", (e) => decide(e)),
			record: timed("record", REAL.record),
		},
	});
	const s3 = pipeline.server.client;
	const bucket = pipeline.definition.buckets.checkpoints;
	await setup.prepare(s3);
	const rows: Array<{
		scenario: string;
		total: number;
		upload: number;
		stages: Partial<Record<Step, number>>;
		status: string;
	}> = [];
	const seenB: string[] = [];
	try {
		for (let i = 0; i < reps; i++) {
			// (a) the big checkpoint: data first (not timed as pipeline latency), then the marker
			const prefix = `bench/a${i}/`;
			const tu = performance.now();
			// streamed, as the AWS CLI uploads a big file (no 1 GiB buffer in this process)
			for (const n of ["config.json", "model.safetensors"]) {
				const file = join(dir, n);
				await s3.send(
					new PutObjectCommand({
						Bucket: bucket,
						Key: `${prefix}${n}`,
						Body: createReadStream(file),
						ContentLength: statSync(file).size,
					}),
				);
			}
			// S3 answers a PUT once the object is durable; s3rver answers with the bytes still dirty in the page
			// cache, and their writeback would run during the scan. Flush them first, as S3 would have: the same
			// state `ftguard verify` reads its directory in (cached, clean).
			spawnSync("sync");
			const upload = (performance.now() - tu) / 1000;
			const t0 = performance.now();
			await put(s3, bucket, `${prefix}model.sig`, readFileSync(join(dir, "model.sig")));
			const v = await pipeline.waitForVerdict(`${prefix}model.sig`, 600_000);
			rows.push({
				scenario: "a",
				total: (performance.now() - t0) / 1000,
				upload,
				stages: timings.get(v.scanId) ?? {},
				status: v.status,
			});
			// each rep's 1 GiB goes once its verdict is in: reps measure the same state, not a growing store
			for (const n of ["config.json", "model.safetensors", "model.sig"]) {
				await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: `${prefix}${n}` }));
			}
			// (b) the small ONNX model with the backdoor stage
			const c = setup.cases.find((x) => x.name === "backdoor");
			if (c) {
				const tb = performance.now();
				const marker = await c.upload(s3, bucket);
				// the same marker key each rep: wait for this upload's scan, not an earlier one's verdict
				const vb = await pipeline.waitForVerdict(marker, 600_000, seenB);
				seenB.push(vb.scanId);
				rows.push({
					scenario: "b",
					total: (performance.now() - tb) / 1000,
					upload: 0,
					stages: timings.get(vb.scanId) ?? {},
					status: vb.status,
				});
			}
			process.stderr.write(
				`  rep ${i + 1}: (a) ${rows.at(-2)?.total.toFixed(2)} s, (b) ${rows.at(-1)?.total.toFixed(2)} s\n`,
			);
		}
	} finally {
		await pipeline.close();
	}

	const summary = (scenario: string) => {
		const rs = rows.filter((r) => r.scenario === scenario);
		const total = median(rs.map((r) => r.total));
		const stage = Object.fromEntries(STEPS.map((s) => [s, median(rs.map((r) => r.stages[s] ?? 0))])) as Record<
			Step,
			number
		>;
		const handlers = STEPS.reduce((a, s) => a + stage[s], 0);
		const totals = rs.map((r) => r.total);
		return {
			total,
			min: Math.min(...totals),
			max: Math.max(...totals),
			stage,
			other: Math.max(0, total - handlers),
			statuses: rs.map((r) => r.status),
		};
	};
	const a = summary("a");
	const b = summary("b");
	const verify = median(verifyS);
	const ratio = a.total / verify;
	const flags = PIPELINE_NODE_FLAGS.filter((f) => process.execArgv.includes(f));
	const result = {
		nodeFlags: flags,
		sizeMib,
		reps,
		verify_s: verify,
		a: { ...a, ratio, target: "≤ 2 × verify", pass: ratio <= 2 },
		b,
	};
	if (o.json) {
		process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
		return;
	}
	const pct = (x: number, t: number) => `${((100 * x) / t).toFixed(0)}%`;
	const lines = [
		`local pipeline (${flags.length ? `node ${flags.join(" ")}` : "Node's default GC"}), upload → verdict (marker upload to recorded verdict); medians of ${reps}`,
		`(a) ${sizeMib} MiB signed safetensors checkpoint: ${a.total.toFixed(2)} s  vs  ftguard verify ${verify.toFixed(2)} s  → ${ratio.toFixed(2)}× (target ≤ 2: ${ratio <= 2 ? "PASS" : "MISS"})  [${a.statuses.join(", ")}]`,
		// this box's run-to-run spread is as large as the margin: show it, and the best ratio
		`    spread: pipeline ${a.min.toFixed(2)}–${a.max.toFixed(2)} s, verify ${Math.min(...verifyS).toFixed(2)}–${Math.max(...verifyS).toFixed(2)} s; best pipeline / median verify ${(a.min / verify).toFixed(2)}×`,
		`    stages: ${STEPS.map((s) => `${s} ${a.stage[s].toFixed(2)} s (${pct(a.stage[s], a.total)})`).join(", ")}, orchestration ${a.other.toFixed(2)} s (${pct(a.other, a.total)})`,
		`(b) backdoored ONNX model with the backdoor stage: ${b.total.toFixed(2)} s  [${b.statuses.join(", ")}]`,
		`    stages: ${STEPS.map((s) => `${s} ${b.stage[s].toFixed(2)} s`).join(", ")}, backdoor job + orchestration ${b.other.toFixed(2)} s (${pct(b.other, b.total)})`,
	];
	process.stdout.write(`${lines.join("\n")}\n`);
}

/** --burst N: N commits at once, every verdict checked, time to the last one. */
async function burst(n: number): Promise<void> {
	if (!Number.isInteger(n) || n < 1) throw new Error(`--burst takes a positive integer (got ${o.burst})`);
	const signer = createDemoSigner();
	const runs: (BurstResult & { throttles: number; reserved: Record<string, number> })[] = [];
	mkdirSync(join(REPO, ".bench"), { recursive: true });
	let throttles = 0;
	// one pipeline for every rep (the handlers keep their S3 client per process, as a Lambda container does)
	const pipeline = await LocalPipeline.start({
		port: 0,
		policy: burstPolicy(signer),
		handlerLog: createWriteStream(join(REPO, ".bench/pipeline-burst-handlers.log")),
		onThrottle: () => {
			throttles += 1;
		},
	});
	try {
		for (let i = 0; i < reps; i++) {
			throttles = 0;
			const prefix = `burst/rep-${i + 1}/`;
			const r = await runBurst(pipeline, { n, examples: join(REPO, "examples"), signer, prefix });
			runs.push({ ...r, throttles, reserved: pipeline.definition.reservedConcurrency });
			const ok = r.wrong.length === 0 && r.stuck.length === 0 && r.missing.length === 0;
			process.stderr.write(
				`  rep ${i + 1}: last verdict ${r.lastVerdictS.toFixed(2)} s, ${throttles} throttled invokes, ${ok ? "all correct" : "WRONG"}\n`,
			);
		}
	} finally {
		await pipeline.close();
	}
	const last = runs.at(-1) as (typeof runs)[number];
	const pass = runs.every((r) => r.wrong.length === 0 && r.stuck.length === 0 && r.missing.length === 0);
	const times = runs.map((r) => r.lastVerdictS);
	const result = {
		artefacts: n,
		reps,
		reservedConcurrency: last.reserved,
		lastVerdict_s: { median: median(times), min: Math.min(...times), max: Math.max(...times) },
		throttledInvokes: runs.map((r) => r.throttles),
		byKind: last.byKind,
		wrong: runs.flatMap((r) => r.wrong),
		stuckScanning: runs.flatMap((r) => r.stuck),
		missing: runs.flatMap((r) => r.missing),
		pass,
	};
	if (o.json)
		process.stdout.write(`${JSON.stringify(result, null, 2)}
`);
	else {
		const kinds = Object.entries(last.byKind).map(
			([k, v]) =>
				`    ${k}: ${v.count} artefacts, expected ${v.expected}, got ${Object.entries(v.got)
					.map(([s, c]) => `${s} ${c}`)
					.join(", ")}`,
		);
		process.stdout.write(
			`${[
				`local pipeline burst: ${n} artefacts committed at once; reserved concurrency per step ${JSON.stringify(last.reserved)}`,
				`  time to the last verdict: ${result.lastVerdict_s.median.toFixed(2)} s (median of ${reps}; ${result.lastVerdict_s.min.toFixed(2)}–${result.lastVerdict_s.max.toFixed(2)} s)`,
				`  verdicts by kind (last rep):`,
				...kinds,
				`  wrong verdicts: ${result.wrong.length}; left SCANNING: ${result.stuckScanning.length}; no verdict: ${result.missing.length}; throttled invokes per rep: ${result.throttledInvokes.join(", ")}`,
				`  ${pass ? "PASS" : "FAIL"}`,
				...result.wrong.slice(0, 5).map((w) => `    wrong: ${w.marker} ${w.status} ${w.reasons.join("; ")}`),
				...result.stuckScanning.slice(0, 5).map((s) => `    stuck: ${s}`),
			].join("\n")}\n`,
		);
	}
	if (!pass) process.exitCode = 1;
}

const run = o.burst !== undefined ? () => burst(Number(o.burst)) : main;

// The pipeline runs in this process: give it the V8 flags `ftguard pipeline` runs with (bin/node-flags.mjs),
// so that what is measured is what users run. (`ftguard verify`, the reference, is spawned as users run it.)
if (o["without-pipeline-flags"] || startedWith(PIPELINE_NODE_FLAGS)) await run();
else rerunWith(PIPELINE_NODE_FLAGS);
