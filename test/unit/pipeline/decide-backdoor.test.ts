/**
 * A detected backdoor (the Batch job exits 1, its task fails, the Catch sets `error`) is reported with the
 * finding from the job's report.json instead of "error: backdoor"; anything unexpected keeps "error: backdoor"
 * and says why. The status is QUARANTINED in every case.
 */
import type { S3Client } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { readBackdoorEvidence } from "../../../lib/aws/decide";
import type { BackdoorReport } from "../../../lib/core/backdoor/scan";
import {
	type BackdoorEvidence,
	backdoorReportWanted,
	batchExitCode,
	decide,
	decideWithEvidence,
	errorIsBackdoorFinding,
	finalDecision,
	interpretBackdoorReport,
} from "../../../lib/core/pipeline/decide";
import type { ScanState } from "../../../lib/core/pipeline/types";

/** The catcher's cause for a FAILED job description, as Step Functions renders a Batch .sync failure. */
function batchCause(exitCode: unknown, extra: Record<string, unknown> = {}): string {
	const job = { JobName: "ftguard-backdoor-scan", Status: "FAILED", Container: { ExitCode: exitCode }, ...extra };
	return JSON.stringify({ Error: "States.TaskFailed", Cause: JSON.stringify(job) });
}

const REPORT_URI = "s3://reports/scans/ftg-1/backdoor/report.json";
const state: ScanState = {
	scanId: "ftg-1",
	bucket: "ckpts",
	marker: { key: "m/model.onnx.sigstore.json", versionId: "mv" },
	artefact: "m/model.onnx",
	objects: [{ key: "m/model.onnx", versionId: "v7", etag: '"abc"', size: 10 }],
	manifest: { rootDigest: `sha256:${"0".repeat(64)}`, files: 1, bytes: 10, uri: "s3://reports/m.json" },
	signature: { verified: true, identity: "key" },
	files: { safe: true, unsafe: 0, malformed: 0, reportUri: "s3://reports/f.json", reasons: [] },
	backdoor: { required: true, modelKey: "m/model.onnx", modelVersionId: "v7", dataUri: "s3://t/x.npy" },
	error: { state: "backdoor", cause: batchCause(1) },
};

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

describe("backdoorReportWanted", () => {
	it("only for a caught backdoor failure with exit code 1 and a model to name", () => {
		expect(backdoorReportWanted(state)).toBe(true);
		expect(backdoorReportWanted({ ...state, error: { state: "backdoor", cause: batchCause(2) } })).toBe(false);
		expect(backdoorReportWanted({ ...state, error: { state: "files", cause: batchCause(1) } })).toBe(false);
		const { error: _, ...noError } = state;
		expect(backdoorReportWanted(noError)).toBe(false);
		expect(backdoorReportWanted({ ...state, backdoor: { required: true } })).toBe(false);
	});
});

describe("interpretBackdoorReport", () => {
	it("names each suspect class with its anomaly index (the policy's rule) and trigger L1", () => {
		expect(interpretBackdoorReport(state, REPORT_URI, report())).toEqual({
			kind: "suspect",
			reportUri: REPORT_URI,
			finding: "class 3: anomaly index 4.2, trigger L1 11",
		});
	});
	it("uses the vanilla index under the vanilla rule, and names a class flagged by another detector", () => {
		const r = report({ suspect_classes: [1, 3], reasons: ["activation_clustering: 9 of 40 …", "neural_cleanse: …"] });
		const nc = (r.detectors as { neural_cleanse: Record<string, unknown> }).neural_cleanse;
		nc.rule = "vanilla";
		nc.anomaly_indices = [0.4, null, 0.2, 3.9, null];
		const e = interpretBackdoorReport(state, REPORT_URI, r);
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
		const e = interpretBackdoorReport(state, REPORT_URI, json);
		expect(e.kind).toBe("unreadable");
		expect((e as Extract<BackdoorEvidence, { kind: "unreadable" }>).reason).toMatch(why);
	});
	it("accepts the same ETag with or without quotes where there is no VersionId (local store)", () => {
		const { modelVersionId: _, ...bd } = state.backdoor as NonNullable<ScanState["backdoor"]>;
		const unversioned: ScanState = { ...state, backdoor: bd };
		const r = report({ scanned: { model: { uri: "s3://ckpts/m/model.onnx", version_id: null, etag: "abc" } } });
		expect(interpretBackdoorReport(unversioned, REPORT_URI, r).kind).toBe("suspect");
	});
});

describe("decideWithEvidence", () => {
	it("today's reason without evidence: error: backdoor", () => {
		const { verdict } = decideWithEvidence(state, undefined);
		expect(verdict.status).toBe("QUARANTINED");
		expect(verdict.reasons).toContain("error: backdoor");
	});
	it("a confirmed finding replaces error: backdoor, and record's recomputation says the same", () => {
		const evidence = interpretBackdoorReport(state, REPORT_URI, report());
		const { state: next, verdict } = decideWithEvidence(state, evidence);
		expect(verdict).toEqual({
			status: "QUARANTINED",
			reasons: ["backdoor: suspect (class 3: anomaly index 4.2, trigger L1 11)"],
		});
		expect(next.backdoor).toMatchObject({ verdict: "suspect", reportUri: REPORT_URI });
		expect(next.error).toEqual(state.error); // the failed task stays on record
		// record recomputes from the state it receives (decide's output), without the report
		expect(finalDecision({ ...next, verdict }, [])).toEqual(verdict);
		// and counts it as a finding, not a scan error; the same error without the finding is one
		expect(errorIsBackdoorFinding(next)).toBe(true);
		expect(errorIsBackdoorFinding(state)).toBe(false);
		expect(errorIsBackdoorFinding({ ...next, error: { state: "files", cause: "x" } })).toBe(false);
	});
	it("an unusable report keeps error: backdoor and says why", () => {
		const evidence: BackdoorEvidence = { kind: "unreadable", reportUri: REPORT_URI, reason: "NOT_FOUND: gone" };
		const { state: next, verdict } = decideWithEvidence(state, evidence);
		expect(next).toBe(state);
		expect(verdict.status).toBe("QUARANTINED");
		expect(verdict.reasons).toEqual([
			"error: backdoor",
			"missing: backdoor scan",
			"backdoor: report could not be read (NOT_FOUND: gone)",
		]);
		expect(finalDecision({ ...next, verdict }, []).reasons).toEqual(verdict.reasons);
	});
	it("a suspect finding never promotes, even with every other stage passing and no error", () => {
		const { error: _, ...clean } = state;
		expect(decide({ ...clean, backdoor: { required: true, verdict: "suspect" } }).status).toBe("QUARANTINED");
		const withFinding = { ...state, backdoor: { ...state.backdoor, verdict: "suspect", finding: "x" } } as ScanState;
		expect(decide(withFinding)).toEqual({ status: "QUARANTINED", reasons: ["backdoor: suspect (x)"] });
	});
	it("a suspect verdict does not hide an error from another state", () => {
		const s = {
			...state,
			error: { state: "files", cause: "boom" },
			backdoor: { ...state.backdoor, verdict: "suspect" },
		};
		expect(decide(s as ScanState).reasons).toEqual(["error: files", "backdoor: suspect"]);
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

	it("reads scans/<scan id>/backdoor/report.json and interprets it", async () => {
		const keys: string[] = [];
		const client = {
			async send(cmd: { input: { Bucket: string; Key: string } }) {
				keys.push(`${cmd.input.Bucket}/${cmd.input.Key}`);
				return body(JSON.stringify(report()));
			},
		} as unknown as S3Client;
		expect(await readBackdoorEvidence(client, state, where)).toMatchObject({ kind: "suspect" });
		expect(keys).toEqual(["reports/scans/ftg-1/backdoor/report.json"]);
	});
	it("reads nothing when the job did not exit 1", async () => {
		let called = false;
		const client = s3(() => {
			called = true;
			return body("{}");
		});
		const exit2 = { ...state, error: { state: "backdoor", cause: batchCause(2) } };
		expect(await readBackdoorEvidence(client, exit2, () => ({ bucket: "x", prefix: "p/" }))).toBeUndefined();
		expect(called).toBe(false);
	});
	it.each<[string, () => unknown, RegExp]>([
		["a missing report", () => Object.assign(new Error("NoSuchKey"), { name: "NoSuchKey" }), /NOT_FOUND/],
		["access denied", () => Object.assign(new Error("AccessDenied"), { name: "AccessDenied" }), /IO_ERROR/],
		["a report that is not JSON", () => body("{ not json"), /not JSON/],
		["an oversized report", () => ({ ContentLength: 1 << 30, Body: {} }), /DATA_INVALID/],
	])("turns %s into unreadable evidence, never a throw", async (_, reply, why) => {
		const e = await readBackdoorEvidence(s3(reply), state, where);
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
		expect(e).toMatchObject({ kind: "unreadable", reason: expect.stringMatching(/FTGUARD_REPORT_BUCKET/) });
	});
});
