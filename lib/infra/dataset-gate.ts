/**
 * The dataset gate: an EventBridge rule on the dataset bucket's commit markers (`<dir>/ftguard-dataset.json`,
 * DATASET_MARKER_SUFFIX) invokes the dataset function (lambdas/dataset.ts; failed deliveries and invocations to a
 * dead-letter queue), which pins the version's objects and scans them — itself when they fit the function
 * (LAMBDA_DATASET_MAX_BYTES), else by submitting a job to a CPU AWS Batch queue (Fargate, in the isolated subnets)
 * whose container runs batch-jobs/dataset-scan/entry.ts, the same code. Either way the scan writes the report and
 * lineage beside the data, tags every version PROMOTABLE or QUARANTINED as the store's dataset gate role (the only
 * tag writer of that bucket; the function and the job both run as it) and emits the dataset metrics.
 *
 * A job that ends FAILED (after its attempts, or cancelled while it could not be placed) is an unscanned dataset: its
 * objects stay untagged or QUARANTINED, which training roles cannot read (fail-closed), and its "Batch Job State
 * Change" event lands in {@link DatasetGate.jobFailureQueue}, which the pipeline alarms on.
 *
 * Resources are added to the given scope (ScanPipeline) under fixed ids, like the base-model gate's.
 */
import { Duration, IgnoreMode, Size, Stack, Validations } from "aws-cdk-lib";
import * as batch from "aws-cdk-lib/aws-batch";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as ecrAssets from "aws-cdk-lib/aws-ecr-assets";
import * as ecs from "aws-cdk-lib/aws-ecs";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import type * as logs from "aws-cdk-lib/aws-logs";
import * as sqs from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";
import { DATASET_ENV, DATASET_MARKER_SUFFIX, METRIC_NAMESPACE, METRIC_SERVICE } from "../core/pipeline/names.js";
import { JOB_USER } from "./backdoor-batch-job.js";
import type { CheckpointStore } from "./checkpoint-store.js";
import { type IsolatedNetwork, vpcRef } from "./isolated-network.js";
import type { PipelineLogs } from "./pipeline-logs.js";
import { deadLetterQueue, type ScanFunctionFactory } from "./scan-functions.js";

/**
 * The dataset scan job (Fargate): size, local storage (the job copies the version's files there before it scans
 * them, so the largest dataset it can scan is a little under {@link ephemeralStorage}), attempts and timeouts.
 */
export const DATASET_JOB = {
	/** vCPUs of one job (Fargate: 0.25–16; memory must be a valid Fargate combination for it). */
	vcpus: 4,
	memory: Size.gibibytes(16),
	/** Fargate's task storage, 21–200 GiB. */
	ephemeralStorage: Size.gibibytes(200),
	/** One attempt: copying and scanning a large version at tens of MB/s. */
	attemptTimeout: Duration.hours(6),
	/** Attempts in all: a failed attempt (exit 2: the scan could not run, or Fargate could not start it) runs again once. */
	attempts: 2,
	/** vCPUs of the compute environment: at most maxvCpus / vcpus scans at once, the others wait RUNNABLE. */
	maxvCpus: 32,
	/** A job that cannot be placed at all (resource misconfiguration) is cancelled after this, and so FAILED. */
	unplaceableAfter: Duration.hours(1),
} as const;

export interface DatasetGateProps {
	readonly store: CheckpointStore;
	readonly network: IsolatedNetwork;
	readonly functions: ScanFunctionFactory;
	readonly logs: PipelineLogs;
	/** Root of the package: the image's build context. */
	readonly projectRoot: string;
	readonly reservedConcurrency: number;
	/** `s3://…` of the deployed policy object (the job reads its `dataset` settings; the function has it already). */
	readonly policyUri: string;
}

export class DatasetGate {
	/** Events and async invocations of the dataset function that could not be delivered. */
	public readonly deadLetterQueue: sqs.Queue;
	public readonly function: lambda.Function;
	/** Dataset marker uploads → the dataset function. */
	public readonly rule: events.Rule;
	/** Fargate in the isolated subnets: the CPU capacity of the dataset scan jobs. */
	public readonly computeEnvironment: batch.FargateComputeEnvironment;
	public readonly jobQueue: batch.JobQueue;
	/** The dataset-scan image (built at deploy time from batch-jobs/dataset-scan/Dockerfile). */
	public readonly image: ecrAssets.DockerImageAsset;
	public readonly jobLogGroup: logs.LogGroup;
	public readonly jobDefinition: batch.EcsJobDefinition;
	/** "Batch Job State Change" to FAILED on {@link jobQueue} → {@link jobFailureQueue}. */
	public readonly jobFailureRule: events.Rule;
	/** The events of dataset scan jobs that ended FAILED (an unscanned dataset): what the pipeline alarms on. */
	public readonly jobFailureQueue: sqs.Queue;

	constructor(scope: Construct, props: DatasetGateProps) {
		const { store, network } = props;
		const role = store.datasetGateRole;
		const stack = Stack.of(scope);

		// ---- Batch: Fargate compute environment, queue, image, job definition ------------------------------------
		this.computeEnvironment = new batch.FargateComputeEnvironment(scope, "DatasetComputeEnvironment", {
			vpc: vpcRef(network.vpc),
			vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
			securityGroups: [network.computeSecurityGroup as unknown as ec2.ISecurityGroup],
			maxvCpus: DATASET_JOB.maxvCpus,
			// Fargate tasks pull the image through the ECR endpoints and its layers through the S3 gateway, and log
			// through the Logs endpoint (IsolatedNetwork's defaults); the function submits through the Batch endpoint.
		});
		this.jobQueue = new batch.JobQueue(scope, "DatasetJobQueue", {
			computeEnvironments: [{ computeEnvironment: this.computeEnvironment, order: 1 }],
			jobStateTimeLimitActions: [
				batch.JobStateTimeLimitActionsReason.JOB_RESOURCE_REQUIREMENT,
				batch.JobStateTimeLimitActionsReason.COMPUTE_ENVIRONMENT_MAX_RESOURCE,
			].map((reason) => ({
				action: batch.JobStateTimeLimitActionsAction.CANCEL,
				state: batch.JobStateTimeLimitActionsState.RUNNABLE,
				maxTime: DATASET_JOB.unplaceableAfter,
				reason,
			})),
		});
		this.image = new ecrAssets.DockerImageAsset(scope, "DatasetScanImage", {
			directory: props.projectRoot,
			file: "batch-jobs/dataset-scan/Dockerfile",
			platform: ecrAssets.Platform.LINUX_AMD64,
			// The Dockerfile copies only these; everything else stays out of the build context (and out of the
			// asset's fingerprint, which is computed at every synth).
			ignoreMode: IgnoreMode.DOCKER,
			exclude: ["**", "!package.json", "!package-lock.json", "!lib/**", "!batch-jobs/**"],
		});
		this.jobLogGroup = props.logs.logGroup("DatasetJobLogGroup");
		const region = stack.region;
		this.jobDefinition = new batch.EcsJobDefinition(scope, "DatasetScanJob", {
			container: new batch.EcsFargateContainerDefinition(scope, "DatasetScanContainer", {
				image: ecs.ContainerImage.fromDockerImageAsset(this.image),
				cpu: DATASET_JOB.vcpus,
				memory: DATASET_JOB.memory,
				ephemeralStorageSize: DATASET_JOB.ephemeralStorage,
				fargatePlatformVersion: ecs.FargatePlatformVersion.LATEST,
				assignPublicIp: false,
				jobRole: role,
				// Not root (the image's USER is the same).
				user: JOB_USER,
				environment: {
					AWS_REGION: region,
					AWS_DEFAULT_REGION: region,
					POWERTOOLS_SERVICE_NAME: METRIC_SERVICE,
					POWERTOOLS_METRICS_NAMESPACE: METRIC_NAMESPACE,
					FTGUARD_POLICY_URI: props.policyUri,
				},
				// EMF lines on stdout become metrics in this log group (no agent needed with the awslogs driver).
				logging: ecs.LogDriver.awsLogs({ logGroup: this.jobLogGroup, streamPrefix: "dataset-scan" }),
			}),
			// exit 0: the verdict is written; anything else (2: the scan could not run; a Fargate start failure) runs
			// once more, then the job is FAILED (jobFailureRule).
			retryAttempts: DATASET_JOB.attempts,
			timeout: DATASET_JOB.attemptTimeout,
			propagateTags: true,
		});
		Validations.of(this.jobDefinition.container.executionRole).acknowledge({
			id: "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
			reason:
				"ecr:GetAuthorizationToken has no resource-level permissions; image pulls themselves are limited to the CDK asset repository",
		});
		this.grantSubmit(scope, role);

		// ---- function: EventBridge → Lambda (DLQ) → scan or SubmitJob ---------------------------------------------
		// The function runs in the isolated subnets and calls Batch there.
		network.interfaceEndpoint("Batch", ec2.InterfaceVpcEndpointAwsService.BATCH);
		this.deadLetterQueue = deadLetterQueue(scope, "DatasetDeadLetterQueue");
		this.function = props.functions.create("dataset", {
			role,
			reservedConcurrency: props.reservedConcurrency,
			environment: {
				[DATASET_ENV.JOB_QUEUE]: this.jobQueue.jobQueueArn,
				[DATASET_ENV.JOB_DEFINITION]: this.jobDefinition.jobDefinitionArn,
			},
			deadLetterQueue: this.deadLetterQueue,
			retryAttempts: 2,
		});
		this.rule = new events.Rule(scope, "DatasetMarkerRule", {
			description: "ftguard: a dataset commit marker was uploaded: scan the dataset version for poisoning",
			eventPattern: {
				source: ["aws.s3"],
				detailType: ["Object Created"],
				detail: {
					bucket: { name: [store.datasetBucket.bucketName] },
					object: { key: [{ suffix: DATASET_MARKER_SUFFIX }] },
				},
			},
		});
		this.rule.addTarget(
			new targets.LambdaFunction(this.function as unknown as lambda.IFunction, {
				deadLetterQueue: this.deadLetterQueue as unknown as sqs.IQueue,
				retryAttempts: 8,
				maxEventAge: Duration.hours(6),
			}),
		);

		// ---- a FAILED job is an unscanned dataset: its event is kept for the alarm and the runbook ------------------
		this.jobFailureQueue = new sqs.Queue(scope, "DatasetJobFailureQueue", {
			encryption: sqs.QueueEncryption.SQS_MANAGED,
			enforceSSL: true,
			retentionPeriod: Duration.days(14),
		});
		Validations.of(this.jobFailureQueue).acknowledge({
			id: "AwsSolutions::AwsSolutions-SQS3",
			reason:
				"This queue is itself a dead end: it keeps the events of dataset scan jobs that ended FAILED for 14 days, and its alarm fires on the first one; nothing consumes it, so a DLQ behind it would never receive anything",
		});
		this.jobFailureRule = new events.Rule(scope, "DatasetJobFailedRule", {
			description: "ftguard: a dataset scan job ended FAILED: the dataset version stays unscanned (unreadable)",
			eventPattern: {
				source: ["aws.batch"],
				detailType: ["Batch Job State Change"],
				detail: { status: ["FAILED"], jobQueue: [this.jobQueue.jobQueueArn] },
			},
		});
		this.jobFailureRule.addTarget(
			new targets.SqsQueue(this.jobFailureQueue as unknown as sqs.IQueue, {
				retryAttempts: 8,
				maxEventAge: Duration.hours(24),
			}),
		);
	}

	/**
	 * SubmitJob of the dataset job definition (this revision, the one the function names) to the dataset queue only;
	 * Batch also authorises SubmitJob on the new job (resource type `job`), whose id is generated at submit time.
	 * The function asks for propagateTags and sends no tags, so no batch:TagResource.
	 */
	private grantSubmit(scope: Construct, role: iam.Role): void {
		const jobs = Stack.of(scope).formatArn({ service: "batch", resource: "job", resourceName: "*" });
		role.addToPrincipalPolicy(
			new iam.PolicyStatement({
				actions: ["batch:SubmitJob"],
				resources: [this.jobQueue.jobQueueArn, this.jobDefinition.jobDefinitionArn, jobs],
			}),
		);
		Validations.of(role).acknowledge({
			id: "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:batch:<AWS::Region>:<AWS::AccountId>:job/*]",
			reason:
				"Batch job ids are generated at submit time; SubmitJob is still limited to the dataset job queue and this revision of the dataset job definition",
		});
	}
}
