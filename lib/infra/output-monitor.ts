/**
 * The production output monitor in AWS (docs/monitor.md, issue 18): a platform team attaches it to their
 * inference logs — CloudWatch log groups (a subscription filter each) and/or the buckets where SageMaker Data
 * Capture or Bedrock invocation logs land (EventBridge "Object Created"), plus where Bedrock delivers large bodies
 * (read for the records that name them) — and lambdas/monitor.ts keeps each model version's window in a DynamoDB
 * table (conditional writes, TTL), emits `deployed_model_output_repetition_rate`,
 * `deployed_model_suspicious_output_total` and `output_monitor_unwatched_records_total`, and the alarms here send
 * the topic: repetition above the policy's rate, suspicious outputs above their own anomaly-detection band, and any
 * Bedrock record whose output body in S3 the monitor could not read (fail closed: a record not watched is told).
 */
import { Duration, type RemovalPolicy, Stack, Validations } from "aws-cdk-lib";
import * as cw from "aws-cdk-lib/aws-cloudwatch";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import * as logsDestinations from "aws-cdk-lib/aws-logs-destinations";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";
import { MetricName, MONITOR_UNWATCHED_DIMENSION, MonitorUnwatchedReason } from "../core/pipeline/names.js";
import type { MonitorPolicy } from "../core/policy/monitor.js";
import type { Alarms } from "./alarms.js";
import type { CheckpointStore } from "./checkpoint-store.js";
import { deadLetterQueue, type ScanFunctionFactory } from "./scan-functions.js";

/** What the platform team attaches (names, so a deployment config file can give them). */
export interface OutputMonitorOptions {
	/** Log groups whose events are inference records (one JSON object each: `{model_version, input, output}`, a Data Capture or a Bedrock record). */
	readonly logGroupNames?: readonly string[];
	/**
	 * Buckets (and key prefixes) where SageMaker Data Capture files or Bedrock invocation logs are written; each
	 * bucket must send its events to EventBridge (`EventBridgeConfiguration`). A bucket encrypted with a customer
	 * key must also let {@link OutputMonitor.role} decrypt.
	 */
	readonly captureBuckets?: readonly { readonly name: string; readonly prefix?: string | undefined }[];
	/**
	 * Where Bedrock delivers bodies too large to log inline (the logging configuration's
	 * `cloudWatchConfig.largeDataDeliveryS3Config {bucketName, keyPrefix}`; bodies over 100 KB or binary): the
	 * monitor may read objects under these prefixes only, and reads a record's `outputBodyS3Path` /
	 * `inputBodyS3Path` only when it points under one of them. Without it such a record is counted `unread`. Keep
	 * these prefixes apart from {@link captureBuckets}: a body is not a log object. A bucket encrypted with a
	 * customer key must also let {@link OutputMonitor.role} decrypt.
	 */
	readonly bedrockLargeDataBuckets?: readonly { readonly name: string; readonly prefix?: string | undefined }[];
	/**
	 * Days a version's window is kept after its last record (DynamoDB TTL).
	 * @default 30
	 */
	readonly windowTtlDays?: number | undefined;
	/**
	 * Standard deviations of the suspicious-output anomaly band.
	 * @default 3
	 */
	readonly anomalyStdDevs?: number;
}

export interface OutputMonitorProps extends OutputMonitorOptions {
	readonly store: CheckpointStore;
	readonly functions: ScanFunctionFactory;
	readonly alarms: Alarms;
	/** The deployed policy's object key in the base-model bucket (the function reads its `monitor` section). */
	readonly policyKey: string;
	readonly policy: MonitorPolicy;
	readonly reservedConcurrency: number;
	readonly removalPolicy: RemovalPolicy;
	/** X-Ray tracing of the pipeline's functions (its statement is on Resource *) */
	readonly tracing: boolean;
}

/** Alarm anchors in docs/operations.md. */
export const MONITOR_RUNBOOK = {
	repetition: "output-repetition",
	suspicious: "suspicious-outputs",
	unread: "output-monitor-unread",
} as const;

export class OutputMonitor {
	/** One item per model version: its window (lib/core/monitor), revision, TTL. */
	public readonly table: dynamodb.Table;
	public readonly function: lambda.Function;
	/** The role the monitor function runs as: the table, the capture and large-data prefixes, the policy object. */
	public readonly role: iam.Role;
	public readonly deadLetterQueue: sqs.Queue;
	public readonly repetitionAlarm: cw.Alarm;
	public readonly suspiciousOutputAlarm: cw.Alarm;
	/** Bedrock records whose output body in S3 the monitor could not read (`reason=unread`), so did not watch. */
	public readonly unreadRecordsAlarm: cw.Alarm;

	constructor(scope: Construct, props: OutputMonitorProps) {
		const stack = Stack.of(scope);
		this.table = new dynamodb.Table(scope, "MonitorWindows", {
			partitionKey: { name: "modelVersion", type: dynamodb.AttributeType.STRING },
			billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
			timeToLiveAttribute: "expiresAt",
			pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
			encryption: dynamodb.TableEncryption.AWS_MANAGED,
			removalPolicy: props.removalPolicy,
		});
		this.role = new iam.Role(scope, "MonitorRole", {
			description:
				"ftguard monitor: the output windows table, the capture and Bedrock large-data prefixes, the policy object",
			assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
		});
		// read-modify-write of one item per version; nothing else of the table (no scan, no delete)
		this.role.addToPrincipalPolicy(
			new iam.PolicyStatement({
				actions: ["dynamodb:GetItem", "dynamodb:PutItem"],
				resources: [this.table.tableArn],
			}),
		);
		this.role.addToPrincipalPolicy(
			new iam.PolicyStatement({
				actions: ["s3:GetObject"],
				resources: [props.store.baseModelBucket.arnForObjects(props.policyKey)],
			}),
		);
		props.store.grantKeyViaS3(this.role, ["kms:Decrypt"]);
		const captures = props.captureBuckets ?? [];
		const largeData = props.bedrockLargeDataBuckets ?? [];
		const readUnder = (locations: readonly { name: string; prefix?: string | undefined }[], reason: string): void => {
			if (locations.length === 0) return;
			const objects = locations.map((c) => `arn:${stack.partition}:s3:::${c.name}/${c.prefix ?? ""}*`);
			this.role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ["s3:GetObject"], resources: objects }));
			for (const o of new Set(objects)) {
				Validations.of(this.role).acknowledge({
					id: `AwsSolutions::AwsSolutions-IAM5[Resource::${o.replace(`arn:${stack.partition}:`, "arn:<AWS::Partition>:")}]`,
					reason,
				});
			}
		};
		readUnder(
			captures,
			"The monitor reads the log objects written under the capture prefix (names not known at deploy time)",
		);
		readUnder(
			largeData,
			"The monitor reads the Bedrock bodies delivered under the large-data prefix (names not known at deploy time)",
		);
		this.deadLetterQueue = deadLetterQueue(scope, "MonitorDeadLetterQueue");
		this.function = props.functions.create("monitor", {
			role: this.role,
			reservedConcurrency: props.reservedConcurrency,
			environment: {
				FTGUARD_MONITOR_TABLE: this.table.tableName,
				FTGUARD_MONITOR_TTL_DAYS: String(props.windowTtlDays ?? 30),
				// where a Bedrock record's body in S3 may be read (lib/aws/monitor.ts largeDataLocations)
				FTGUARD_MONITOR_LARGE_DATA: JSON.stringify(
					largeData.map((l) => ({ name: l.name, ...(l.prefix !== undefined ? { prefix: l.prefix } : {}) })),
				),
			},
			deadLetterQueue: this.deadLetterQueue,
			// a batch lost to a failure would be a gap in the window; the DLQ keeps it for a replay (ftguard monitor)
			retryAttempts: 2,
		});
		for (const [i, name] of (props.logGroupNames ?? []).entries()) {
			new logs.SubscriptionFilter(scope, `MonitorSubscription${i}`, {
				logGroup: logs.LogGroup.fromLogGroupName(scope, `MonitoredLogGroup${i}`, name),
				destination: new logsDestinations.LambdaDestination(this.function as unknown as lambda.IFunction),
				filterPattern: logs.FilterPattern.allEvents(),
				filterName: "ftguard-output-monitor",
			});
		}
		if (captures.length > 0) {
			const rule = new events.Rule(scope, "MonitorCaptureObjects", {
				description: "ftguard: inference log objects (Data Capture, Bedrock) → the output monitor",
				eventPattern: {
					source: ["aws.s3"],
					detailType: ["Object Created"],
					detail: {
						bucket: { name: captures.map((c) => c.name) },
						object: { key: captures.map((c) => ({ prefix: c.prefix ?? "" })) },
					},
				},
			});
			rule.addTarget(
				new targets.LambdaFunction(this.function as unknown as lambda.IFunction, {
					deadLetterQueue: this.deadLetterQueue as unknown as sqs.IQueue,
					retryAttempts: 2,
					maxEventAge: Duration.hours(6),
				}),
			);
		}

		if (props.tracing) {
			Validations.of(this.role).acknowledge({
				id: "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
				reason:
					"X-Ray accepts trace segments (xray:PutTraceSegments, PutTelemetryRecords) only on Resource *; the monitor role has no other Resource * statement",
			});
		}

		const metric = (name: MetricName, statistic: string) => props.alarms.metric(name, statistic);
		this.repetitionAlarm = props.alarms.addMetricAlarm("OutputRepetitionAlarm", {
			metric: metric(MetricName.DEPLOYED_MODEL_OUTPUT_REPETITION_RATE, cw.Stats.MAXIMUM),
			threshold: props.policy.repetition.maxRate,
			comparisonOperator: cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
			description: `A deployed model version repeats more than ${props.policy.repetition.maxRate * 100}% of its outputs in its window: a backdoor's trigger may be firing.`,
			runbookAnchor: MONITOR_RUNBOOK.repetition,
		});
		// Suspicious outputs come and go with traffic: a fixed count would page at peak or never; the band is learnt.
		this.suspiciousOutputAlarm = props.alarms.addAnomalyAlarm("SuspiciousOutputAlarm", {
			metric: metric(MetricName.DEPLOYED_MODEL_SUSPICIOUS_OUTPUT_TOTAL, cw.Stats.SUM),
			stdDevs: props.anomalyStdDevs ?? 3,
			description:
				"Deployed models' suspicious outputs (pattern, repetition, burst, length alarms) are above their anomaly-detection band.",
			runbookAnchor: MONITOR_RUNBOOK.suspicious,
		});
		// Every batch emits its count by reason, 0 included: any unread record in a period alarms. Malformed lines are
		// only counted (a mixed log group has many lines that are no inference record).
		const unwatched = metric(MetricName.OUTPUT_MONITOR_UNWATCHED_RECORDS_TOTAL, cw.Stats.SUM);
		this.unreadRecordsAlarm = props.alarms.addMetricAlarm("OutputMonitorUnreadRecords", {
			metric: unwatched.with({
				dimensionsMap: { ...unwatched.dimensions, [MONITOR_UNWATCHED_DIMENSION.REASON]: MonitorUnwatchedReason.UNREAD },
			}),
			threshold: 0,
			comparisonOperator: cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
			treatMissingData: cw.TreatMissingData.NOT_BREACHING,
			description:
				"The output monitor could not read the output body in S3 of Bedrock records, and did not watch them.",
			runbookAnchor: MONITOR_RUNBOOK.unread,
		});
	}
}
