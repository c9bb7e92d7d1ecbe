/**
 * The backdoor scan's GPU AWS Batch job: launch template (instance metadata closed to the job), compute environment
 * in the isolated subnets, job queue, image, job definition, and the job role's reads and writes besides the pinned
 * checkpoint version. Resources are added to the given scope under the ids they have always had (ScanPipeline's), so
 * logical ids do not change.
 */
import { IgnoreMode, Stack, Validations } from "aws-cdk-lib";
import * as batch from "aws-cdk-lib/aws-batch";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as ecrAssets from "aws-cdk-lib/aws-ecr-assets";
import * as ecs from "aws-cdk-lib/aws-ecs";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as logs from "aws-cdk-lib/aws-logs";
import type { Construct } from "constructs";
import { BACKDOOR_DIR } from "../core/pipeline/names.js";
import { type Policy, referenceObjectsOf } from "../core/policy/index.js";
import type { CheckpointStore } from "./checkpoint-store.js";
import { type IsolatedNetwork, vpcRef } from "./isolated-network.js";
import { logicalIdOf } from "./logical-id.js";
import type { PipelineLogs } from "./pipeline-logs.js";
import type { BackdoorJobOptions } from "./scan-pipeline-props.js";
import { SCAN_REPORT_PREFIX } from "./state-machine.js";

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

export interface BackdoorBatchJobProps {
	readonly store: CheckpointStore;
	readonly network: IsolatedNetwork;
	readonly logs: PipelineLogs;
	/** Root of the package: the image's build context. */
	readonly projectRoot: string;
	readonly job: Required<BackdoorJobOptions>;
	readonly maxvCpus: number;
	readonly instanceClasses: readonly ec2.InstanceClass[];
	/** The validated policy: the reference data the job may read, its detector settings. */
	readonly policy: Policy;
	/** Key of the deployed policy object in the base-model bucket. */
	readonly policyKey: string;
	/** `s3://…` of that object. */
	readonly policyUri: string;
}

export class BackdoorBatchJob {
	public readonly launchTemplate: ec2.LaunchTemplate;
	public readonly computeEnvironment: batch.ManagedEc2EcsComputeEnvironment;
	public readonly jobQueue: batch.JobQueue;
	/** The backdoor-scan image (built at deploy time from batch-jobs/backdoor-scan/Dockerfile). */
	public readonly image: ecrAssets.DockerImageAsset;
	public readonly logGroup: logs.LogGroup;
	public readonly jobDefinition: batch.EcsJobDefinition;
	/** The job's FTGUARD_* settings, passed by the state machine at submit time. */
	public readonly environment: Readonly<Record<string, string>>;

	constructor(scope: Construct, props: BackdoorBatchJobProps) {
		const { store, network, job } = props;
		const region = Stack.of(scope).region;
		grantJobRole(scope, props);

		this.launchTemplate = new ec2.LaunchTemplate(scope, "GpuLaunchTemplate", {
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
		this.computeEnvironment = new batch.ManagedEc2EcsComputeEnvironment(scope, "GpuComputeEnvironment", {
			vpc: vpcRef(network.vpc),
			vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
			securityGroups: [network.computeSecurityGroup as unknown as ec2.ISecurityGroup],
			instanceClasses: [...props.instanceClasses],
			useOptimalInstanceClasses: false,
			images: [{ imageType: batch.EcsMachineImageType.ECS_AL2023_NVIDIA }],
			minvCpus: 0,
			maxvCpus: props.maxvCpus,
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
		this.jobQueue = new batch.JobQueue(scope, "GpuJobQueue", {
			computeEnvironments: [{ computeEnvironment: this.computeEnvironment, order: 1 }],
		});
		this.image = new ecrAssets.DockerImageAsset(scope, "BackdoorScanImage", {
			directory: props.projectRoot,
			file: "batch-jobs/backdoor-scan/Dockerfile",
			platform: ecrAssets.Platform.LINUX_AMD64,
			// The Dockerfile copies only these; everything else stays out of the build context (and out of the
			// asset's fingerprint, which is computed at every synth).
			ignoreMode: IgnoreMode.DOCKER,
			exclude: ["**", "!package.json", "!package-lock.json", "!lib/**", "!batch-jobs/**"],
		});
		this.logGroup = props.logs.logGroup("JobLogGroup");
		this.jobDefinition = new batch.EcsJobDefinition(scope, "BackdoorScanJob", {
			container: new batch.EcsEc2ContainerDefinition(scope, "BackdoorScanContainer", {
				image: ecs.ContainerImage.fromDockerImageAsset(this.image),
				cpu: job.vcpus,
				memory: job.memory,
				gpu: job.gpus,
				jobRole: store.backdoorJobRole,
				// Non-root, so BLOCK_JOB_IMDS applies to it whatever the image's USER says.
				user: JOB_USER,
				// Only recent ECS agents inject AWS_REGION, and the job cannot ask instance metadata (blocked).
				environment: { FTGUARD_DEVICE: "cuda", AWS_REGION: region, AWS_DEFAULT_REGION: region },
				logging: ecs.LogDriver.awsLogs({ logGroup: this.logGroup, streamPrefix: "backdoor-scan" }),
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

		const nc = props.policy.backdoor.neuralCleanse;
		this.environment = {
			// the whole policy (verdict rule, thresholds); the settings below repeat its search effort for the console
			FTGUARD_POLICY_URI: props.policyUri,
			FTGUARD_DETECTORS: props.policy.backdoor.detectors.join(","),
			FTGUARD_STEPS: String(nc.steps),
			FTGUARD_BATCH: String(nc.batch),
			FTGUARD_RESTARTS: String(nc.restarts),
			FTGUARD_SEED: String(nc.seed),
		};
	}
}

/**
 * The backdoor job's reads and writes besides the pinned checkpoint version (CheckpointStore): the deployed policy
 * object, exactly the reference data objects the policy names, and the `backdoor/` folder of scan prefixes.
 */
function grantJobRole(scope: Construct, { store, policy, policyKey }: BackdoorBatchJobProps): void {
	const role = store.backdoorJobRole;
	const partition = Stack.of(scope).partition;
	const referenceObjects = [
		...new Set(
			policy.referenceData.flatMap((r) =>
				referenceObjectsOf(r).map((uri) => `arn:${partition}:s3:::${uri.slice("s3://".length)}`),
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
	const outputs = `${SCAN_REPORT_PREFIX}*/${BACKDOOR_DIR}*`;
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

/** Batch accepts launch-template user data only as a MIME multi-part archive. */
function imdsBlockUserData(): ec2.UserData {
	const userData = new ec2.MultipartUserData();
	userData.addPart(
		ec2.MultipartBody.fromRawBody({ contentType: ec2.MultipartBody.CLOUD_BOOTHOOK, body: BLOCK_JOB_IMDS }),
	);
	return userData;
}
