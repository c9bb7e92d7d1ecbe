/**
 * The names the runtime (handlers, the batch job, the local pipeline) shares with the AWS deployment: object tag keys
 * and values, the commit-marker and report key suffixes, and the CloudWatch metric namespace, dimension and names.
 * They live here, in the core, and lib/infra imports them, so that the Lambdas that write tags, the bucket policy
 * that guards them and the alarms that read the metrics cannot drift apart. Names only the deployment uses stay in
 * lib/infra/tags.ts.
 */

/** Object tag that carries the verdict. Only the verdict role may write any `ftguard:*` tag. */
export const STATUS_TAG = "ftguard:status";
/** Object tag with the scan id (= the Step Functions execution name) that produced the status. */
export const SCAN_ID_TAG = "ftguard:scan-id";
/** Object tag with the manifest root digest (`sha256:<hex>`) the verdict is bound to. */
export const DIGEST_TAG = "ftguard:digest";
/**
 * Object tag with why the sweeper quarantined an object (`swept: execution FAILED without a verdict`). A later
 * scan's record drops it with the other stale ftguard tags.
 */
export const REASON_TAG = "ftguard:reason";
/**
 * Object tag with the report-bucket key of the signed provenance record of the verdict (`scans/<scan id>/
 * provenance.sigstore.json`): what a deployment system verifies (`ftguard provenance verify`) instead of trusting the
 * status tag. Absent when no provenance signer is configured.
 */
export const PROVENANCE_TAG = "ftguard:provenance";
/**
 * Request header of a tag write bound to the object's ETag, for a store without versioning: the local server
 * (lib/local/s3rver-host.ts) applies the write only while the object still has that ETag. Never sent to S3, where
 * the VersionId binds the write (lib/aws/tagging.ts).
 */
export const TAG_IF_MATCH_HEADER = "x-ftguard-if-match";
/**
 * Every ftguard tag key, in the case the pipeline writes. The bucket policy denies uploads carrying any of them by
 * `s3:RequestObjectTag/<key>` (condition key names fold case, like the `s3:ExistingObjectTag/<key>` reads), which
 * also catches `FTGUARD:STATUS` and other case variants that a case-sensitive `ftguard:*` match misses.
 */
export const FTGUARD_TAG_KEYS = [STATUS_TAG, SCAN_ID_TAG, DIGEST_TAG, REASON_TAG, PROVENANCE_TAG] as const;
/** Every ftguard tag key matches this pattern (used in `s3:RequestObjectTagKeys` conditions). */
export const FTGUARD_TAG_PATTERN = "ftguard:*";

/** Values of {@link STATUS_TAG}. Anything that is not `PROMOTABLE` (including no tag) is untrusted. */
export const ScanStatus = {
	SCANNING: "SCANNING",
	PROMOTABLE: "PROMOTABLE",
	QUARANTINED: "QUARANTINED",
} as const;
export type ScanStatus = (typeof ScanStatus)[keyof typeof ScanStatus];

/** Name of the commit marker of a model directory: `<dir>/model.sig` (an OMS bundle). */
export const MODEL_SIG = "model.sig";
/** Suffix of the commit marker of a single-file artefact: `<key>.sigstore.json`. */
export const BUNDLE_SUFFIX = ".sigstore.json";
/**
 * Key suffixes that make an upload a commit marker (lib/core/pipeline/artefact.ts resolveMarker); the EventBridge
 * rule that starts scans matches the same suffixes (`object.key: [{suffix: …}]`).
 */
export const MARKER_SUFFIXES: readonly string[] = [`/${MODEL_SIG}`, BUNDLE_SUFFIX];

/**
 * Folder of a scan's backdoor outputs under its report prefix: `scans/<scan id>/backdoor/`. Model `i` of the
 * artefact (the files step's plan, `backdoor.models[i]`) is scanned by its own job, which writes under
 * `backdoor/<i>/` (the state machine points the job's FTGUARD_OUTPUT_PREFIX there).
 */
export const BACKDOOR_DIR = "backdoor/";

/** Name of a backdoor job's report in its folder (the job writes it last: its presence means the job finished). */
export const BACKDOOR_REPORT_NAME = "report.json";

/** Key of model `index`'s report under a scan's report prefix: `backdoor/<index>/report.json` (decide reads it). */
export const backdoorReportSuffix = (index: number): string => `${BACKDOOR_DIR}${index}/${BACKDOOR_REPORT_NAME}`;

/**
 * Name of a scan's verdict record under its report prefix: `scans/<scan id>/verdict.json` (lib/core/pipeline/record.ts
 * reportKey(…, "verdict")); the report bucket policy lets only the verdict role write it.
 */
export const VERDICT_RECORD_NAME = "verdict.json";

/**
 * Name of a scan's HTML report beside its verdict record, `scans/<scan id>/report.html` (lib/core/report): the page a
 * person reads; the verdict record stays the machine's source of truth.
 */
export const REPORT_HTML_NAME = "report.html";

/**
 * Name of a scan's signed provenance record beside its verdict record, `scans/<scan id>/provenance.sigstore.json`
 * (lib/core/provenance: an in-toto statement in a DSSE envelope, a Sigstore bundle signed by the provenance key).
 */
export const PROVENANCE_RECORD_NAME = "provenance.sigstore.json";

/** What only the verdict role may write under a scan's report prefix: the record, its page, its provenance. */
export const VERDICT_OUTPUT_NAMES: readonly string[] = [VERDICT_RECORD_NAME, REPORT_HTML_NAME, PROVENANCE_RECORD_NAME];

/** CloudWatch namespace of every ftguard metric (EMF from the handlers and the batch job). */
export const METRIC_NAMESPACE = "ftguard";
/**
 * The one dimension every ftguard metric carries. Powertools Metrics adds `service` from `serviceName`; emit with
 * `new Metrics({ namespace: METRIC_NAMESPACE, serviceName: METRIC_SERVICE })` and no other default dimensions,
 * or the alarms (which match the exact dimension set) will not see the data.
 */
export const METRIC_SERVICE = "ftguard";
export const METRIC_DIMENSIONS: Readonly<Record<string, string>> = { service: METRIC_SERVICE };

/**
 * Metric names. `*_result` metrics are 1 for pass and 0 for fail (one data point per check), so the Minimum over a
 * period is 0 exactly when some check in it failed. `*_total` metrics are counts.
 */
export const MetricName = {
	/** 1 = the base model matched the signed registry entry, 0 = it did not (or could not be checked). */
	BASE_MODEL_VERIFICATION_RESULT: "base_model_verification_result",
	/**
	 * One point per recorded verdict whose signature stage ran: 1 when the checkpoint's signature verified, 0 when
	 * not, under `{service}` (its Sum: checkpoints signed) and `{service, job_id, result}` (TRAINING_DIMENSION).
	 */
	TRAINING_JOB_CHECKPOINT_SIGNED_TOTAL: "training_job_checkpoint_signed_total",
	/**
	 * The ε (at the run's δ, ftguard's RDP accountant) a checkpoint's declared DP-SGD run spent, one point per recorded
	 * verdict that has one, under `{service}` and `{service, job_id}`.
	 */
	DP_EPSILON_CONSUMED: "dp_epsilon_consumed",
	/** Neural Cleanse anomaly index, one data point per class (the alarm takes the Maximum). */
	NEURAL_CLEANSE_ANOMALY_INDEX: "neural_cleanse_anomaly_index",
	/** Activation Clustering: size of the smaller cluster / class size, one data point per class. */
	ACTIVATION_CLUSTERING_MINORITY_FRACTION: "activation_clustering_minority_fraction",
	/**
	 * 1 = the dataset scan found no poisoning, 0 = it did or could not scan; one point per detector (`scan_type`),
	 * under `{service}` (what the DatasetPoisoningFound alarm watches) and `{service, scan_type, result}`.
	 */
	FINETUNING_DATASET_POISONING_SCAN_RESULT: "finetuning_dataset_poisoning_scan_result",
	/** Records in a scanned dataset version, under `{service}` and `{service, source, version}`. */
	FINETUNING_DATASET_EXAMPLES_TOTAL: "finetuning_dataset_examples_total",
	/** Count of scans that ended in an error (each one is a quarantine). */
	SCAN_ERRORS_TOTAL: "scan_errors_total",
	/** Count of verdicts, by outcome. */
	SCAN_PROMOTED_TOTAL: "scan_promoted_total",
	SCAN_QUARANTINED_TOTAL: "scan_quarantined_total",
	/** Count of objects overwritten between mark and record: they get no verdict tag (and the artefact is quarantined). */
	SCAN_OBJECTS_CHANGED_TOTAL: "scan_objects_changed_total",
	/**
	 * Emitted once by every sweeper run (lambdas/sweep.ts, {@link SWEEP}): object versions it found still tagged
	 * SCANNING by an execution that ended FAILED / TIMED_OUT / ABORTED (and quarantined), plus executions or
	 * objects it could not check. Any value > 0 means a scan died without recording its verdict.
	 */
	SCANS_STUCK_IN_SCANNING: "scans_stuck_in_scanning",
	/**
	 * The output monitor (lib/core/monitor): alarms raised by a batch of a deployed model's responses, one point per
	 * batch under `{service}` (0 included: the anomaly band's baseline) and `{service, model_version, issue_type}`.
	 */
	DEPLOYED_MODEL_SUSPICIOUS_OUTPUT_TOTAL: "deployed_model_suspicious_output_total",
	/** Share of a version's window whose output repeats another, after a batch: `{service}`, `{service, model_version}`. */
	DEPLOYED_MODEL_OUTPUT_REPETITION_RATE: "deployed_model_output_repetition_rate",
	/**
	 * Records of a batch the output monitor could not watch (lambdas/monitor.ts), one point per batch and
	 * {@link MonitorUnwatchedReason} (0 included, so the series is continuous) under `{service}` and
	 * `{service, reason}`; the OutputMonitorUnreadRecords alarm watches `reason=unread`.
	 */
	OUTPUT_MONITOR_UNWATCHED_RECORDS_TOTAL: "output_monitor_unwatched_records_total",
} as const;
export type MetricName = (typeof MetricName)[keyof typeof MetricName];

/**
 * Extra dimensions of the training job's metrics (`training_job_checkpoint_signed_total`, `dp_epsilon_consumed`): the
 * job id the artefact's ftguard-training.json declares ({@link UNDECLARED_JOB_ID} when none), and whether the
 * signature verified.
 */
export const TRAINING_DIMENSION = { JOB_ID: "job_id", RESULT: "result" } as const;
export const UNDECLARED_JOB_ID = "undeclared";
export const SignedResult = { VERIFIED: "verified", UNVERIFIED: "unverified" } as const;

/** Extra dimension of `output_monitor_unwatched_records_total` (see {@link MetricName}). */
export const MONITOR_UNWATCHED_DIMENSION = { REASON: "reason" } as const;
/**
 * Values of its `reason` dimension: `unread`, a Bedrock record whose output body in S3 could not be fetched (missing,
 * access denied, over the size cap, outside the configured large-data locations); `malformed`, a line (or a body)
 * that is no inference record.
 */
export const MonitorUnwatchedReason = { UNREAD: "unread", MALFORMED: "malformed" } as const;
export type MonitorUnwatchedReason = (typeof MonitorUnwatchedReason)[keyof typeof MonitorUnwatchedReason];

/** One data point, as the core chooses it and lib/aws/metrics.ts emits it (unit: Count unless None). */
export interface MetricPoint {
	name: MetricName;
	value: number;
	unit?: "Count" | "None";
}

/**
 * The sweeper (lambdas/sweep.ts) and the alarm on what it emits (lib/infra/alarms.ts), in one place.
 *
 * Every run emits `scans_stuck_in_scanning` once: the stuck objects it found plus what it could not check (0 when
 * it examined every failed execution of its window and found nothing). The alarm takes the Maximum over a period
 * of two intervals, threshold 1, one evaluation period, missing data breaching:
 * - a run that found anything (or could not look) puts a value ≥ 1 in its period → ALARM;
 * - on schedule, every period holds two runs, so one late or failed run still leaves a data point; a period with
 *   none means the sweeper missed two runs in a row (not deployed, disabled, throttled, crashing before it
 *   reports) → missing → ALARM.
 * The next clean run returns it to OK (the objects it quarantined are no longer SCANNING).
 */
export const SWEEP = {
	/** Minutes between scheduled runs. */
	intervalMinutes: 15,
	/** Lookback of a scheduled run: four intervals, so up to three missed runs in a row lose nothing. */
	lookbackIntervals: 4,
	/** The alarm's period, in intervals (see above). */
	alarmPeriodIntervals: 2,
	/** The alarm fires at this many stuck (or unchecked) objects in a period. */
	alarmThreshold: 1,
} as const;

/**
 * Commit marker of a base model in the base-model bucket: `<dir>/ftguard-base-model.json`, `{"id": "org/name@rev"}`,
 * written last by the uploader. It names the registry entry every other object under `<dir>/` is checked against
 * (lambdas/base-model.ts); the EventBridge rule on the base-model bucket matches this suffix.
 */
export const BASE_MODEL_MARKER = "ftguard-base-model.json";
export const BASE_MODEL_MARKER_SUFFIX = `/${BASE_MODEL_MARKER}`;

/**
 * Extra dimensions of `base_model_verification_result` (lambdas/base-model.ts, `ftguard base-model check --metrics`).
 * The point is emitted under two dimension sets: `{service}` alone, which the BaseModelVerificationFailed alarm
 * watches (an alarm cannot aggregate over a dimension), and `{service, model_id, result}` for the per-model view.
 */
export const BASE_MODEL_DIMENSION = { MODEL_ID: "model_id", RESULT: "result" } as const;
/** Values of the `result` dimension (the metric is 1 for pass, 0 for fail). */
export const BaseModelResult = { PASS: "pass", FAIL: "fail" } as const;
export type BaseModelResult = (typeof BaseModelResult)[keyof typeof BaseModelResult];

/**
 * Commit marker of a dataset version in the dataset bucket: `<dir>/ftguard-dataset.json`, `{"source"?, "version"?}`,
 * written last by the uploader. Every other object under `<dir>/` is a data file of that version (lambdas/dataset.ts);
 * the EventBridge rule on the dataset bucket matches this suffix.
 */
export const DATASET_MARKER = "ftguard-dataset.json";
export const DATASET_MARKER_SUFFIX = `/${DATASET_MARKER}`;
/**
 * What the dataset gate writes beside the data, `<dir>/<name>`: the scan report (`ftguard dataset --json`) and the
 * lineage manifest (per-file SHA-256, record count, Merkle root). Only the dataset gate role may write keys ending
 * in these names (bucket policy), and they are never read as data files.
 */
export const DATASET_REPORT = "ftguard-dataset-report.json";
export const DATASET_LINEAGE = "ftguard-dataset-lineage.json";
/** Object names under a dataset version's directory that are the gate's own, not data. */
export const DATASET_GATE_NAMES: readonly string[] = [DATASET_MARKER, DATASET_REPORT, DATASET_LINEAGE];

/** Extra dimensions of the dataset metrics (see {@link MetricName}). */
export const DATASET_DIMENSION = {
	SOURCE: "source",
	VERSION: "version",
	SCAN_TYPE: "scan_type",
	RESULT: "result",
} as const;

/**
 * Environment of the dataset gate function: the Batch job queue and job definition that scan datasets too large
 * for the function (lambdas/dataset.ts submits there; the job runs batch-jobs/dataset-scan/entry.ts), and the
 * target of one such job (JSON, set per job by the submission).
 */
export const DATASET_ENV = {
	JOB_QUEUE: "FTGUARD_DATASET_JOB_QUEUE",
	JOB_DEFINITION: "FTGUARD_DATASET_JOB_DEFINITION",
	TARGET: "FTGUARD_DATASET_TARGET",
} as const;
