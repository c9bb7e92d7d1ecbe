import { createHash } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Duration, Stack, Validations } from "aws-cdk-lib";
import type * as batch from "aws-cdk-lib/aws-batch";
import type * as cw from "aws-cdk-lib/aws-cloudwatch";
import type * as ec2 from "aws-cdk-lib/aws-ec2";
import type * as ecrAssets from "aws-cdk-lib/aws-ecr-assets";
import type * as events from "aws-cdk-lib/aws-events";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as kms from "aws-cdk-lib/aws-kms";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import type * as logs from "aws-cdk-lib/aws-logs";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import * as sfn from "aws-cdk-lib/aws-stepfunctions";
import * as cr from "aws-cdk-lib/custom-resources";
import { Construct } from "constructs";
import { BACKDOOR_DIR, BACKDOOR_REPORT_NAME, METRIC_NAMESPACE, METRIC_SERVICE } from "../core/pipeline/names.js";
import type { Policy } from "../core/policy/index.js";
import { BackdoorBatchJob } from "./backdoor-batch-job.js";
import { BaseModelGate } from "./base-model-gate.js";
import type { CheckpointStore } from "./checkpoint-store.js";
import { DatasetGate } from "./dataset-gate.js";
import { logicalIdOf } from "./logical-id.js";
import { OutputMonitor } from "./output-monitor.js";
import { PipelineLogs } from "./pipeline-logs.js";
import { AWS_CUSTOM_RESOURCE_SINGLETON_ID, secureProviderLogs } from "./proactive-controls.js";
import { PROVENANCE_KMS_KEY_ENV, ProvenanceKey } from "./provenance-key.js";
import { grantVpcAccess, OUTSIDE_VPC, ScanFunctionFactory, type ScanFunctionName } from "./scan-functions.js";
import { resolveScanPipelineProps, type ScanPipelineProps, type ScanPipelineSettings } from "./scan-pipeline-props.js";
import { StartTrigger } from "./start-trigger.js";

/** The functions whose roles the pipeline creates or takes from the store (the output monitor brings its own). */
type PipelineFunctionName = Exclude<ScanFunctionName, "monitor">;

import { buildScanDefinition, LAMBDA_STEPS, type LambdaStep, SCAN_REPORT_PREFIX } from "./state-machine.js";
import { Sweeper } from "./sweeper.js";

/**
 * The event-driven scan: an EventBridge rule on the checkpoint bucket's commit markers invokes the start
 * function, which starts a STANDARD Step Functions execution named by the scan id (a duplicate event starts
 * nothing). The workflow ({@link buildScanDefinition}) runs the step Lambdas in the isolated subnets and the
 * backdoor scan as a GPU AWS Batch job (`.sync`), and fails closed on every error. mark and record run as the
 * store's verdict role (the only tag writer), manifest, signature and files as its scanner role, the Batch job as its
 * backdoor job role.
 * The policy is configuration: a content-addressed object in the base-model bucket read by the functions, and
 * the Batch job's FTGUARD_* settings.
 *
 * Its parts ({@link StartTrigger}, {@link Sweeper}, {@link BackdoorBatchJob}, the functions of
 * {@link ScanFunctionFactory}) add their resources to this construct under the ids they had when it built them
 * itself, so the logical ids of a deployed stack do not change.
 */
export class ScanPipeline extends Construct {
	/** Encrypts the pipeline's log groups (functions, state machine, Batch job). */
	public readonly logKey: kms.Key;
	/** The validated policy document. */
	public readonly policy: Policy;
	/** `s3://<base-model bucket>/ftguard/policy/<sha-256 of the JSON>.json`: the deployed policy. */
	public readonly policyUri: string;
	/** Writes the policy object at deploy time. */
	public readonly policyDeployment: cr.AwsCustomResource;
	/** Commit-marker uploads → the start function. */
	public readonly rule: events.Rule;
	public readonly startFunction: lambda.Function;
	/** Events and async invocations of the start function that could not be delivered. */
	public readonly startDeadLetterQueue: sqs.Queue;
	/** Base-model marker uploads → the base-model gate function (lambdas/base-model.ts). */
	public readonly baseModelRule: events.Rule;
	public readonly baseModelFunction: lambda.Function;
	/** Events and async invocations of the base-model function that could not be delivered. */
	public readonly baseModelDeadLetterQueue: sqs.Queue;
	/**
	 * The dataset gate: dataset marker uploads → the dataset function (lambdas/dataset.ts), which scans the version
	 * or submits it to the dataset Batch queue (Fargate); its function, rule, dead-letter queue, job queue and
	 * definition, and the queue of FAILED job events.
	 */
	public readonly datasetGate: DatasetGate;
	/** Dataset marker uploads → the dataset function. */
	public readonly datasetRule: events.Rule;
	public readonly datasetFunction: lambda.Function;
	/** Events and async invocations of the dataset function that could not be delivered. */
	public readonly datasetDeadLetterQueue: sqs.Queue;
	/** The step functions by step name. */
	public readonly functions: Readonly<Record<LambdaStep, lambda.Function>>;
	/** Signs every verdict's provenance record (KMS, ECC_NIST_P256); only the record function may sign with it. */
	public readonly provenanceKey: ProvenanceKey;
	/** Role of the decide function: reads the policy object and the scan's reports, nothing else. */
	public readonly decideRole: iam.Role;
	/** Role of the start function: starts executions of this state machine only. */
	public readonly startRole: iam.Role;
	/**
	 * The scheduled sweeper (lambdas/sweep.ts), as the store's sweeper role: lists this state machine's failed
	 * executions and quarantines what they left SCANNING; emits `scans_stuck_in_scanning` on every run.
	 */
	public readonly sweepFunction: lambda.Function;
	/** Runs {@link sweepFunction} every `sweepInterval`. */
	public readonly sweepSchedule: events.Rule;
	/** Scheduled invocations of the sweeper that could not be delivered or failed. */
	public readonly sweepDeadLetterQueue: sqs.Queue;
	public readonly stateMachine: sfn.StateMachine;
	public readonly stateMachineLogGroup: logs.LogGroup;
	public readonly launchTemplate: ec2.LaunchTemplate;
	public readonly computeEnvironment: batch.ManagedEc2EcsComputeEnvironment;
	public readonly jobQueue: batch.JobQueue;
	public readonly jobDefinition: batch.EcsJobDefinition;
	public readonly jobLogGroup: logs.LogGroup;
	/** The backdoor-scan image (built at deploy time from batch-jobs/backdoor-scan/Dockerfile). */
	public readonly image: ecrAssets.DockerImageAsset;
	/** The alarms this pipeline added to {@link ScanPipelineProps.alarms}. */
	public readonly pipelineAlarms: readonly cw.Alarm[];
	/** The production output monitor, when {@link ScanPipelineProps.outputMonitor} attaches it to inference logs. */
	public readonly outputMonitor?: OutputMonitor;

	private readonly stack: Stack;
	private readonly tracing: boolean;

	constructor(scope: Construct, id: string, props: ScanPipelineProps) {
		super(scope, id);
		this.stack = Stack.of(this);
		const settings = resolveScanPipelineProps(props);
		const projectRoot = fileURLToPath(new URL("../../", import.meta.url));
		const { store, network } = props;
		this.tracing = settings.tracing;
		this.policy = settings.policy;
		const pipelineLogs = new PipelineLogs(this, {
			retention: settings.logRetention,
			removalPolicy: settings.removalPolicy,
		});
		this.logKey = pipelineLogs.key;

		// ---- policy as configuration ------------------------------------------------------------------------
		const policyJson = `${JSON.stringify(this.policy, null, "\t")}\n`;
		const policyKey = `ftguard/policy/${createHash("sha256").update(policyJson).digest("hex")}.json`;
		this.policyUri = `s3://${store.baseModelBucket.bucketName}/${policyKey}`;
		this.policyDeployment = this.deployPolicy(store, policyKey, policyJson, settings);

		// ---- roles ------------------------------------------------------------------------------------------
		const roles = this.createRoles(store, policyKey);
		this.decideRole = roles.decide;
		this.startRole = roles.start;

		// ---- functions --------------------------------------------------------------------------------------
		const functions = new ScanFunctionFactory(this, {
			runtime: settings.runtime,
			tracing: this.tracing,
			handlersDir: props.handlersDir ?? join(projectRoot, "lambdas"),
			projectRoot,
			network,
			logs: pipelineLogs,
			environment: {
				POWERTOOLS_SERVICE_NAME: METRIC_SERVICE,
				POWERTOOLS_METRICS_NAMESPACE: METRIC_NAMESPACE,
				FTGUARD_REPORT_BUCKET: store.reportBucket.bucketName,
				FTGUARD_REPORT_PREFIX: SCAN_REPORT_PREFIX,
				FTGUARD_POLICY_URI: this.policyUri,
			},
		});
		// the key that signs each verdict's provenance record: only the record function may sign (provenance-key.ts)
		this.provenanceKey = new ProvenanceKey(this, "ProvenanceKey", {
			signerRole: store.verdictRole,
			network,
			removalPolicy: settings.removalPolicy,
		});
		this.functions = Object.fromEntries(
			LAMBDA_STEPS.map((s) => [
				s,
				functions.create(s, {
					role: roles[s],
					reservedConcurrency: settings.reservedConcurrency,
					retryAttempts: 0,
					...(s === "record" ? { environment: { [PROVENANCE_KMS_KEY_ENV]: this.provenanceKey.key.keyArn } } : {}),
				}),
			]),
		) as Record<LambdaStep, lambda.Function>;
		this.provenanceKey.allowSigningFrom(store.verdictRole, this.functions.record as unknown as lambda.IFunction);
		if (!OUTSIDE_VPC.has("mark") && !OUTSIDE_VPC.has("record")) {
			// The verdict functions run in the isolated subnets, so their tag and record writes come through the gateway.
			store.requireVerdictWritesThrough(network.s3Endpoint.vpcEndpointId);
		}
		if (!OUTSIDE_VPC.has("base-model") && !OUTSIDE_VPC.has("dataset")) {
			// The gate functions run in the isolated subnets, and so does the dataset Batch job (Fargate, DatasetGate):
			// their tag, report and lineage writes come through the gateway.
			store.requireGateWritesThrough(network.s3Endpoint.vpcEndpointId);
		}
		// Checkpoint reads of the roles that may read unscanned objects, bound to the gateway endpoint: a role only if
		// every function running as it is in the isolated subnets (scanner: manifest, signature, files; verdict: mark,
		// record), and the Batch job's role (the compute environment is in the isolated subnets). Not the sweeper
		// (outside the VPC) nor break-glass (see CheckpointStore.requireCheckpointReadsThrough).
		const onlyInVpc = (role: iam.Role): boolean =>
			Object.entries(roles).every(([name, r]) => r !== role || !OUTSIDE_VPC.has(name as ScanFunctionName));
		store.requireCheckpointReadsThrough(network.s3Endpoint.vpcEndpointId, [
			...[store.scannerRole, store.verdictRole].filter(onlyInVpc),
			store.backdoorJobRole,
		]);

		// ---- AWS Batch --------------------------------------------------------------------------------------
		const job = new BackdoorBatchJob(this, {
			store,
			network,
			logs: pipelineLogs,
			projectRoot,
			job: settings.backdoorJob,
			maxvCpus: settings.maxvCpus,
			instanceClasses: settings.gpuInstanceClasses,
			policy: this.policy,
			policyKey,
			policyUri: this.policyUri,
		});
		this.launchTemplate = job.launchTemplate;
		this.computeEnvironment = job.computeEnvironment;
		this.jobQueue = job.jobQueue;
		this.image = job.image;
		this.jobLogGroup = job.logGroup;
		this.jobDefinition = job.jobDefinition;

		// ---- state machine ----------------------------------------------------------------------------------
		const definition = buildScanDefinition(this, {
			functions: this.functions,
			timeouts: settings.taskTimeouts,
			jobQueueArn: this.jobQueue.jobQueueArn,
			jobDefinitionArn: this.jobDefinition.jobDefinitionArn,
			reportBucketName: store.reportBucket.bucketName,
			jobEnvironment: job.environment,
			executionTimeout: settings.executionTimeout,
		});
		// Under /aws/vendedlogs/: CloudWatch Logs then needs no resource-policy entry per log group for the delivery
		// (the account's 5 120-character resource-policy limit would otherwise be reached by enough state machines).
		this.stateMachineLogGroup = pipelineLogs.logGroup(
			"StateMachineLogGroup",
			`/aws/vendedlogs/states/ftguard-${this.stack.stackName}-scan`,
		);
		this.stateMachine = new sfn.StateMachine(this, "StateMachine", {
			comment: "ftguard scan: mark → manifest → signature → files → backdoor → decide → record; fails closed",
			stateMachineType: sfn.StateMachineType.STANDARD,
			definitionBody: sfn.DefinitionBody.fromChainable(definition),
			timeout: settings.executionTimeout,
			tracingEnabled: this.tracing,
			logs: { destination: this.stateMachineLogGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
		});
		this.grantBatchSync();
		this.acknowledgeStateMachine(this.functions);

		// ---- start: EventBridge → Lambda (DLQ) → StartExecution ----------------------------------------------
		const start = new StartTrigger(this, {
			store,
			functions,
			role: this.startRole,
			reservedConcurrency: settings.reservedConcurrency,
			stateMachine: this.stateMachine,
		});
		this.startDeadLetterQueue = start.deadLetterQueue;
		this.startFunction = start.function;
		this.rule = start.rule;

		// ---- sweeper: schedule → Lambda (DLQ) → failed executions → quarantine + scans_stuck_in_scanning -------
		const sweeper = new Sweeper(this, {
			store,
			functions,
			stateMachine: this.stateMachine,
			executionTimeout: settings.executionTimeout,
			interval: settings.sweepInterval,
			intervalMinutes: settings.sweepIntervalMinutes,
		});
		this.sweepDeadLetterQueue = sweeper.deadLetterQueue;
		this.sweepFunction = sweeper.function;
		this.sweepSchedule = sweeper.schedule;

		// ---- base-model gate: EventBridge → Lambda (DLQ) → registry check → tags + base_model_verification_result --
		const gate = new BaseModelGate(this, {
			store,
			functions,
			reservedConcurrency: settings.reservedConcurrency,
		});
		this.baseModelRule = gate.rule;
		this.baseModelFunction = gate.function;
		this.baseModelDeadLetterQueue = gate.deadLetterQueue;

		// ---- dataset gate: EventBridge → Lambda (DLQ) → scan, or SubmitJob to the dataset Batch queue → report,
		// lineage, tags + finetuning_dataset_* metrics -----------------------------------------------------------------
		this.datasetGate = new DatasetGate(this, {
			store,
			network,
			functions,
			logs: pipelineLogs,
			projectRoot,
			reservedConcurrency: settings.reservedConcurrency,
			policyUri: this.policyUri,
		});
		this.datasetRule = this.datasetGate.rule;
		this.datasetFunction = this.datasetGate.function;
		this.datasetDeadLetterQueue = this.datasetGate.deadLetterQueue;

		// ---- output monitor: inference logs → Lambda → per-version windows in DynamoDB → metrics → alarms ---------
		if (props.outputMonitor) {
			this.outputMonitor = new OutputMonitor(this, {
				...props.outputMonitor,
				store,
				functions,
				alarms: props.alarms,
				policyKey,
				policy: this.policy.monitor,
				reservedConcurrency: settings.reservedConcurrency,
				removalPolicy: settings.removalPolicy,
				tracing: this.tracing,
			});
		}

		// ---- alarms -----------------------------------------------------------------------------------------
		const { failed, timedOut } = props.alarms.addStateMachineAlarms("Scan", this.stateMachine);
		const created = [
			failed,
			timedOut,
			props.alarms.addDeadLetterQueueAlarm("Start", this.startDeadLetterQueue),
			props.alarms.addDeadLetterQueueAlarm("Sweep", this.sweepDeadLetterQueue),
			props.alarms.addDeadLetterQueueAlarm("BaseModel", this.baseModelDeadLetterQueue),
			props.alarms.addDeadLetterQueueAlarm("Dataset", this.datasetDeadLetterQueue),
			props.alarms.addDatasetScanJobFailedAlarm("DatasetScanJobFailed", this.datasetGate.jobFailureQueue),
		];
		if (settings.stuckScanAlarm) created.push(props.alarms.addStuckScanAlarm("ScansStuck", settings.sweepInterval));
		created.push(props.alarms.scanErrorsAlarm);
		this.pipelineAlarms = created;
	}

	/**
	 * The role each function runs as (the store's verdict, scanner and sweeper roles; the decide and start roles
	 * created here), with what the VPC functions' roles need besides: ENI management and the deployed policy object.
	 */
	private createRoles(store: CheckpointStore, policyKey: string): Record<PipelineFunctionName, iam.Role> {
		const decideRole = new iam.Role(this, "DecideRole", {
			description: "ftguard decide: reads the policy and the scan's reports",
			assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
		});
		// decide reads only the backdoor jobs' report.json (one per model), of a job that exited 1 (suspect), to name
		// the finding.
		const reports = `${SCAN_REPORT_PREFIX}*/${BACKDOOR_DIR}*/${BACKDOOR_REPORT_NAME}`;
		decideRole.addToPrincipalPolicy(
			new iam.PolicyStatement({
				actions: ["s3:GetObject"],
				resources: [store.reportBucket.arnForObjects(reports)],
			}),
		);
		store.grantKeyViaS3(decideRole, ["kms:Decrypt"]);
		Validations.of(decideRole).acknowledge({
			id: `AwsSolutions::AwsSolutions-IAM5[Resource::<${logicalIdOf(store.reportBucket)}.Arn>/${reports}]`,
			reason:
				"decide reads the backdoor reports of the scan it decides (scans/<scan id>/backdoor/<model index>/report.json, ids not known at deploy time); GetObject only",
		});
		const startRole = new iam.Role(this, "StartRole", {
			description: "ftguard start: starts scan executions",
			assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
		});
		const roles: Record<PipelineFunctionName, iam.Role> = {
			start: startRole,
			sweep: store.sweeperRole,
			mark: store.verdictRole,
			manifest: store.scannerRole,
			signature: store.scannerRole,
			files: store.scannerRole,
			decide: decideRole,
			record: store.verdictRole,
			"base-model": store.baseModelGateRole,
			dataset: store.datasetGateRole,
		};
		if (this.tracing) {
			Validations.of(startRole).acknowledge({
				id: "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
				reason:
					"X-Ray accepts trace segments (xray:PutTraceSegments, PutTelemetryRecords) only on Resource *; the start role has no other wildcard",
			});
			Validations.of(store.sweeperRole).acknowledge({
				id: "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
				reason:
					"X-Ray accepts trace segments (xray:PutTraceSegments, PutTelemetryRecords) only on Resource *; the sweeper role has no other Resource * statement",
			});
		}
		for (const role of new Set(Object.values(roles))) {
			if (role === startRole || role === store.sweeperRole) continue;
			grantVpcAccess(role);
			if (role !== store.scannerRole) {
				// The scanner reads the whole base-model bucket already; the others read exactly this policy object.
				role.addToPrincipalPolicy(
					new iam.PolicyStatement({
						actions: ["s3:GetObject"],
						resources: [store.baseModelBucket.arnForObjects(policyKey)],
					}),
				);
				store.grantKeyViaS3(role, ["kms:Decrypt"]);
			}
		}
		return roles;
	}

	/**
	 * Writes the policy JSON at deploy time (CDK's AwsCustomResource: one PutObject, no bundled CLI). The key is the
	 * content hash, so a changed policy is a new object and the functions switch to it in the same deployment.
	 */
	private deployPolicy(
		store: CheckpointStore,
		key: string,
		body: string,
		settings: ScanPipelineSettings,
	): cr.AwsCustomResource {
		const call: cr.AwsSdkCall = {
			service: "S3",
			action: "PutObject",
			parameters: { Bucket: store.baseModelBucket.bucketName, Key: key, Body: body, ContentType: "application/json" },
			physicalResourceId: cr.PhysicalResourceId.of(key),
		};
		const deployment = new cr.AwsCustomResource(this, "PolicyDeployment", {
			onCreate: call,
			onUpdate: call,
			policy: cr.AwsCustomResourcePolicy.fromStatements([
				new iam.PolicyStatement({ actions: ["s3:PutObject"], resources: [store.baseModelBucket.arnForObjects(key)] }),
				new iam.PolicyStatement({
					actions: ["kms:GenerateDataKey"],
					resources: [store.key.keyArn],
					conditions: { StringEquals: { "kms:ViaService": `s3.${this.stack.region}.amazonaws.com` } },
				}),
			]),
			installLatestAwsSdk: false,
			timeout: Duration.minutes(2),
		});
		// The provider function behind every AwsCustomResource is a stack-level singleton with this fixed id.
		const provider = this.stack.node.tryFindChild(AWS_CUSTOM_RESOURCE_SINGLETON_ID);
		if (provider) {
			Validations.of(provider).acknowledge({
				id: "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
				reason:
					"CDK's AwsCustomResource provider function only writes its own CloudWatch logs; the managed policy grants exactly logs:CreateLogGroup/CreateLogStream/PutLogEvents",
			});
		}
		// Its logs hold the SDK call (the policy body): this key and retention, unless the network's came first.
		secureProviderLogs(this, {
			key: this.logKey,
			retention: settings.logRetention,
			removalPolicy: settings.removalPolicy,
		});
		return deployment;
	}

	/**
	 * What `.sync` needs besides SubmitJob (AWS's Step Functions IAM page for Batch): DescribeJobs to follow the job,
	 * TerminateJob so that a state timeout, an execution timeout or StopExecution ends the job instead of leaving it
	 * on its GPU and writing into the scan's prefix after the verdict. CDK grants only SubmitJob and the events rule.
	 */
	private grantBatchSync(): void {
		const jobs = this.stack.formatArn({ service: "batch", resource: "job", resourceName: "*" });
		// SubmitJob is authorised on the new job too (resource type `job`), besides the queue and definition.
		this.stateMachine.addToRolePolicy(
			new iam.PolicyStatement({ actions: ["batch:SubmitJob", "batch:TerminateJob"], resources: [jobs] }),
		);
		// DescribeJobs has no resource-level permissions.
		this.stateMachine.addToRolePolicy(new iam.PolicyStatement({ actions: ["batch:DescribeJobs"], resources: ["*"] }));
		Validations.of(this.stateMachine.role).acknowledge({
			id: "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:batch:<AWS::Region>:<AWS::AccountId>:job/*]",
			reason:
				"Batch job ids are generated at submit time; SubmitJob (still limited to the GPU queue and this job definition) and TerminateJob of the jobs this state machine runs",
		});
	}

	private acknowledgeStateMachine(functions: Readonly<Record<LambdaStep, lambda.Function>>): void {
		for (const step of LAMBDA_STEPS) {
			Validations.of(this.stateMachine.role).acknowledge({
				id: `AwsSolutions::AwsSolutions-IAM5[Resource::<${logicalIdOf(functions[step])}.Arn>:*]`,
				reason: `Step Functions invokes the ${step} function; CDK's grant adds its versions and aliases (<function ARN>:*), the same function only`,
			});
		}
		Validations.of(this.stateMachine.role).acknowledge({
			id: "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
			reason:
				"Step Functions delivers execution logs through CloudWatch Logs log-delivery APIs (CreateLogDelivery, PutResourcePolicy, …) and follows its Batch job with batch:DescribeJobs; none has resource-level permissions",
		});
		Validations.of(this.stateMachine.role).acknowledge({
			id: "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:batch:<AWS::Region>:<AWS::AccountId>:job-definition/*]",
			reason:
				"batch:SubmitJob is checked on the job definition by ARN with revision; the grant covers revisions, and the same statement limits the queue to the GPU job queue, whose only compute environment is this pipeline's",
		});
		if (!this.tracing) {
			Validations.of(this.stateMachine).acknowledge({
				id: "AwsSolutions::AwsSolutions-SF2",
				reason:
					"X-Ray turned off by ScanPipelineProps.tracing; every execution is still logged at level ALL with its data to an encrypted log group",
			});
		}
		const executionRole = this.jobDefinition.container.executionRole;
		Validations.of(executionRole).acknowledge({
			id: "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
			reason:
				"ecr:GetAuthorizationToken has no resource-level permissions; image pulls themselves are limited to the CDK asset repository",
		});
	}
}
