import { Duration } from "aws-cdk-lib";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as sfn from "aws-cdk-lib/aws-stepfunctions";
import * as tasks from "aws-cdk-lib/aws-stepfunctions-tasks";
import type { Construct } from "constructs";
import { BACKDOOR_DIR, BACKDOOR_REPORT_NAME } from "../core/pipeline/names.js";

/**
 * The scan workflow's Step Functions definition: the ASL that runs in AWS and, read back from the synthesized
 * template, in the local pipeline. State names are part of the contract (the local runner, the runbook and
 * `error.state` refer to them); the JSON that flows through is `ScanState` (lib/core/pipeline/types.ts).
 *
 *   Mark → Manifest → Signature → Files → BackdoorRequired? ─ BackdoorScans (Map) ─┐
 *                                                            └─────────────────────┴→ Decide → Record → Done
 *
 *   BackdoorScans, per model of the files step's plan (in parallel):
 *     BackdoorModelReady? ─ BackdoorScan(.sync) → BackdoorClean        (the job exited 0)
 *                       │                     └→ BackdoorJobFailed     (caught: exit 1 suspect, 2, timeout, …)
 *                       └→ BackdoorInputMissing                        (incomplete inputs: an error result)
 *
 * Every Task catches `States.ALL`: the catcher stores `$.error = { state, cause }` and goes to Decide, which
 * quarantines; a backdoor job's failure is caught inside its iteration and becomes that model's result (decide reads
 * the report of a job that exited 1 to name the finding). Decide's and Record's own failures force a QUARANTINED verdict, record it once more and end the
 * execution in a Fail state (so the failed-executions alarm fires); if even that record fails, the objects stay
 * SCANNING (never readable) and the execution fails. A throttled invoke (a function at its reserved concurrency, as
 * in a burst of commits) is not a failure: it is retried until the execution's own timeout (THROTTLE_RETRY).
 */

/** The Lambda-backed steps, in order; each name is also the handler file `lambdas/<name>.ts`. */
export const LAMBDA_STEPS = ["mark", "manifest", "signature", "files", "decide", "record"] as const;
export type LambdaStep = (typeof LAMBDA_STEPS)[number];

/** State names of the definition (the ASL `States` keys). */
export const StateName = {
	MARK: "Mark",
	MANIFEST: "Manifest",
	SIGNATURE: "Signature",
	FILES: "Files",
	BACKDOOR_REQUIRED: "BackdoorRequired",
	/** the Map over the plan's models, and the states of one iteration */
	BACKDOOR_SCANS: "BackdoorScans",
	BACKDOOR_MODEL_READY: "BackdoorModelReady",
	BACKDOOR_SCAN: "BackdoorScan",
	BACKDOOR_CLEAN: "BackdoorClean",
	BACKDOOR_JOB_FAILED: "BackdoorJobFailed",
	BACKDOOR_INPUT_MISSING: "BackdoorInputMissing",
	DECIDE: "Decide",
	RECORD: "Record",
	DONE: "Done",
	FORCE_QUARANTINE: "ForceQuarantine",
	RECORD_QUARANTINE: "RecordQuarantine",
	QUARANTINED_AFTER_ERROR: "QuarantinedAfterError",
	VERDICT_NOT_RECORDED: "VerdictNotRecorded",
} as const;

/** The Task state of each Lambda step. */
export const LAMBDA_STATE: Readonly<Record<LambdaStep, string>> = {
	mark: StateName.MARK,
	manifest: StateName.MANIFEST,
	signature: StateName.SIGNATURE,
	files: StateName.FILES,
	decide: StateName.DECIDE,
	record: StateName.RECORD,
};

/**
 * Transient Lambda service errors (not the handler's): retried a few times with exponential backoff and full jitter,
 * then caught (QUARANTINED: a Lambda that keeps failing is a real failure).
 */
export const LAMBDA_TRANSIENT_ERRORS = [
	"Lambda.ServiceException",
	"Lambda.AWSLambdaException",
	"Lambda.SdkClientException",
	"Lambda.ClientExecutionTimeoutException",
] as const;

/**
 * What a synchronous invoke of a function at its reserved concurrency gets (HTTP 429; Lambda itself does not retry a
 * synchronous invoke). It is not a failure of the scan, only a wait for a free slot: see {@link THROTTLE_RETRY}.
 */
export const LAMBDA_THROTTLE_ERROR = "Lambda.TooManyRequestsException";

/**
 * The retrier for {@link LAMBDA_THROTTLE_ERROR}. A burst (100 checkpoints committed at once) meets functions with
 * reserved concurrency N, so all but N scans per step are throttled and must wait their turn, however long the scans
 * ahead of them take; a throttle must never become a quarantine while the scan's deadline has not passed. Each
 * attempt's TimeoutSeconds does not bound this (a throttled attempt fails in milliseconds), so the budget is sized
 * from the one deadline of a scan, the execution timeout ({@link throttleRetry}). The execution timeout, not the
 * retrier, then ends a scan that never got a slot: the execution is TIMED_OUT, the sweeper quarantines what it left
 * SCANNING (fail closed) and the timed-out alarm fires.
 */
export const THROTTLE_RETRY = {
	intervalSeconds: 1,
	backoffRate: 2,
	/** the shortest cap on one wait: a freed slot is taken again within seconds while several scans wait */
	minMaxDelaySeconds: 30,
	/** mean total wait of the attempts, as a multiple of the execution timeout */
	budgetFactor: 4,
	/**
	 * Attempts a scan may make within its deadline. Every attempt adds a few events to the execution's history, which
	 * Step Functions caps at 25,000 (a hard quota; the execution fails when it is reached): this keeps a scan that
	 * waits its whole deadline well under it.
	 */
	attemptsWithinDeadline: 2_500,
} as const;
/** ASL's upper bound on MaxAttempts. */
const MAX_ATTEMPTS_LIMIT = 99_999_999;

/**
 * MaxDelaySeconds and MaxAttempts of the throttle retrier for an execution timeout of `deadlineSeconds`. Once the
 * backoff reaches the cap, FULL jitter waits uniformly in [0, MaxDelaySeconds]: a mean of MaxDelaySeconds / 2. The cap
 * is chosen so that at most {@link THROTTLE_RETRY.attemptsWithinDeadline} such waits fit in the deadline, and
 * MaxAttempts so that the attempts wait budgetFactor × the deadline on average (the chance that thousands of them
 * sum to less than the deadline is nil).
 */
export function throttleRetry(deadlineSeconds: number): { maxDelaySeconds: number; maxAttempts: number } {
	const { intervalSeconds, backoffRate, minMaxDelaySeconds, budgetFactor, attemptsWithinDeadline } = THROTTLE_RETRY;
	const maxDelaySeconds = Math.max(minMaxDelaySeconds, Math.ceil((2 * deadlineSeconds) / attemptsWithinDeadline));
	// the attempts before the backoff reaches the cap, then the capped ones
	const ramp = Math.ceil(Math.log(maxDelaySeconds / intervalSeconds) / Math.log(backoffRate));
	const capped = Math.ceil((budgetFactor * deadlineSeconds) / (maxDelaySeconds / 2));
	return { maxDelaySeconds, maxAttempts: Math.min(MAX_ATTEMPTS_LIMIT, ramp + capped) };
}

/** Key prefix, in the report bucket, of everything one scan writes: `scans/<scan id>/…`. */
export const SCAN_REPORT_PREFIX = "scans/";

export interface ScanDefinitionProps {
	/** The function behind each Lambda step. */
	readonly functions: Readonly<Record<LambdaStep, lambda.IFunction>>;
	/** Task timeout of each Lambda step (a little above the function's own timeout). */
	readonly timeouts: Readonly<Record<LambdaStep, Duration>>;
	readonly jobQueueArn: string;
	readonly jobDefinitionArn: string;
	/** Where the batch job writes: `s3://<reportBucketName>/scans/<scan id>/backdoor/`. */
	readonly reportBucketName: string;
	/**
	 * FTGUARD_* variables of the batch job that do not depend on the scan (detectors, search effort). The per-scan
	 * ones come from the state: model URI and version, reference data (chosen from the policy by the files step),
	 * output prefix, mode.
	 */
	readonly jobEnvironment: Readonly<Record<string, string>>;
	/**
	 * The state machine's execution timeout: the scan's deadline. It sizes the throttle retry budget and the
	 * BackdoorScan states' timeout ({@link backdoorStateTimeoutSeconds}).
	 */
	readonly executionTimeout: Duration;
}

/**
 * TimeoutSeconds of the BackdoorScan states: the execution timeout less the longest that every other Task on a
 * scan's path can take, one attempt each (mark, manifest, signature, files before it; decide, record and, when
 * those fail, RecordQuarantine after it), so that a scan whose backdoor stage times out still has the time to record
 * its verdict before its deadline.
 *
 * Why not a budget of its own: Step Functions counts a Task's TimeoutSeconds from the state's entry, and for a
 * `batch:submitJob.sync` Task that includes the time the job waits SUBMITTED / PENDING / RUNNABLE for GPU capacity.
 * In a burst (100 commits, a compute environment that runs 8 jobs at once) the last jobs wait for 12 rounds of
 * scans ahead of them: a fixed budget shorter than the deadline turned that wait into States.Timeout, a QUARANTINED
 * good checkpoint. A queued scan is not a failed scan; only its deadline may end it. The job's running time stays
 * bounded by Batch itself (the job definition's attempt timeout × attempts), and how long a burst may take is a
 * sizing rule of the deployment (docs/deploy.md: execution timeout ≥ the other steps + ⌈burst / slots⌉ × the time of
 * one scan).
 */
export function backdoorStateTimeoutSeconds(
	executionTimeoutSeconds: number,
	taskTimeoutSeconds: Readonly<Record<LambdaStep, number>>,
): number {
	const others = LAMBDA_STEPS.reduce((sum, s) => sum + taskTimeoutSeconds[s], taskTimeoutSeconds.record);
	return executionTimeoutSeconds - others;
}

/** Builds the workflow's states under `scope` and returns the start state's chain. */
export function buildScanDefinition(scope: Construct, props: ScanDefinitionProps): sfn.IChainable {
	const caught = (step: string, next: sfn.IChainable): sfn.IChainable =>
		new sfn.Pass(scope, `${step[0]?.toUpperCase()}${step.slice(1)}Failed`, {
			comment: `Catch of ${step}: $.error = { state, cause } (the raw Error/Cause as JSON)`,
			parameters: { state: step, cause: sfn.JsonPath.jsonToString(sfn.JsonPath.objectAt("$.error")) },
			resultPath: "$.error",
		}).next(next);

	const throttle = throttleRetry(props.executionTimeout.toSeconds());
	const throttleRetrier: sfn.RetryProps = {
		errors: [LAMBDA_THROTTLE_ERROR],
		interval: Duration.seconds(THROTTLE_RETRY.intervalSeconds),
		backoffRate: THROTTLE_RETRY.backoffRate,
		maxDelay: Duration.seconds(throttle.maxDelaySeconds),
		jitterStrategy: sfn.JitterType.FULL,
		maxAttempts: throttle.maxAttempts,
	};
	const invoke = (step: LambdaStep): tasks.LambdaInvoke => {
		const task = new tasks.LambdaInvoke(scope, LAMBDA_STATE[step], {
			lambdaFunction: props.functions[step],
			// The function receives the state and returns it with its field added: Resource is the function ARN.
			payloadResponseOnly: true,
			retryOnServiceExceptions: false,
			taskTimeout: sfn.Timeout.duration(props.timeouts[step]),
		});
		// First: retriers are matched in order, and a throttle must not use up the catch-all budgets below.
		task.addRetry(throttleRetrier);
		task.addRetry({
			errors: [...LAMBDA_TRANSIENT_ERRORS],
			interval: Duration.seconds(2),
			maxAttempts: 6,
			backoffRate: 2,
			maxDelay: Duration.seconds(60),
			jitterStrategy: sfn.JitterType.FULL,
		});
		if (step === "mark" || step === "record") {
			// Tag writes are idempotent (same tag set on the same versions): retry any failure a few times.
			task.addRetry({ errors: [sfn.Errors.ALL], interval: Duration.seconds(5), maxAttempts: 3, backoffRate: 3 });
		}
		return task;
	};

	const done = new sfn.Succeed(scope, StateName.DONE);
	const notRecorded = new sfn.Fail(scope, StateName.VERDICT_NOT_RECORDED, {
		error: "Ftguard.VerdictNotRecorded",
		cause: "Neither the verdict nor a forced quarantine could be recorded; the objects stay SCANNING (unreadable).",
	});
	const quarantinedAfterError = new sfn.Fail(scope, StateName.QUARANTINED_AFTER_ERROR, {
		error: "Ftguard.QuarantinedAfterError",
		cause: "Decide or Record failed; a QUARANTINED verdict was forced and recorded.",
	});
	const recordQuarantine = new tasks.LambdaInvoke(scope, StateName.RECORD_QUARANTINE, {
		lambdaFunction: props.functions.record,
		payloadResponseOnly: true,
		retryOnServiceExceptions: false,
		taskTimeout: sfn.Timeout.duration(props.timeouts.record),
	})
		.addRetry(throttleRetrier)
		.addRetry({
			errors: [sfn.Errors.ALL],
			interval: Duration.seconds(5),
			maxAttempts: 5,
			backoffRate: 2,
			maxDelay: Duration.seconds(120),
			jitterStrategy: sfn.JitterType.FULL,
		})
		.addCatch(notRecorded, { errors: [sfn.Errors.ALL], resultPath: "$.recordError" })
		.next(quarantinedAfterError);
	const forceQuarantine = new sfn.Pass(scope, StateName.FORCE_QUARANTINE, {
		comment: "Fail closed: whatever decide said (or did not), the verdict is QUARANTINED",
		parameters: {
			status: "QUARANTINED",
			reasons: sfn.JsonPath.array(sfn.JsonPath.format("error: {}", sfn.JsonPath.stringAt("$.error.state"))),
		},
		resultPath: "$.verdict",
	}).next(recordQuarantine);

	const record = invoke("record")
		.addCatch(caught("record", forceQuarantine), { errors: [sfn.Errors.ALL], resultPath: "$.error" })
		.next(done);
	const decide = invoke("decide")
		.addCatch(caught("decide", forceQuarantine), { errors: [sfn.Errors.ALL], resultPath: "$.error" })
		.next(record);
	const toDecide = (step: string): { handler: sfn.IChainable; options: sfn.CatchProps } => ({
		handler: caught(step, decide),
		options: { errors: [sfn.Errors.ALL], resultPath: "$.error" },
	});

	const backdoorTimeoutSeconds = backdoorStateTimeoutSeconds(
		props.executionTimeout.toSeconds(),
		Object.fromEntries(LAMBDA_STEPS.map((s) => [s, props.timeouts[s].toSeconds()])) as Record<LambdaStep, number>,
	);
	if (backdoorTimeoutSeconds < 60) {
		throw new Error(
			`the execution timeout (${props.executionTimeout.toSeconds()} s) leaves ${backdoorTimeoutSeconds} s for the backdoor scan after the other steps`,
		);
	}

	// One iteration per model of the plan ($.backdoor.models): its input is {index, model, bucket, scanId, marker};
	// its output one result (backdoorResultSchema), caught failures included, so one model's failure never hides
	// another's outcome. Model i's job writes under s3://<reports>/scans/<scan id>/backdoor/<i>.
	const underModelDir = (suffix: string) =>
		sfn.JsonPath.format(
			`s3://{}/${SCAN_REPORT_PREFIX}{}/${BACKDOOR_DIR}{}${suffix}`,
			props.reportBucketName,
			sfn.JsonPath.stringAt("$.scanId"),
			sfn.JsonPath.stringAt("$.index"),
		);
	const outputPrefix = underModelDir("");
	const backdoorClean = new sfn.Pass(scope, StateName.BACKDOOR_CLEAN, {
		comment: "The job exited 0 (clean); exit 1 (suspect) and 2 (error) fail the task and are caught",
		parameters: {
			index: sfn.JsonPath.numberAt("$.index"),
			modelKey: sfn.JsonPath.stringAt("$.model.modelKey"),
			verdict: "clean",
			reportUri: underModelDir(`/${BACKDOOR_REPORT_NAME}`),
		},
	});
	const backdoorFailed = new sfn.Pass(scope, StateName.BACKDOOR_JOB_FAILED, {
		comment: "The job failed (exit 1 suspect: decide reads its report; anything else an error) or timed out",
		parameters: {
			index: sfn.JsonPath.numberAt("$.index"),
			modelKey: sfn.JsonPath.stringAt("$.model.modelKey"),
			error: { state: "backdoor", cause: sfn.JsonPath.jsonToString(sfn.JsonPath.objectAt("$.error")) },
		},
	});
	const submit = new BatchSubmitJobWithStateTimeout(
		scope,
		StateName.BACKDOOR_SCAN,
		Duration.seconds(backdoorTimeoutSeconds),
		{
			jobName: "ftguard-backdoor-scan",
			jobQueueArn: props.jobQueueArn,
			jobDefinitionArn: props.jobDefinitionArn,
			containerOverrides: {
				environment: {
					...props.jobEnvironment,
					FTGUARD_MODE: "scan",
					FTGUARD_MODEL_URI: sfn.JsonPath.format(
						"s3://{}/{}",
						sfn.JsonPath.stringAt("$.bucket"),
						sfn.JsonPath.stringAt("$.model.modelKey"),
					),
					// "" (a store without versioning) leaves the variable unset for the job; ModelReady refuses "" on a
					// versioned store
					FTGUARD_MODEL_VERSION: sfn.JsonPath.stringAt("$.model.modelVersionId"),
					FTGUARD_DATA_URI: sfn.JsonPath.stringAt("$.model.dataUri"),
					FTGUARD_LABELS_URI: sfn.JsonPath.stringAt("$.model.labelsUri"),
					FTGUARD_TOKENIZER_URI: sfn.JsonPath.stringAt("$.model.tokenizerUri"),
					FTGUARD_TEXT_FIELD: sfn.JsonPath.stringAt("$.model.textField"),
					FTGUARD_LABELS_FIELD: sfn.JsonPath.stringAt("$.model.labelsField"),
					FTGUARD_DATA_KIND: sfn.JsonPath.stringAt("$.model.dataKind"),
					FTGUARD_OUTPUT_PREFIX: outputPrefix,
				},
			},
			// The job's description is large and not part of ScanState; the verdict is in report.json.
			resultPath: sfn.JsonPath.DISCARD,
		},
	)
		.addCatch(backdoorFailed, { errors: [sfn.Errors.ALL], resultPath: "$.error" })
		.next(backdoorClean);
	const inputMissing = new sfn.Pass(scope, StateName.BACKDOOR_INPUT_MISSING, {
		comment: "A model's scan inputs are incomplete: its result is an error, which quarantines (fail closed)",
		parameters: {
			index: sfn.JsonPath.numberAt("$.index"),
			error: {
				state: "backdoor",
				cause:
					"a model of the plan lacks modelKey, modelVersionId, dataUri, labelsUri, tokenizerUri, textField, labelsField or dataKind, or has an empty modelVersionId while the marker has a version (a versioned store)",
			},
		},
	});
	const field = (f: string) =>
		sfn.Condition.and(sfn.Condition.isPresent(`$.model.${f}`), sfn.Condition.isString(`$.model.${f}`));
	const complete = sfn.Condition.and(
		...[
			"modelKey",
			"modelVersionId",
			"dataUri",
			"labelsUri",
			"tokenizerUri",
			"textField",
			"labelsField",
			"dataKind",
		].map(field),
	);
	const modelReady = new sfn.Choice(scope, StateName.BACKDOOR_MODEL_READY)
		.when(
			sfn.Condition.and(
				complete,
				sfn.Condition.isPresent("$.marker.versionId"),
				sfn.Condition.not(sfn.Condition.stringEquals("$.model.modelVersionId", "")),
			),
			submit,
		)
		.when(
			// A store without versioning (the local S3 server): the verdict is bound by ETag and digest instead.
			// Not(IsPresent), not IsPresent: false (aws-local-stepfunctions 3.0 treats IsPresent: false as never true).
			sfn.Condition.and(complete, sfn.Condition.not(sfn.Condition.isPresent("$.marker.versionId"))),
			submit,
		)
		.otherwise(inputMissing);

	const backdoorCaught = toDecide("backdoor");
	const scans = new sfn.Map(scope, StateName.BACKDOOR_SCANS, {
		comment: "Every ONNX model of the artefact, each by its own backdoor job",
		itemsPath: "$.backdoor.models",
		itemSelector: {
			index: sfn.JsonPath.stringAt("$$.Map.Item.Index"),
			model: sfn.JsonPath.stringAt("$$.Map.Item.Value"),
			bucket: sfn.JsonPath.stringAt("$.bucket"),
			scanId: sfn.JsonPath.stringAt("$.scanId"),
			marker: sfn.JsonPath.objectAt("$.marker"),
		},
		resultPath: "$.backdoor.results",
	});
	scans.itemProcessor(modelReady);
	scans.addCatch(backdoorCaught.handler, backdoorCaught.options).next(decide);

	const required = sfn.Condition.and(
		sfn.Condition.isPresent("$.backdoor.required"),
		sfn.Condition.booleanEquals("$.backdoor.required", true),
	);
	const backdoorRequired = new sfn.Choice(scope, StateName.BACKDOOR_REQUIRED).when(required, scans).otherwise(decide);

	const step = (name: "mark" | "manifest" | "signature" | "files"): sfn.TaskStateBase => {
		const c = toDecide(name);
		return invoke(name).addCatch(c.handler, c.options);
	};
	return step("mark").next(step("manifest")).next(step("signature")).next(step("files")).next(backdoorRequired);
}

/**
 * BatchSubmitJob maps `taskTimeout` to the job's attempt timeout (overriding the job definition's) and renders no
 * `TimeoutSeconds`. The scan wants both: the job definition's attempt timeout per attempt, and a state timeout
 * that bounds the wait for a GPU instance and the retries by the scan's deadline ({@link backdoorStateTimeoutSeconds}).
 */
class BatchSubmitJobWithStateTimeout extends tasks.BatchSubmitJob {
	constructor(
		scope: Construct,
		id: string,
		private readonly stateTimeout: Duration,
		props: tasks.BatchSubmitJobProps,
	) {
		super(scope, id, props);
	}

	protected override _renderTask(topLevelQueryLanguage?: sfn.QueryLanguage): unknown {
		return { ...super._renderTask(topLevelQueryLanguage), TimeoutSeconds: this.stateTimeout.toSeconds() };
	}
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * The ASL of a synthesized state machine as a plain object: `DefinitionString` with its `Fn::Join` flattened and
 * each `Ref` / `Fn::GetAtt` replaced by `resolve(logicalId, attribute)` (attribute `"Ref"` for a Ref). Works on the
 * template JSON alone (no CDK), so the local pipeline can read the definition from `cdk.out`.
 */
export function definitionFromTemplate(
	template: { Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }> },
	resolve: (logicalId: string, attribute: string) => string,
	stateMachineLogicalId?: string,
): Record<string, unknown> {
	const machines = Object.entries(template.Resources).filter(
		([id, r]) =>
			r.Type === "AWS::StepFunctions::StateMachine" &&
			(stateMachineLogicalId === undefined || id === stateMachineLogicalId),
	);
	if (machines.length !== 1) {
		throw new Error(
			`expected one AWS::StepFunctions::StateMachine${stateMachineLogicalId ? ` ${stateMachineLogicalId}` : ""}, found ${machines.length}`,
		);
	}
	const flatten = (value: Json): string => {
		if (typeof value === "string") return value;
		if (value && typeof value === "object" && !Array.isArray(value)) {
			const [key, arg] = Object.entries(value)[0] ?? [];
			if (key === "Fn::Join" && Array.isArray(arg)) {
				const [sep, parts] = arg as [string, Json[]];
				return parts.map(flatten).join(sep);
			}
			if (key === "Ref" && typeof arg === "string") return resolve(arg, "Ref");
			if (key === "Fn::GetAtt" && Array.isArray(arg)) return resolve(String(arg[0]), String(arg[1]));
		}
		throw new Error(`unsupported intrinsic in DefinitionString: ${JSON.stringify(value)}`);
	};
	const definition = machines[0]?.[1].Properties?.DefinitionString as Json;
	return JSON.parse(flatten(definition)) as Record<string, unknown>;
}
