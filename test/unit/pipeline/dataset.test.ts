import { describe, expect, it } from "vitest";
import type { DatasetFinding, DatasetReport } from "../../../lib/core/dataset/scan";
import {
	dataObjects,
	datasetDirOf,
	datasetJobName,
	datasetMetricDocuments,
	datasetNames,
	judgeDataset,
	LAMBDA_DATASET_MAX_BYTES,
	parseDatasetMarker,
	SCAN_TYPE_OF,
	SCAN_TYPES,
	scanPlace,
} from "../../../lib/core/pipeline/dataset";
import { parseGateTarget } from "../../../lib/core/pipeline/input-gate";
import { DATASET_LINEAGE, DATASET_MARKER, DATASET_REPORT, MetricName } from "../../../lib/core/pipeline/names";
import { DATASET_FINDING_IDS, datasetPolicySchema } from "../../../lib/core/policy/dataset";

const policy = datasetPolicySchema.parse({});

function report(findings: Partial<DatasetFinding>[], ok?: boolean): DatasetReport {
	const full = findings.map((f) => ({
		id: "trigger",
		severity: "high",
		message: "m",
		records: [1],
		evidence: {},
		...f,
	}));
	return {
		ok: ok ?? !full.some((f) => f.severity !== "low"),
		records: 100,
		formats: {},
		findings: full as DatasetFinding[],
		flagged_records: [],
		locations: {},
		lineage: { version: 1, records: 100, merkle_root: "ab".repeat(32), files: [], leaf_prefixes: "" },
		timings: { total_ms: 1, second_pass_ms: 1, records_per_s: 1, mb_per_s: 1 },
	} as DatasetReport;
}

describe("dataset marker", () => {
	it("is <dir>/ftguard-dataset.json; the directory is the version", () => {
		expect(datasetDirOf(`a/b/${DATASET_MARKER}`)).toBe("a/b/");
		expect(datasetDirOf(DATASET_MARKER)).toBeUndefined();
		expect(datasetDirOf(`a/x${DATASET_MARKER}`)).toBeUndefined();
		expect(datasetDirOf("a/b/train.jsonl")).toBeUndefined();
	});

	it("holds an optional source and version, nothing else", () => {
		const b = (s: string) => Buffer.from(s);
		expect(parseDatasetMarker(b("{}"), "m")).toEqual({});
		expect(parseDatasetMarker(b('{"source":"support","version":"2026-12-01"}'), "m")).toEqual({
			source: "support",
			version: "2026-12-01",
		});
		for (const bad of [
			"",
			"[]",
			'{"id":"x"}',
			'{"source":""}',
			'{"version":"a b"}',
			`{"source":"${"a".repeat(129)}"}`,
		]) {
			expect(() => parseDatasetMarker(b(bad), "m"), bad).toThrow(expect.objectContaining({ code: "DATA_INVALID" }));
		}
	});

	it("names the metrics by the marker, else by the directory and the Merkle root", () => {
		expect(datasetNames("a/b/", { source: "s", version: "v" }, "ff")).toEqual({ source: "s", version: "v" });
		expect(datasetNames("a/b/", {}, "0123456789abcdef0123")).toEqual({
			source: "a/b",
			version: "merkle:0123456789abcdef",
		});
		expect(datasetNames("a/b/", {})).toEqual({ source: "a/b", version: "unknown" });
	});
});

describe("data objects", () => {
	const o = (key: string) => ({ key, size: 1, etag: "e" });
	it("are every object of the version but the marker, report and lineage", () => {
		const got = dataObjects("d/", [
			o(`d/${DATASET_MARKER}`),
			o("d/a.jsonl"),
			o(`d/${DATASET_REPORT}`),
			o(`d/${DATASET_LINEAGE}`),
			o("d/s/b.parquet"),
		]);
		expect(got.map((d) => d.name)).toEqual(["a.jsonl", "s/b.parquet"]);
	});
	it("a version with none is DATA_INVALID", () => {
		expect(() => dataObjects("d/", [o(`d/${DATASET_MARKER}`), o(`d/${DATASET_REPORT}`)])).toThrow(/no data file/);
	});
	it("past the function's limit a version is scanned on Batch", () => {
		expect(scanPlace(LAMBDA_DATASET_MAX_BYTES)).toBe("function");
		expect(scanPlace(LAMBDA_DATASET_MAX_BYTES + 1)).toBe("batch");
		expect(scanPlace(10, 9)).toBe("batch");
	});
});

describe("dataset verdict", () => {
	it("every finding id belongs to a scan type", () => {
		for (const id of DATASET_FINDING_IDS) expect(SCAN_TYPES).toContain(SCAN_TYPE_OF[id]);
	});

	it("passes with no finding at or above failOn; low findings are not a failure", () => {
		const v = judgeDataset(report([{ id: "exact-duplicate", severity: "low" }]), policy);
		expect(v.status).toBe("PROMOTABLE");
		expect(v.reasons).toEqual([]);
		expect(v.results.every((r) => r.pass)).toBe(true);
	});

	it("a finding at failOn quarantines and fails its scan type only", () => {
		const v = judgeDataset(report([{ id: "homoglyph-word", severity: "high", records: [1, 2], message: "w" }]), policy);
		expect(v.status).toBe("QUARANTINED");
		expect(v.reasons).toEqual(["homoglyph-word (high, 2 records): w"]);
		expect(v.results.filter((r) => !r.pass)).toEqual([{ scanType: "unicode", pass: false }]);
	});

	it("a report that did not pass quarantines even with no finding listed (fail closed)", () => {
		const v = judgeDataset(report([], false), policy);
		expect(v.status).toBe("QUARANTINED");
		expect(v.reasons).toEqual(["the scan did not pass"]);
	});

	it("names at most ten findings, then how many more", () => {
		const v = judgeDataset(report(Array.from({ length: 25 }, () => ({}))), policy);
		expect(v.reasons).toHaveLength(11);
		expect(v.reasons[10]).toBe("and 15 more finding(s): see the report");
	});
});

describe("dataset metrics", () => {
	const now = new Date(0);
	const names = { source: "s", version: "v" };
	it("records under {service} and {service, source, version}; one result per scan type", () => {
		const docs = datasetMetricDocuments(
			names,
			{ records: 7, results: SCAN_TYPES.map((t) => ({ scanType: t, pass: t !== "trigger" })) },
			now,
		) as Record<string, unknown>[];
		expect(docs[0]).toMatchObject({
			service: "ftguard",
			source: "s",
			version: "v",
			[MetricName.FINETUNING_DATASET_EXAMPLES_TOTAL]: 7,
		});
		const dims = (d: Record<string, unknown>) =>
			(d._aws as { CloudWatchMetrics: { Dimensions: string[][]; Namespace: string }[] }).CloudWatchMetrics[0];
		expect(dims(docs[0] as Record<string, unknown>)).toMatchObject({
			Namespace: "ftguard",
			Dimensions: [["service"], ["service", "source", "version"]],
		});
		const results = docs.slice(1);
		expect(results.map((d) => [d.scan_type, d.result, d[MetricName.FINETUNING_DATASET_POISONING_SCAN_RESULT]])).toEqual(
			SCAN_TYPES.map((t) => [t, t === "trigger" ? "fail" : "pass", t === "trigger" ? 0 : 1]),
		);
		for (const d of results) expect(dims(d)?.Dimensions).toEqual([["service"], ["service", "scan_type", "result"]]);
	});

	it("a scan that could not run is one failing point (the alarm's Minimum sees 0)", () => {
		const docs = datasetMetricDocuments(names, { error: true }, now) as Record<string, unknown>[];
		expect(docs).toHaveLength(1);
		expect(docs[0]).toMatchObject({
			scan_type: "scan",
			result: "error",
			[MetricName.FINETUNING_DATASET_POISONING_SCAN_RESULT]: 0,
		});
	});
});

describe("Batch job", () => {
	it("its name is the check id, within Batch's alphabet and length", () => {
		expect(datasetJobName(`ftg-${"a".repeat(64)}`)).toBe(`ftguard-dataset-ftg-${"a".repeat(64)}`);
		expect(datasetJobName("x:y/z".repeat(40))).toMatch(/^[A-Za-z0-9_-]{1,128}$/);
	});
	it("its target is validated: unknown keys and missing fields are USAGE", () => {
		const t = { bucket: "b", artefact: "d/", marker: { key: `d/${DATASET_MARKER}`, etag: "e" }, checkId: "ftg-1" };
		expect(parseGateTarget(JSON.stringify(t), "T")).toEqual(t);
		expect(() => parseGateTarget(undefined, "T")).toThrow(expect.objectContaining({ code: "USAGE" }));
		expect(() => parseGateTarget(JSON.stringify({ ...t, extra: 1 }), "T")).toThrow(/T:/);
		expect(() => parseGateTarget(JSON.stringify({ ...t, checkId: undefined }), "T")).toThrow(/checkId/);
	});
});
