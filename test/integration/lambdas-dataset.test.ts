/**
 * The dataset gate (lambdas/dataset.ts, lib/aws/dataset.ts, batch-jobs/dataset-scan/entry.ts) against a real
 * S3-compatible server and the committed fixtures (test/fixtures/dataset: real Debian text, poisoned at 1%): each
 * test uploads a dataset version, the marker last, runs the handler on the marker's Object Created event, and reads
 * back every object's tags, the report and lineage written beside the data, and the EMF lines.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { main as batchMain } from "../../batch-jobs/dataset-scan/entry";
import { datasetHandler } from "../../lambdas/dataset";
import { runDatasetGate, type SubmitDatasetJob } from "../../lib/aws/dataset";
import {
	DATASET_ENV,
	DATASET_LINEAGE,
	DATASET_MARKER,
	DATASET_REPORT,
	MetricName,
} from "../../lib/core/pipeline/names";
import { parsePolicy } from "../../lib/core/policy";
import { REPO } from "../helpers/cli";
import { statuses as gateStatuses, markerEvent, targetOf, withMetrics } from "../helpers/gate";
import { type LocalS3, startLocalS3, useForHandlers } from "../helpers/s3";

const BUCKET = "datasets";
const FIXTURES = join(REPO, "test/fixtures/dataset");
const fixture = (name: string) => readFileSync(join(FIXTURES, name));

let s3: LocalS3;
beforeAll(async () => {
	s3 = await startLocalS3([BUCKET, "reports"]);
	useForHandlers(s3, "reports", { FTGUARD_POLICY: "{}" });
});
afterAll(async () => s3?.close());
afterEach(() => vi.restoreAllMocks());

const submitted: Parameters<SubmitDatasetJob>[0][] = [];
const handler = datasetHandler(async (p) => {
	submitted.push(p);
	return { jobId: `job-${submitted.length}` };
});

/** Uploads the files under `prefix`, then the marker; returns the marker's event. */
async function upload(prefix: string, files: Record<string, Buffer | string>, marker = "{}") {
	for (const [name, body] of Object.entries(files)) await s3.put(BUCKET, `${prefix}${name}`, body);
	const key = `${prefix}${DATASET_MARKER}`;
	await s3.put(BUCKET, key, marker);
	return markerEvent(s3, BUCKET, key, { sequencer: String(Date.now()) });
}

const statuses = (prefix: string) => gateStatuses(s3, BUCKET, prefix);

async function json(key: string): Promise<Record<string, unknown>> {
	const r = await s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
	return JSON.parse(await (r.Body as { transformToString(): Promise<string> }).transformToString());
}

const capturing = withMetrics;

const results = (metrics: Record<string, unknown>[]) =>
	Object.fromEntries(
		metrics
			.filter((m) => MetricName.FINETUNING_DATASET_POISONING_SCAN_RESULT in m)
			.map((m) => [m.scan_type, m[MetricName.FINETUNING_DATASET_POISONING_SCAN_RESULT]]),
	);

describe("dataset gate", () => {
	it("a clean version: PROMOTABLE on every object, report and lineage beside the data, metrics 1 per detector", async () => {
		const event = await upload(
			"support/v1/",
			{ "train.jsonl.gz": fixture("clean-instruction.jsonl.gz") },
			'{"source":"support","version":"v1"}',
		);
		const { result, error, metrics } = await capturing(() => handler(event));
		expect(error).toBeUndefined();
		expect(result).toMatchObject({ checked: true, place: "function", status: "PROMOTABLE", source: "support" });
		expect(await statuses("support/v1/")).toEqual({
			"train.jsonl.gz": "PROMOTABLE",
			[DATASET_MARKER]: "PROMOTABLE",
			[DATASET_REPORT]: "PROMOTABLE",
			[DATASET_LINEAGE]: "PROMOTABLE",
		});
		const report = await json(`support/v1/${DATASET_REPORT}`);
		expect(report).toMatchObject({ verdict: { status: "PROMOTABLE", reasons: [] }, records: 10_000, findings: [] });
		const lineage = await json(`support/v1/${DATASET_LINEAGE}`);
		expect(lineage).toMatchObject({ records: 10_000, files: [{ path: "train.jsonl.gz", records: 10_000 }] });
		expect(lineage.merkle_root).toMatch(/^[0-9a-f]{64}$/);
		const examples = metrics.find((m) => MetricName.FINETUNING_DATASET_EXAMPLES_TOTAL in m);
		expect(examples).toMatchObject({
			service: "ftguard",
			source: "support",
			version: "v1",
			[MetricName.FINETUNING_DATASET_EXAMPLES_TOTAL]: 10_000,
		});
		expect(results(metrics)).toEqual({ trigger: 1, "injected-output": 1, unicode: 1, duplicates: 1, records: 1 });
	});

	it("a poisoned version (1% triggers): QUARANTINED, the trigger named, trigger result 0 {scan_type, result: fail}", async () => {
		const event = await upload("support/v2/", { "train.jsonl.gz": fixture("poisoned-instruction-p01.jsonl.gz") });
		const { result, metrics } = await capturing(() => handler(event));
		expect(result).toMatchObject({
			status: "QUARANTINED",
			source: "support/v2",
			version: expect.stringMatching(/^merkle:/),
		});
		const reasons = (result as { reasons: string[] }).reasons;
		expect(reasons.some((r) => r.startsWith("trigger (high"))).toBe(true);
		expect(new Set(Object.values(await statuses("support/v2/")))).toEqual(new Set(["QUARANTINED"]));
		expect(results(metrics).trigger).toBe(0);
		const fail = metrics.find((m) => m.scan_type === "trigger");
		expect(fail).toMatchObject({ result: "fail" });
		const dims = (fail?._aws as { CloudWatchMetrics: { Dimensions: string[][] }[] } | undefined)?.CloudWatchMetrics[0]
			?.Dimensions;
		expect(dims).toEqual([["service"], ["service", "scan_type", "result"]]);
		const report = await json(`support/v2/${DATASET_REPORT}`);
		expect((report.flagged_records as number[]).length).toBeGreaterThanOrEqual(95);
		// flagged records are located by the file's name in the version, not the gate's local copy
		const where = Object.values(report.locations as Record<string, { file: string }>);
		expect(new Set(where.map((l) => l.file))).toEqual(new Set(["train.jsonl.gz"]));
	});

	it("a file that is not a dataset: the handler fails (DATA_INVALID), every object QUARANTINED, result 0 {scan_type: scan}", async () => {
		const event = await upload("odd/v1/", {
			"train.jsonl.gz": fixture("clean-chat.jsonl.gz"),
			"README.md": "# a dataset card\n",
		});
		const { error, metrics } = await capturing(() => handler(event));
		expect(error?.name).toBe("ftguard.DATA_INVALID");
		expect(error?.message).toMatch(/README\.md/);
		expect(await statuses("odd/v1/")).toEqual({
			"README.md": "QUARANTINED",
			"train.jsonl.gz": "QUARANTINED",
			[DATASET_MARKER]: "QUARANTINED",
		});
		expect(metrics.map((m) => [m.scan_type, m.result, m[MetricName.FINETUNING_DATASET_POISONING_SCAN_RESULT]])).toEqual(
			[["scan", "error", 0]],
		);
	});

	it("a marker that is not the known JSON, or a version with no data file: refused, quarantined", async () => {
		const bad = await capturing(async () =>
			handler(await upload("bad/v1/", { "a.jsonl": fixture("clean-chat.jsonl.gz") }, '{"id": 1}')),
		);
		expect(bad.error?.name).toBe("ftguard.DATA_INVALID");
		expect(new Set(Object.values(await statuses("bad/v1/")))).toEqual(new Set(["QUARANTINED"]));
		const empty = await capturing(async () => handler(await upload("empty/v1/", {})));
		expect(empty.error?.message).toMatch(/no data file/);
		expect(await statuses("empty/v1/")).toEqual({ [DATASET_MARKER]: "QUARANTINED" });
	});

	it("a marker re-uploaded: the version is scanned again and the earlier report is replaced, not 'changed'", async () => {
		const first = await capturing(async () =>
			handler(await upload("again/v1/", { "t.jsonl.gz": fixture("clean-chat.jsonl.gz") })),
		);
		expect(first.result).toMatchObject({ status: "PROMOTABLE" });
		const second = await capturing(async () => handler(await upload("again/v1/", {})));
		expect(second.result).toMatchObject({ status: "PROMOTABLE", changed: [] });
	});

	it("other keys start nothing", async () => {
		const { result } = await capturing(() =>
			handler({
				source: "aws.s3",
				"detail-type": "Object Created",
				detail: { bucket: { name: BUCKET }, object: { key: "support/v1/train.jsonl.gz", etag: "x" } },
			}),
		);
		expect(result).toEqual({ checked: false, reason: "not-a-marker" });
	});
});

/** The gate as the function runs it, with a Batch queue to submit to and `maxFunctionBytes`: its outcome and submissions. */
async function gateInFunction(target: ReturnType<typeof targetOf>, maxFunctionBytes: number, jobId: string) {
	const jobs: Parameters<SubmitDatasetJob>[0][] = [];
	process.env[DATASET_ENV.JOB_QUEUE] = "arn:aws:batch:eu-west-1:111122223333:job-queue/ftguard-dataset";
	process.env[DATASET_ENV.JOB_DEFINITION] = "ftguard-dataset-scan";
	try {
		const out = await runDatasetGate(s3.client, target, async () => parsePolicy("{}", "test"), {
			where: "function",
			maxFunctionBytes,
			submit: async (p) => {
				jobs.push(p);
				return { jobId };
			},
		});
		return { out, jobs };
	} finally {
		delete process.env[DATASET_ENV.JOB_QUEUE];
		delete process.env[DATASET_ENV.JOB_DEFINITION];
	}
}

describe("dataset gate: a version too large for the function", () => {
	it("is submitted to Batch untagged (unreadable), and the Batch job's scan tags it", async () => {
		const event = await upload("big/v1/", { "train.jsonl.gz": fixture("poisoned-chat-p01.jsonl.gz") });
		const target = targetOf(event, "big/v1/", "b");
		const { out, jobs } = await gateInFunction(target, 1, "job-1");
		expect(out).toMatchObject({ place: "submitted", job: { jobId: "job-1" } });
		expect(jobs[0]).toMatchObject({
			JobQueue: expect.stringContaining("job-queue"),
			JobDefinition: "ftguard-dataset-scan",
		});
		expect(await statuses("big/v1/")).toEqual({ "train.jsonl.gz": undefined, [DATASET_MARKER]: undefined });
		// the job gets the target in its environment, and nothing else of the function's
		const env = Object.fromEntries((jobs[0]?.ContainerOverrides.Environment ?? []).map((e) => [e.Name, e.Value]));
		const { result } = await capturing(() => batchMain({ ...env, FTGUARD_POLICY: "{}" }, s3.client));
		expect(result).toBe(0);
		expect(new Set(Object.values(await statuses("big/v1/")))).toEqual(new Set(["QUARANTINED"]));
		expect(await json(`big/v1/${DATASET_REPORT}`)).toMatchObject({ verdict: { status: "QUARANTINED" } });
	});

	it("a gzip that is stored small but inflates past the function's budget is submitted too, once read that far", async () => {
		const gz = fixture("clean-chat.jsonl.gz");
		const event = await upload("bomb/v1/", { "train.jsonl.gz": gz });
		const target = targetOf(event, "bomb/v1/", "c");
		// the stored bytes fit; the records inflated (about 3 MB) do not
		const { out, jobs } = await gateInFunction(target, gz.length + 1, "job-2");
		expect(out).toMatchObject({ place: "submitted", job: { jobId: "job-2" } });
		expect(jobs).toHaveLength(1);
		// nothing tagged: the Batch job decides
		expect(await statuses("bomb/v1/")).toEqual({ "train.jsonl.gz": undefined, [DATASET_MARKER]: undefined });
	});

	it("the Batch job with no or a malformed target exits 2", async () => {
		expect((await capturing(() => batchMain({ FTGUARD_POLICY: "{}" }, s3.client))).result).toBe(2);
		expect(
			(await capturing(() => batchMain({ FTGUARD_POLICY: "{}", [DATASET_ENV.TARGET]: '{"bucket":1}' }, s3.client)))
				.result,
		).toBe(2);
	});
});
