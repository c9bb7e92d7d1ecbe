/**
 * dataset: EventBridge "Object Created" on the dataset bucket → the dataset gate. A marker `<dir>/ftguard-dataset.json`
 * (`{"source"?, "version"?}`, written last) has every other object under `<dir>/` scanned as one dataset version
 * (lib/aws/dataset.ts; rules in lib/core/pipeline/dataset.ts): here when it fits the function
 * (LAMBDA_DATASET_MAX_BYTES), else by a Batch job (batch-jobs/dataset-scan/entry.ts) this submits. The scan writes
 * the report and lineage beside the data, tags every version `ftguard:status=PROMOTABLE|QUARANTINED`, and emits
 * finetuning_dataset_examples_total and finetuning_dataset_poisoning_scan_result. Fails closed: an error
 * quarantines what it can, emits a failing result and is rethrown (EventBridge retries, then the dead-letter queue).
 */
import { type DatasetGateOutcome, runDatasetGate, type SubmitDatasetJob, submitWithBatch } from "../lib/aws/dataset";
import { loadPolicy, runHandler, s3Client } from "../lib/aws/runtime";
import { scanIdOf } from "../lib/core/pipeline/artefact";
import { datasetDirOf } from "../lib/core/pipeline/dataset";
import type { GateTarget } from "../lib/core/pipeline/input-gate";
import { ScanStatus } from "../lib/core/pipeline/names";
import { objectCreated } from "../lib/core/pipeline/start";

export type DatasetGateOutput = { checked: false; reason: "not-a-marker" } | ({ checked: true } & DatasetGateOutcome);

/** The handler with its way of submitting Batch scans (the local pipeline runs them with its own runner). */
export function datasetHandler(
	submit: SubmitDatasetJob,
	options: { maxFunctionBytes?: number } = {},
): (event: unknown) => Promise<DatasetGateOutput> {
	return (event) =>
		runHandler("dataset", undefined, async (log) => {
			const { bucket, object } = objectCreated(event);
			const dir = datasetDirOf(object.key);
			if (!dir) return { checked: false, reason: "not-a-marker" };
			const version = {
				...(object["version-id"] ? { versionId: object["version-id"] } : {}),
				...(object.etag ? { etag: object.etag } : {}),
			};
			const target: GateTarget = {
				bucket: bucket.name,
				artefact: dir,
				marker: { key: object.key, ...version },
				checkId: scanIdOf(bucket.name, object.key, {
					...version,
					...(object.sequencer !== undefined ? { sequencer: object.sequencer } : {}),
				}),
			};
			log.appendKeys({ scanId: target.checkId });
			try {
				const out = await runDatasetGate(s3Client(), target, loadPolicy, { where: "function", submit, ...options });
				if (out.place === "submitted") log.info("dataset too large for the function: Batch scan submitted", out);
				else if (out.status === ScanStatus.PROMOTABLE) log.info("dataset passed", out);
				else log.warn("dataset quarantined", out);
				return { checked: true, ...out };
			} catch (e) {
				log.error("dataset scan failed: quarantined", { prefix: dir });
				throw e;
			}
		});
}

export const handler = datasetHandler(submitWithBatch);
