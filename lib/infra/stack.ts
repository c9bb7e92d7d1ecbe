import { Stack, type StackProps } from "aws-cdk-lib";
import type * as iam from "aws-cdk-lib/aws-iam";
import type { Construct } from "constructs";
import { Alarms, type AlarmsProps } from "./alarms.js";
import { CheckpointStore, type CheckpointStoreProps } from "./checkpoint-store.js";
import { IsolatedNetwork, type IsolatedNetworkProps } from "./isolated-network.js";
import { ScanPipeline, type ScanPipelineProps } from "./scan-pipeline.js";
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
	}
}
