import { Duration, RemovalPolicy, Stack } from "aws-cdk-lib";
import * as cw from "aws-cdk-lib/aws-cloudwatch";
import * as cwActions from "aws-cdk-lib/aws-cloudwatch-actions";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subs from "aws-cdk-lib/aws-sns-subscriptions";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import type * as sfn from "aws-cdk-lib/aws-stepfunctions";
import { Construct } from "constructs";
import { METRIC_DIMENSIONS, METRIC_NAMESPACE, MetricName, SWEEP } from "../core/pipeline/names.js";
import { denyGrantsNotForAwsResources } from "./proactive-controls.js";
import { NEURAL_CLEANSE_ANOMALY_THRESHOLD } from "./tags.js";

export interface AlarmsProps {
	/**
	 * Key of the alarm topic. A key given here must itself let `cloudwatch.amazonaws.com` use `kms:Decrypt` and
	 * `kms:GenerateDataKey*` (AWS documents that statement without conditions; see the default key), or no alarm
	 * reaches the topic.
	 * @default a new customer-managed key with rotation that CloudWatch alarms of this account may use
	 */
	readonly topicKey?: kms.IKey;
	/**
	 * Email addresses subscribed to the alarm topic.
	 * @default no subscription (subscribe the on-call tooling to {@link Alarms.topic})
	 */
	readonly emailSubscriptions?: readonly string[];
	/**
	 * Dimensions every ftguard metric is emitted with; alarms match this exact set.
	 * @default METRIC_DIMENSIONS (`{ service: "ftguard" }`)
	 */
	readonly metricDimensions?: Readonly<Record<string, string>>;
	/**
	 * Alarm when the Neural Cleanse anomaly index of any class exceeds this.
	 * @default NEURAL_CLEANSE_ANOMALY_THRESHOLD (2.0)
	 */
	readonly anomalyIndexThreshold?: number;
	/**
	 * Evaluation period of the built-in alarms.
	 * @default Duration.minutes(5)
	 */
	readonly period?: Duration;
	/**
	 * Where the runbook lives; alarm descriptions link `<runbookUrl>#<alarm anchor>`.
	 * @default "docs/operations.md"
	 */
	readonly runbookUrl?: string;
	/**
	 * What happens to the topic key when the stack is deleted.
	 * @default RemovalPolicy.RETAIN
	 */
	readonly removalPolicy?: RemovalPolicy;
}

/** Options of {@link Alarms.addMetricAlarm}. */
export interface FtguardAlarmOptions {
	readonly metric: cw.IMetric;
	readonly threshold: number;
	readonly comparisonOperator: cw.ComparisonOperator;
	/** Anchor of the alarm's section in the runbook (docs/operations.md). */
	readonly runbookAnchor: string;
	/** What the alarm means, one sentence. */
	readonly description: string;
	/** @default 1 */
	readonly evaluationPeriods?: number;
	/** @default cw.TreatMissingData.NOT_BREACHING */
	readonly treatMissingData?: cw.TreatMissingData;
}

/**
 * ftguard's CloudWatch alarms and the encrypted SNS topic they notify (on ALARM and on OK). The constructor
 * creates the alarms on metrics the scanners emit; the pipeline adds its own with {@link addStateMachineAlarms},
 * {@link addDeadLetterQueueAlarm}, {@link addStuckScanAlarm} and {@link addMetricAlarm}.
 */
export class Alarms extends Construct {
	public readonly topic: sns.Topic;
	public readonly topicKey: kms.IKey;
	/** A base model did not match its signed registry entry (`base_model_verification_result` minimum < 1). */
	public readonly baseModelVerificationAlarm: cw.Alarm;
	/** Some class's Neural Cleanse anomaly index exceeded the threshold (maximum over classes). */
	public readonly neuralCleanseAlarm: cw.Alarm;
	/** A scan ended in an error (and so in quarantine). */
	public readonly scanErrorsAlarm: cw.Alarm;
	/** A dataset scan found poisoning. */
	public readonly datasetPoisoningAlarm: cw.Alarm;

	private readonly period: Duration;
	private readonly dimensions: Readonly<Record<string, string>>;
	private readonly runbookUrl: string;
	private readonly created: cw.Alarm[] = [];

	constructor(scope: Construct, id: string, props: AlarmsProps = {}) {
		super(scope, id);
		const threshold = props.anomalyIndexThreshold ?? NEURAL_CLEANSE_ANOMALY_THRESHOLD;
		if (!(Number.isFinite(threshold) && threshold > 0)) {
			throw new Error(`Alarms: anomalyIndexThreshold must be a positive number (got ${threshold})`);
		}
		this.period = props.period ?? Duration.minutes(5);
		if (this.period.toSeconds() < 60 || this.period.toSeconds() % 60 !== 0) {
			throw new Error("Alarms: period must be a whole number of minutes");
		}
		this.dimensions = props.metricDimensions ?? METRIC_DIMENSIONS;
		this.runbookUrl = props.runbookUrl ?? "docs/operations.md";

		if (props.topicKey) {
			this.topicKey = props.topicKey;
		} else {
			const key = new kms.Key(this, "TopicKey", {
				description: "ftguard: alarm topic",
				enableKeyRotation: true,
				removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
			});
			denyGrantsNotForAwsResources(key);
			// CloudWatch publishes to an encrypted topic only if the key lets it. AWS documents this statement WITHOUT
			// conditions: Amazon SNS Developer Guide, "Enable compatibility between event sources from AWS services and
			// encrypted topics" (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services),
			// and the Knowledge Center's "How do I configure a CloudWatch alarm with an encrypted SNS topic?"
			// (https://repost.aws/knowledge-center/cloudwatch-configure-alarm-sns). Neither says that CloudWatch's KMS
			// calls carry aws:SourceArn / aws:SourceAccount; a condition on a key that the request lacks fails closed,
			// and every alarm would then be dropped silently. The confused-deputy conditions stay on the topic policy
			// (sns:Publish, below), which gates every delivery; this key encrypts nothing else.
			key.addToResourcePolicy(
				new iam.PolicyStatement({
					sid: "CloudWatchAlarms",
					principals: [new iam.ServicePrincipal("cloudwatch.amazonaws.com")],
					actions: ["kms:Decrypt", "kms:GenerateDataKey*"],
					resources: ["*"],
				}),
			);
			this.topicKey = key;
		}
		this.topic = new sns.Topic(this, "Topic", {
			displayName: "ftguard alarms",
			masterKey: this.topicKey,
			enforceSSL: true,
		});
		// A topic policy replaces SNS's default one: without this statement every alarm action fails with "not
		// authorized to perform SNS:Publish". Only alarms of this account (confused-deputy conditions).
		this.topic.addToResourcePolicy(
			new iam.PolicyStatement({
				sid: "CloudWatchAlarmsOfThisAccount",
				principals: [new iam.ServicePrincipal("cloudwatch.amazonaws.com")],
				actions: ["sns:Publish"],
				resources: [this.topic.topicArn],
				conditions: alarmsOfThisAccount(this),
			}),
		);
		for (const email of props.emailSubscriptions ?? []) {
			this.topic.addSubscription(new subs.EmailSubscription(email));
		}

		this.baseModelVerificationAlarm = this.addMetricAlarm("BaseModelVerificationFailed", {
			metric: this.metric(MetricName.BASE_MODEL_VERIFICATION_RESULT, cw.Stats.MINIMUM),
			threshold: 1,
			comparisonOperator: cw.ComparisonOperator.LESS_THAN_THRESHOLD,
			runbookAnchor: "base-model-verification-failed",
			description: "A base model did not match its signed registry entry.",
		});
		this.neuralCleanseAlarm = this.addMetricAlarm("NeuralCleanseAnomaly", {
			metric: this.metric(MetricName.NEURAL_CLEANSE_ANOMALY_INDEX, cw.Stats.MAXIMUM),
			threshold,
			comparisonOperator: cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
			runbookAnchor: "neural-cleanse-anomaly",
			description: `A checkpoint has a class whose Neural Cleanse anomaly index is above ${threshold}: a likely backdoor.`,
		});
		this.scanErrorsAlarm = this.addMetricAlarm("ScanErrors", {
			metric: this.metric(MetricName.SCAN_ERRORS_TOTAL, cw.Stats.SUM),
			threshold: 1,
			comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			runbookAnchor: "scan-errors",
			description: "A scan ended in an error; its checkpoint was quarantined without a finding.",
		});
		this.datasetPoisoningAlarm = this.addMetricAlarm("DatasetPoisoningFound", {
			metric: this.metric(MetricName.FINETUNING_DATASET_POISONING_SCAN_RESULT, cw.Stats.MINIMUM),
			threshold: 1,
			comparisonOperator: cw.ComparisonOperator.LESS_THAN_THRESHOLD,
			runbookAnchor: "dataset-poisoning-found",
			description: "A fine-tuning dataset scan found poisoning.",
		});
	}

	/** Every alarm created so far, built-in and added. */
	public get alarms(): readonly cw.Alarm[] {
		return [...this.created];
	}

	/** An ftguard metric with the standard namespace, dimensions and period. */
	public metric(name: MetricName, statistic: string, period: Duration = this.period): cw.Metric {
		return new cw.Metric({
			namespace: METRIC_NAMESPACE,
			metricName: name,
			dimensionsMap: { ...this.dimensions },
			statistic,
			period,
		});
	}

	/** An alarm on any metric, notifying the topic, with a runbook link in its description. */
	public addMetricAlarm(id: string, options: FtguardAlarmOptions): cw.Alarm {
		const evaluationPeriods = options.evaluationPeriods ?? 1;
		if (!Number.isInteger(evaluationPeriods) || evaluationPeriods < 1) {
			throw new Error(`Alarms: evaluationPeriods of ${id} must be a positive integer`);
		}
		const alarm = new cw.Alarm(this, id, {
			metric: options.metric,
			threshold: options.threshold,
			comparisonOperator: options.comparisonOperator,
			evaluationPeriods,
			treatMissingData: options.treatMissingData ?? cw.TreatMissingData.NOT_BREACHING,
			alarmDescription: `${options.description} Runbook: ${this.runbookUrl}#${options.runbookAnchor}`,
		});
		return this.notifying(alarm);
	}

	/**
	 * An alarm when `metric` rises above its own CloudWatch anomaly-detection band (`stdDevs` wide), for a figure
	 * whose normal level is learnt from its history rather than fixed; notifies the topic like the others.
	 */
	public addAnomalyAlarm(
		id: string,
		options: Pick<FtguardAlarmOptions, "metric" | "description" | "runbookAnchor"> & { stdDevs: number },
	): cw.Alarm {
		const alarm = new cw.AnomalyDetectionAlarm(this, id, {
			metric: options.metric,
			stdDevs: options.stdDevs,
			comparisonOperator: cw.ComparisonOperator.GREATER_THAN_UPPER_THRESHOLD,
			evaluationPeriods: 1,
			treatMissingData: cw.TreatMissingData.NOT_BREACHING,
			alarmDescription: `${options.description} Runbook: ${this.runbookUrl}#${options.runbookAnchor}`,
		});
		return this.notifying(alarm);
	}

	/** `alarm`, sending its ALARM and OK transitions to the topic, and counted among {@link alarms}. */
	private notifying(alarm: cw.Alarm): cw.Alarm {
		const action = new cwActions.SnsAction(this.topic);
		alarm.addAlarmAction(action);
		alarm.addOkAction(action);
		this.created.push(alarm);
		return alarm;
	}

	/** Alarms on any failed and any timed-out execution of `stateMachine`. */
	public addStateMachineAlarms(
		id: string,
		stateMachine: Pick<sfn.IStateMachine, "metricFailed" | "metricTimedOut">,
	): { readonly failed: cw.Alarm; readonly timedOut: cw.Alarm } {
		const failed = this.addMetricAlarm(`${id}ExecutionsFailed`, {
			metric: stateMachine.metricFailed({ period: this.period, statistic: cw.Stats.SUM }),
			threshold: 1,
			comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			runbookAnchor: "execution-failed",
			description: "A scan execution failed outside its catch-all (the object may be left SCANNING, never PROMOTABLE).",
		});
		const timedOut = this.addMetricAlarm(`${id}ExecutionsTimedOut`, {
			metric: stateMachine.metricTimedOut({ period: this.period, statistic: cw.Stats.SUM }),
			threshold: 1,
			comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			runbookAnchor: "execution-timed-out",
			description: "A scan execution hit the state machine timeout.",
		});
		return { failed, timedOut };
	}

	/** Alarm as soon as `queue` (a dead-letter queue) holds a message. */
	public addDeadLetterQueueAlarm(
		id: string,
		queue: Pick<sqs.IQueue, "metricApproximateNumberOfMessagesVisible">,
	): cw.Alarm {
		return this.addQueueAlarm(`${id}DeadLetters`, queue, {
			runbookAnchor: "dead-letter-queue",
			description: "An event or invocation ended in a dead-letter queue: some upload may not have been scanned.",
		});
	}

	/**
	 * Alarm as soon as `queue` holds a message: the queue of "Batch Job State Change" events of dataset scan jobs
	 * that ended FAILED (DatasetGate.jobFailureQueue), each a dataset version left unscanned (its objects untagged or
	 * QUARANTINED: unreadable to training jobs).
	 */
	public addDatasetScanJobFailedAlarm(
		id: string,
		queue: Pick<sqs.IQueue, "metricApproximateNumberOfMessagesVisible">,
	): cw.Alarm {
		return this.addQueueAlarm(id, queue, {
			runbookAnchor: "dataset-scan-job-failed",
			description:
				"A dataset scan job (AWS Batch) ended FAILED: a dataset version too large for the gate function was not scanned and stays unreadable to training jobs.",
		});
	}

	private addQueueAlarm(
		id: string,
		queue: Pick<sqs.IQueue, "metricApproximateNumberOfMessagesVisible">,
		text: Pick<FtguardAlarmOptions, "runbookAnchor" | "description">,
	): cw.Alarm {
		return this.addMetricAlarm(id, {
			metric: queue.metricApproximateNumberOfMessagesVisible({ period: this.period, statistic: cw.Stats.MAXIMUM }),
			threshold: 1,
			comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			...text,
		});
	}

	/**
	 * Alarm on the sweeper's `scans_stuck_in_scanning` (lambdas/sweep.ts): fires when a run in the period found a
	 * stuck object or could not check everything (Maximum ≥ {@link SWEEP}.alarmThreshold), or when the period has
	 * no data point at all, i.e. the sweeper is silent (missing data breaches). The period spans
	 * {@link SWEEP}.alarmPeriodIntervals sweep intervals so that one late or failed run is not yet silence; the
	 * reasoning is next to SWEEP in lib/core/pipeline/names.ts.
	 * @param sweepInterval how often the sweeper runs (@default SWEEP.intervalMinutes)
	 */
	public addStuckScanAlarm(
		id = "ScansStuck",
		sweepInterval: Duration = Duration.minutes(SWEEP.intervalMinutes),
	): cw.Alarm {
		const period = Duration.minutes(sweepInterval.toMinutes() * SWEEP.alarmPeriodIntervals);
		if (period.toSeconds() > 86_400)
			throw new Error(`Alarms: ${id}: the sweep interval is too long for an alarm period`);
		return this.addMetricAlarm(id, {
			metric: this.metric(MetricName.SCANS_STUCK_IN_SCANNING, cw.Stats.MAXIMUM, period),
			threshold: SWEEP.alarmThreshold,
			comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			evaluationPeriods: 1,
			treatMissingData: cw.TreatMissingData.BREACHING,
			runbookAnchor: "scans-stuck",
			description:
				"The sweeper found objects left SCANNING by a scan that ended without a verdict (and quarantined them), could not check some, or stopped reporting.",
		});
	}
}

/**
 * Conditions that limit the `cloudwatch.amazonaws.com` service principal to alarms of the stack's account and
 * region (`aws:SourceAccount`, `aws:SourceArn` like `arn:<partition>:cloudwatch:<region>:<account>:alarm:*`).
 */
export function alarmsOfThisAccount(scope: Construct): Record<string, Record<string, string>> {
	const stack = Stack.of(scope);
	return {
		StringEquals: { "aws:SourceAccount": stack.account },
		ArnLike: { "aws:SourceArn": `arn:${stack.partition}:cloudwatch:${stack.region}:${stack.account}:alarm:*` },
	};
}
