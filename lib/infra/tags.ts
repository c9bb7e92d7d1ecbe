/**
 * Names only the AWS deployment uses: session tags of the training-job role, the Neural Cleanse alarm's threshold
 * and the pipeline's reserved concurrency. The names the runtime shares with the deployment (object tags, statuses,
 * marker and report suffixes, metric names) are in lib/core/pipeline/names.ts; they are re-exported here so that
 * `ftguard/infra` and `ftguard/infra/tags` keep offering them (code in this repository imports them from the core).
 */
export {
	BACKDOOR_DIR,
	backdoorReportSuffix,
	DIGEST_TAG,
	FTGUARD_TAG_KEYS,
	FTGUARD_TAG_PATTERN,
	METRIC_DIMENSIONS,
	METRIC_NAMESPACE,
	METRIC_SERVICE,
	MetricName,
	REASON_TAG,
	SCAN_ID_TAG,
	ScanStatus,
	STATUS_TAG,
	SWEEP,
	TAG_IF_MATCH_HEADER,
	VERDICT_RECORD_NAME,
} from "../core/pipeline/names.js";

/**
 * Session tag the launcher sets when it assumes the training-job role; the role's policies read it as
 * `${aws:PrincipalTag/job-id}`. See docs/launch-flow.md.
 */
export const JOB_ID_SESSION_TAG = "job-id";
/** Key prefix under which a training job writes its checkpoints: `jobs/<job-id>/…`. */
export const JOB_PREFIX = "jobs/";

/** Threshold of the Neural Cleanse alarm: an anomaly index above 2 is the paper's outlier criterion. */
export const NEURAL_CLEANSE_ANOMALY_THRESHOLD = 2.0;

/**
 * Reserved concurrency of the scan pipeline's functions (lib/infra/scan-pipeline.ts): every step function, the
 * start function, the base-model gate and the dataset gate reserve `perFunction` (ScanPipelineProps.reservedConcurrency), the sweeper `sweep`. Lambda refuses
 * a reservation that leaves the account fewer than 100 unreserved executions, so `ftguard aws preflight` checks the
 * account's concurrency against {@link reservedConcurrencyTotal} + 100.
 */
export const RESERVED_CONCURRENCY = { perFunction: 10, sweep: 1, functionsAtPerFunction: 9 } as const;

/** The concurrency the pipeline reserves in all (a test checks it against the synthesized functions). */
export function reservedConcurrencyTotal(perFunction: number = RESERVED_CONCURRENCY.perFunction): number {
	return RESERVED_CONCURRENCY.functionsAtPerFunction * perFunction + RESERVED_CONCURRENCY.sweep;
}
