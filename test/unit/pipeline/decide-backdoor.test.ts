/**
 * A detected backdoor (a model's Batch job exits 1, its task fails, the iteration's Catch makes the failure that
 * model's result) is reported with the finding from the job's report.json instead of "error: backdoor <model>";
 * anything unexpected keeps "error: backdoor <model>" and says why. The status is QUARANTINED in every case, and
 * every model of the artefact is judged on its own.
 */
import type { S3Client } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { readBackdoorEvidence } from "../../../lib/aws/decide";
import type { BackdoorReport } from "../../../lib/core/backdoor/scan";
import {
	type BackdoorEvidence,
	backdoorReportsWanted,
	batchExitCode,
	decide,
	decideWithEvidence,
	finalDecision,
	interpretBackdoorReport,
	scanErrored,
} from "../../../lib/core/pipeline/decide";
import { recordMetrics } from "../../../lib/core/pipeline/record";
import type { ScanState } from "../../../lib/core/pipeline/types";

/** The catcher's cause for a FAILED job description, as Step Functions renders a Batch .sync failure. */
function batchCause(exitCode: unknown, extra: Record<string, unknown> = {}): string {
	const job = { JobName: "ftguard-backdoor-scan", Status: "FAILED", Container: { ExitCode: exitCode }, ...extra };
	return JSON.stringify({ Error: "States.TaskFailed", Cause: JSON.stringify(job) });
}

const REPORT_URI = "s3://reports/scans/ftg-1/backdoor/0/report.json";
const MODEL = {
	modelKey: "m/model.onnx",
	modelVersionId: "v7",
	dataUri: "s3://t/x.npy",
	labelsUri: "s3://t/y.npy",
	tokenizerUri: "",
	textField: "",
	labelsField: "",
	dataKind: "reference" as const,
};
const failed = (index: number, exitCode: unknown) => ({
	index,
	modelKey: index === 0 ? MODEL.modelKey : `m/${index}.onnx`,
	error: { state: "backdoor", cause: batchCause(exitCode) },
});
const state: ScanState = {
	scanId: "ftg-1",
	bucket: "ckpts",
	marker: { key: "m/model.onnx.sigstore.json", versionId: "mv" },
	artefact: "m/model.onnx",
	objects: [{ key: "m/model.onnx", versionId: "v7", etag: '"abc"', size: 10 }],
	manifest: { rootDigest: `sha256:${"0".repeat(64)}`, files: 1, bytes: 10, uri: "s3://reports/m.json" },
	signature: { verified: true, identity: "key" },
	files: { safe: true, unsafe: 0, malformed: 0, reportUri: "s3://reports/f.json", reasons: [] },
	dp: { declared: false, required: false, maxDelta: 1e-5, families: [], problems: [], notes: [] },
	backdoor: { required: true, models: [MODEL], results: [failed(0, 1)] },
};
const withResults = (results: unknown[], s: ScanState = state): ScanState =>
	({ ...s, backdoor: { ...s.backdoor, results } }) as ScanState;

/** A report as the batch job writes it (BackdoorReport + `scanned`), class 3 flagged by Neural Cleanse. */
function report(over: Partial<BackdoorReport> & { scanned?: unknown } = {}): Record<string, unknown> {
	const nc: NonNullable<BackdoorReport["detectors"]["neural_cleanse"]> = {
		rule: "ftguard",
		l1_norms: [30.2, 28.9, 31, 10.96, 29.5],
		anomaly_indices: [0.4, 0.7, 0.2, 3.9, null],
		log_anomaly_indices: [0.3, 0.6, 0.1, 4.2049, 0.5],
		relative_l1: [1, 0.96, 1.03, 0.36, 0.98],
		flagged_classes: [3],
		flagged_classes_vanilla: [3],
		max_anomaly_index: 4.2049,
		mask_size: 64,
		attack_success: [0.1, 0.1, 0.1, 0.99, 0.1],
		restarts: 1,
		steps: 300,
	};
	return {
		verdict: "suspect",
		suspect_classes: [3],
		reasons: ["neural_cleanse: reversed trigger L1 10.96 is 0.36× the median (log anomaly index 4.2)"],
		model: { sha256: "f".repeat(64), input_shape: [1, 8, 8], num_classes: 5 },
		detectors: { neural_cleanse: nc },
		scanned: {
			model: { uri: "s3://ckpts/m/model.onnx", version_id: "v7", etag: '"abc"' },
			data: { uri: "s3://t/x.npy", version_id: null },
		},
		...over,
	};
}

describe("batchExitCode", () => {
	it("reads Container.ExitCode of the FAILED job description inside the catcher's cause", () => {
		expect(batchExitCode(batchCause(1))).toBe(1);
		expect(batchExitCode(batchCause(2))).toBe(2);
		expect(batchExitCode(JSON.stringify({ Status: "FAILED", Container: { ExitCode: 1 } }))).toBe(1);
	});
	it("reads the local pipeline's form too (aws-local-stepfunctions leaves the nested Cause unescaped)", () => {
		const job = JSON.stringify({ Status: "FAILED", StatusReason: "exit 1", Container: { ExitCode: 1 } });
		expect(batchExitCode(`{"Error":"States.TaskFailed","Cause":"${job}"}`)).toBe(1);
		expect(batchExitCode(`{"Error":"States.TaskFailed","Cause":"${job}"} trailing`)).toBeUndefined();
		expect(batchExitCode(`{"Error":"States.TaskFailed","Cause":"{not json}"}`)).toBeUndefined();
	});
	it.each<[string, unknown]>([
		["not JSON", "Essential container in task exited"],
		["not a string", { Container: { ExitCode: 1 } }],
		["no Cause", JSON.stringify({ Error: "States.Timeout" })],
		["a Cause that is not JSON", JSON.stringify({ Error: "States.TaskFailed", Cause: "boom" })],
		["no container (host terminated before start)", JSON.stringify({ Error: "x", Cause: JSON.stringify({}) })],
		["a string exit code", batchCause("1")],
		["a null exit code (killed)", batchCause(null)],
		[
			"a job that did not fail",
			JSON.stringify({ Cause: JSON.stringify({ Status: "SUCCEEDED", Container: { ExitCode: 1 } }) }),
		],
		["JSON null", "null"],
		["an array", "[1]"],
	])("is undefined for %s", (_, cause) => {
		expect(batchExitCode(cause)).toBeUndefined();
	});
});

describe("backdoorReportsWanted", () => {
	it("only for a caught job failure with exit code 1, for a model of the plan", () => {
		expect(backdoorReportsWanted(state)).toEqual([0]);
		expect(backdoorReportsWanted(withResults([failed(0, 2)]))).toEqual([]);
		expect(
			backdoorReportsWanted(withResults([{ ...failed(0, 1), error: { state: "files", cause: batchCause(1) } }])),
		).toEqual([]);
		expect(backdoorReportsWanted(withResults([{ index: 0, modelKey: MODEL.modelKey, verdict: "clean" }]))).toEqual([]);
		expect(backdoorReportsWanted({ ...state, backdoor: { required: true, results: [failed(0, 1)] } })).toEqual([]);
		// a result out of place (index 1 at position 0) is no result of model 0
		expect(backdoorReportsWanted(withResults([failed(1, 1)]))).toEqual([]);
	});
});

describe("interpretBackdoorReport", () => {
	it("names each suspect class with its anomaly index (the policy's rule) and trigger L1", () => {
		expect(interpretBackdoorReport(state, 0, REPORT_URI, report())).toEqual({
			kind: "suspect",
			index: 0,
			reportUri: REPORT_URI,
			finding: "class 3: anomaly index 4.2, trigger L1 11",
		});
	});
	it("under the calibrated rule (the default) names the class's p-value and the detector behind it", () => {
		const r = report();
		const detectors = r.detectors as Record<string, Record<string, unknown>>;
		(detectors.neural_cleanse as Record<string, unknown>).rule = "calibrated";
		detectors.calibrated = {
			false_alarm_rate: 0.01,
			per_class: [0, 1, 2, 3, 4].map((c) => ({ cls: c, p_value: c === 3 ? 0.000064 : 0.5, strongest: "pairs" })),
		};
		expect(interpretBackdoorReport(state, 0, REPORT_URI, r)).toMatchObject({
			kind: "suspect",
			finding: "class 3: p 0.000064 against clean models (pairs), trigger L1 11",
		});
		// a rule this reader does not know is not a report it can read: the verdict keeps its error reason
		(detectors.neural_cleanse as Record<string, unknown>).rule = "lenient";
		expect(interpretBackdoorReport(state, 0, REPORT_URI, r)).toMatchObject({ kind: "unreadable" });
	});
	it("names a text model's suspect label with the trigger it found", () => {
		const text = {
			verdict: "suspect",
			suspect_classes: [4],
			reasons: ["label 4: …"],
			labels: [
				{ label: 0, trigger: "alien puzzle", attack_success: 0.4, flagged: false },
				{ label: 4, trigger: "cf", attack_success: 0.981, flagged: true },
			],
			scanned: report().scanned,
		};
		expect(interpretBackdoorReport(state, 0, REPORT_URI, text)).toMatchObject({
			kind: "suspect",
			finding: 'class 4: trigger "cf", attack success 0.98',
		});
	});
	it("uses the vanilla index under the vanilla rule, and names a class flagged by another detector", () => {
		const r = report({ suspect_classes: [1, 3], reasons: ["activation_clustering: 9 of 40 …", "neural_cleanse: …"] });
		const nc = (r.detectors as { neural_cleanse: Record<string, unknown> }).neural_cleanse;
		nc.rule = "vanilla";
		nc.anomaly_indices = [0.4, null, 0.2, 3.9, null];
		const e = interpretBackdoorReport(state, 0, REPORT_URI, r);
		expect(e).toMatchObject({
			kind: "suspect",
			finding: "class 1: activation_clustering, neural_cleanse; class 3: anomaly index 3.9, trigger L1 11",
		});
	});
	it.each<[string, unknown, RegExp]>([
		["not an object", "suspect", /not a backdoor report/],
		["no verdict", { ...report(), verdict: undefined }, /not a backdoor report/],
		["a clean report", report({ verdict: "clean", suspect_classes: [] }), /exited 1 but the report says clean/],
		[
			"another model",
			report({ scanned: { model: { uri: "s3://ckpts/other.onnx", version_id: "v7", etag: null } } }),
			/is for s3:\/\/ckpts\/other\.onnx/,
		],
		[
			"another version",
			report({ scanned: { model: { uri: "s3://ckpts/m/model.onnx", version_id: "v6", etag: null } } }),
			/version v6, not v7/,
		],
		[
			"another ETag",
			report({ scanned: { model: { uri: "s3://ckpts/m/model.onnx", version_id: "v7", etag: '"zzz"' } } }),
			/ETag/,
		],
		[
			"a NaN index",
			{ ...report(), detectors: { neural_cleanse: { rule: "ftguard", l1_norms: [Number.NaN] } } },
			/not a backdoor report/,
		],
	])("is unreadable for %s", (_, json, why) => {
		const e = interpretBackdoorReport(state, 0, REPORT_URI, json);
		expect(e.kind).toBe("unreadable");
		expect((e as Extract<BackdoorEvidence, { kind: "unreadable" }>).reason).toMatch(why);
	});
	it("is unreadable for a model the plan does not have", () => {
		expect(interpretBackdoorReport(state, 1, REPORT_URI, report())).toMatchObject({
			kind: "unreadable",
			index: 1,
			reason: "the plan has no model 1",
		});
	});
	it("accepts the same ETag with or without quotes where there is no VersionId (local store)", () => {
		const unversioned: ScanState = {
			...state,
			backdoor: { required: true, models: [{ ...MODEL, modelVersionId: "" }], results: [failed(0, 1)] },
		};
		const r = report({ scanned: { model: { uri: "s3://ckpts/m/model.onnx", version_id: null, etag: "abc" } } });
		expect(interpretBackdoorReport(unversioned, 0, REPORT_URI, r).kind).toBe("suspect");
	});
});

describe("decide over every model of the plan", () => {
	const two: ScanState = {
		...state,
		artefact: "m/",
		marker: { key: "m/model.sig", versionId: "mv" },
		objects: [
			{ key: "m/model.onnx", versionId: "v7", etag: '"abc"', size: 10 },
			{ key: "m/text/model.onnx", versionId: "v8", size: 10 },
		],
		backdoor: {
			required: true,
			models: [MODEL, { ...MODEL, modelKey: "m/text/model.onnx", modelVersionId: "v8" }],
			results: [],
		},
	};
	const clean = (index: number, modelKey: string) => ({ index, modelKey, verdict: "clean" });

	it("promotes only when every model's scan is clean", () => {
		const ok = withResults([clean(0, "m/model.onnx"), clean(1, "m/text/model.onnx")], two);
		expect(decide(ok)).toEqual({ status: "PROMOTABLE", reasons: [] });
		expect(scanErrored(ok)).toBe(false);
	});
	it.each<[string, unknown[], string[]]>([
		["one model's job failed", [clean(0, "m/model.onnx"), failed(1, 2)], ["error: backdoor text/model.onnx"]],
		[
			"a result is missing",
			[clean(0, "m/model.onnx")],
			["backdoor: 1 scan results for 2 models", "missing: backdoor scan of text/model.onnx"],
		],
		[
			"a clean result names another model",
			[clean(0, "m/model.onnx"), clean(1, "m/model.onnx")],
			["backdoor: text/model.onnx: no clean verdict"],
		],
		[
			"results out of order",
			[clean(1, "m/text/model.onnx"), clean(0, "m/model.onnx")],
			["missing: backdoor scan of model.onnx", "missing: backdoor scan of text/model.onnx"],
		],
		[
			"a result that is not an object",
			[clean(0, "m/model.onnx"), "clean"],
			["missing: backdoor scan of text/model.onnx"],
		],
		[
			"an input the state machine refused",
			[clean(0, "m/model.onnx"), { index: 1, error: { state: "backdoor", cause: "incomplete" } }],
			["error: backdoor text/model.onnx"],
		],
	])("quarantines when %s", (_, results, reasons) => {
		expect(decide(withResults(results, two))).toEqual({ status: "QUARANTINED", reasons });
	});
	it("quarantines a plan with no model, and a Map that never ran", () => {
		expect(decide({ ...two, backdoor: { required: true, models: [], results: [] } }).reasons).toEqual([
			"backdoor: no model to scan",
		]);
		const { results: _, ...noResults } = two.backdoor as Record<string, unknown>;
		expect(decide({ ...two, backdoor: noResults } as ScanState).reasons).toEqual(["missing: backdoor scan"]);
		expect(
			decide({ ...two, backdoor: noResults, error: { state: "backdoor", cause: "x" } } as ScanState).reasons,
		).toEqual(["error: backdoor", "missing: backdoor scan"]);
	});
	it("names the suspect model when one of two is flagged, and counts no scan error for it", () => {
		const s = withResults([clean(0, "m/model.onnx"), failed(1, 1)], two);
		const text = {
			...report(),
			scanned: { model: { uri: "s3://ckpts/m/text/model.onnx", version_id: "v8", etag: null } },
		};
		const evidence = interpretBackdoorReport(s, 1, "s3://reports/scans/ftg-1/backdoor/1/report.json", text);
		const { state: next, verdict } = decideWithEvidence(s, [evidence]);
		expect(verdict).toEqual({
			status: "QUARANTINED",
			reasons: ["backdoor: suspect text/model.onnx (class 3: anomaly index 4.2, trigger L1 11)"],
		});
		expect(next.backdoor?.results?.[0]).toEqual(clean(0, "m/model.onnx"));
		expect(scanErrored(next)).toBe(false);
		expect(scanErrored(s)).toBe(true);
		expect(recordMetrics(next, verdict, []).map((m) => m.name)).not.toContain("scan_errors_total");
		expect(recordMetrics(s, verdict, []).map((m) => m.name)).toContain("scan_errors_total");
	});
});

describe("decideWithEvidence", () => {
	it("today's reason without evidence: error: backdoor <model>", () => {
		const { verdict } = decideWithEvidence(state, []);
		expect(verdict.status).toBe("QUARANTINED");
		expect(verdict.reasons).toEqual(["error: backdoor m/model.onnx"]);
	});
	it("a confirmed finding replaces error: backdoor, and record's recomputation says the same", () => {
		const evidence = interpretBackdoorReport(state, 0, REPORT_URI, report());
		const { state: next, verdict } = decideWithEvidence(state, [evidence]);
		expect(verdict).toEqual({
			status: "QUARANTINED",
			reasons: ["backdoor: suspect m/model.onnx (class 3: anomaly index 4.2, trigger L1 11)"],
		});
		expect(next.backdoor?.results?.[0]).toMatchObject({ verdict: "suspect", reportUri: REPORT_URI });
		expect(next.backdoor?.results?.[0]?.error).toEqual(failed(0, 1).error); // the failed task stays on record
		// record recomputes from the state it receives (decide's output), without the report
		expect(finalDecision({ ...next, verdict }, [])).toEqual(verdict);
		// and counts it as a finding, not a scan error; the same failure without the finding is one
		expect(scanErrored(next)).toBe(false);
		expect(scanErrored(state)).toBe(true);
		expect(scanErrored({ ...next, error: { state: "files", cause: "x" } })).toBe(true);
	});
	it("an unusable report keeps error: backdoor <model> and says why", () => {
		const evidence: BackdoorEvidence = {
			kind: "unreadable",
			index: 0,
			reportUri: REPORT_URI,
			reason: "NOT_FOUND: gone",
		};
		const { state: next, verdict } = decideWithEvidence(state, [evidence]);
		expect(next).toBe(state);
		expect(verdict.status).toBe("QUARANTINED");
		expect(verdict.reasons).toEqual([
			"error: backdoor m/model.onnx",
			"backdoor: report of m/model.onnx could not be read (NOT_FOUND: gone)",
		]);
		expect(finalDecision({ ...next, verdict }, []).reasons).toEqual(verdict.reasons);
	});
	it("a suspect finding never promotes, even with every other stage passing and no error", () => {
		expect(decide(withResults([{ index: 0, modelKey: MODEL.modelKey, verdict: "suspect" }])).status).toBe(
			"QUARANTINED",
		);
		const withFinding = withResults([{ index: 0, modelKey: MODEL.modelKey, verdict: "suspect", finding: "x" }]);
		expect(decide(withFinding)).toEqual({ status: "QUARANTINED", reasons: ["backdoor: suspect m/model.onnx (x)"] });
	});
	it("a suspect verdict does not hide an error from another state", () => {
		const s = withResults([{ index: 0, modelKey: MODEL.modelKey, verdict: "suspect" }], {
			...state,
			error: { state: "files", cause: "boom" },
		});
		expect(decide(s).reasons).toEqual(["error: files", "backdoor: suspect m/model.onnx"]);
	});
});

describe("readBackdoorEvidence (S3 side)", () => {
	const s3 = (reply: () => unknown) =>
		({
			async send(cmd: { input: Record<string, unknown> }) {
				const r = reply();
				if (r instanceof Error) throw r;
				return { ...(r as object), input: cmd.input };
			},
		}) as unknown as S3Client;
	const body = (text: string) => ({ Body: { transformToByteArray: async () => Buffer.from(text) } });
	const where = () => ({ bucket: "reports", prefix: "scans/" });

	it("reads scans/<scan id>/backdoor/<model index>/report.json of each model whose job exited 1", async () => {
		const keys: string[] = [];
		const client = {
			async send(cmd: { input: { Bucket: string; Key: string } }) {
				keys.push(`${cmd.input.Bucket}/${cmd.input.Key}`);
				return body(JSON.stringify(report()));
			},
		} as unknown as S3Client;
		const two = {
			...state,
			backdoor: { required: true, models: [MODEL, MODEL, MODEL], results: [failed(0, 1), failed(1, 2), failed(2, 1)] },
		} as ScanState;
		const e = await readBackdoorEvidence(client, two, where);
		expect(e.map((x) => [x.kind, x.index])).toEqual([
			["suspect", 0],
			["suspect", 2],
		]);
		expect(keys.sort()).toEqual([
			"reports/scans/ftg-1/backdoor/0/report.json",
			"reports/scans/ftg-1/backdoor/2/report.json",
		]);
	});
	it("reads nothing when no job exited 1", async () => {
		let called = false;
		const client = s3(() => {
			called = true;
			return body("{}");
		});
		const exit2 = withResults([failed(0, 2)]);
		expect(await readBackdoorEvidence(client, exit2, () => ({ bucket: "x", prefix: "p/" }))).toEqual([]);
		expect(called).toBe(false);
	});
	it.each<[string, () => unknown, RegExp]>([
		["a missing report", () => Object.assign(new Error("NoSuchKey"), { name: "NoSuchKey" }), /NOT_FOUND/],
		["access denied", () => Object.assign(new Error("AccessDenied"), { name: "AccessDenied" }), /IO_ERROR/],
		["a report that is not JSON", () => body("{ not json"), /not JSON/],
		["an oversized report", () => ({ ContentLength: 1 << 30, Body: {} }), /DATA_INVALID/],
	])("turns %s into unreadable evidence, never a throw", async (_, reply, why) => {
		const [e] = await readBackdoorEvidence(s3(reply), state, where);
		expect(e?.kind).toBe("unreadable");
		expect((e as Extract<BackdoorEvidence, { kind: "unreadable" }>).reason).toMatch(why);
	});
	it("a missing report bucket setting is unreadable evidence too", async () => {
		const e = await readBackdoorEvidence(
			s3(() => body("{}")),
			state,
			() => {
				throw new Error("environment variable FTGUARD_REPORT_BUCKET is not set");
			},
		);
		expect(e).toEqual([
			expect.objectContaining({ kind: "unreadable", reason: expect.stringMatching(/FTGUARD_REPORT_BUCKET/) }),
		]);
	});
});
