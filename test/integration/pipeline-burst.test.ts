/**
 * A burst against reserved concurrency: 30 artefacts committed at once to the local pipeline, whose scan functions
 * each run at most 2 invocations at a time (the stack's reservedConcurrency, enforced by the local runner as Lambda
 * does: Lambda.TooManyRequestsException). Every artefact must get its own correct verdict — signed copies
 * PROMOTABLE, tampered ones QUARANTINED by the signature — and no object may be left SCANNING: a throttle is a wait,
 * never a quarantine. The retry waits are shortened (100 ms each, as retryIntervalOverrides does), so what is tested
 * is the definition's throttle budget in attempts; state-machine.test.ts checks it in seconds against the execution
 * timeout. With the earlier budget (6 attempts, about two minutes) this test fails: throttled scans are quarantined.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LAMBDA_STATE, StateName } from "../../lib/infra/state-machine";
import { BURST_EXPECTED, burstPolicy, runBurst } from "../../lib/local/burst";
import { createDemoSigner } from "../../lib/local/demo-signer";
import { LocalPipeline } from "../../lib/local/pipeline";
import { LAMBDA_HANDLERS, type TaskHandler } from "../../lib/local/runner";
import { REPO } from "../helpers/cli";

const RESERVED = 2;
const N = 30;
const signer = createDemoSigner();
let throttles = 0;
/** the most invocations of each step seen running at once */
const peak: Record<string, number> = {};
const running: Record<string, number> = {};

const counted =
	(step: keyof typeof LAMBDA_HANDLERS): TaskHandler =>
	async (input) => {
		running[step] = (running[step] ?? 0) + 1;
		peak[step] = Math.max(peak[step] ?? 0, running[step] ?? 0);
		try {
			return await LAMBDA_HANDLERS[step](input);
		} finally {
			running[step] = (running[step] ?? 1) - 1;
		}
	};

let pipeline: LocalPipeline;
beforeAll(async () => {
	process.env.POWERTOOLS_METRICS_DISABLED = "true";
	process.env.POWERTOOLS_LOG_LEVEL = "SILENT";
	pipeline = await LocalPipeline.start({
		policy: burstPolicy(signer),
		reservedConcurrency: RESERVED,
		onThrottle: () => {
			throttles += 1;
		},
		lambdaOverrides: Object.fromEntries(
			(Object.keys(LAMBDA_HANDLERS) as (keyof typeof LAMBDA_HANDLERS)[]).map((s) => [s, counted(s)]),
		),
		retryIntervalOverrides: Object.fromEntries(
			[...Object.values(LAMBDA_STATE), StateName.RECORD_QUARANTINE].map((s) => [s, 100]),
		),
	});
}, 60_000);
afterAll(async () => pipeline?.close());

describe("a burst of commits against reserved concurrency", () => {
	it("gives every artefact its correct verdict, leaves nothing SCANNING, and never runs more than the reserved number", async () => {
		expect(Object.values(pipeline.definition.reservedConcurrency)).toEqual(Array(6).fill(RESERVED));
		const r = await runBurst(pipeline, { n: N, examples: join(REPO, "examples"), signer, timeoutMs: 50_000 });
		expect(r.missing).toEqual([]);
		expect(r.wrong).toEqual([]);
		expect(r.stuck).toEqual([]);
		expect(r.byKind.signed).toEqual({ expected: BURST_EXPECTED.signed, count: N / 2, got: { PROMOTABLE: N / 2 } });
		expect(r.byKind.tampered).toEqual({ expected: BURST_EXPECTED.tampered, count: N / 2, got: { QUARANTINED: N / 2 } });
		// the burst really was throttled, and the limit held
		expect(throttles).toBeGreaterThan(N);
		for (const [step, n] of Object.entries(peak)) expect(n, step).toBeLessThanOrEqual(RESERVED);
		expect(peak.mark).toBe(RESERVED);
	}, 60_000);
});
