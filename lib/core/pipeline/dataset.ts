/**
 * The dataset gate's rules (lambdas/dataset.ts; the S3 side is lib/aws/dataset.ts). A dataset version committed to
 * the dataset bucket (`<dir>/ftguard-dataset.json`, written last) is every other object under `<dir>/`: each is a
 * data file (JSONL, JSON, Parquet, optionally gzipped) scanned by `ftguard dataset`'s detectors under the policy's
 * `dataset` section. The version passes only when the scan ran to the end with no finding at or above the policy's
 * `failOn`; anything else — a finding, a file that is not a dataset, an error — is QUARANTINED.
 */
import { z } from "zod";
import type { DatasetReport } from "../dataset/scan";
import { FtguardError } from "../errors";
import { type DatasetPolicy, SEVERITIES } from "../policy/dataset";
import { emfDocument, type GateStatus, markerDirOf, parseMarkerJson } from "./input-gate";
import { DATASET_DIMENSION, DATASET_GATE_NAMES, DATASET_MARKER_SUFFIX, MetricName, ScanStatus } from "./names";
import type { ScanObject } from "./types";

/** The largest marker read. */
export const MAX_DATASET_MARKER_BYTES = 64 * 1024;

/**
 * Datasets up to this many bytes (stored, all files; and as read, gzip inflated) are scanned in the gate function;
 * larger ones on the Batch queue (one that inflates past it is sent there when the function has read that much). The
 * function copies the files to its ephemeral storage (10 GiB) and scans at tens of MB/s on its ~2 vCPUs: 4 GiB is
 * minutes, well inside its 15.
 */
export const LAMBDA_DATASET_MAX_BYTES = 4 * 1024 ** 3;

const label = z
	.string()
	.min(1)
	.max(128)
	.regex(/^[A-Za-z0-9][A-Za-z0-9._:@/+-]*$/, "letters, digits and . _ : @ / + - (a metric dimension value)");

/** The marker: optional names for the metrics (`source`: where the data came from; `version`: the uploader's name). */
const markerSchema = z.object({ source: label.optional(), version: label.optional() }).strict();
export type DatasetMarker = z.infer<typeof markerSchema>;

/** The version directory (`<dir>/`) of a marker key, or undefined when the key is not a dataset marker. */
export function datasetDirOf(key: string): string | undefined {
	return markerDirOf(key, DATASET_MARKER_SUFFIX);
}

/** @throws FtguardError DATA_INVALID when the marker is not a JSON object of the known optional fields */
export function parseDatasetMarker(bytes: Uint8Array, where: string): DatasetMarker {
	return parseMarkerJson(bytes, where, markerSchema);
}

/** A data file of the version: its pinned object and its name relative to the version directory. */
export interface DataObject {
	readonly object: ScanObject;
	readonly name: string;
}

/** The data files among the pinned objects of `<dir>/`: all but the gate's own (marker, report, lineage). */
export function dataObjects(dir: string, objects: readonly ScanObject[]): DataObject[] {
	const out: DataObject[] = [];
	for (const o of objects) {
		if (!o.key.startsWith(dir)) continue;
		const name = o.key.slice(dir.length);
		if (DATASET_GATE_NAMES.includes(name)) continue;
		out.push({ object: o, name });
	}
	if (out.length === 0) throw new FtguardError("DATA_INVALID", `s3 prefix ${dir} holds no data file beside its marker`);
	return out;
}

/** Where a version of `bytes` (all its data files) is scanned. */
export function scanPlace(bytes: number, max = LAMBDA_DATASET_MAX_BYTES): "function" | "batch" {
	return bytes <= max ? "function" : "batch";
}

/**
 * The detectors as the metric's `scan_type`: each finding id belongs to one. `scan` stands for the scan itself,
 * which fails when it could not run to the end.
 */
export const SCAN_TYPE_OF: Readonly<Record<string, string>> = {
	trigger: "trigger",
	"injected-output": "injected-output",
	"invisible-character": "unicode",
	"bidi-override": "unicode",
	"tag-character": "unicode",
	"homoglyph-word": "unicode",
	"exact-duplicate": "duplicates",
	"conflicting-duplicates": "duplicates",
	"malformed-record": "records",
};
export const SCAN_TYPES = ["trigger", "injected-output", "unicode", "duplicates", "records"] as const;
export const SCAN_ERROR_TYPE = "scan";

export interface DatasetVerdict {
	status: GateStatus;
	/** one line per finding that fails the version (id, severity, records, message) */
	reasons: string[];
	/** per detector: passed (no finding at or above failOn) */
	results: { scanType: string; pass: boolean }[];
}

const MAX_REASONS = 10;

/** The verdict on a scanned version: PROMOTABLE only when no finding is at or above the policy's failOn. */
export function judgeDataset(report: DatasetReport, policy: DatasetPolicy): DatasetVerdict {
	const failAt = SEVERITIES.indexOf(policy.failOn);
	const failing = report.findings.filter((f) => SEVERITIES.indexOf(f.severity) >= failAt);
	const failed = new Set(failing.map((f) => SCAN_TYPE_OF[f.id] ?? f.id));
	// the report has every finding; the verdict names the first few (tags, logs and alarms need a line, not a list)
	const reasons = failing.slice(0, MAX_REASONS).map((f) => {
		const n = f.records.length;
		return `${f.id} (${f.severity}, ${n} record${n === 1 ? "" : "s"}): ${f.message}`;
	});
	if (failing.length > MAX_REASONS) reasons.push(`and ${failing.length - MAX_REASONS} more finding(s): see the report`);
	const pass = failing.length === 0 && report.ok;
	if (!pass && reasons.length === 0) reasons.push("the scan did not pass");
	return {
		status: pass ? ScanStatus.PROMOTABLE : ScanStatus.QUARANTINED,
		reasons,
		results: [...SCAN_TYPES, ...[...failed].filter((t) => !(SCAN_TYPES as readonly string[]).includes(t))].map(
			(scanType) => ({ scanType, pass: !failed.has(scanType) }),
		),
	};
}

/** The metrics' `source` (the marker's, else the directory) and `version` (the marker's, else the Merkle root's head). */
export function datasetNames(
	dir: string,
	marker: DatasetMarker,
	merkleRoot?: string,
): { source: string; version: string } {
	return {
		source: marker.source ?? dir.replace(/\/+$/, ""),
		version: marker.version ?? (merkleRoot ? `merkle:${merkleRoot.slice(0, 16)}` : "unknown"),
	};
}

/**
 * The dataset metrics as CloudWatch EMF documents: `finetuning_dataset_examples_total` (records; dimensions
 * `{service}` and `{service, source, version}`) when the scan counted them, and one
 * `finetuning_dataset_poisoning_scan_result` per detector (1 pass, 0 fail; `{service}` — what the
 * DatasetPoisoningFound alarm watches, Minimum — and `{service, scan_type, result}`). A scan that could not run
 * emits one point, scan_type `scan`, result `error`, 0: the alarm fires on it too.
 */
export function datasetMetricDocuments(
	names: { source: string; version: string },
	outcome: { records: number; results: DatasetVerdict["results"] } | { error: true },
	now: Date = new Date(),
): object[] {
	const result = (scanType: string, value: 0 | 1, word: string) =>
		emfDocument(
			now,
			MetricName.FINETUNING_DATASET_POISONING_SCAN_RESULT,
			"None",
			[DATASET_DIMENSION.SCAN_TYPE, DATASET_DIMENSION.RESULT],
			{
				[DATASET_DIMENSION.SCAN_TYPE]: scanType,
				[DATASET_DIMENSION.RESULT]: word,
				[MetricName.FINETUNING_DATASET_POISONING_SCAN_RESULT]: value,
			},
		);
	if ("error" in outcome) return [result(SCAN_ERROR_TYPE, 0, "error")];
	return [
		emfDocument(
			now,
			MetricName.FINETUNING_DATASET_EXAMPLES_TOTAL,
			"Count",
			[DATASET_DIMENSION.SOURCE, DATASET_DIMENSION.VERSION],
			{
				[DATASET_DIMENSION.SOURCE]: names.source,
				[DATASET_DIMENSION.VERSION]: names.version,
				[MetricName.FINETUNING_DATASET_EXAMPLES_TOTAL]: outcome.records,
			},
		),
		...outcome.results.map((r) => result(r.scanType, r.pass ? 1 : 0, r.pass ? "pass" : "fail")),
	];
}

/** The job name of a Batch scan (letters, digits, hyphens and underscores, at most 128). */
export function datasetJobName(checkId: string): string {
	return `ftguard-dataset-${checkId.replace(/[^A-Za-z0-9_-]/g, "-")}`.slice(0, 128);
}
