/** The sweeper's pure rules (lib/core/pipeline/sweep.ts): which executions, which objects, what it reports. */
import { describe, expect, it } from "vitest";
import type { MetricPoint } from "../../../lib/core/pipeline/names";
import {
	classifyExecution,
	type ExecutionScan,
	judgeObject,
	markedObjects,
	markProgress,
	REPORT_MARGIN_MS,
	runSweep,
	SWEEP_LIMITS,
	type SweepInvocation,
	type SweepSummary,
	type SweepWindow,
	scanOfExecution,
	stuckMetricValue,
	sweepReason,
	sweepWindow,
} from "../../../lib/core/pipeline/sweep";

const NOW = new Date("2026-12-02T06:00:00Z");
const minutes = (n: number) => new Date(NOW.getTime() - n * 60_000);

describe("sweepWindow", () => {
	it("looks back the given minutes and lists back to the longest execution before that", () => {
		const w = sweepWindow(NOW, 60, 8 * 3600);
		expect(w.since).toEqual(minutes(60));
		expect(w.listUntilStart).toEqual(minutes(60 + 8 * 60 + 1));
	});
	it.each([0, -5, Number.NaN, SWEEP_LIMITS.maxLookbackMinutes + 1])("refuses a lookback of %s minutes", (m) => {
		expect(() => sweepWindow(NOW, m, 3600)).toThrow(/lookback/);
	});
	it("refuses a non-positive execution timeout", () => {
		expect(() => sweepWindow(NOW, 60, 0)).toThrow(/longest execution/);
	});
});

describe("classifyExecution", () => {
	const w = sweepWindow(NOW, 60, 8 * 3600);
	const e = (status: string, startMin: number | undefined, stopMin: number | undefined) => ({
		executionArn: "arn:x",
		name: "ftg-1",
		status,
		...(startMin !== undefined ? { startDate: minutes(startMin) } : {}),
		...(stopMin !== undefined ? { stopDate: minutes(stopMin) } : {}),
	});
	it.each(["FAILED", "TIMED_OUT", "ABORTED"])("examines a %s execution that stopped in the window", (status) => {
		expect(classifyExecution(e(status, 300, 10), w)).toBe("examine");
	});
	it("examines one that stopped exactly at the start of the window, or has no dates (never misses)", () => {
		expect(classifyExecution(e("FAILED", 120, 60), w)).toBe("examine");
		expect(classifyExecution(e("FAILED", undefined, undefined), w)).toBe("examine");
	});
	it("skips one that stopped before the window, and any that did not end stuck", () => {
		expect(classifyExecution(e("FAILED", 120, 61), w)).toBe("skip");
		expect(classifyExecution(e("SUCCEEDED", 30, 10), w)).toBe("skip");
		expect(classifyExecution(e("RUNNING", 30, undefined), w)).toBe("skip");
	});
	it("stops listing at an execution that started before any window execution could have", () => {
		expect(classifyExecution(e("FAILED", 60 + 8 * 60 + 2, 70), w)).toBe("stop");
		// the longest execution that still stopped in the window is examined
		expect(classifyExecution(e("TIMED_OUT", 60 + 8 * 60, 60), w)).toBe("examine");
	});
});

describe("scanOfExecution", () => {
	const input = { scanId: "ftg-1", bucket: "ckpts", marker: { key: "a/model.sig", etag: "e" }, artefact: "a/" };
	it("reads the scan from the start function's input", () => {
		expect(scanOfExecution("ftg-1", JSON.stringify(input))).toEqual({
			scanId: "ftg-1",
			bucket: "ckpts",
			artefact: "a/",
			markerKey: "a/model.sig",
		});
	});
	it.each<[string, string | undefined, RegExp]>([
		["no input", undefined, /no input/],
		["not JSON", "{", /not JSON/],
		["not a scan", JSON.stringify({ hello: 1 }), /not a scan state/],
		["another scan id than the name", JSON.stringify({ ...input, scanId: "ftg-2" }), /not the execution name/],
		["a scan id that is no execution name", JSON.stringify({ ...input, scanId: "a/b" }), /not a scan state/],
	])("is a problem for %s", (_, text, why) => {
		expect(scanOfExecution("ftg-1", text)).toEqual({ problem: expect.stringMatching(why) });
	});
});

describe("markedObjects and markProgress", () => {
	const scan: ExecutionScan = { scanId: "ftg-1", bucket: "ckpts", artefact: "a/", markerKey: "a/model.sig" };
	const out = {
		scanId: "ftg-1",
		bucket: "ckpts",
		marker: { key: "a/model.sig" },
		artefact: "a/",
		objects: [
			{ key: "a/w.bin", versionId: "v1", etag: '"e1"', size: 3 },
			{ key: "a/model.sig", etag: '"e2"', size: 1 },
		],
	};
	it("takes the pinned objects from Mark's output", () => {
		expect(markedObjects(scan, JSON.stringify(out))).toEqual(out.objects);
	});
	it.each<[string, string | undefined, RegExp]>([
		["no output", undefined, /no output/],
		["a truncated output", JSON.stringify(out).slice(0, 40), /not JSON/],
		["another scan's output", JSON.stringify({ ...out, scanId: "ftg-2" }), /another scan/],
		["another bucket", JSON.stringify({ ...out, bucket: "other" }), /another scan/],
		["no objects", JSON.stringify({ ...out, objects: undefined }), /no objects/],
		["a malformed object", JSON.stringify({ ...out, objects: [{ key: "" }] }), /not a scan state/],
	])("is a problem for %s", (_, text, why) => {
		expect(markedObjects(scan, text)).toEqual({ problem: expect.stringMatching(why) });
	});
	it("follows Mark through the history", () => {
		const entered = { type: "TaskStateEntered", stateName: "Mark" };
		const exited = { type: "TaskStateExited", stateName: "Mark", output: "{}" };
		const started = { type: "ExecutionStarted" };
		expect(markProgress([started, entered, exited], false)).toEqual({ kind: "exited", output: "{}" });
		expect(markProgress([started, entered], false)).toBeUndefined(); // more pages to read
		expect(markProgress([started, entered, { type: "ExecutionAborted" }], true)).toEqual({
			kind: "entered-not-exited",
		});
		expect(markProgress([started, { type: "ExecutionAborted" }], true)).toEqual({ kind: "never-entered" });
		expect(markProgress([{ type: "TaskStateExited", stateName: "Manifest", output: "{}" }], true)).toEqual({
			kind: "never-entered",
		});
	});
});

describe("judgeObject", () => {
	it("only SCANNING with this scan's id is stuck", () => {
		expect(judgeObject({ status: "SCANNING", scanId: "ftg-1" }, "ftg-1")).toBe("stuck");
		expect(judgeObject({ status: "SCANNING", scanId: "ftg-2" }, "ftg-1")).toBe("other-scan");
		expect(judgeObject({ status: "SCANNING", scanId: undefined }, "ftg-1")).toBe("other-scan");
		expect(judgeObject({ status: "QUARANTINED", scanId: "ftg-1" }, "ftg-1")).toBe("settled");
		expect(judgeObject({ status: "PROMOTABLE", scanId: "ftg-1" }, "ftg-1")).toBe("settled");
		expect(judgeObject({ status: undefined, scanId: "ftg-1" }, "ftg-1")).toBe("untagged");
	});
});

describe("what a run reports", () => {
	it("writes a reason S3 accepts as a tag value", () => {
		expect(sweepReason("TIMED_OUT")).toBe("swept: execution TIMED_OUT without a verdict");
		expect(sweepReason("<script>")).toMatch(/^[A-Za-z0-9 +\-=._:/@]+$/);
		expect(sweepReason("x".repeat(500)).length).toBeLessThanOrEqual(256);
	});
	it("counts stuck objects and everything it could not check; 0 only for a complete, clean run", () => {
		const clean = { examined: 4, stuck: 0, quarantined: 0, unchecked: 0, truncated: false };
		expect(stuckMetricValue(clean)).toBe(0);
		expect(stuckMetricValue({ ...clean, stuck: 3, quarantined: 3 })).toBe(3);
		expect(stuckMetricValue({ ...clean, stuck: 2, quarantined: 1 })).toBe(2);
		expect(stuckMetricValue({ ...clean, unchecked: 1 })).toBe(1);
		expect(stuckMetricValue({ ...clean, truncated: true })).toBe(1);
	});
});

describe("runSweep: one data point on every path", () => {
	const clean: SweepSummary = { examined: 3, stuck: 0, quarantined: 0, unchecked: 0, truncated: false };
	function invoke(over: Partial<SweepInvocation> = {}) {
		const emitted: MetricPoint[][] = [];
		const runs: Array<{ window: SweepWindow; deadline: number }> = [];
		const result = runSweep({
			event: { lookbackMinutes: 60 },
			now: NOW,
			remainingMs: 15 * 60_000,
			maxExecutionSeconds: () => 8 * 3600,
			sweep: async (window, deadline) => {
				runs.push({ window, deadline });
				return clean;
			},
			emit: (points) => emitted.push(points),
			...over,
		});
		return { result, emitted, runs };
	}
	const stuck = (value: number) => [{ name: "scans_stuck_in_scanning", value, unit: "Count" }];

	it("reports the run's value and returns it with the window", async () => {
		const found = { ...clean, stuck: 2, quarantined: 2, unchecked: 1 };
		const { result, emitted } = invoke({ sweep: async () => found });
		expect(await result).toEqual({ ...found, since: minutes(60).toISOString(), metric: 3 });
		expect(emitted).toEqual([stuck(3)]);
		const zero = invoke();
		expect(await zero.result).toMatchObject({ metric: 0 });
		expect(zero.emitted).toEqual([stuck(0)]);
	});

	it("looks back four intervals by default, and stops starting work a margin before the function's end", async () => {
		const { result, runs } = invoke({ event: { source: "aws.events" } });
		await result;
		expect(runs[0]?.window).toEqual(sweepWindow(NOW, 60, 8 * 3600));
		expect(runs[0]?.deadline).toBe(NOW.getTime() + 15 * 60_000 - REPORT_MARGIN_MS);
		const unknown = invoke({ event: undefined, remainingMs: undefined });
		await unknown.result;
		expect(unknown.runs[0]?.deadline).toBe(NOW.getTime() + 5 * 60_000 - REPORT_MARGIN_MS);
		const short = invoke({ remainingMs: 1_000 });
		await short.result;
		expect(short.runs[0]?.deadline).toBe(NOW.getTime());
	});

	it.each<[string, Partial<SweepInvocation>, RegExp]>([
		["an invalid input", { event: { lookbackMinutes: "soon" } }, /^sweep: invalid input/],
		["a lookback it cannot honour", { event: { lookbackMinutes: 0 } }, /^sweep: invalid input/],
		["a missing setting", { maxExecutionSeconds: () => Number.NaN }, /^sweep: the longest execution/],
		[
			"a sweep that cannot list",
			{
				sweep: async () => {
					throw new Error("AccessDenied");
				},
			},
			/AccessDenied/,
		],
	])("reports 1 (it could not look) and fails for %s", async (_, over, why) => {
		const { result, emitted } = invoke(over);
		await expect(result).rejects.toThrow(why);
		expect(emitted).toEqual([stuck(1)]);
	});

	it("fails as USAGE for its own input and configuration, and rethrows the sweep's error as it is", async () => {
		await expect(invoke({ event: { lookbackMinutes: -1 } }).result).rejects.toMatchObject({ code: "USAGE" });
		await expect(invoke({ maxExecutionSeconds: () => 0 }).result).rejects.toMatchObject({ code: "USAGE" });
		const boom = new Error("boom");
		await expect(
			invoke({
				maxExecutionSeconds: () => {
					throw boom;
				},
			}).result,
		).rejects.toBe(boom);
	});
});
