import "../../lib/local/with-resolvers.js";
import { createRequire } from "node:module";
import { StateMachine } from "aws-local-stepfunctions";
import { beforeAll, describe, expect, it } from "vitest";
import type { ScanState } from "../../lib/core/pipeline/types.js";
import {
	backdoorStateTimeoutSeconds,
	definitionFromTemplate,
	LAMBDA_STATE,
	LAMBDA_STEPS,
	LAMBDA_THROTTLE_ERROR,
	LAMBDA_TRANSIENT_ERRORS,
	StateName,
	THROTTLE_RETRY,
	throttleRetry,
} from "../../lib/infra/state-machine.js";
import { statesOf } from "../../lib/local/definition.js";
import { ACCOUNT, REGION } from "./helpers/iam.js";
import { logicalId, sharedFtguard } from "./helpers/stack.js";

const validateAsl = createRequire(import.meta.url)("asl-validator") as (
	definition: unknown,
	options?: { checkPaths?: boolean; checkArn?: boolean },
) => { isValid: boolean; errorsText: (separator?: string) => string };

interface AslState {
	Type: string;
	Resource?: string;
	Next?: string;
	End?: boolean;
	Default?: string;
	Choices?: { Next: string }[];
	Catch?: { ErrorEquals: string[]; Next: string; ResultPath?: string | null }[];
	Retry?: {
		ErrorEquals: string[];
		MaxAttempts?: number;
		BackoffRate?: number;
		IntervalSeconds?: number;
		MaxDelaySeconds?: number;
		JitterStrategy?: string;
	}[];
	TimeoutSeconds?: number;
	Parameters?: Record<string, unknown>;
	ResultPath?: string | null;
}
interface Asl {
	StartAt: string;
	TimeoutSeconds?: number;
	States: Record<string, AslState>;
}

/** Placeholder values for the template's references: what the resources would be called in one account. */
function placeholder(template: { Resources: Record<string, { Type: string }> }) {
	return (id: string, attribute: string): string => {
		const pseudo: Record<string, string> = {
			"AWS::Partition": "aws",
			"AWS::Region": REGION,
			"AWS::AccountId": ACCOUNT,
			"AWS::URLSuffix": "amazonaws.com",
		};
		if (pseudo[id]) return pseudo[id];
		const type = template.Resources[id]?.Type;
		if (type === "AWS::Lambda::Function") return `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${id}`;
		if (type === "AWS::S3::Bucket") return `ftguard-${id.toLowerCase()}`;
		if (type === "AWS::Batch::JobQueue") return `arn:aws:batch:${REGION}:${ACCOUNT}:job-queue/${id}`;
		if (type === "AWS::Batch::JobDefinition") return `arn:aws:batch:${REGION}:${ACCOUNT}:job-definition/${id}:1`;
		throw new Error(`no placeholder for ${id}.${attribute} (${type})`);
	};
}

let asl: Asl;
let reportBucket: string;

beforeAll(() => {
	const { stack, template } = sharedFtguard();
	const json = template.toJSON() as {
		Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }>;
	};
	asl = definitionFromTemplate(json, placeholder(json)) as unknown as Asl;
	reportBucket = `ftguard-${logicalId(stack.store.reportBucket).toLowerCase()}`;
});

function environmentOf(state: AslState): Record<string, string>[] {
	const overrides = state.Parameters?.ContainerOverrides as { Environment?: Record<string, string>[] } | undefined;
	if (!overrides?.Environment) throw new Error("no ContainerOverrides.Environment");
	return overrides.Environment;
}

/** Every state, those of the backdoor Map's iterations included (names are unique across a state machine). */
const allStates = (): Record<string, AslState> => statesOf(asl as never) as Record<string, AslState>;
const tasks = (): [string, AslState][] => Object.entries(allStates()).filter(([, s]) => s.Type === "Task");

/** Every state reachable from `from` (Next, Default, Choices, Catch), optionally never entering `avoid`. */
function reachable(from: string, avoid?: string): Set<string> {
	const seen = new Set<string>();
	const stack = [from];
	while (stack.length > 0) {
		const name = stack.pop() as string;
		if (seen.has(name) || name === avoid) continue;
		seen.add(name);
		const s = allStates()[name];
		if (!s) throw new Error(`transition to missing state ${name}`);
		for (const next of [
			s.Next,
			s.Default,
			...(s.Choices ?? []).map((c) => c.Next),
			...(s.Catch ?? []).map((c) => c.Next),
		]) {
			if (next) stack.push(next);
		}
	}
	return seen;
}

describe("the synthesized scan definition", () => {
	it("is valid ASL (asl-validator, paths and ARNs checked)", () => {
		const result = validateAsl(asl, { checkPaths: true, checkArn: true });
		expect(result.errorsText(), "asl-validator").toBe("");
		expect(result.isValid).toBe(true);
	});

	it("runs mark → manifest → signature → files → backdoor choice → decide → record", () => {
		expect(asl.StartAt).toBe(StateName.MARK);
		expect(asl.States[StateName.MARK]?.Next).toBe(StateName.MANIFEST);
		expect(asl.States[StateName.MANIFEST]?.Next).toBe(StateName.SIGNATURE);
		expect(asl.States[StateName.SIGNATURE]?.Next).toBe(StateName.FILES);
		expect(asl.States[StateName.FILES]?.Next).toBe(StateName.BACKDOOR_REQUIRED);
		expect(asl.States[StateName.BACKDOOR_REQUIRED]?.Default).toBe(StateName.DECIDE);
		expect(asl.States[StateName.DECIDE]?.Next).toBe(StateName.RECORD);
		expect(asl.States[StateName.RECORD]?.Next).toBe(StateName.DONE);
		expect(asl.States[StateName.DONE]?.Type).toBe("Succeed");
		expect(asl.TimeoutSeconds).toBeGreaterThan(0);
	});

	it("gives every Task a States.ALL catch and a timeout", () => {
		expect(tasks().length).toBe(LAMBDA_STEPS.length + 2); // + RecordQuarantine + BackdoorScan (in the Map)
		for (const [name, state] of tasks()) {
			expect(state.TimeoutSeconds, `${name} TimeoutSeconds`).toBeGreaterThan(0);
			const all = (state.Catch ?? []).filter((c) => c.ErrorEquals.includes("States.ALL"));
			expect(all, `${name} catches States.ALL`).toHaveLength(1);
		}
	});

	it("sends every catch before decide to a state that records { state, cause } and goes on to Decide", () => {
		for (const name of [
			StateName.MARK,
			StateName.MANIFEST,
			StateName.SIGNATURE,
			StateName.FILES,
			StateName.BACKDOOR_SCANS,
		]) {
			const handler = asl.States[name]?.Catch?.[0]?.Next as string;
			const pass = asl.States[handler] as AslState;
			expect(pass.Type, name).toBe("Pass");
			expect(pass.ResultPath).toBe("$.error");
			expect(pass.Parameters?.state).toEqual(expect.any(String));
			expect(pass.Parameters?.["cause.$"]).toBe("States.JsonToString($.error)");
			expect(pass.Next).toBe(StateName.DECIDE);
		}
	});

	it("scans every model of the plan in a Map whose iterations end in one result each, failures caught", () => {
		const map = asl.States[StateName.BACKDOOR_SCANS] as AslState & Record<string, unknown>;
		expect(map.Type).toBe("Map");
		expect(map.ItemsPath).toBe("$.backdoor.models");
		expect(map.ResultPath).toBe("$.backdoor.results");
		expect(map.Next).toBe(StateName.DECIDE);
		expect(asl.States[StateName.BACKDOOR_REQUIRED]?.Choices?.[0]?.Next).toBe(StateName.BACKDOOR_SCANS);
		const scan = allStates()[StateName.BACKDOOR_SCAN] as AslState;
		const caught = allStates()[scan.Catch?.[0]?.Next as string] as AslState;
		expect(caught.Type).toBe("Pass");
		expect(caught.Parameters?.error).toEqual({ state: "backdoor", "cause.$": "States.JsonToString($.error)" });
		// every iteration path ends in a Pass that is the iteration's result (End), with the model's index
		for (const name of [StateName.BACKDOOR_CLEAN, StateName.BACKDOOR_JOB_FAILED, StateName.BACKDOOR_INPUT_MISSING]) {
			const end = allStates()[name] as AslState;
			expect(end.End, name).toBe(true);
			expect(end.Parameters?.["index.$"], name).toBe("$.index");
		}
	});

	it("fails closed when decide or record fail: a forced QUARANTINED verdict is recorded, then the execution fails", () => {
		for (const name of [StateName.DECIDE, StateName.RECORD]) {
			const handler = asl.States[name]?.Catch?.[0]?.Next as string;
			expect(asl.States[handler]?.Next).toBe(StateName.FORCE_QUARANTINE);
		}
		const force = asl.States[StateName.FORCE_QUARANTINE] as AslState;
		expect(force.ResultPath).toBe("$.verdict");
		expect(force.Parameters?.status).toBe("QUARANTINED");
		expect(force.Next).toBe(StateName.RECORD_QUARANTINE);
		expect(asl.States[StateName.RECORD_QUARANTINE]?.Next).toBe(StateName.QUARANTINED_AFTER_ERROR);
		expect(asl.States[StateName.RECORD_QUARANTINE]?.Catch?.[0]?.Next).toBe(StateName.VERDICT_NOT_RECORDED);
		expect(asl.States[StateName.QUARANTINED_AFTER_ERROR]?.Type).toBe("Fail");
		expect(asl.States[StateName.VERDICT_NOT_RECORDED]?.Type).toBe("Fail");
	});

	it("cannot reach Done without passing Decide and Record", () => {
		expect(reachable(asl.StartAt).has(StateName.DONE)).toBe(true);
		expect(reachable(asl.StartAt, StateName.DECIDE).has(StateName.DONE)).toBe(false);
		expect(reachable(asl.StartAt, StateName.RECORD).has(StateName.DONE)).toBe(false);
		// and every state is reachable (no dead states)
		expect([...reachable(asl.StartAt)].sort()).toEqual(Object.keys(asl.States).sort());
	});

	it("retries transient Lambda errors with backoff on every Lambda task, and any error on the tag writers", () => {
		for (const step of LAMBDA_STEPS) {
			const retry = asl.States[LAMBDA_STATE[step]]?.Retry ?? [];
			expect(retry[0]?.ErrorEquals, step).toEqual([LAMBDA_THROTTLE_ERROR]);
			expect(retry[1]?.ErrorEquals, step).toEqual([...LAMBDA_TRANSIENT_ERRORS]);
			expect(retry[1]?.BackoffRate).toBeGreaterThan(1);
			expect(retry[1]?.MaxAttempts).toBeGreaterThanOrEqual(3);
			const any = retry.some((r) => r.ErrorEquals.includes("States.ALL"));
			expect(any, step).toBe(step === "mark" || step === "record");
		}
	});

	it("waits out a throttle (reserved concurrency reached) until the execution's own timeout, never catching it", () => {
		// The deadline of a scan is the execution timeout; a throttled attempt fails in milliseconds, so no state
		// timeout bounds the wait. With FULL jitter each capped wait is uniform in [0, MaxDelaySeconds]: the mean total
		// of the retrier's waits must be several times the execution timeout, so that it is never exhausted first, and
		// the attempts that fit in the deadline must leave the execution far from the 25,000-event history quota.
		const deadline = asl.TimeoutSeconds as number;
		expect(deadline).toBeGreaterThan(0);
		const invokers = [...LAMBDA_STEPS.map((s) => LAMBDA_STATE[s]), StateName.RECORD_QUARANTINE];
		for (const name of invokers) {
			const retry = asl.States[name]?.Retry ?? [];
			const throttle = retry.find((r) => r.ErrorEquals.includes(LAMBDA_THROTTLE_ERROR));
			expect(throttle, name).toBeDefined();
			// first, so a throttle never spends a catch-all retrier's few attempts
			expect(retry.indexOf(throttle as never), name).toBe(0);
			expect(throttle?.ErrorEquals, name).toEqual([LAMBDA_THROTTLE_ERROR]);
			expect(throttle?.JitterStrategy, name).toBe("FULL");
			const meanWait = (throttle?.MaxDelaySeconds as number) / 2;
			expect(((throttle?.MaxAttempts as number) * meanWait) / deadline, name).toBeGreaterThanOrEqual(2);
			expect(throttle?.MaxAttempts, name).toBeLessThanOrEqual(99_999_999);
			// attempts within the deadline × a generous 5 history events each
			expect((deadline / meanWait) * 5, name).toBeLessThan(25_000 / 2);
			// other Lambda errors keep a short budget: a function that keeps failing is a real failure (quarantine)
			const transient = retry.find((r) => r.ErrorEquals.includes(LAMBDA_TRANSIENT_ERRORS[0]));
			if (transient) expect(transient.MaxAttempts ?? 3, name).toBeLessThanOrEqual(10);
		}
		expect(LAMBDA_TRANSIENT_ERRORS as readonly string[]).not.toContain(LAMBDA_THROTTLE_ERROR);
		// the same holds for any deadline a stack may be given (an hour to a week)
		for (const d of [3_600, 8 * 3_600, 24 * 3_600, 7 * 24 * 3_600]) {
			const r = throttleRetry(d);
			expect((r.maxAttempts * r.maxDelaySeconds) / 2 / d).toBeGreaterThanOrEqual(THROTTLE_RETRY.budgetFactor);
			expect(d / (r.maxDelaySeconds / 2)).toBeLessThanOrEqual(THROTTLE_RETRY.attemptsWithinDeadline);
		}
	});

	it("invokes each Lambda by its function ARN with the whole state as payload", () => {
		for (const step of LAMBDA_STEPS) {
			const state = asl.States[LAMBDA_STATE[step]] as AslState;
			expect(state.Resource, step).toMatch(/^arn:aws:lambda:[^:]+:\d+:function:/);
			expect(state.Parameters).toBeUndefined();
		}
	});

	it("bounds a backdoor scan's wait for GPU capacity by the scan's deadline, not by a budget of its own", () => {
		// Step Functions counts a .sync Task's TimeoutSeconds from the state's entry, RUNNABLE time included: the
		// state gets what the execution timeout leaves after every other Task on the path (RecordQuarantine too).
		const deadline = asl.TimeoutSeconds as number;
		const others =
			LAMBDA_STEPS.reduce((sum, step) => sum + (asl.States[LAMBDA_STATE[step]]?.TimeoutSeconds as number), 0) +
			(asl.States[StateName.RECORD_QUARANTINE]?.TimeoutSeconds as number);
		const backdoor = allStates()[StateName.BACKDOOR_SCAN]?.TimeoutSeconds as number;
		expect(backdoor).toBe(deadline - others);
		expect(backdoor).toBe(
			backdoorStateTimeoutSeconds(
				deadline,
				Object.fromEntries(
					LAMBDA_STEPS.map((step) => [step, asl.States[LAMBDA_STATE[step]]?.TimeoutSeconds as number]),
				) as Record<(typeof LAMBDA_STEPS)[number], number>,
			),
		);
		// more than the default backdoorTimeout (6 h), which was the whole budget before
		expect(backdoor).toBeGreaterThan(6 * 3600);
		// the burst of issue 14 at the defaults: 100 commits, 64 / 8 = 8 jobs at once, 28 min a scan → 13 rounds
		expect(Math.ceil(100 / 8) * 28 * 60).toBeLessThanOrEqual(backdoor);
	});

	it("runs each model's backdoor scan as a Batch .sync job with FTGUARD_* from the plan, the policy and the report bucket", () => {
		const scan = allStates()[StateName.BACKDOOR_SCAN] as AslState;
		expect(scan.Resource).toBe("arn:aws:states:::batch:submitJob.sync");
		expect(scan.ResultPath).toBeNull();
		const env = environmentOf(scan);
		const byName = Object.fromEntries(env.map((e) => [e.Name, e["Value.$"] ?? e.Value]));
		expect(byName).toMatchObject({
			FTGUARD_MODE: "scan",
			FTGUARD_MODEL_URI: "States.Format('s3://{}/{}', $.bucket, $.model.modelKey)",
			FTGUARD_MODEL_VERSION: "$.model.modelVersionId",
			FTGUARD_DATA_URI: "$.model.dataUri",
			FTGUARD_LABELS_URI: "$.model.labelsUri",
			FTGUARD_TOKENIZER_URI: "$.model.tokenizerUri",
			FTGUARD_TEXT_FIELD: "$.model.textField",
			FTGUARD_LABELS_FIELD: "$.model.labelsField",
			FTGUARD_DATA_KIND: "$.model.dataKind",
			FTGUARD_OUTPUT_PREFIX: `States.Format('s3://{}/scans/{}/backdoor/{}', '${reportBucket}', $.scanId, $.index)`,
			FTGUARD_DETECTORS: "nc,pairs,mm,strip",
		});
	});
});

// ---- executing the same definition in-process (what the local pipeline does) ---------------------------------

type Handler = (input: ScanState) => unknown;

function baseState(): ScanState {
	return {
		scanId: "scan-1",
		bucket: "checkpoints",
		marker: { key: "jobs/a/model/model.sig", versionId: "v-sig" },
		artefact: "jobs/a/model/",
	};
}

/** Handlers that pass every check; `overrides` replace single steps. */
function handlers(calls: { name: string; input: unknown }[], overrides: Partial<Record<string, Handler>> = {}) {
	const ok: Record<string, Handler> = {
		[StateName.MARK]: (s) => ({ ...s, objects: [{ key: "jobs/a/model/model.onnx", versionId: "v1", size: 10 }] }),
		[StateName.MANIFEST]: (s) => ({
			...s,
			manifest: { rootDigest: "sha256:00", files: 1, bytes: 10, uri: "s3://r/m" },
		}),
		[StateName.SIGNATURE]: (s) => ({ ...s, signature: { verified: true, identity: "ci" } }),
		[StateName.FILES]: (s) => ({
			...s,
			files: { safe: true, unsafe: 0, malformed: 0, reportUri: "s3://r/f", reasons: [] },
			backdoor: { required: false },
		}),
		[StateName.DECIDE]: (s) => ({
			...s,
			verdict: s.error
				? { status: "QUARANTINED", reasons: [`error: ${s.error.state}`] }
				: { status: "PROMOTABLE", reasons: [] },
		}),
		[StateName.RECORD]: (s) => s,
		[StateName.RECORD_QUARANTINE]: (s) => s,
		[StateName.BACKDOOR_SCAN]: () => ({ Status: "SUCCEEDED" }),
	};
	return Object.fromEntries(
		Object.entries({ ...ok, ...overrides }).map(([name, fn]) => [
			name,
			async (input: unknown) => {
				calls.push({ name, input });
				return (fn as Handler)(input as ScanState);
			},
		]),
	) as Record<string, (input: unknown) => Promise<never>>;
}

async function execute(
	input: ScanState,
	overrides: Partial<Record<string, Handler>> = {},
): Promise<{ output: ScanState | undefined; error: Error | undefined; calls: { name: string; input: unknown }[] }> {
	const calls: { name: string; input: unknown }[] = [];
	const machine = new StateMachine(asl as never, { validationOptions: { checkArn: true, checkPaths: true } });
	const noWait = Object.fromEntries(Object.keys(allStates()).map((n) => [n, 0]));
	try {
		const output = (await machine.run(input as never, {
			overrides: { taskResourceLocalHandlers: handlers(calls, overrides), retryIntervalOverrides: noWait },
		}).result) as unknown as ScanState;
		return { output, error: undefined, calls };
	} catch (e) {
		return { output: undefined, error: e as Error, calls };
	}
}

const boom = (): never => {
	throw new Error("boom");
};

describe("when the definition runs in-process (aws-local-stepfunctions)", () => {
	it("promotes when every step passes and no backdoor scan is required", async () => {
		const r = await execute(baseState());
		expect(r.error).toBeUndefined();
		expect(r.output?.verdict).toEqual({ status: "PROMOTABLE", reasons: [] });
		expect(r.calls.map((c) => c.name)).toEqual([
			StateName.MARK,
			StateName.MANIFEST,
			StateName.SIGNATURE,
			StateName.FILES,
			StateName.DECIDE,
			StateName.RECORD,
		]);
	});

	it("quarantines with the failed state's name when a step throws, and still decides and records", async () => {
		const r = await execute(baseState(), { [StateName.MANIFEST]: boom });
		expect(r.error).toBeUndefined();
		expect(r.output?.error?.state).toBe("manifest");
		expect(r.output?.error?.cause).toContain("boom");
		expect(r.output?.verdict?.status).toBe("QUARANTINED");
		expect(r.calls.map((c) => c.name)).toEqual([
			StateName.MARK,
			StateName.MANIFEST,
			StateName.DECIDE,
			StateName.RECORD,
		]);
	});

	it("retries mark's tag writes before giving up", async () => {
		let attempts = 0;
		const r = await execute(baseState(), {
			[StateName.MARK]: (s) => {
				attempts += 1;
				if (attempts < 3) throw new Error("SlowDown");
				return { ...s, objects: [{ key: "k", versionId: "v", size: 1 }] };
			},
		});
		expect(attempts).toBe(3);
		expect(r.output?.verdict?.status).toBe("PROMOTABLE");
	});

	it("forces and records QUARANTINED, then fails the execution, when decide throws", async () => {
		const r = await execute(baseState(), { [StateName.DECIDE]: boom });
		expect(r.error?.message ?? "").toMatch(/QUARANTINED verdict was forced and recorded/);
		const recorded = r.calls.find((c) => c.name === StateName.RECORD_QUARANTINE)?.input as ScanState;
		expect(recorded.verdict).toEqual({ status: "QUARANTINED", reasons: ["error: decide"] });
		expect(r.calls.some((c) => c.name === StateName.RECORD)).toBe(false);
	});

	it("fails with VerdictNotRecorded when even the forced quarantine cannot be recorded", async () => {
		const r = await execute(baseState(), { [StateName.RECORD]: boom, [StateName.RECORD_QUARANTINE]: boom });
		expect(r.error?.message ?? "").toMatch(/Neither the verdict nor a forced quarantine could be recorded/);
		expect(r.calls.filter((c) => c.name === StateName.RECORD).length).toBeGreaterThan(1); // retried
	});

	const model = {
		modelKey: "jobs/a/model/model.onnx",
		modelVersionId: "v1",
		dataUri: "s3://base/reference/x.npy",
		labelsUri: "s3://base/reference/y.npy",
		tokenizerUri: "",
		textField: "",
		labelsField: "",
		dataKind: "reference",
	};
	const textModel = {
		...model,
		modelKey: "jobs/a/model/text/model.onnx",
		modelVersionId: "v2",
		dataUri: "s3://base/reference/texts.jsonl",
		labelsUri: "",
		tokenizerUri: "s3://base/reference/tokenizer.json",
		textField: "sentence",
		labelsField: "label",
	};
	const withBackdoor =
		(b: Record<string, unknown>): Handler =>
		(s) => ({
			...s,
			files: { safe: true, unsafe: 0, malformed: 0, reportUri: "s3://r/f", reasons: [] },
			backdoor: b,
		});
	type Submitted = { ContainerOverrides: { Environment: { Name: string; Value: string }[] } };
	const envOf = (input: unknown) =>
		Object.fromEntries((input as Submitted).ContainerOverrides.Environment.map((e) => [e.Name, e.Value]));

	it("submits one job per model with its pinned version and the policy's reference data, and records clean jobs as clean", async () => {
		const r = await execute(baseState(), {
			[StateName.FILES]: withBackdoor({ required: true, models: [model, textModel] }),
		});
		const submitted = r.calls.filter((c) => c.name === StateName.BACKDOOR_SCAN).map((c) => envOf(c.input));
		expect(submitted).toHaveLength(2);
		const byModel = Object.fromEntries(submitted.map((e) => [e.FTGUARD_MODEL_URI, e]));
		expect(byModel["s3://checkpoints/jobs/a/model/model.onnx"]).toMatchObject({
			FTGUARD_MODEL_VERSION: "v1",
			FTGUARD_DATA_URI: "s3://base/reference/x.npy",
			FTGUARD_LABELS_URI: "s3://base/reference/y.npy",
			FTGUARD_TOKENIZER_URI: "",
			FTGUARD_DATA_KIND: "reference",
			FTGUARD_OUTPUT_PREFIX: `s3://${reportBucket}/scans/scan-1/backdoor/0`,
		});
		expect(byModel["s3://checkpoints/jobs/a/model/text/model.onnx"]).toMatchObject({
			FTGUARD_MODEL_VERSION: "v2",
			FTGUARD_DATA_URI: "s3://base/reference/texts.jsonl",
			FTGUARD_LABELS_URI: "",
			FTGUARD_TOKENIZER_URI: "s3://base/reference/tokenizer.json",
			FTGUARD_TEXT_FIELD: "sentence",
			FTGUARD_LABELS_FIELD: "label",
			FTGUARD_OUTPUT_PREFIX: `s3://${reportBucket}/scans/scan-1/backdoor/1`,
		});
		expect(r.output?.backdoor?.results).toEqual([
			{
				index: 0,
				modelKey: model.modelKey,
				verdict: "clean",
				reportUri: `s3://${reportBucket}/scans/scan-1/backdoor/0/report.json`,
			},
			{
				index: 1,
				modelKey: textModel.modelKey,
				verdict: "clean",
				reportUri: `s3://${reportBucket}/scans/scan-1/backdoor/1/report.json`,
			},
		]);
		expect(r.output?.error).toBeUndefined();
		expect(r.output?.verdict?.status).toBe("PROMOTABLE");
	});

	it("keeps every model's outcome when one job fails (exit 1 suspect, 2 error, timeout): the failure is that model's result", async () => {
		const r = await execute(baseState(), {
			[StateName.FILES]: withBackdoor({ required: true, models: [model, textModel] }),
			[StateName.BACKDOOR_SCAN]: (input) => {
				if (envOf(input).FTGUARD_MODEL_VERSION === "v2") throw new Error("boom");
				return { Status: "SUCCEEDED" };
			},
		});
		const results = r.output?.backdoor?.results ?? [];
		expect(results[0]).toMatchObject({ index: 0, modelKey: model.modelKey, verdict: "clean" });
		expect(results[1]).toMatchObject({ index: 1, modelKey: textModel.modelKey, error: { state: "backdoor" } });
		expect(results[1]?.error?.cause).toContain("boom");
		expect(results[1]?.verdict).toBeUndefined();
		expect(r.output?.error).toBeUndefined();
	});

	it("refuses to scan an unpinned model in a versioned store, or one with an input missing: an error result, no job", async () => {
		const { dataUri: _d, ...noData } = model;
		for (const m of [{ ...model, modelVersionId: "" }, noData, { ...model, tokenizerUri: 3 }]) {
			const r = await execute(baseState(), {
				[StateName.FILES]: withBackdoor({ required: true, models: [m, textModel] }),
			});
			const submitted = r.calls.filter((c) => c.name === StateName.BACKDOOR_SCAN).map((c) => envOf(c.input));
			expect(submitted.map((e) => e.FTGUARD_MODEL_VERSION)).toEqual(["v2"]);
			expect(r.output?.backdoor?.results?.[0]).toMatchObject({ index: 0, error: { state: "backdoor" } });
			expect(r.output?.backdoor?.results?.[0]?.verdict).toBeUndefined();
		}
	});

	it("fails the execution when the plan's models are not a list (States.Runtime, which no Catch takes in AWS either)", async () => {
		// Fail closed all the same: the objects stay SCANNING (unreadable) until the sweeper quarantines them, and the
		// failed-executions alarm fires. The files step never writes such a plan (backdoorPlan; the schema).
		const r = await execute(baseState(), {
			[StateName.FILES]: withBackdoor({ required: true, models: "model.onnx" }),
		});
		expect(r.calls.some((c) => c.name === StateName.BACKDOOR_SCAN)).toBe(false);
		expect(r.error?.message).toMatch(/expected an array/);
		expect(r.calls.some((c) => c.name === StateName.RECORD)).toBe(false);
	});

	it("scans without a version when the store has none (the local server)", async () => {
		const r = await execute(
			{ ...baseState(), marker: { key: "jobs/a/model/model.sig", etag: '"m"' } },
			{
				[StateName.MARK]: (s) => ({ ...s, objects: [{ key: model.modelKey, etag: '"e"', size: 10 }] }),
				[StateName.FILES]: withBackdoor({ required: true, models: [{ ...model, modelVersionId: "" }] }),
			},
		);
		const submitted = r.calls.filter((c) => c.name === StateName.BACKDOOR_SCAN).map((c) => envOf(c.input));
		expect(submitted.map((e) => e.FTGUARD_MODEL_VERSION)).toEqual([""]);
		expect(r.output?.backdoor?.results?.[0]?.verdict).toBe("clean");
	});
});
