import { Aws, CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from "aws-cdk-lib";
import type * as ec2 from "aws-cdk-lib/aws-ec2";
import type * as iam from "aws-cdk-lib/aws-iam";
import type { Construct } from "constructs";
import { Alarms, type AlarmsProps } from "./alarms.js";
import { CheckpointStore, type CheckpointStoreProps } from "./checkpoint-store.js";
import type { DeployConfig, RemovalPolicyName } from "./config.js";
import { IsolatedNetwork, type IsolatedNetworkProps } from "./isolated-network.js";
import { ScanPipeline } from "./scan-pipeline.js";
import type { ScanPipelineProps } from "./scan-pipeline-props.js";
import { TrainingJobAccess } from "./training-job-access.js";

export interface FtguardStackProps extends StackProps {
	/**
	 * Storage options (Object Lock, retention, the principals behind the scanner, verdict and break-glass roles).
	 * @default CheckpointStore defaults
	 */
	readonly store?: CheckpointStoreProps;
	/**
	 * Network options; the buckets of the S3 endpoint policy are always the store's data buckets.
	 * @default IsolatedNetwork defaults
	 */
	readonly network?: Omit<IsolatedNetworkProps, "buckets">;
	/**
	 * Role of the orchestration layer that launches training jobs.
	 * @default a launcher role created by TrainingJobAccess, assumable by this account's IAM principals
	 */
	readonly launcherRole?: iam.IRole;
	/**
	 * Alarm options (subscriptions, threshold, runbook location).
	 * @default Alarms defaults
	 */
	readonly alarms?: AlarmsProps;
	/**
	 * Scan pipeline options (policy, reference data, GPU capacity, timeouts, tracing).
	 * @default ScanPipeline defaults
	 */
	readonly scanPipeline?: Omit<ScanPipelineProps, "store" | "network" | "alarms">;
}

/**
 * ftguard's storage, network, training-job access, alarms and the scan pipeline that connects them: commit
 * markers in the checkpoint bucket start scans ({@link scanPipeline}) that run as the store's scanner and verdict
 * roles in the isolated subnets and report to the alarm topic.
 */
export class FtguardStack extends Stack {
	public readonly store: CheckpointStore;
	public readonly network: IsolatedNetwork;
	public readonly trainingJobs: TrainingJobAccess;
	public readonly alarms: Alarms;
	public readonly scanPipeline: ScanPipeline;

	constructor(scope: Construct, id: string, props: FtguardStackProps = {}) {
		super(scope, id, props);
		this.store = new CheckpointStore(this, "Store", props.store);
		this.network = new IsolatedNetwork(this, "Network", { ...props.network, buckets: this.store.dataBuckets });
		this.trainingJobs = new TrainingJobAccess(this, "TrainingJobs", {
			store: this.store,
			vpc: this.network.vpc,
			...(props.launcherRole ? { launcherRole: props.launcherRole } : {}),
		});
		this.alarms = new Alarms(this, "Alarms", props.alarms);
		this.scanPipeline = new ScanPipeline(this, "ScanPipeline", {
			...props.scanPipeline,
			store: this.store,
			network: this.network,
			alarms: this.alarms,
		});
		// What `ftguard aws smoke` and the operators need after a deploy (docs/deploy.md).
		new CfnOutput(this, "CheckpointBucketName", {
			description: "checkpoint bucket: training jobs commit here (ftguard aws smoke --bucket)",
			value: this.store.checkpointBucket.bucketName,
		});
		new CfnOutput(this, "ReportBucketName", {
			description: "scan reports and verdict records (ftguard aws smoke --report-bucket)",
			value: this.store.reportBucket.bucketName,
		});
		new CfnOutput(this, "S3Endpoint", {
			description: "regional S3 endpoint (ftguard aws smoke --endpoint)",
			value: `https://s3.${Aws.REGION}.${Aws.URL_SUFFIX}`,
		});
		new CfnOutput(this, "AlarmTopicArn", {
			description: "alarm topic: subscribe the on-call tooling here",
			value: this.alarms.topic.topicArn,
		});
	}
}

const REMOVAL: Readonly<Record<RemovalPolicyName, RemovalPolicy>> = {
	RETAIN: RemovalPolicy.RETAIN,
	RETAIN_ON_UPDATE_OR_DELETE: RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
	DESTROY: RemovalPolicy.DESTROY,
};

/**
 * FtguardStack props from a validated deployment config (lib/infra/config.ts): the policy, alarm e-mails, GPU
 * classes and max vCPUs, Object Lock (absent: the store's default; `false`: none; noncurrent versions kept at least as
 * long as a configured lock, 90 days otherwise)
 * and one removal policy for the store, network, alarms and pipeline. GPU settings the file leaves out keep the
 * scan pipeline's defaults. `base` (description, env, other construct options) is kept; the config wins.
 */
export function stackPropsFromConfig(config: DeployConfig, base: FtguardStackProps = {}): FtguardStackProps {
	const removalPolicy = REMOVAL[config.removalPolicy];
	const lock = config.objectLock;
	const noncurrentDays = config.noncurrentVersionDays ?? (lock ? Math.max(90, lock.retentionDays) : undefined);
	return {
		...base,
		...(config.account && config.region ? { env: { account: config.account, region: config.region } } : {}),
		store: {
			...base.store,
			removalPolicy,
			...(lock === false ? { objectLock: false as const } : {}),
			...(lock ? { objectLock: { mode: lock.mode, retention: Duration.days(lock.retentionDays) } } : {}),
			...(noncurrentDays !== undefined ? { noncurrentVersionExpiration: Duration.days(noncurrentDays) } : {}),
		},
		network: { ...base.network, removalPolicy },
		alarms: { ...base.alarms, removalPolicy, emailSubscriptions: config.alarmEmails },
		scanPipeline: {
			...base.scanPipeline,
			removalPolicy,
			policy: config.policy,
			...(config.gpuConfigured.instanceClasses
				? { gpuInstanceClasses: config.gpu.instanceClasses as ec2.InstanceClass[] }
				: {}),
			...(config.gpuConfigured.maxVcpus ? { maxvCpus: config.gpu.maxVcpus } : {}),
			...(config.outputMonitor ? { outputMonitor: config.outputMonitor } : {}),
		},
	};
}
