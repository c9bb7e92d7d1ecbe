/**
 * The dataset gate's S3 side (lambdas/dataset.ts, and the Batch job batch-jobs/dataset-scan/entry.ts for versions
 * too large for the function; rules in lib/core/pipeline/dataset.ts): the version's objects pinned, each data file
 * copied at its pinned version to local storage and scanned by `ftguard dataset`'s scanner, the report and lineage
 * written beside the data, every version tagged with the verdict, the dataset metrics emitted. Fails closed: an
 * error quarantines what it can, emits a failing scan result and is rethrown.
 */
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { BatchClient, SubmitJobCommand } from "@aws-sdk/client-batch";
import type { S3Client } from "@aws-sdk/client-s3";
import { type DatasetReport, scanDataset } from "../core/dataset/scan";
import { FtguardError, toFtguardError } from "../core/errors";
import { normalizeEtag } from "../core/pipeline/artefact";
import { mapLimit } from "../core/pipeline/concurrency";
import {
	type DataObject,
	type DatasetVerdict,
	dataObjects,
	datasetJobName,
	datasetMetricDocuments,
	datasetNames,
	judgeDataset,
	LAMBDA_DATASET_MAX_BYTES,
	MAX_DATASET_MARKER_BYTES,
	parseDatasetMarker,
	scanPlace,
} from "../core/pipeline/dataset";
import type { GateTarget } from "../core/pipeline/input-gate";
import { DATASET_ENV, DATASET_LINEAGE, DATASET_REPORT, type ScanStatus } from "../core/pipeline/names";
import type { ScanObject } from "../core/pipeline/types";
import type { Policy } from "../core/policy";
import { pinInput, quarantineWhatever, readMarker, tagInput } from "./input-gate";
import { emitEmfDocument } from "./metrics";
import { putObject } from "./object-store";
import { getPinned, s3Error } from "./objects";

/** A submitted Batch scan: what the gate function returns for a version too large for it. */
export interface Submission {
	jobId: string;
	jobName: string;
}

/** Submits the Batch scan of `target` (SubmitJob, in the parameter names of the API and the state language). */
export type SubmitDatasetJob = (params: {
	JobName: string;
	JobQueue: string;
	JobDefinition: string;
	ContainerOverrides: { Environment: { Name: string; Value: string }[] };
}) => Promise<{ jobId: string }>;

export type DatasetGateOutcome =
	| {
			place: "function" | "batch";
			checkId: string;
			status: ScanStatus;
			source: string;
			version: string;
			records: number;
			reasons: string[];
			changed: string[];
			report: string;
			lineage: string;
	  }
	| { place: "submitted"; checkId: string; job: Submission; bytes: number };

export interface DatasetGateOptions {
	/** where this runs: the function submits versions larger than it should scan; the Batch job scans anything */
	where: "function" | "batch";
	/** the submission, for the function (absent: the function scans whatever the size) */
	submit?: SubmitDatasetJob;
	/** the most bytes the function scans itself, stored and as read (gzip inflated) (@default LAMBDA_DATASET_MAX_BYTES) */
	maxFunctionBytes?: number;
	/** a directory for the copies (@default the OS's temporary directory) */
	tmp?: string;
	/** EMF documents go here (@default stdout, where Lambda's and Batch's log agents read them) */
	emit?: (doc: object) => void;
}

/**
 * Runs the gate on one committed version. Returns the verdict (or the submission); any error has quarantined what
 * could be tagged and emitted a failing scan result before it is rethrown.
 */
export async function runDatasetGate(
	s3: S3Client,
	target: GateTarget,
	policy: () => Promise<Policy>,
	options: DatasetGateOptions,
): Promise<DatasetGateOutcome> {
	const emit = options.emit ?? emitEmfDocument;
	let objects: ScanObject[] | undefined;
	let names = datasetNames(target.artefact, {});
	try {
		objects = await pinInput(s3, target);
		const marker = parseDatasetMarker(
			await readMarker(s3, target, objects, MAX_DATASET_MARKER_BYTES),
			`s3://${target.bucket}/${target.marker.key}`,
		);
		names = datasetNames(target.artefact, marker);
		const data = dataObjects(target.artefact, objects);
		const bytes = data.reduce((n, d) => n + d.object.size, 0);
		const p = await policy();
		// the function hands to Batch what is larger than its budget, stored or as read (a small gzip that inflates)
		const toBatch = options.where === "function" ? options.submit : undefined;
		const budget = options.maxFunctionBytes ?? LAMBDA_DATASET_MAX_BYTES;
		const submitted = async (to: SubmitDatasetJob): Promise<DatasetGateOutcome> => ({
			place: "submitted",
			checkId: target.checkId,
			job: await submit(to, target),
			bytes,
		});
		if (toBatch && scanPlace(bytes, budget) === "batch") return await submitted(toBatch);
		let report: DatasetReport;
		try {
			report = await scanCopies(s3, target, data, p, options.tmp, toBatch ? budget : undefined);
		} catch (e) {
			if (!(toBatch && e instanceof FtguardError && e.code === "TOO_LARGE")) throw e;
			return await submitted(toBatch);
		}
		names = datasetNames(target.artefact, marker, report.lineage.merkle_root);
		const verdict = judgeDataset(report, p.dataset);
		// the report and lineage are part of the version: written first, then tagged with it
		const written = await writeBeside(s3, target, report, verdict, names);
		// an earlier scan's report and lineage were replaced just now: the new versions are the ones tagged
		const gated = [...objects.filter((o) => !written.objects.some((w) => w.key === o.key)), ...written.objects];
		const tagged = await tagInput(s3, target, gated, verdict.status);
		const reasons = tagged.changed.length
			? [...verdict.reasons, ...tagged.changed.map((k) => `changed during the scan: ${k}`)]
			: verdict.reasons;
		const results =
			tagged.status === verdict.status ? verdict.results : [...verdict.results, { scanType: "scan", pass: false }];
		for (const doc of datasetMetricDocuments(names, { records: report.records, results })) emit(doc);
		return {
			place: options.where,
			checkId: target.checkId,
			status: tagged.status,
			...names,
			records: report.records,
			reasons,
			changed: tagged.changed,
			report: written.report,
			lineage: written.lineage,
		};
	} catch (e) {
		await quarantineWhatever(s3, target, objects);
		for (const doc of datasetMetricDocuments(names, { error: true })) emit(doc);
		throw toFtguardError(e);
	}
}

async function submit(send: SubmitDatasetJob, target: GateTarget): Promise<Submission> {
	const queue = process.env[DATASET_ENV.JOB_QUEUE];
	const definition = process.env[DATASET_ENV.JOB_DEFINITION];
	if (!queue || !definition) {
		throw new FtguardError(
			"USAGE",
			`the dataset is too large for the function and ${DATASET_ENV.JOB_QUEUE} / ${DATASET_ENV.JOB_DEFINITION} are not set`,
		);
	}
	const jobName = datasetJobName(target.checkId);
	const { jobId } = await send({
		JobName: jobName,
		JobQueue: queue,
		JobDefinition: definition,
		ContainerOverrides: { Environment: [{ Name: DATASET_ENV.TARGET, Value: JSON.stringify(target) }] },
	});
	return { jobId, jobName };
}

/** SubmitJob through the Batch API (the gate function in AWS). */
export const submitWithBatch: SubmitDatasetJob = async (params) => {
	const r = await new BatchClient({}).send(
		new SubmitJobCommand({
			jobName: params.JobName,
			jobQueue: params.JobQueue,
			jobDefinition: params.JobDefinition,
			containerOverrides: {
				environment: params.ContainerOverrides.Environment.map((e) => ({ name: e.Name, value: e.Value })),
			},
			propagateTags: true,
		}),
	);
	if (!r.jobId) throw new FtguardError("IO_ERROR", "Batch SubmitJob returned no job id");
	return { jobId: r.jobId };
};

/**
 * Copies every data file at its pinned version to local storage (names kept for format detection, made safe), scans
 * them as one dataset, and names files in the report by their key under the version directory.
 */
async function scanCopies(
	s3: S3Client,
	target: GateTarget,
	data: readonly DataObject[],
	policy: Policy,
	tmp?: string,
	maxReadBytes?: number,
): Promise<DatasetReport> {
	const dir = await mkdtemp(join(tmp ?? tmpdir(), "ftguard-dataset-"));
	try {
		const local = data.map((d, i) => join(dir, String(i), basename(d.name).replace(/[^A-Za-z0-9._-]/g, "_") || "data"));
		await mapLimit(data, 4, async (d, i) => {
			const path = local[i] as string;
			await mkdir(join(dir, String(i)));
			const r = await getPinned(s3, { bucket: target.bucket, ...d.object });
			try {
				await pipeline(r.Body as Readable, createWriteStream(path, { flags: "wx" }));
			} catch (e) {
				throw s3Error(e, `s3://${target.bucket}/${d.object.key}`);
			}
		});
		const report = await scanDataset({
			files: local,
			policy: policy.dataset,
			...(maxReadBytes === undefined ? {} : { maxReadBytes }),
		});
		const nameOf = new Map(local.map((p, i) => [p, (data[i] as DataObject).name]));
		const rename = (p: string) => nameOf.get(p) ?? p;
		return {
			...report,
			locations: Object.fromEntries(
				Object.entries(report.locations).map(([k, v]) => [k, { file: rename(v.file), line: v.line }]),
			),
			lineage: { ...report.lineage, files: report.lineage.files.map((f) => ({ ...f, path: rename(f.path) })) },
		};
	} finally {
		await rm(dir, { recursive: true, force: true });
	}
}

/** The report (`ftguard dataset --json` plus the verdict) and the lineage, written under the version directory. */
async function writeBeside(
	s3: S3Client,
	target: GateTarget,
	report: DatasetReport,
	verdict: DatasetVerdict,
	names: { source: string; version: string },
): Promise<{ report: string; lineage: string; objects: ScanObject[] }> {
	const doc = {
		dataset: { bucket: target.bucket, prefix: target.artefact, checkId: target.checkId, ...names },
		verdict: { status: verdict.status, reasons: verdict.reasons },
		...report,
	};
	const put = async (name: string, value: unknown): Promise<ScanObject> => {
		const key = `${target.artefact}${name}`;
		const body = `${JSON.stringify(value, null, 2)}\n`;
		const r = await putObject(s3, { bucket: target.bucket, key }, body, "application/json");
		return {
			key,
			size: Buffer.byteLength(body),
			...(r.VersionId ? { versionId: r.VersionId } : {}),
			...(r.ETag ? { etag: normalizeEtag(r.ETag) } : {}),
		};
	};
	const [r, l] = await Promise.all([put(DATASET_REPORT, doc), put(DATASET_LINEAGE, report.lineage)]);
	return { report: `s3://${target.bucket}/${r.key}`, lineage: `s3://${target.bucket}/${l.key}`, objects: [r, l] };
}
