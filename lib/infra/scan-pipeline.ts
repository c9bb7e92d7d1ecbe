import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { Annotations, ArnFormat, Duration, IgnoreMode, RemovalPolicy, Size, Stack, Validations } from "aws-cdk-lib";
import * as batch from "aws-cdk-lib/aws-batch";
import type * as cw from "aws-cdk-lib/aws-cloudwatch";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as ecrAssets from "aws-cdk-lib/aws-ecr-assets";
import * as ecs from "aws-cdk-lib/aws-ecs";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import * as sqs from "aws-cdk-lib/aws-sqs";
import * as sfn from "aws-cdk-lib/aws-stepfunctions";
import * as cr from "aws-cdk-lib/custom-resources";
import { Construct, type IConstruct } from "constructs";
import { buildSync } from "esbuild";
import {
	BACKDOOR_REPORT_SUFFIX,
	MARKER_SUFFIXES,
	METRIC_NAMESPACE,
	METRIC_SERVICE,
	SWEEP,
} from "../core/pipeline/names.js";
import { type Policy, parsePolicy } from "../core/policy/index.js";
import type { Alarms } from "./alarms.js";
import type { CheckpointStore } from "./checkpoint-store.js";
import { type IsolatedNetwork, vpcRef } from "./isolated-network.js";
import { denyGrantsNotForAwsResources, secureProviderLogs } from "./proactive-controls.js";
import { retainExceptOnCreate } from "./removal-policy.js";
import {
	backdoorStateTimeoutSeconds,
	buildScanDefinition,
	LAMBDA_STEPS,
	type LambdaStep,
	SCAN_REPORT_PREFIX,
} from "./state-machine.js";
import { RESERVED_CONCURRENCY } from "./tags.js";

/** Size and retries of the backdoor-scan Batch job. */
export interface BackdoorJobOptions {
	/** @default 8 */
	readonly vcpus?: number;
	/** @default Size.gibibytes(30) (fits a g5/g6 .2xlarge with the ECS agent's share) */
	readonly memory?: Size;
	/** @default 1 */
	readonly gpus?: number;
	/** Timeout of one attempt. @default Duration.hours(2) */
	readonly attemptTimeout?: Duration;
	/** Attempts in all; only host failures (instance terminated or reclaimed) are retried. @default 3 */
	readonly attempts?: number;
}

export interface ScanPipelineProps {
	readonly store: CheckpointStore;
	readonly network: IsolatedNetwork;
	readonly alarms: Alarms;
	/**
	 * The policy document (lib/core/policy schema: signers, file policy, backdoor detectors and thresholds,
	 * reference data per model family or input shape, base-model registry). Validated at synth (an invalid one
	 * throws) and deployed to the base-model bucket (read-only to scanning and training roles) under a
	 * content-addressed key, `FTGUARD_POLICY_URI` in the functions.
	 * @default the schema's defaults: no signers, so nothing verifies and every scan ends QUARANTINED
	 */
	readonly policy?: unknown;
	/**
	 * Key suffixes of unsigned single-file artefacts that also invoke the start function, besides the commit
	 * markers (`model.sig`, `*.sigstore.json`). The start handler decides what is a marker
	 * (lib/core/pipeline/artefact.ts; today only signatures are), so a suffix here only helps once it accepts
	 * it. A suffix that a file inside a model directory can have would start a second scan of that file (and a
	 * verdict race): only formats that are one file per model belong here.
	 * @default [] (a single file is committed by its `<file>.sigstore.json`)
	 */
	readonly singleFileSuffixes?: readonly string[];
	/**
	 * Reserved concurrency of every scan function (and so the number of scans in flight per step).
	 * @default 10
	 */
	readonly reservedConcurrency?: number;
	/**
	 * GPU instance classes of the Batch compute environment.
	 * @default [G5, G6]
	 */
	readonly gpuInstanceClasses?: readonly ec2.InstanceClass[];
	/**
	 * Maximum vCPUs of the compute environment (it scales from 0); at least backdoorJob.vcpus. At most
	 * ⌊maxvCpus / backdoorJob.vcpus⌋ backdoor scans run at once, the others wait RUNNABLE (see executionTimeout).
	 * @default 64
	 */
	readonly maxvCpus?: number;
	/** @default BackdoorJobOptions defaults */
	readonly backdoorJob?: BackdoorJobOptions;
	/**
	 * The least time the backdoor stage gets: waiting for a GPU instance plus every attempt; at least the attempt
	 * timeout. It sizes the default execution timeout; the BackdoorScan state's own timeout is what the execution
	 * timeout leaves after the other steps (backdoorStateTimeoutSeconds in state-machine.ts), never less than this,
	 * so that a scan queued behind a burst is ended only by its deadline.
	 * @default Duration.hours(6)
	 */
	readonly backdoorTimeout?: Duration;
	/**
	 * Timeout of a whole execution: the scan's deadline; at least backdoorTimeout plus the other steps' task
	 * timeouts. Sizing rule for bursts (docs/deploy.md): at least the other steps (~1 h) + ⌈commits at once / jobs at
	 * once⌉ × the time of one backdoor scan, where jobs at once = ⌊maxvCpus / backdoorJob.vcpus⌋.
	 * @default backdoorTimeout + 2 hours
	 */
	readonly executionTimeout?: Duration;
	/**
	 * Runtime of the functions. cdk-nag's AwsSolutions-L1 wants the newest Node.js runtime CDK knows; an older one
	 * is acknowledged per function (a whole-rule acknowledgement: L1 has no finding ids).
	 * @default lambda.Runtime.NODEJS_22_X (the Node.js line of the Batch image; the code also runs on 20 and 24)
	 */
	readonly runtime?: lambda.Runtime;
	/**
	 * X-Ray tracing of the state machine and the functions (AwsSolutions-SF2 is acknowledged when off).
	 * @default true
	 */
	readonly tracing?: boolean;
	/** @default logs.RetentionDays.ONE_YEAR */
	readonly logRetention?: logs.RetentionDays;
	/**
	 * What happens to the log groups and their key when the stack is deleted.
	 * @default RemovalPolicy.RETAIN
	 */
	readonly removalPolicy?: RemovalPolicy;
	/**
	 * Directory of the handler files `<step>.ts` (and `start.ts`). A missing file is deployed as a stub that
	 * throws (every scan then ends QUARANTINED with an error), with a synth warning.
	 * @default the repository's `lambdas/`
	 */
	readonly handlersDir?: string;
	/**
	 * Alarm on the sweeper's `scans_stuck_in_scanning`: objects it found SCANNING after their scan ended without a
	 * verdict, or the sweeper silent (missing data breaches; see SWEEP in lib/core/pipeline/names.ts).
	 * @default true
	 */
	readonly stuckScanAlarm?: boolean;
	/**
	 * How often the sweeper runs (lambdas/sweep.ts): whole minutes, 5 to 60. Its lookback and the stuck-scan alarm's
	 * period follow (SWEEP in lib/core/pipeline/names.ts).
	 * @default Duration.minutes(SWEEP.intervalMinutes) (15 minutes)
	 */
	readonly sweepInterval?: Duration;
}

/** The functions that are not states of the workflow. */
type ExtraFunction = "start" | "sweep";

/** Per-function sizing: multi-GiB checkpoints are streamed (manifest) or parsed (files) within one invocation. */
const FUNCTION_SIZING: Readonly<
	Record<
		LambdaStep | ExtraFunction,
		{ timeout: Duration; memoryMiB: number; ephemeralMiB: number; description: string }
	>
> = {
	start: { timeout: Duration.seconds(30), memoryMiB: 256, ephemeralMiB: 512, description: "commit marker → execution" },
	mark: { timeout: Duration.minutes(5), memoryMiB: 512, ephemeralMiB: 512, description: "tag SCANNING" },
	manifest: { timeout: Duration.minutes(15), memoryMiB: 4096, ephemeralMiB: 1024, description: "per-file SHA-256" },
	signature: { timeout: Duration.minutes(5), memoryMiB: 1024, ephemeralMiB: 512, description: "Sigstore bundle" },
	files: { timeout: Duration.minutes(15), memoryMiB: 4096, ephemeralMiB: 10240, description: "format scanners" },
	decide: { timeout: Duration.minutes(2), memoryMiB: 512, ephemeralMiB: 512, description: "policy → verdict" },
	record: { timeout: Duration.minutes(5), memoryMiB: 512, ephemeralMiB: 512, description: "verdict tags + record" },
	// Well under the shortest interval, so runs never overlap (reserved concurrency 1 as well).
	sweep: { timeout: Duration.minutes(4), memoryMiB: 512, ephemeralMiB: 512, description: "quarantine stuck scans" },
};

/** Functions that run outside the VPC: they call Step Functions, which has no endpoint in the isolated subnets. */
const OUTSIDE_VPC: ReadonlySet<LambdaStep | ExtraFunction> = new Set(["start", "sweep"]);

/**
 * The event-driven scan: an EventBridge rule on the checkpoint bucket's commit markers invokes the start
 * function, which starts a STANDARD Step Functions execution named by the scan id (a duplicate event starts
 * nothing). The workflow ({@link buildScanDefinition}) runs the step Lambdas in the isolated subnets and the
 * backdoor scan as a GPU AWS Batch job (`.sync`), and fails closed on every error. mark and record run as the
 * store's verdict role (the only tag writer), manifest, signature and files as its scanner role, the Batch job as its
 * backdoor job role.
 * The policy is configuration: a content-addressed object in the base-model bucket read by the functions, and
 * the Batch job's FTGUARD_* settings.
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
	/** The step functions by step name. */
	public readonly functions: Readonly<Record<LambdaStep, lambda.Function>>;
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

	private readonly stack: Stack;
	private readonly removalPolicy: RemovalPolicy;
	private readonly logRetention: logs.RetentionDays;
	private readonly handlersDir: string;
	private readonly projectRoot: string;
	private readonly tracing: boolean;
	private readonly runtime: lambda.Runtime;

	constructor(scope: Construct, id: string, props: ScanPipelineProps) {
		super(scope, id);
		this.stack = Stack.of(this);
		this.removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
		this.logRetention = props.logRetention ?? logs.RetentionDays.ONE_YEAR;
		this.projectRoot = fileURLToPath(new URL("../../", import.meta.url));
		this.handlersDir = props.handlersDir ?? join(this.projectRoot, "lambdas");
		this.tracing = props.tracing ?? true;
		this.runtime = props.runtime ?? lambda.Runtime.NODEJS_22_X;
		if (this.runtime.family !== lambda.RuntimeFamily.NODEJS) {
			throw new Error(`ScanPipeline: runtime must be a Node.js runtime (got ${this.runtime.name})`);
		}
		const { store, network } = props;
		const concurrency = props.reservedConcurrency ?? RESERVED_CONCURRENCY.perFunction;
		if (!Number.isInteger(concurrency) || concurrency < 1) {
			throw new Error(`ScanPipeline: reservedConcurrency must be a positive integer (got ${concurrency})`);
		}
		const suffixes = props.singleFileSuffixes ?? [];
		for (const s of suffixes) {
			if (!/^\.[A-Za-z0-9._-]+$/.test(s) || s.endsWith(".sig") || s.endsWith(".sigstore.json")) {
				throw new Error(
					`ScanPipeline: singleFileSuffixes must be file extensions like ".gguf", not markers (got "${s}")`,
				);
			}
		}
		const job = resolveJobOptions(props.backdoorJob);
		if ((props.maxvCpus ?? 64) < job.vcpus) {
			throw new Error(
				`ScanPipeline: maxvCpus (${props.maxvCpus}) must be at least backdoorJob.vcpus (${job.vcpus}): no job could run`,
			);
		}
		const backdoorTimeout = props.backdoorTimeout ?? Duration.hours(6);
		if (backdoorTimeout.toSeconds() < job.attemptTimeout.toSeconds()) {
			throw new Error("ScanPipeline: backdoorTimeout must be at least backdoorJob.attemptTimeout");
		}
		const taskTimeouts = Object.fromEntries(
			LAMBDA_STEPS.map((s) => [s, FUNCTION_SIZING[s].timeout.plus(Duration.minutes(1))]),
		) as Record<LambdaStep, Duration>;
		// the BackdoorScan state gets what the deadline leaves after the other steps: at least backdoorTimeout
		const others = Object.fromEntries(LAMBDA_STEPS.map((s) => [s, taskTimeouts[s].toSeconds()])) as Record<
			LambdaStep,
			number
		>;
		const minimum = backdoorTimeout.toSeconds() - backdoorStateTimeoutSeconds(0, others);
		const executionTimeout = props.executionTimeout ?? backdoorTimeout.plus(Duration.hours(2));
		if (executionTimeout.toSeconds() < minimum) {
			throw new Error(
				`ScanPipeline: executionTimeout must be at least backdoorTimeout plus the other steps' task timeouts (${minimum} s, got ${executionTimeout.toSeconds()} s)`,
			);
		}

		this.policy = parsePolicy(JSON.stringify(props.policy ?? {}), "ScanPipeline policy");
		this.logKey = this.createLogKey();

		// ---- policy as configuration ------------------------------------------------------------------------
		const policyJson = `${JSON.stringify(this.policy, null, "\t")}\n`;
		const policyKey = `ftguard/policy/${createHash("sha256").update(policyJson).digest("hex")}.json`;
		this.policyUri = `s3://${store.baseModelBucket.bucketName}/${policyKey}`;
		this.policyDeployment = this.deployPolicy(store, policyKey, policyJson);

		// ---- roles ------------------------------------------------------------------------------------------
		this.decideRole = new iam.Role(this, "DecideRole", {
			description: "ftguard decide: reads the policy and the scan's reports",
			assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
		});
		// decide reads one object: the backdoor job's report.json, when the job exited 1 (suspect), to name the finding.
		this.decideRole.addToPrincipalPolicy(
			new iam.PolicyStatement({
				actions: ["s3:GetObject"],
				resources: [store.reportBucket.arnForObjects(`${SCAN_REPORT_PREFIX}*/${BACKDOOR_REPORT_SUFFIX}`)],
			}),
		);
		store.grantKeyViaS3(this.decideRole, ["kms:Decrypt"]);
		Validations.of(this.decideRole).acknowledge({
			id: `AwsSolutions::AwsSolutions-IAM5[Resource::<${logicalIdOf(store.reportBucket)}.Arn>/${SCAN_REPORT_PREFIX}*/${BACKDOOR_REPORT_SUFFIX}]`,
			reason:
				"decide reads the backdoor report of the scan it decides (scans/<scan id>/backdoor/report.json, ids not known at deploy time); GetObject only",
		});
		this.startRole = new iam.Role(this, "StartRole", {
			description: "ftguard start: starts scan executions",
			assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
		});
		const roles: Record<LambdaStep | ExtraFunction, iam.Role> = {
			start: this.startRole,
			sweep: store.sweeperRole,
			mark: store.verdictRole,
			manifest: store.scannerRole,
			signature: store.scannerRole,
			files: store.scannerRole,
			decide: this.decideRole,
			record: store.verdictRole,
		};
		if (this.tracing) {
			Validations.of(this.startRole).acknowledge({
				id: "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
				reason:
					"X-Ray accepts trace segments (xray:PutTraceSegments, PutTelemetryRecords) only on Resource *; the start role has no other wildcard",
			});
		}
		if (this.tracing) {
			Validations.of(store.sweeperRole).acknowledge({
				id: "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
				reason:
					"X-Ray accepts trace segments (xray:PutTraceSegments, PutTelemetryRecords) only on Resource *; the sweeper role has no other Resource * statement",
			});
		}
		for (const role of new Set(Object.values(roles))) {
			if (role === this.startRole || role === store.sweeperRole) continue;
			this.grantVpcAccess(role);
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

		// ---- functions --------------------------------------------------------------------------------------
		const securityGroup = network.computeSecurityGroup;
		const environment: Record<string, string> = {
			POWERTOOLS_SERVICE_NAME: METRIC_SERVICE,
			POWERTOOLS_METRICS_NAMESPACE: METRIC_NAMESPACE,
			FTGUARD_CHECKPOINT_BUCKET: store.checkpointBucket.bucketName,
			FTGUARD_BASE_MODEL_BUCKET: store.baseModelBucket.bucketName,
			FTGUARD_DATASET_BUCKET: store.datasetBucket.bucketName,
			FTGUARD_REPORT_BUCKET: store.reportBucket.bucketName,
			FTGUARD_REPORT_PREFIX: SCAN_REPORT_PREFIX,
			FTGUARD_POLICY_URI: this.policyUri,
		};
		const fn = (
			step: LambdaStep | ExtraFunction,
			extraEnv: Record<string, string> = {},
			reserved = concurrency,
		): lambda.Function =>
			this.createFunction(step, roles[step], securityGroup, network, reserved, { ...environment, ...extraEnv });
		const functions = Object.fromEntries(LAMBDA_STEPS.map((s) => [s, fn(s)])) as Record<LambdaStep, lambda.Function>;
		this.functions = functions;
		if (!OUTSIDE_VPC.has("mark") && !OUTSIDE_VPC.has("record")) {
			// The verdict functions run in the isolated subnets, so their tag and record writes come through the gateway.
			store.requireVerdictWritesThrough(network.s3Endpoint.vpcEndpointId);
		}
		// Checkpoint reads of the roles that may read unscanned objects, bound to the gateway endpoint: a role only if
		// every function running as it is in the isolated subnets (scanner: manifest, signature, files; verdict: mark,
		// record), and the Batch job's role (the compute environment is in the isolated subnets). Not the sweeper
		// (outside the VPC) nor break-glass (see CheckpointStore.requireCheckpointReadsThrough).
		const onlyInVpc = (role: iam.Role): boolean =>
			Object.entries(roles).every(([step, r]) => r !== role || !OUTSIDE_VPC.has(step as LambdaStep | ExtraFunction));
		store.requireCheckpointReadsThrough(network.s3Endpoint.vpcEndpointId, [
			...[store.scannerRole, store.verdictRole].filter(onlyInVpc),
			store.backdoorJobRole,
		]);
		this.grantBackdoorJob(store, policyKey);

		// ---- AWS Batch --------------------------------------------------------------------------------------
		this.launchTemplate = new ec2.LaunchTemplate(this, "GpuLaunchTemplate", {
			requireImdsv2: true,
			httpTokens: ec2.LaunchTemplateHttpTokens.REQUIRED,
			// CT.EC2.PR.10: 1-minute instance metrics, to see a GPU host stall or run out of memory mid-scan; costs
			// little beside the GPU instance itself.
			detailedMonitoring: true,
			// One hop keeps bridge-network containers from IMDSv2. Batch runs ECS-EC2 jobs in host network mode,
			// where the hop limit separates nothing: BLOCK_JOB_IMDS (user data) is what keeps the job from the
			// instance role; the job gets its own role from the ECS credentials endpoint.
			httpPutResponseHopLimit: 1,
			userData: imdsBlockUserData(),
			blockDevices: [
				{
					deviceName: "/dev/xvda",
					volume: ec2.BlockDeviceVolume.ebs(200, { encrypted: true, volumeType: ec2.EbsDeviceVolumeType.GP3 }),
				},
			],
		});
		this.computeEnvironment = new batch.ManagedEc2EcsComputeEnvironment(this, "GpuComputeEnvironment", {
			vpc: vpcRef(network.vpc),
			vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
			securityGroups: [network.computeSecurityGroup as unknown as ec2.ISecurityGroup],
			instanceClasses: [...(props.gpuInstanceClasses ?? [ec2.InstanceClass.G5, ec2.InstanceClass.G6])],
			useOptimalInstanceClasses: false,
			images: [{ imageType: batch.EcsMachineImageType.ECS_AL2023_NVIDIA }],
			minvCpus: 0,
			maxvCpus: props.maxvCpus ?? 64,
			launchTemplate: this.launchTemplate,
			updateToLatestImageVersion: true,
		});
		if (this.computeEnvironment.instanceRole) {
			Validations.of(this.computeEnvironment.instanceRole).acknowledge({
				id: "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role]",
				reason:
					"The ECS agent on Batch-managed GPU instances needs exactly this AWS-maintained policy (register the instance, poll for tasks) and the role has nothing else; jobs share the host network (Batch ECS-EC2 jobs run in host mode), so the launch template's boot hook drops every non-root packet to instance metadata and the job runs as a non-root user",
			});
		}
		this.jobQueue = new batch.JobQueue(this, "GpuJobQueue", {
			computeEnvironments: [{ computeEnvironment: this.computeEnvironment, order: 1 }],
		});
		this.image = new ecrAssets.DockerImageAsset(this, "BackdoorScanImage", {
			directory: this.projectRoot,
			file: "batch-jobs/backdoor-scan/Dockerfile",
			platform: ecrAssets.Platform.LINUX_AMD64,
			// The Dockerfile copies only these; everything else stays out of the build context (and out of the
			// asset's fingerprint, which is computed at every synth).
			ignoreMode: IgnoreMode.DOCKER,
			exclude: ["**", "!package.json", "!package-lock.json", "!lib/**", "!batch-jobs/**"],
		});
		this.jobLogGroup = this.logGroup("JobLogGroup");
		this.jobDefinition = new batch.EcsJobDefinition(this, "BackdoorScanJob", {
			container: new batch.EcsEc2ContainerDefinition(this, "BackdoorScanContainer", {
				image: ecs.ContainerImage.fromDockerImageAsset(this.image),
				cpu: job.vcpus,
				memory: job.memory,
				gpu: job.gpus,
				jobRole: store.backdoorJobRole,
				// Non-root, so BLOCK_JOB_IMDS applies to it whatever the image's USER says.
				user: JOB_USER,
				// Only recent ECS agents inject AWS_REGION, and the job cannot ask instance metadata (blocked).
				environment: { FTGUARD_DEVICE: "cuda", AWS_REGION: this.stack.region, AWS_DEFAULT_REGION: this.stack.region },
				logging: ecs.LogDriver.awsLogs({ logGroup: this.jobLogGroup, streamPrefix: "backdoor-scan" }),
			}),
			retryAttempts: job.attempts,
			retryStrategies: [
				// Host failures (instance terminated, Spot reclaimed) are worth another attempt; exit 1 (suspect) and
				// 2 (error) are outcomes, and anything else is not retried either.
				batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.custom({ onStatusReason: "Host EC2*" })),
				batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom({ onExitCode: "1" })),
				batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom({ onExitCode: "2" })),
				batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom({ onReason: "*" })),
			],
			timeout: job.attemptTimeout,
			propagateTags: true,
		});

		// ---- state machine ----------------------------------------------------------------------------------
		const jobEnvironment: Record<string, string> = {
			// the whole policy (verdict rule, thresholds); the settings below repeat its search effort for the console
			FTGUARD_POLICY_URI: this.policyUri,
			FTGUARD_DETECTORS: this.policy.backdoor.detectors.join(","),
			FTGUARD_STEPS: String(this.policy.backdoor.neuralCleanse.steps),
			FTGUARD_BATCH: String(this.policy.backdoor.neuralCleanse.batch),
			FTGUARD_RESTARTS: String(this.policy.backdoor.neuralCleanse.restarts),
			FTGUARD_SEED: String(this.policy.backdoor.neuralCleanse.seed),
		};
		const definition = buildScanDefinition(this, {
			functions,
			timeouts: taskTimeouts,
			jobQueueArn: this.jobQueue.jobQueueArn,
			jobDefinitionArn: this.jobDefinition.jobDefinitionArn,
			reportBucketName: store.reportBucket.bucketName,
			jobEnvironment,
			executionTimeout,
		});
		// Under /aws/vendedlogs/: CloudWatch Logs then needs no resource-policy entry per log group for the delivery
		// (the account's 5 120-character resource-policy limit would otherwise be reached by enough state machines).
		this.stateMachineLogGroup = this.logGroup(
			"StateMachineLogGroup",
			`/aws/vendedlogs/states/ftguard-${this.stack.stackName}-scan`,
		);
		this.stateMachine = new sfn.StateMachine(this, "StateMachine", {
			comment: "ftguard scan: mark → manifest → signature → files → backdoor → decide → record; fails closed",
			stateMachineType: sfn.StateMachineType.STANDARD,
			definitionBody: sfn.DefinitionBody.fromChainable(definition),
			timeout: executionTimeout,
			tracingEnabled: this.tracing,
			logs: { destination: this.stateMachineLogGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
		});
		this.grantBatchSync();
		this.acknowledgeStateMachine(functions);

		// ---- start: EventBridge → Lambda (DLQ) → StartExecution ----------------------------------------------
		this.startDeadLetterQueue = new sqs.Queue(this, "StartDeadLetterQueue", {
			encryption: sqs.QueueEncryption.SQS_MANAGED,
			enforceSSL: true,
			retentionPeriod: Duration.days(14),
		});
		this.startFunction = fn("start", { FTGUARD_STATE_MACHINE_ARN: this.stateMachine.stateMachineArn });
		this.stateMachine.grantStartExecution(this.startRole);
		this.rule = new events.Rule(this, "CommitMarkerRule", {
			description: "ftguard: a commit marker or single-file artefact was uploaded: start its scan",
			eventPattern: {
				source: ["aws.s3"],
				detailType: ["Object Created"],
				detail: {
					bucket: { name: [store.checkpointBucket.bucketName] },
					object: {
						// The start handler's commit markers (lib/core/pipeline/artefact.ts resolveMarker).
						key: [...MARKER_SUFFIXES, ...suffixes].map((suffix) => ({ suffix })),
					},
				},
			},
		});
		this.rule.addTarget(
			new targets.LambdaFunction(this.startFunction as unknown as lambda.IFunction, {
				deadLetterQueue: this.startDeadLetterQueue as unknown as sqs.IQueue,
				retryAttempts: 8,
				maxEventAge: Duration.hours(6),
			}),
		);

		// ---- sweeper: schedule → Lambda (DLQ) → failed executions → quarantine + scans_stuck_in_scanning -------
		const sweepInterval = props.sweepInterval ?? Duration.minutes(SWEEP.intervalMinutes);
		const intervalMinutes = sweepInterval.toMinutes({ integral: false });
		if (!Number.isInteger(intervalMinutes) || intervalMinutes < 5 || intervalMinutes > 60) {
			throw new Error(`ScanPipeline: sweepInterval must be 5 to 60 whole minutes (got ${intervalMinutes})`);
		}
		this.sweepDeadLetterQueue = new sqs.Queue(this, "SweepDeadLetterQueue", {
			encryption: sqs.QueueEncryption.SQS_MANAGED,
			enforceSSL: true,
			retentionPeriod: Duration.days(14),
		});
		this.sweepFunction = fn(
			"sweep",
			{
				FTGUARD_STATE_MACHINE_ARN: this.stateMachine.stateMachineArn,
				FTGUARD_MAX_EXECUTION_SECONDS: String(executionTimeout.toSeconds()),
			},
			RESERVED_CONCURRENCY.sweep,
		);
		this.grantSweeper(store.sweeperRole);
		this.sweepSchedule = new events.Rule(this, "SweepSchedule", {
			description: "ftguard: quarantine objects left SCANNING by failed scans; report scans_stuck_in_scanning",
			schedule: events.Schedule.rate(sweepInterval),
		});
		this.sweepSchedule.addTarget(
			new targets.LambdaFunction(this.sweepFunction as unknown as lambda.IFunction, {
				event: events.RuleTargetInput.fromObject({ lookbackMinutes: intervalMinutes * SWEEP.lookbackIntervals }),
				deadLetterQueue: this.sweepDeadLetterQueue as unknown as sqs.IQueue,
				retryAttempts: 2,
				maxEventAge: sweepInterval,
			}),
		);

		// ---- alarms -----------------------------------------------------------------------------------------
		const { failed, timedOut } = props.alarms.addStateMachineAlarms("Scan", this.stateMachine);
		const created = [
			failed,
			timedOut,
			props.alarms.addDeadLetterQueueAlarm("Start", this.startDeadLetterQueue),
			props.alarms.addDeadLetterQueueAlarm("Sweep", this.sweepDeadLetterQueue),
		];
		if (props.stuckScanAlarm ?? true) created.push(props.alarms.addStuckScanAlarm("ScansStuck", sweepInterval));
		created.push(props.alarms.scanErrorsAlarm);
		this.pipelineAlarms = created;
	}

	/**
	 * Writes the policy JSON at deploy time (CDK's AwsCustomResource: one PutObject, no bundled CLI). The key is the
	 * content hash, so a changed policy is a new object and the functions switch to it in the same deployment.
	 */
	private deployPolicy(store: CheckpointStore, key: string, body: string): cr.AwsCustomResource {
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
		const provider = this.stack.node.tryFindChild("AWS679f53fac002430cb0da5b7982bd2287");
		if (provider) {
			Validations.of(provider).acknowledge({
				id: "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
				reason:
					"CDK's AwsCustomResource provider function only writes its own CloudWatch logs; the managed policy grants exactly logs:CreateLogGroup/CreateLogStream/PutLogEvents",
			});
		}
		// Its logs hold the SDK call (the policy body): this key and retention, unless the network's came first.
		secureProviderLogs(this, { key: this.logKey, retention: this.logRetention, removalPolicy: this.removalPolicy });
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

	/**
	 * The backdoor job's reads and writes besides the pinned checkpoint version (CheckpointStore): the deployed policy
	 * object, exactly the reference data objects the policy names, and the `backdoor/` folder of scan prefixes.
	 */
	private grantBackdoorJob(store: CheckpointStore, policyKey: string): void {
		const role = store.backdoorJobRole;
		const referenceObjects = [
			...new Set(
				this.policy.referenceData.flatMap((r) =>
					[r.dataUri, r.labelsUri].map((uri) => `arn:${this.stack.partition}:s3:::${uri.slice("s3://".length)}`),
				),
			),
		];
		role.addToPrincipalPolicy(
			new iam.PolicyStatement({
				actions: ["s3:GetObject", "s3:GetObjectVersion"],
				resources: [store.baseModelBucket.arnForObjects(policyKey), ...referenceObjects],
			}),
		);
		// `scans/<scan id>/backdoor/`: report.json, trigger images and the shards a merge reads back.
		const backdoorDir = BACKDOOR_REPORT_SUFFIX.slice(0, BACKDOOR_REPORT_SUFFIX.lastIndexOf("/") + 1);
		const outputs = `${SCAN_REPORT_PREFIX}*/${backdoorDir}*`;
		role.addToPrincipalPolicy(
			new iam.PolicyStatement({
				actions: ["s3:PutObject", "s3:GetObject"],
				resources: [store.reportBucket.arnForObjects(outputs)],
			}),
		);
		Validations.of(role).acknowledge({
			id: `AwsSolutions::AwsSolutions-IAM5[Resource::<${logicalIdOf(store.reportBucket)}.Arn>/${outputs}]`,
			reason:
				"The backdoor job writes (and a merge reads back) its report, trigger images and shards under the backdoor/ folder of its scan; scan ids are not known at deploy time",
		});
	}

	/**
	 * The sweeper's Step Functions reads: ListExecutions on this state machine, DescribeExecution and
	 * GetExecutionHistory on its executions. Its S3 tag access comes from the store (sweeperRole), its only writes
	 * are limited by the bucket policy.
	 */
	private grantSweeper(role: iam.Role): void {
		role.addToPrincipalPolicy(
			new iam.PolicyStatement({
				actions: ["states:ListExecutions"],
				resources: [this.stateMachine.stateMachineArn],
			}),
		);
		const executions = this.stack.formatArn({
			service: "states",
			resource: "execution",
			resourceName: `${this.stateMachine.stateMachineName}:*`,
			arnFormat: ArnFormat.COLON_RESOURCE_NAME,
		});
		role.addToPrincipalPolicy(
			new iam.PolicyStatement({
				actions: ["states:DescribeExecution", "states:GetExecutionHistory"],
				resources: [executions],
			}),
		);
		Validations.of(role).acknowledge({
			id: `AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:<${logicalIdOf(this.stateMachine)}.Name>:*]`,
			reason:
				"The sweeper reads the failed executions of this one state machine (execution names are scan ids, not known at deploy time); Describe/GetExecutionHistory only",
		});
	}

	private createLogKey(): kms.Key {
		const key = new kms.Key(this, "LogKey", {
			description: "ftguard: scan pipeline logs",
			enableKeyRotation: true,
			removalPolicy: this.removalPolicy,
		});
		denyGrantsNotForAwsResources(key);
		key.addToResourcePolicy(
			new iam.PolicyStatement({
				sid: "CloudWatchLogsInThisAccountAndRegion",
				principals: [new iam.ServicePrincipal(`logs.${this.stack.region}.amazonaws.com`)],
				actions: ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
				resources: ["*"],
				conditions: {
					ArnLike: {
						"kms:EncryptionContext:aws:logs:arn": `arn:${this.stack.partition}:logs:${this.stack.region}:${this.stack.account}:*`,
					},
				},
			}),
		);
		return key;
	}

	private logGroup(id: string, logGroupName?: string): logs.LogGroup {
		return new logs.LogGroup(this, id, {
			...(logGroupName ? { logGroupName } : {}),
			encryptionKey: this.logKey,
			retention: this.logRetention,
			removalPolicy: retainExceptOnCreate(this.removalPolicy),
		});
	}

	/** ENI management for a VPC function (what AWSLambdaVPCAccessExecutionRole grants, without a managed policy). */
	private grantVpcAccess(role: iam.Role): void {
		role.addToPrincipalPolicy(
			new iam.PolicyStatement({
				actions: [
					"ec2:CreateNetworkInterface",
					"ec2:DescribeNetworkInterfaces",
					"ec2:DescribeSubnets",
					"ec2:DeleteNetworkInterface",
					"ec2:AssignPrivateIpAddresses",
					"ec2:UnassignPrivateIpAddresses",
				],
				resources: ["*"],
			}),
		);
		Validations.of(role).acknowledge({
			id: "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
			reason:
				"Lambda in a VPC manages its ENIs with these EC2 actions (the statement of AWSLambdaVPCAccessExecutionRole; Describe* have no resource-level permissions), and X-Ray, when enabled, accepts segments only on *",
		});
	}

	private createFunction(
		step: LambdaStep | ExtraFunction,
		role: iam.Role,
		securityGroup: ec2.SecurityGroup,
		network: IsolatedNetwork,
		reservedConcurrency: number,
		environment: Record<string, string>,
	): lambda.Function {
		const sizing = FUNCTION_SIZING[step];
		const id = `${step[0]?.toUpperCase()}${step.slice(1)}Function`;
		// A fixed name (from the stack name) keeps the roles' log statements plain ARNs.
		const logGroupName = `/ftguard/${this.stack.stackName}/lambda/${step}`;
		const logGroup = this.logGroup(`${id}LogGroup`, logGroupName);
		role.addToPrincipalPolicy(
			new iam.PolicyStatement({
				actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
				resources: [
					`arn:${this.stack.partition}:logs:${this.stack.region}:${this.stack.account}:log-group:${logGroupName}:*`,
				],
			}),
		);
		Validations.of(role).acknowledge({
			id: `AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:${logGroupName}:*]`,
			reason: `Log streams of the ${step} function are created at run time inside its one log group; stream-level ARNs are not known at deploy time`,
		});
		const common = {
			description: `ftguard ${step}: ${sizing.description}`,
			runtime: this.runtime,
			architecture: lambda.Architecture.ARM_64,
			role: role as unknown as iam.IRole,
			timeout: sizing.timeout,
			memorySize: sizing.memoryMiB,
			ephemeralStorageSize: Size.mebibytes(sizing.ephemeralMiB),
			reservedConcurrentExecutions: reservedConcurrency,
			// The step functions read checkpoints and reports: isolated subnets, S3 through the gateway endpoint. The
			// start function reads no object (an event in, StartExecution out) and the sweeper only reads executions
			// and object tags, so they run outside the VPC rather than add a Step Functions interface endpoint.
			...(OUTSIDE_VPC.has(step)
				? {}
				: {
						vpc: vpcRef(network.vpc),
						vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
						securityGroups: [securityGroup as unknown as ec2.ISecurityGroup],
					}),
			environment,
			logGroup: logGroup as unknown as logs.ILogGroup,
			loggingFormat: lambda.LoggingFormat.JSON,
			tracing: this.tracing ? lambda.Tracing.ACTIVE : lambda.Tracing.DISABLED,
			...(step === "start"
				? {
						deadLetterQueueEnabled: true,
						deadLetterQueue: this.startDeadLetterQueue as unknown as sqs.IQueue,
						retryAttempts: 2,
					}
				: step === "sweep"
					? {
							// The next scheduled run is the retry (its lookback covers this one's window).
							deadLetterQueueEnabled: true,
							deadLetterQueue: this.sweepDeadLetterQueue as unknown as sqs.IQueue,
							retryAttempts: 0,
						}
					: { retryAttempts: 0 }),
		};
		const entry = join(this.handlersDir, `${step}.ts`);
		let code: lambda.Code;
		if (existsSync(entry)) {
			code = lambda.Code.fromAsset(bundleHandler(entry, step, this.projectRoot));
		} else {
			Annotations.of(this).addWarningV2(
				`ftguard:missing-handler-${step}`,
				`${entry} does not exist: the ${step} function is a stub that throws, so every scan ends QUARANTINED with an error`,
			);
			code = lambda.Code.fromInline(
				`exports.handler = async () => { throw new Error("ftguard: lambdas/${step}.ts was not built into this deployment"); };`,
			);
		}
		const fn = new lambda.Function(this, id, {
			...common,
			code,
			handler: "index.handler",
			environment: { ...environment, NODE_OPTIONS: "--enable-source-maps" },
		});
		if (!this.runtime.runtimeEquals(lambda.Runtime.NODEJS_LATEST)) {
			Validations.of(fn).acknowledge({
				id: "AwsSolutions::AwsSolutions-L1",
				reason: `${this.runtime.name}: the handlers share lib/core with the Batch image, which runs the same Node.js line; L1 only asks for the newest runtime CDK knows`,
			});
		}
		return fn;
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

const bundles = new Map<string, string>();

/**
 * Bundles a handler with esbuild (ESM, minified, source maps, Node 22 target, every dependency included at the
 * lockfile's version) into a directory holding `index.mjs` and its map, once per process. (NodejsFunction would
 * bundle again for every App, since CDK's asset cache is keyed by the output directory: seconds per function per
 * synth in the test suites.) The map's sources are relative to the project root, so the asset hash is the same
 * wherever the bundle is written.
 */
export function bundleHandler(entry: string, name: string, projectRoot: string): string {
	const cached = bundles.get(entry);
	if (cached) return cached;
	const virtualOut = join(projectRoot, ".lambda-bundles", name, "index.mjs");
	const result = buildSync({
		entryPoints: [entry],
		absWorkingDir: projectRoot,
		bundle: true,
		platform: "node",
		format: "esm",
		target: "node22",
		mainFields: ["module", "main"],
		minify: true,
		sourcemap: "external",
		sourcesContent: false,
		legalComments: "none",
		outfile: virtualOut,
		write: false,
		logLevel: "silent",
		banner: {
			js: "import { createRequire as __ftguardRequire } from 'node:module'; const require = __ftguardRequire(import.meta.url);",
		},
	});
	const dir = mkdtempSync(join(tmpdir(), `ftguard-${name}-`));
	for (const file of result.outputFiles) {
		writeFileSync(join(dir, relative(dirname(virtualOut), file.path)), file.contents);
	}
	// esbuild's external map is linked from index.mjs by a relative comment; Node loads it with --enable-source-maps.
	bundles.set(entry, dir);
	return dir;
}

function resolveJobOptions(options: BackdoorJobOptions = {}): Required<BackdoorJobOptions> {
	const resolved = {
		vcpus: options.vcpus ?? 8,
		memory: options.memory ?? Size.gibibytes(30),
		gpus: options.gpus ?? 1,
		attemptTimeout: options.attemptTimeout ?? Duration.hours(2),
		attempts: options.attempts ?? 3,
	};
	if (!Number.isInteger(resolved.gpus) || resolved.gpus < 1) {
		throw new Error(`ScanPipeline: backdoorJob.gpus must be a positive integer (got ${resolved.gpus})`);
	}
	if (!Number.isInteger(resolved.vcpus) || resolved.vcpus < 1) {
		throw new Error(`ScanPipeline: backdoorJob.vcpus must be a positive integer (got ${resolved.vcpus})`);
	}
	if (!Number.isInteger(resolved.attempts) || resolved.attempts < 1 || resolved.attempts > 10) {
		throw new Error(`ScanPipeline: backdoorJob.attempts must be an integer from 1 to 10 (got ${resolved.attempts})`);
	}
	if (resolved.attemptTimeout.toSeconds() < 60) {
		throw new Error("ScanPipeline: backdoorJob.attemptTimeout must be at least 60 seconds (Batch's minimum)");
	}
	return resolved;
}

function logicalIdOf(construct: IConstruct): string {
	const child = construct.node.defaultChild as { logicalId: string } | undefined;
	if (!child) throw new Error(`${construct.node.path} has no default child`);
	return Stack.of(construct).resolve(child.logicalId) as string;
}

/** uid:gid of the backdoor job's container (the image's USER is the same). Not root: see BLOCK_JOB_IMDS. */
export const JOB_USER = "1000:1000";

/**
 * Boot hook of the GPU instances. AWS Batch runs ECS-EC2 jobs in host network mode (Batch user guide, "Networking
 * modes for AWS Batch jobs"), so a job shares the instance's network stack and the IMDS hop limit does not keep it
 * from the instance role. Every packet to instance metadata from a non-root process is dropped (the job runs as
 * JOB_USER; the ECS agent, ecs-init and the SSM agent run as root), and bridge-network containers are cut off in
 * DOCKER-USER as ECS documents for task roles. A boot hook runs on every boot, before Docker and the ECS agent; the
 * `-C ||` guards keep it idempotent. The job's own credentials come from the ECS endpoint (169.254.170.2).
 */
export const BLOCK_JOB_IMDS = `#!/bin/bash
set -eu
iptables -w -C OUTPUT -d 169.254.169.254/32 -m owner ! --uid-owner 0 -j DROP 2>/dev/null ||
  iptables -w -I OUTPUT 1 -d 169.254.169.254/32 -m owner ! --uid-owner 0 -j DROP
iptables -w -N DOCKER-USER 2>/dev/null || true
iptables -w -C DOCKER-USER -i docker+ -d 169.254.169.254/32 -j DROP 2>/dev/null ||
  iptables -w -I DOCKER-USER 1 -i docker+ -d 169.254.169.254/32 -j DROP
`;

/** Batch accepts launch-template user data only as a MIME multi-part archive. */
function imdsBlockUserData(): ec2.UserData {
	const userData = new ec2.MultipartUserData();
	userData.addPart(
		ec2.MultipartBody.fromRawBody({ contentType: ec2.MultipartBody.CLOUD_BOOTHOOK, body: BLOCK_JOB_IMDS }),
	);
	return userData;
}
