/**
 * The backdoor-scan AWS Batch job: the same lib/core scan as `ftguard backdoor`,
 * with its inputs and outputs in S3.
 *
 *   scan   download model + reference data (by VersionId) → scan → report.json
 *          and the trigger images under the output prefix → exit 0 clean / 1 suspect;
 *          a text classifier (FTGUARD_TOKENIZER_URI set): labelled JSONL + tokenizer.json → the text scan
 *   shard  one element of an array job: Neural Cleanse for the classes c with
 *          c mod shards = AWS_BATCH_JOB_ARRAY_INDEX → shards/nc-<index>.json
 *   merge  read every shard (all must be there, for this model, data and policy),
 *          run the remaining detectors → report as in scan
 *
 * Any failure writes error.json {code, message} under the output prefix (best
 * effort) and exits 2, which the state machine turns into QUARANTINED.
 */
import { realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { S3Client } from "@aws-sdk/client-s3";
import { emitMetrics } from "../../lib/aws/metrics";
import { getObjectBytes, type ObjectRef, parseS3Uri, putObject } from "../../lib/aws/object-store";
import type { NcShard } from "../../lib/core/backdoor/scan";
import { FtguardError, toFtguardError } from "../../lib/core/errors";
import { BACKDOOR_REPORT_NAME, MetricName } from "../../lib/core/pipeline/names";
import { defaultPolicy, type Policy, parsePolicy } from "../../lib/core/policy";
import { withOverrides } from "../../lib/core/policy/backdoor";
import { type JobParams, readJobParams } from "./params";

export interface JobResult {
	exitCode: 0 | 1 | 2;
	/** what the job wrote, as s3:// URIs */
	written: string[];
	error?: { code: string; message: string };
}

interface JobIo {
	s3: S3Client;
	log: (line: string) => void;
}

function outputRef(prefix: string, name: string): ObjectRef {
	const base = prefix.replace(/\/+$/, "");
	const slash = base.indexOf("/", "s3://".length);
	const bucket = slash < 0 ? base.slice("s3://".length) : base.slice("s3://".length, slash);
	const keyPrefix = slash < 0 ? "" : `${base.slice(slash + 1)}/`;
	return { bucket, key: `${keyPrefix}${name}` };
}

const uri = (r: ObjectRef) => `s3://${r.bucket}/${r.key}`;

/** The policy's backdoor section (the deployed file, else the defaults) with the job's own settings on top. */
async function jobPolicy(p: JobParams, s3: S3Client): Promise<Policy["backdoor"]> {
	let base = defaultPolicy();
	if (p.policyUri !== undefined) {
		const o = await getObjectBytes(s3, parseS3Uri(p.policyUri), 1024 * 1024);
		base = parsePolicy(Buffer.from(o.bytes).toString("utf8"), p.policyUri);
	}
	return withOverrides(base.backdoor, { ...p, detectors: p.detectors?.split(",") });
}

/** The job's output writer: each object under the output prefix, its URI kept for the result. */
function writer(p: JobParams, io: JobIo, written: string[]) {
	return async (name: string, body: Uint8Array | string, type: string) => {
		const ref = outputRef(p.outputPrefix, name);
		await putObject(io.s3, ref, body, type);
		written.push(uri(ref));
	};
}

/**
 * A text classifier (the policy's reference data names a tokenizer): labelled JSONL + tokenizer.json → the text
 * scan (lib/core/backdoor/text-scan.ts) → report.json, exit 0 clean / 1 suspect.
 */
async function runTextJob(p: JobParams, io: JobIo, tokenizerUri: string): Promise<JobResult> {
	const [{ MAX_TEXTS_BYTES, MAX_TOKENIZER_BYTES, parseLabelledTexts, parseTokenizer }, { scanTextBackdoor }] =
		await Promise.all([import("../../lib/core/backdoor/text-data"), import("../../lib/core/backdoor/text-scan")]);
	const policy = await jobPolicy(p, io.s3);
	const [model, textsObj, tokObj] = await Promise.all([
		getObjectBytes(io.s3, parseS3Uri(p.modelUri, p.modelVersion), p.maxModelBytes),
		getObjectBytes(io.s3, parseS3Uri(p.dataUri, p.dataVersion), Math.min(p.maxDataBytes, MAX_TEXTS_BYTES)),
		getObjectBytes(io.s3, parseS3Uri(tokenizerUri, p.tokenizerVersion), MAX_TOKENIZER_BYTES),
	]);
	io.log(
		`ftguard: scanning text model ${p.modelUri}${model.versionId ? ` (version ${model.versionId})` : ""} on ${p.device}`,
	);
	const utf8 = (b: Uint8Array) => Buffer.from(b).toString("utf8");
	const tokenizer = parseTokenizer(utf8(tokObj.bytes), tokenizerUri);
	const data = parseLabelledTexts(utf8(textsObj.bytes), p.dataUri, {
		...(p.textField !== undefined ? { textField: p.textField } : {}),
		...(p.labelsField !== undefined ? { labelField: p.labelsField } : {}),
	});
	const report = await scanTextBackdoor(model.bytes, tokenizer, data, {
		policy: policy.text,
		device: p.device,
		log: io.log,
	});
	const written: string[] = [];
	const scanned = {
		model: { uri: p.modelUri, version_id: model.versionId ?? null, etag: model.etag ?? null },
		data: { uri: p.dataUri, version_id: textsObj.versionId ?? null },
		tokenizer: { uri: tokenizerUri, version_id: tokObj.versionId ?? null },
	};
	await writer(p, io, written)(
		BACKDOOR_REPORT_NAME,
		`${JSON.stringify({ ...report, scanned }, null, 2)}\n`,
		"application/json",
	);
	io.log(
		`ftguard: ${report.verdict}${report.suspect_classes.length ? ` (labels ${report.suspect_classes})` : ""}; ran on ${report.provider}`,
	);
	return { exitCode: report.verdict === "suspect" ? 1 : 0, written };
}

async function runJob(p: JobParams, io: JobIo): Promise<JobResult> {
	if (p.tokenizerUri !== undefined) return runTextJob(p, io, p.tokenizerUri);
	if (p.labelsUri === undefined) throw new FtguardError("USAGE", "job parameters: labelsUri: required for image data");
	const labelsUri = p.labelsUri;
	const [{ parseNpyFloat32, parseNpyInt64 }, scan, { triggerImages }] = await Promise.all([
		import("../../lib/core/backdoor/npy"),
		import("../../lib/core/backdoor/scan"),
		import("../../lib/core/backdoor/trigger-images"),
	]);
	const policy = await jobPolicy(p, io.s3);
	const [model, xObj, yObj] = await Promise.all([
		getObjectBytes(io.s3, parseS3Uri(p.modelUri, p.modelVersion), p.maxModelBytes),
		getObjectBytes(io.s3, parseS3Uri(p.dataUri, p.dataVersion), p.maxDataBytes),
		getObjectBytes(io.s3, parseS3Uri(labelsUri, p.labelsVersion), p.maxDataBytes),
	]);
	io.log(
		`ftguard: scanning ${p.modelUri}${model.versionId ? ` (version ${model.versionId})` : ""} mode ${p.mode} on ${p.device}`,
	);
	const data = {
		x: parseNpyFloat32(xObj.bytes, p.dataUri),
		y: parseNpyInt64(yObj.bytes, labelsUri),
		kind: p.dataKind,
	};
	const opts = { policy, device: p.device, log: io.log };
	const written: string[] = [];
	const put = writer(p, io, written);

	if (p.mode === "shard") {
		const shard = await scan.neuralCleanseShard(model.bytes, data, { index: p.arrayIndex, count: p.shards }, opts);
		await put(`shards/nc-${p.arrayIndex}.json`, JSON.stringify(shard), "application/json");
		io.log(
			`ftguard: shard ${p.arrayIndex}/${p.shards}: classes [${shard.classes.join(", ")}] in ${shard.seconds.toFixed(1)} s`,
		);
		return { exitCode: 0, written };
	}

	let shards: NcShard[] | undefined;
	if (p.mode === "merge") {
		shards = await Promise.all(
			Array.from({ length: p.shards }, async (_, i) => {
				const o = await getObjectBytes(io.s3, outputRef(p.outputPrefix, `shards/nc-${i}.json`), 256 * 1024 * 1024);
				try {
					return JSON.parse(Buffer.from(o.bytes).toString("utf8"));
				} catch (e) {
					throw new FtguardError("DATA_INVALID", `shard ${i} is not JSON`, { cause: e });
				}
			}),
		);
	}
	// merge: scanBackdoor checks the shards against this model, data and policy
	const { report, triggers, inputShape } = await scan.scanBackdoor(model.bytes, data, {
		...opts,
		...(shards ? { shards } : {}),
	});
	const scanned = {
		model: { uri: p.modelUri, version_id: model.versionId ?? null, etag: model.etag ?? null },
		data: { uri: p.dataUri, version_id: xObj.versionId ?? null },
		labels: { uri: labelsUri, version_id: yObj.versionId ?? null },
	};
	for (const img of triggerImages(triggers, inputShape, report.data.lo, report.data.hi))
		await put(img.name, img.bytes, "image/png");
	const nc = report.detectors.neural_cleanse;
	const ac = report.detectors.activation_clustering;
	emitMetrics([
		...(nc
			? [{ name: MetricName.NEURAL_CLEANSE_ANOMALY_INDEX, value: nc.max_anomaly_index, unit: "None" as const }]
			: []),
		...(ac && ac.per_class.length > 0
			? [
					{
						name: MetricName.ACTIVATION_CLUSTERING_MINORITY_FRACTION,
						value: Math.min(...ac.per_class.map((c) => c.minority_fraction)),
						unit: "None" as const,
					},
				]
			: []),
	]);
	// the report last: its presence means the job finished and every image is there
	await put(BACKDOOR_REPORT_NAME, `${JSON.stringify({ ...report, scanned }, null, 2)}\n`, "application/json");
	io.log(
		`ftguard: ${report.verdict}${report.suspect_classes.length ? ` (classes ${report.suspect_classes})` : ""}; ran on ${report.provider}`,
	);
	return { exitCode: report.verdict === "suspect" ? 1 : 0, written };
}

/** Runs the job and never throws: every failure becomes exit 2 and, when possible, error.json. */
export async function main(argv: readonly string[], env: NodeJS.ProcessEnv, s3?: S3Client): Promise<JobResult> {
	const log = (line: string) => process.stderr.write(`${line}\n`);
	let params: JobParams | undefined;
	const client = s3 ?? new S3Client({});
	try {
		params = readJobParams(argv, env);
		return await runJob(params, { s3: client, log });
	} catch (raw) {
		const e = toFtguardError(raw);
		log(`ftguard: ${e.code}: ${e.message}`);
		const error = { code: e.code, message: e.message };
		const written: string[] = [];
		if (params) {
			const ref = outputRef(
				params.outputPrefix,
				params.mode === "shard" ? `shards/error-${params.arrayIndex}.json` : "error.json",
			);
			try {
				await putObject(client, ref, `${JSON.stringify({ ok: false, error })}\n`, "application/json");
				written.push(uri(ref));
			} catch {
				log(`ftguard: could not write ${uri(ref)}`);
			}
		}
		return { exitCode: 2, written, error };
	}
}

// Run when executed (node entry.mjs / tsx entry.ts), not when imported by tests.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
	const r = await main(process.argv.slice(2), process.env);
	process.exitCode = r.exitCode;
}
