import { Duration, RemovalPolicy, Stack, Validations } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import * as s3 from "aws-cdk-lib/aws-s3";
import { Construct, type IConstruct } from "constructs";
import {
	DATASET_LINEAGE,
	DATASET_REPORT,
	FTGUARD_TAG_KEYS,
	FTGUARD_TAG_PATTERN,
	ScanStatus,
	STATUS_TAG,
	VERDICT_OUTPUT_NAMES,
} from "../core/pipeline/names.js";
import { denyAnyPrincipal } from "./deny.js";
import { logicalIdOf } from "./logical-id.js";
import { denyGrantsNotForAwsResources } from "./proactive-controls.js";
import { SCAN_REPORT_PREFIX } from "./state-machine.js";

/** Object Lock default retention for the checkpoint and report buckets. */
export interface CheckpointObjectLock {
	/**
	 * GOVERNANCE lets a principal with `s3:BypassGovernanceRetention` delete early; COMPLIANCE lets nobody,
	 * not even the account root, until the retention ends.
	 */
	readonly mode: "GOVERNANCE" | "COMPLIANCE";
	/** Default retention of every new object version; whole days, at least 1. */
	readonly retention: Duration;
}

/**
 * The default Object Lock (CT.S3.PR.9): GOVERNANCE, so a principal explicitly allowed `s3:BypassGovernanceRetention`
 * can still remove a version early (a mistaken upload, an erasure request); 30 days, within the 90 days noncurrent
 * versions are kept anyway, so it costs no storage beyond what versioning already keeps.
 */
export const DEFAULT_OBJECT_LOCK: CheckpointObjectLock = { mode: "GOVERNANCE", retention: Duration.days(30) };

export interface CheckpointStoreProps {
	/**
	 * Object Lock on the checkpoint and report buckets (WORM for checkpoints and verdict records), or `false` for
	 * none. Decide before the first deploy: S3 never turns Object Lock off again, and a default retention added later
	 * does not cover the objects already stored. Trade-offs: docs/operations.md, "Object Lock".
	 * @default {@link DEFAULT_OBJECT_LOCK}: GOVERNANCE, 30 days
	 */
	readonly objectLock?: CheckpointObjectLock | false;
	/**
	 * How long noncurrent (overwritten or deleted) object versions are kept. Must not be shorter than the Object
	 * Lock retention.
	 * @default Duration.days(90)
	 */
	readonly noncurrentVersionExpiration?: Duration;
	/**
	 * How long server access logs are kept.
	 * @default Duration.days(365)
	 */
	readonly accessLogRetention?: Duration;
	/**
	 * What happens to the buckets and the key when the stack is deleted. DESTROY only removes empty buckets.
	 * Not allowed with COMPLIANCE Object Lock.
	 * @default RemovalPolicy.RETAIN
	 */
	readonly removalPolicy?: RemovalPolicy;
	/**
	 * Send the checkpoint, base-model and dataset buckets' events to EventBridge (what the scan pipeline's rule and the
	 * base-model and dataset gates' rules listen to).
	 * @default true
	 */
	readonly eventBridgeNotifications?: boolean;
	/**
	 * Who runs as the scanner role (the manifest, signature and file-scan Lambdas). With a ScanPipeline, the role's
	 * checkpoint reads count only through the VPC's S3 gateway endpoint (requireCheckpointReadsThrough).
	 * @default Lambda (`lambda.amazonaws.com`)
	 */
	readonly scannerAssumedBy?: iam.IPrincipal;
	/**
	 * Who runs as the backdoor job role (the GPU Batch job, which parses untrusted models). With a ScanPipeline, the
	 * role's checkpoint reads count only through the VPC's S3 gateway endpoint (requireCheckpointReadsThrough).
	 * @default ECS tasks of this account and region (`ecs-tasks.amazonaws.com` with `aws:SourceAccount` and
	 * `aws:SourceArn` conditions)
	 */
	readonly backdoorJobAssumedBy?: iam.IPrincipal;
	/**
	 * Who runs as the verdict role (the mark and record Lambdas: the only writers of `ftguard:*` tags).
	 * @default Lambda (`lambda.amazonaws.com`)
	 */
	readonly verdictAssumedBy?: iam.IPrincipal;
	/**
	 * Who runs as the sweeper role (the scheduled sweeper Lambda: quarantines objects left SCANNING by a scan that
	 * ended without a verdict).
	 * @default Lambda (`lambda.amazonaws.com`)
	 */
	readonly sweeperAssumedBy?: iam.IPrincipal;
	/**
	 * Who may assume the break-glass role, which reads any checkpoint whatever its status (incident response).
	 * @default IAM principals of this account that the account allows to, with MFA present
	 */
	readonly breakGlassAssumedBy?: iam.IPrincipal;
	/**
	 * Who runs as the base-model gate role (the base-model Lambda: the only writer of `ftguard:*` tags in the
	 * base-model bucket). With a ScanPipeline, the role's tag writes count only through the VPC's S3 gateway endpoint
	 * (requireGateWritesThrough).
	 * @default Lambda (`lambda.amazonaws.com`)
	 */
	readonly baseModelGateAssumedBy?: iam.IPrincipal;
	/**
	 * Who runs as the dataset gate role (the dataset Lambda, and the CPU Batch job it submits for datasets too large
	 * for it: the only writers of `ftguard:*` tags, reports and lineage manifests in the dataset bucket). With a
	 * ScanPipeline, the role's tag, report and lineage writes count only through the VPC's S3 gateway endpoint
	 * (requireGateWritesThrough).
	 * @default Lambda (`lambda.amazonaws.com`) and ECS tasks of this account and region (`ecs-tasks.amazonaws.com`
	 * with the backdoor job role's `aws:SourceAccount` and `aws:SourceArn` conditions)
	 */
	readonly datasetGateAssumedBy?: iam.IPrincipal;
}

/**
 * Locked-down storage for checkpoints, base models, datasets and scan reports.
 *
 * - One customer-managed KMS key (rotation on) encrypts the four data buckets (default encryption, bucket key);
 *   uploads that ask for another encryption setting, another key or SSE-C are denied. Server access logs go to a separate bucket (SSE-S3: S3 log delivery
 *   cannot write SSE-KMS objects).
 * - Every bucket: Block Public Access, versioning, TLS only, bucket-owner-enforced ownership (no ACLs), lifecycle
 *   for noncurrent versions and incomplete multipart uploads.
 * - Data buckets: no replica writes (s3:Replicate*, ObjectOwnerOverrideToBucketOwner) by anyone.
 * - Checkpoint bucket policy: nobody but the scanner, backdoor job, verdict and break-glass roles reads an object unless it is
 *   tagged `ftguard:status=PROMOTABLE`; nobody but the verdict role writes tags, uploads with `ftguard:*` tags
 *   or copies objects in (a copy could bring a foreign object's tags along) — except the sweeper role, which may
 *   read tag sets and do exactly one write: `ftguard:status=QUARANTINED` on an object whose status is SCANNING.
 *   Uploads carrying an ftguard tag key in any letter case are denied too (one `Null` condition per key).
 * - Base-model and dataset bucket policies: nobody but the bucket's gate role (base-model gate, dataset gate) writes
 *   tags, uploads with `ftguard:*` tags or copies objects in; training-job roles read only versions the gate tagged
 *   `ftguard:status=PROMOTABLE` (denyUnpromotedInputReads). In the dataset bucket, the gate's report and lineage
 *   (`<dir>/ftguard-dataset-report.json`, `<dir>/ftguard-dataset-lineage.json`) are written and deleted by the
 *   dataset gate role only, and that role writes nothing else. With a ScanPipeline, each gate role's tag writes and
 *   uploads count only through the VPC's S3 gateway endpoint (requireGateWritesThrough).
 * - Report bucket policy: verdict records (`scans/<scan id>/verdict.json`), their pages (`report.html`) and
 *   provenance records (`provenance.sigstore.json`) are written and deleted by the verdict role only.
 *
 * The roles those statements name are created here, so the bucket policy and the principals it trusts are
 * defined in one place; the pipeline runs its Lambdas as {@link scannerRole} and {@link verdictRole}, its Batch
 * job as {@link backdoorJobRole}.
 */
export class CheckpointStore extends Construct {
	/** Customer-managed key of the checkpoint, base-model, dataset and report buckets. */
	public readonly key: kms.Key;
	/** Checkpoints uploaded by training jobs (`jobs/<job-id>/…`) and by other uploaders; scanned on commit. */
	public readonly checkpointBucket: s3.Bucket;
	/** Approved base models; read-only for training and scanning. */
	public readonly baseModelBucket: s3.Bucket;
	/** Fine-tuning datasets. */
	public readonly datasetBucket: s3.Bucket;
	/** Scan reports, reversed-trigger images and verdict records. */
	public readonly reportBucket: s3.Bucket;
	/** Target of the server access logs of the four data buckets. */
	public readonly accessLogBucket: s3.Bucket;
	/** Reads checkpoints whatever their status, reads base models and datasets, writes reports. */
	public readonly scannerRole: iam.Role;
	/**
	 * The GPU backdoor job: reads pinned checkpoint versions (`s3:GetObjectVersion` only) whatever their status; the
	 * scan pipeline adds its policy object, reference data and its report prefix. Separate from {@link scannerRole}
	 * because the job runs on shared EC2 hosts and parses untrusted models.
	 */
	public readonly backdoorJobRole: iam.Role;
	/** The only principal that may promote (or write any tag set); writes verdict records. */
	public readonly verdictRole: iam.Role;
	/**
	 * The sweeper: reads object tag sets and may only turn `ftguard:status` SCANNING into QUARANTINED (bucket policy);
	 * no object reads, no other write.
	 */
	public readonly sweeperRole: iam.Role;
	/** Reads any checkpoint version whatever its status; for incident response only. */
	public readonly breakGlassRole: iam.Role;
	/**
	 * The base-model gate: reads base models (and the signed registry kept beside them), and is the only principal that
	 * may write `ftguard:*` tags in the base-model bucket; nothing on the checkpoint bucket.
	 */
	public readonly baseModelGateRole: iam.Role;
	/**
	 * The dataset gate (the dataset Lambda and its CPU Batch job): lists and reads every dataset object, is the only
	 * principal that may write `ftguard:*` tags in the dataset bucket, and writes exactly the gate's report and
	 * lineage beside the data (no data file); nothing on the checkpoint, base-model (but the policy object the scan
	 * pipeline adds) or report buckets. The scan pipeline adds its Batch SubmitJob and the policy object.
	 */
	public readonly datasetGateRole: iam.Role;

	private readonly region: string;

	constructor(scope: Construct, id: string, props: CheckpointStoreProps = {}) {
		super(scope, id);
		const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
		const noncurrent = props.noncurrentVersionExpiration ?? Duration.days(90);
		validate(props, noncurrent, removalPolicy);
		const objectLock = resolveObjectLock(props.objectLock);
		this.region = Stack.of(this).region;

		this.key = new kms.Key(this, "Key", {
			description: "ftguard: checkpoints, base models, datasets and scan reports",
			enableKeyRotation: true,
			removalPolicy,
		});
		denyGrantsNotForAwsResources(this.key);

		this.accessLogBucket = new s3.Bucket(this, "AccessLogBucket", {
			// S3 server access logging delivers only to SSE-S3 buckets.
			encryption: s3.BucketEncryption.S3_MANAGED,
			blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
			enforceSSL: true,
			minimumTLSVersion: 1.2,
			versioned: true,
			objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
			lifecycleRules: [
				{
					id: "expire-access-logs",
					expiration: props.accessLogRetention ?? Duration.days(365),
					noncurrentVersionExpiration: Duration.days(30),
				},
			],
			removalPolicy,
		});

		const dataBucket = (bucketId: string, logPrefix: string, lock: boolean): s3.Bucket => {
			const bucket = new s3.Bucket(this, bucketId, {
				encryption: s3.BucketEncryption.KMS,
				encryptionKey: this.key,
				bucketKeyEnabled: true,
				blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
				enforceSSL: true,
				minimumTLSVersion: 1.2,
				versioned: true,
				objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
				serverAccessLogsBucket: bucketRef(this.accessLogBucket),
				serverAccessLogsPrefix: `${logPrefix}/`,
				lifecycleRules: [
					{
						id: "noncurrent-versions",
						noncurrentVersionExpiration: noncurrent,
						abortIncompleteMultipartUploadAfter: Duration.days(7),
					},
				],
				removalPolicy,
				...(lock && objectLock ? objectLockProps(objectLock) : {}),
			});
			this.denyUnlessEncryptedWithKey(bucket);
			denyReplicaWrites(bucket);
			return bucket;
		};
		this.checkpointBucket = dataBucket("CheckpointBucket", "checkpoints", true);
		this.baseModelBucket = dataBucket("BaseModelBucket", "base-models", false);
		this.datasetBucket = dataBucket("DatasetBucket", "datasets", false);
		this.reportBucket = dataBucket("ReportBucket", "reports", true);
		if (props.eventBridgeNotifications ?? true) {
			// "Object Created" events start scans (checkpoints), base-model checks and dataset scans; the pipeline adds
			// the EventBridge rules. Set on the CloudFormation buckets themselves: enableEventBridgeNotification() would
			// add CDK's notifications custom-resource Lambda. Do not call addEventNotification() on these buckets: that
			// handler would own (and replace) this setting.
			for (const bucket of [this.checkpointBucket, this.baseModelBucket, this.datasetBucket]) {
				const cfn = bucket.node.defaultChild as s3.CfnBucket;
				cfn.notificationConfiguration = { eventBridgeConfiguration: { eventBridgeEnabled: true } };
			}
		}

		this.scannerRole = new iam.Role(this, "ScannerRole", {
			description: "ftguard scanner: reads checkpoints of any status, writes scan reports",
			assumedBy: props.scannerAssumedBy ?? new iam.ServicePrincipal("lambda.amazonaws.com"),
		});
		const stack = Stack.of(this);
		// ECS's recommended confused-deputy conditions for task roles: only tasks of this account and region.
		const ecsTasksOfThisAccount = (): iam.IPrincipal =>
			new iam.ServicePrincipal("ecs-tasks.amazonaws.com").withConditions({
				StringEquals: { "aws:SourceAccount": stack.account },
				ArnLike: { "aws:SourceArn": `arn:${stack.partition}:ecs:${stack.region}:${stack.account}:*` },
			});
		this.backdoorJobRole = new iam.Role(this, "BackdoorJobRole", {
			description: "ftguard backdoor job: reads pinned checkpoint versions and reference data, writes its report",
			assumedBy: props.backdoorJobAssumedBy ?? ecsTasksOfThisAccount(),
		});
		this.verdictRole = new iam.Role(this, "VerdictRole", {
			description: "ftguard verdict: the only writer of ftguard:* object tags",
			assumedBy: props.verdictAssumedBy ?? new iam.ServicePrincipal("lambda.amazonaws.com"),
		});
		this.sweeperRole = new iam.Role(this, "SweeperRole", {
			description: "ftguard sweeper: quarantines objects left SCANNING by scans that ended without a verdict",
			assumedBy: props.sweeperAssumedBy ?? new iam.ServicePrincipal("lambda.amazonaws.com"),
		});
		this.breakGlassRole = new iam.Role(this, "BreakGlassRole", {
			description: "ftguard break-glass: reads any checkpoint whatever its status (incident response)",
			assumedBy:
				props.breakGlassAssumedBy ??
				new iam.AccountPrincipal(Stack.of(this).account).withConditions({
					Bool: { "aws:MultiFactorAuthPresent": "true" },
				}),
			maxSessionDuration: Duration.hours(1),
		});
		this.baseModelGateRole = new iam.Role(this, "BaseModelGateRole", {
			description:
				"ftguard base-model gate: checks base models against the signed registry, the only base-model tag writer",
			assumedBy: props.baseModelGateAssumedBy ?? new iam.ServicePrincipal("lambda.amazonaws.com"),
		});
		this.datasetGateRole = new iam.Role(this, "DatasetGateRole", {
			description:
				"ftguard dataset gate: scans datasets (Lambda, or its CPU Batch job), the only dataset tag, report and lineage writer",
			assumedBy:
				props.datasetGateAssumedBy ??
				new iam.CompositePrincipal(new iam.ServicePrincipal("lambda.amazonaws.com"), ecsTasksOfThisAccount()),
		});

		this.addCheckpointPolicy();
		this.protectVerdictRecords();
		this.grantRoles();
		this.addInputGatePolicy(this.baseModelBucket, this.baseModelGateRole, "DenyCopyIntoBaseModels");
		this.addInputGatePolicy(this.datasetBucket, this.datasetGateRole, "DenyCopyIntoDatasets");
		this.protectDatasetGateOutputs();
	}

	/** The four data buckets (not the access-log bucket): what compute in the VPC may reach through the S3 endpoint. */
	public get dataBuckets(): readonly s3.Bucket[] {
		return [this.checkpointBucket, this.baseModelBucket, this.datasetBucket, this.reportBucket];
	}

	/**
	 * Read access to base models and datasets for `role` (training and scanning inputs), and an explicit deny in the
	 * base-model bucket policy on any write or delete by it, so no later grant can make base models writable to it.
	 */
	public grantModelAndDatasetRead(role: iam.IRole): void {
		this.grantObjectRead(role, this.baseModelBucket);
		this.grantObjectRead(role, this.datasetBucket);
		this.baseModelBucket.addToResourcePolicy(
			denyAnyPrincipal(`DenyWrites${role.node.addr.slice(0, 8)}`, {
				actions: ["s3:PutObject*", "s3:DeleteObject*", "s3:RestoreObject", "s3:ReplicateObject"],
				resources: [this.baseModelBucket.arnForObjects("*")],
				conditions: { ArnEquals: { "aws:PrincipalArn": role.roleArn } },
			}),
		);
	}

	/** The training inputs, each guarded by its gate: base models and datasets. */
	public get inputBuckets(): readonly s3.Bucket[] {
		return [this.baseModelBucket, this.datasetBucket];
	}

	/**
	 * Denies `role` (a training-job role) every read (`s3:GetObject*`) of a base-model or dataset object version its
	 * gate (the base-model gate, the dataset gate) has not tagged `ftguard:status=PROMOTABLE` — untagged, being
	 * scanned or replaced, QUARANTINED — in both bucket policies, whatever identity policies it is given later: the
	 * checkpoint bucket's DenyReadUnlessPromotable, for one role.
	 */
	public denyUnpromotedInputReads(role: iam.IRole): void {
		for (const bucket of this.inputBuckets) {
			bucket.addToResourcePolicy(
				denyAnyPrincipal(`DenyUnpromotedReads${role.node.addr.slice(0, 8)}`, {
					actions: ["s3:GetObject*"],
					resources: [bucket.arnForObjects("*")],
					conditions: {
						// StringNotEquals is true when the tag is absent: untagged inputs are unreadable too.
						StringNotEquals: { [`s3:ExistingObjectTag/${STATUS_TAG}`]: ScanStatus.PROMOTABLE },
						ArnEquals: { "aws:PrincipalArn": role.roleArn },
					},
				}),
			);
		}
	}

	/**
	 * Lets `role` (a deployment or serving role) read checkpoints: GetObject/GetObjectVersion on the checkpoint
	 * bucket and Decrypt via S3. The bucket policy still refuses every object not tagged PROMOTABLE, so this grants
	 * exactly the promoted checkpoints.
	 */
	public grantPromotedRead(role: iam.IRole): void {
		role.addToPrincipalPolicy(
			new iam.PolicyStatement({
				actions: ["s3:GetObject", "s3:GetObjectVersion"],
				resources: [this.checkpointBucket.arnForObjects("*")],
			}),
		);
		this.grantKeyViaS3(role, ["kms:Decrypt"]);
		acknowledgeObjectWildcard(
			role,
			this.checkpointBucket,
			"/*",
			"Consumers read checkpoints by key; the bucket policy denies every object not tagged ftguard:status=PROMOTABLE",
		);
	}

	/**
	 * Denies `role` (a training-job role) every listing of the checkpoint bucket in the bucket policy, whatever
	 * identity policies it is given later. (Its write prefix is capped by the role's permissions boundary, see
	 * TrainingJobAccess: policy variables such as `${aws:PrincipalTag/job-id}` are documented for `Resource`,
	 * not for the `NotResource` a bucket-policy deny would need.)
	 */
	public denyCheckpointListing(role: iam.IRole): void {
		this.checkpointBucket.addToResourcePolicy(
			denyAnyPrincipal(`DenyListing${role.node.addr.slice(0, 8)}`, {
				actions: ["s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads"],
				resources: [this.checkpointBucket.bucketArn],
				conditions: { ArnEquals: { "aws:PrincipalArn": role.roleArn } },
			}),
		);
	}

	/**
	 * Denies the verdict role's checkpoint tag writes and verdict-record writes unless they come through
	 * `vpcEndpointId`, the S3 gateway endpoint of the VPC where the verdict functions (mark, record) run:
	 * verdict-role credentials used anywhere else can neither promote nor rewrite a record. The sweeper runs outside
	 * the VPC and may only turn SCANNING into QUARANTINED, so it is not bound to the endpoint; everyone else is
	 * already denied every tag write.
	 */
	public requireVerdictWritesThrough(vpcEndpointId: string): void {
		this.checkpointBucket.addToResourcePolicy(
			denyAnyPrincipal("DenyVerdictTagsOutsideVpc", {
				actions: [...TAG_WRITE_ACTIONS],
				resources: [this.checkpointBucket.arnForObjects("*")],
				conditions: {
					// true when the request came through no endpoint at all (the key is absent)
					StringNotEquals: { "aws:SourceVpce": vpcEndpointId },
					ArnNotEquals: { "aws:PrincipalArn": this.sweeperRole.roleArn },
				},
			}),
		);
		this.reportBucket.addToResourcePolicy(
			denyAnyPrincipal("DenyVerdictRecordsOutsideVpc", {
				actions: ["s3:PutObject"],
				resources: [this.reportBucket.arnForObjects("*")],
				conditions: {
					StringNotEquals: { "aws:SourceVpce": vpcEndpointId },
					ArnEquals: { "aws:PrincipalArn": this.verdictRole.roleArn },
				},
			}),
		);
	}

	/**
	 * Denies each input gate role (base-model gate, dataset gate) its tag writes, its uploads and its reads in its own
	 * bucket unless they come through `vpcEndpointId`, the S3 gateway endpoint of the isolated subnets where the gate
	 * functions and the dataset Batch job (Fargate) run: gate credentials used anywhere else can neither promote an
	 * input, write a dataset report or lineage (the dataset gate's only uploads; the base-model gate uploads nothing),
	 * nor read the inputs that have not passed (the gates read every version, as the scanner reads every checkpoint).
	 * Everyone else is already denied every tag write and those uploads in these buckets.
	 */
	public requireGateWritesThrough(vpcEndpointId: string): void {
		for (const [bucket, gate] of [
			[this.baseModelBucket, this.baseModelGateRole],
			[this.datasetBucket, this.datasetGateRole],
		] as const) {
			bucket.addToResourcePolicy(
				denyAnyPrincipal("DenyGateWritesOutsideVpc", {
					actions: [...TAG_WRITE_ACTIONS, "s3:PutObject", "s3:GetObject*"],
					resources: [bucket.arnForObjects("*")],
					conditions: {
						// true when the request came through no endpoint at all (the key is absent)
						StringNotEquals: { "aws:SourceVpce": vpcEndpointId },
						ArnEquals: { "aws:PrincipalArn": gate.roleArn },
					},
				}),
			);
		}
	}

	/**
	 * Denies `roles` every checkpoint read (`s3:GetObject*`, tag and attribute reads included) unless it comes
	 * through `vpcEndpointId`, the S3 gateway endpoint of the isolated subnets: these roles read unscanned
	 * checkpoints (DenyReadUnlessPromotable exempts them), so their credentials, leaked or replayed anywhere else,
	 * must not. Bind only roles whose every user runs in those subnets (the scan pipeline decides: the scanner role's
	 * functions, the verdict role's functions, the Batch job). Not the sweeper (outside the VPC; it reads tag sets
	 * only), and not break-glass: the human escape hatch for incident response must work from a laptop when the
	 * VPC or the pipeline is what is broken; it is MFA-gated, 1-hour sessions, and its use shows in CloudTrail.
	 */
	public requireCheckpointReadsThrough(vpcEndpointId: string, roles: readonly iam.IRole[]): void {
		if (roles.length === 0) return;
		this.checkpointBucket.addToResourcePolicy(
			denyAnyPrincipal("DenyUnscannedReadsOutsideVpc", {
				actions: ["s3:GetObject*"],
				resources: [this.checkpointBucket.arnForObjects("*")],
				conditions: {
					// true when the request came through no endpoint at all (the key is absent)
					StringNotEquals: { "aws:SourceVpce": vpcEndpointId },
					ArnEquals: { "aws:PrincipalArn": roles.map((r) => r.roleArn) },
				},
			}),
		);
	}

	/**
	 * KMS use through S3 only: `kms:ViaService` = `s3.<region>.amazonaws.com`, so the credentials cannot decrypt
	 * or generate data keys directly.
	 */
	public grantKeyViaS3(role: iam.IRole, actions: readonly string[]): void {
		role.addToPrincipalPolicy(
			new iam.PolicyStatement({
				actions: [...actions],
				resources: [this.key.keyArn],
				conditions: { StringEquals: { "kms:ViaService": `s3.${this.region}.amazonaws.com` } },
			}),
		);
	}

	private denyUnlessEncryptedWithKey(bucket: s3.Bucket): void {
		// Every object ends up under this key: a PutObject without encryption headers gets the bucket default
		// (this key, bucket key on); one that asks for anything else (SSE-S3, DSSE, another KMS key, SSE-C) is
		// refused. The headers are not required, because UploadPart (also s3:PutObject) never carries them and
		// a policy that required them would break every multipart upload of a multi-GiB checkpoint.
		const deny = (sid: string, conditions: Record<string, unknown>): void => {
			bucket.addToResourcePolicy(
				denyAnyPrincipal(sid, { actions: ["s3:PutObject"], resources: [bucket.arnForObjects("*")], conditions }),
			);
		};
		const sse = "s3:x-amz-server-side-encryption";
		const keyId = "s3:x-amz-server-side-encryption-aws-kms-key-id";
		deny("DenyUploadsNotSseKms", { StringNotEquals: { [sse]: "aws:kms" }, Null: { [sse]: "false" } });
		// S3 compares the header as sent. Accepted: the key ARN and the bare key id (a UUID, unique across accounts).
		// Refused: any alias (`alias/…` resolves in the requester's account, so it could name the requester's own key).
		deny("DenyUploadsWithOtherKey", {
			StringNotEquals: { [keyId]: [this.key.keyArn, this.key.keyId] },
			Null: { [keyId]: "false" },
		});
		deny("DenyUploadsSseC", { Null: { "s3:x-amz-server-side-encryption-customer-algorithm": "false" } });
	}

	private addCheckpointPolicy(): void {
		const bucket = this.checkpointBucket;
		const objects = bucket.arnForObjects("*");
		const verdict = this.verdictRole.roleArn;
		const sweeper = this.sweeperRole.roleArn;
		bucket.addToResourcePolicy(
			denyAnyPrincipal("DenyReadUnlessPromotable", {
				actions: ["s3:GetObject*"],
				resources: [objects],
				conditions: {
					// StringNotEquals is true when the tag is absent: untagged objects are unreadable too.
					StringNotEquals: { [`s3:ExistingObjectTag/${STATUS_TAG}`]: ScanStatus.PROMOTABLE },
					// The verdict role is exempt because it must read tag sets (PutObjectTagging replaces the whole
					// set) and bind verdicts to versions; it gains nothing, since it can promote anyway. The sweeper is
					// exempt for the same tag-set reads; DenySweeperAllButTags below takes every other action from it.
					ArnNotEquals: {
						"aws:PrincipalArn": [
							this.scannerRole.roleArn,
							this.backdoorJobRole.roleArn,
							this.breakGlassRole.roleArn,
							verdict,
							sweeper,
						],
					},
				},
			}),
		);
		bucket.addToResourcePolicy(
			denyAnyPrincipal("DenyTaggingExceptVerdict", {
				actions: [...TAG_WRITE_ACTIONS],
				resources: [objects],
				conditions: { ArnNotEquals: { "aws:PrincipalArn": [verdict, sweeper] } },
			}),
		);
		// The sweeper: tag-set reads and tag writes only (no object read, no tag delete)…
		bucket.addToResourcePolicy(
			denyAnyPrincipal("DenySweeperAllButTags", {
				notActions: [
					"s3:GetObjectTagging",
					"s3:GetObjectVersionTagging",
					"s3:PutObjectTagging",
					"s3:PutObjectVersionTagging",
				],
				resources: [objects],
				conditions: { ArnEquals: { "aws:PrincipalArn": sweeper } },
			}),
		);
		// …and a tag write only as QUARANTINED (never PROMOTABLE, never a set without a status)…
		bucket.addToResourcePolicy(
			denyAnyPrincipal("DenySweeperUnlessQuarantine", {
				actions: ["s3:PutObjectTagging", "s3:PutObjectVersionTagging"],
				resources: [objects],
				conditions: {
					ArnEquals: { "aws:PrincipalArn": sweeper },
					// true when the request carries no ftguard:status too
					StringNotEquals: { [`s3:RequestObjectTag/${STATUS_TAG}`]: ScanStatus.QUARANTINED },
				},
			}),
		);
		// …on an object that is SCANNING when S3 evaluates the request: a verdict recorded meanwhile by a live scan
		// (or an untagged object) is never overwritten, whatever the sweeper read a moment before.
		bucket.addToResourcePolicy(
			denyAnyPrincipal("DenySweeperUnlessScanning", {
				actions: ["s3:PutObjectTagging", "s3:PutObjectVersionTagging"],
				resources: [objects],
				conditions: {
					ArnEquals: { "aws:PrincipalArn": sweeper },
					StringNotEquals: { [`s3:ExistingObjectTag/${STATUS_TAG}`]: ScanStatus.SCANNING },
				},
			}),
		);
		denyForeignFtguardTags(bucket, verdict, "DenyCopyIntoCheckpoints");
	}

	/**
	 * An input bucket (base models, datasets): only its gate role writes tags (a PROMOTABLE written by anyone else
	 * would open the input to training jobs), and nobody else brings ftguard tags in by upload or copy.
	 */
	private addInputGatePolicy(bucket: s3.Bucket, gateRole: iam.Role, copySid: string): void {
		const gate = gateRole.roleArn;
		bucket.addToResourcePolicy(
			denyAnyPrincipal("DenyTaggingExceptGate", {
				actions: [...TAG_WRITE_ACTIONS],
				resources: [bucket.arnForObjects("*")],
				conditions: { ArnNotEquals: { "aws:PrincipalArn": gate } },
			}),
		);
		denyForeignFtguardTags(bucket, gate, copySid);
	}

	/** ARNs of the dataset gate's report and lineage under any directory: the keys only the dataset gate role writes. */
	public datasetGateOutputArns(): string[] {
		return [DATASET_REPORT, DATASET_LINEAGE].map((name) => this.datasetBucket.arnForObjects(`*/${name}`));
	}

	/**
	 * The dataset gate's report and lineage (`<dir>/ftguard-dataset-report.json`, `<dir>/ftguard-dataset-lineage.json`):
	 * written, overwritten and deleted by the dataset gate role only, so a report beside a dataset is the gate's. And
	 * the gate role writes nothing else there (it parses untrusted data): no data file, whatever it is granted later.
	 */
	private protectDatasetGateOutputs(): void {
		const bucket = this.datasetBucket;
		const gate = this.datasetGateRole.roleArn;
		bucket.addToResourcePolicy(
			denyAnyPrincipal("DenyGateOutputWritesExceptGate", {
				actions: ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"],
				resources: this.datasetGateOutputArns(),
				conditions: { ArnNotEquals: { "aws:PrincipalArn": gate } },
			}),
		);
		bucket.addToResourcePolicy(
			new iam.PolicyStatement({
				sid: "DenyGateWritesButOutputs",
				effect: iam.Effect.DENY,
				principals: [new iam.AnyPrincipal()],
				actions: ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"],
				notResources: this.datasetGateOutputArns(),
				conditions: { ArnEquals: { "aws:PrincipalArn": gate } },
			}),
		);
	}

	/**
	 * Verdict records (`scans/<scan id>/verdict.json`), their HTML pages (`report.html`) and signed provenance records
	 * (`provenance.sigstore.json`) are written by the record function as the verdict role and by nobody else (the sweeper writes no record): every other principal, the scanner and the backdoor job included
	 * (both write elsewhere under `scans/`), is denied writing, overwriting or deleting one.
	 */
	private protectVerdictRecords(): void {
		this.reportBucket.addToResourcePolicy(
			denyAnyPrincipal("DenyVerdictRecordWritesExceptVerdict", {
				actions: ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"],
				resources: VERDICT_OUTPUT_NAMES.map((name) =>
					this.reportBucket.arnForObjects(`${SCAN_REPORT_PREFIX}*/${name}`),
				),
				conditions: { ArnNotEquals: { "aws:PrincipalArn": this.verdictRole.roleArn } },
			}),
		);
	}

	private grantRoles(): void {
		const cp = this.checkpointBucket;
		// Scanner: every version of every checkpoint, whatever its status; writes reports.
		this.scannerRole.addToPrincipalPolicy(
			new iam.PolicyStatement({
				actions: [
					"s3:GetObject",
					"s3:GetObjectVersion",
					"s3:GetObjectTagging",
					"s3:GetObjectVersionTagging",
					"s3:GetObjectAttributes",
					"s3:GetObjectVersionAttributes",
				],
				resources: [cp.arnForObjects("*")],
			}),
		);
		this.scannerRole.addToPrincipalPolicy(
			new iam.PolicyStatement({
				actions: ["s3:ListBucket", "s3:ListBucketVersions"],
				resources: [cp.bucketArn],
			}),
		);
		acknowledgeObjectWildcard(
			this.scannerRole,
			cp,
			"/*",
			"The scanner must read every checkpoint version (and its tags) whatever its key and status; get actions only, and the bucket policy exempts only this role, the verdict role and break-glass from the PROMOTABLE condition",
		);
		this.grantModelAndDatasetRead(this.scannerRole);
		// PutObject: manifests, file reports, backdoor reports; GetObject: the signature state reads back the
		// manifest the manifest state wrote (without it, every signature check in AWS failed as AccessDenied).
		this.scannerRole.addToPrincipalPolicy(
			new iam.PolicyStatement({
				actions: ["s3:PutObject", "s3:GetObject"],
				resources: [this.reportBucket.arnForObjects("*")],
			}),
		);
		acknowledgeObjectWildcard(
			this.scannerRole,
			this.reportBucket,
			"/*",
			"The scanner writes one report and trigger images per scan id, keys not known at deploy time, and reads back the manifest it wrote; PutObject and GetObject only",
		);
		this.grantKeyViaS3(this.scannerRole, ["kms:Decrypt", "kms:GenerateDataKey"]);

		// Backdoor job: the model version the state machine pinned, nothing unversioned, no listing.
		this.backdoorJobRole.addToPrincipalPolicy(
			new iam.PolicyStatement({ actions: ["s3:GetObjectVersion"], resources: [cp.arnForObjects("*")] }),
		);
		acknowledgeObjectWildcard(
			this.backdoorJobRole,
			cp,
			"/*",
			"The backdoor job reads the one model version its scan pinned (GetObjectVersion only), keys not known at deploy time",
		);
		this.grantKeyViaS3(this.backdoorJobRole, ["kms:Decrypt", "kms:GenerateDataKey"]);

		// Verdict: tags on checkpoints (mark SCANNING, record the verdict), verdict records in the report bucket.
		grantTagging(this.verdictRole, cp);
		// Mark lists the artefact and HEADs each object to pin its version; record HEADs them again (changed since
		// mark?). S3 authorises HEAD as s3:GetObject / GetObjectVersion, so the role that tags must also be able to
		// read: without these two statements every scan in AWS failed in mark (and record could not even quarantine).
		this.verdictRole.addToPrincipalPolicy(
			new iam.PolicyStatement({
				actions: ["s3:GetObject", "s3:GetObjectVersion"],
				resources: [cp.arnForObjects("*")],
			}),
		);
		this.verdictRole.addToPrincipalPolicy(
			new iam.PolicyStatement({
				actions: ["s3:ListBucket", "s3:ListBucketVersions"],
				resources: [cp.bucketArn],
			}),
		);
		this.verdictRole.addToPrincipalPolicy(
			new iam.PolicyStatement({
				actions: ["s3:GetObject", "s3:PutObject"],
				resources: [this.reportBucket.arnForObjects("*")],
			}),
		);
		acknowledgeObjectWildcard(
			this.verdictRole,
			cp,
			"/*",
			"The verdict role marks and records any scanned checkpoint version, wherever it was uploaded: object-tag actions, and GetObject/GetObjectVersion because S3 authorises the HEAD that pins each version as a read",
		);
		acknowledgeObjectWildcard(
			this.verdictRole,
			this.reportBucket,
			"/*",
			"The verdict role writes and re-reads one verdict record per scan id, keys not known at deploy time; GetObject/PutObject only",
		);
		this.grantKeyViaS3(this.verdictRole, ["kms:Decrypt", "kms:GenerateDataKey"]);

		// Sweeper: tag sets of any checkpoint version; what it may write is limited by the bucket policy above.
		grantTagging(this.sweeperRole, cp);
		acknowledgeObjectWildcard(
			this.sweeperRole,
			cp,
			"/*",
			"The sweeper quarantines whichever checkpoint versions a failed scan left SCANNING, keys not known at deploy time; object-tag actions only, and the bucket policy allows only SCANNING → QUARANTINED",
		);

		// Break-glass: read any checkpoint version; nothing else.
		this.breakGlassRole.addToPrincipalPolicy(
			new iam.PolicyStatement({
				actions: ["s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging", "s3:GetObjectVersionTagging"],
				resources: [cp.arnForObjects("*")],
			}),
		);
		this.breakGlassRole.addToPrincipalPolicy(
			new iam.PolicyStatement({
				actions: ["s3:ListBucket", "s3:ListBucketVersions"],
				resources: [cp.bucketArn],
			}),
		);
		acknowledgeObjectWildcard(
			this.breakGlassRole,
			cp,
			"/*",
			"Break-glass exists to read any checkpoint version during an incident; get actions only, MFA-gated, 1-hour sessions",
		);
		this.grantKeyViaS3(this.breakGlassRole, ["kms:Decrypt"]);

		// Base-model gate: lists and reads every base model (HEAD pins versions; the registry and the policy object live
		// in this bucket too), and tags base-model versions; no object write (not granted; grantModelAndDatasetRead's
		// s3:PutObject* deny would take the tag writes too), and nothing on the checkpoint bucket.
		const bm = this.baseModelBucket;
		this.grantObjectRead(this.baseModelGateRole, bm);
		grantTagging(this.baseModelGateRole, bm);
		this.grantKeyViaS3(this.baseModelGateRole, ["kms:Decrypt"]);

		// Dataset gate: lists and reads every dataset object (HEAD pins versions, GetObjectVersion copies the pinned
		// data), reads and writes the tags of every version, and writes exactly its report and lineage beside the data
		// (PutObject on those two names; the bucket policy takes every other write from it). Nothing on checkpoints,
		// base models or reports.
		const ds = this.datasetBucket;
		this.grantObjectRead(this.datasetGateRole, ds);
		grantTagging(this.datasetGateRole, ds);
		this.datasetGateRole.addToPrincipalPolicy(
			new iam.PolicyStatement({ actions: ["s3:PutObject"], resources: this.datasetGateOutputArns() }),
		);
		for (const name of [DATASET_REPORT, DATASET_LINEAGE]) {
			acknowledgeObjectWildcard(
				this.datasetGateRole,
				ds,
				`/*/${name}`,
				`The dataset gate writes its ${name} beside each dataset version it scans (<dir>/${name}); directories are chosen at upload time, and no other key may be written`,
			);
		}
		this.grantKeyViaS3(this.datasetGateRole, ["kms:Decrypt", "kms:GenerateDataKey"]);
	}

	private grantObjectRead(role: iam.IRole, bucket: s3.Bucket): void {
		role.addToPrincipalPolicy(
			new iam.PolicyStatement({
				actions: ["s3:GetObject", "s3:GetObjectVersion"],
				resources: [bucket.arnForObjects("*")],
			}),
		);
		role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ["s3:ListBucket"], resources: [bucket.bucketArn] }));
		acknowledgeObjectWildcard(
			role,
			bucket,
			"/*",
			`Read-only (GetObject, GetObjectVersion) on every object of ${bucket.node.id}: the model and dataset keys are chosen at upload time, not at deploy time`,
		);
	}
}

/** Reads and writes of the tags of every object version of `bucket`: where `role` writes verdicts (checkpoints, inputs). */
function grantTagging(role: iam.IRole, bucket: s3.Bucket): void {
	role.addToPrincipalPolicy(
		new iam.PolicyStatement({
			actions: [
				"s3:GetObjectTagging",
				"s3:GetObjectVersionTagging",
				"s3:PutObjectTagging",
				"s3:PutObjectVersionTagging",
			],
			resources: [bucket.arnForObjects("*")],
		}),
	);
}

/** `ftguard:scan-id` → `ScanId`: a policy statement id part (alphanumeric). */
function sidPart(tagKey: string): string {
	return (tagKey.split(":")[1] ?? tagKey)
		.split(/[^A-Za-z0-9]+/)
		.map((w) => (w[0]?.toUpperCase() ?? "") + w.slice(1))
		.join("");
}

/**
 * Uploads carrying an ftguard tag key, and copies (which can carry a foreign object's tags), by anyone but `writer`
 * (the bucket's one tag writer): one reviewed set of statements for the checkpoint and base-model buckets.
 */
function denyForeignFtguardTags(bucket: s3.Bucket, writer: string, copySid: string): void {
	const objects = bucket.arnForObjects("*");
	bucket.addToResourcePolicy(
		denyAnyPrincipal("DenyFtguardTagsOnUpload", {
			actions: ["s3:PutObject"],
			resources: [objects],
			conditions: {
				"ForAnyValue:StringLike": { "s3:RequestObjectTagKeys": FTGUARD_TAG_PATTERN },
				ArnNotEquals: { "aws:PrincipalArn": writer },
			},
		}),
	);
	// s3:RequestObjectTagKeys holds the keys as sent and StringLike is case-sensitive, so `FTGUARD:STATUS` passes
	// the statement above; but condition key NAMES are case-insensitive, so DenyReadUnlessPromotable's
	// s3:ExistingObjectTag/ftguard:status may see that tag. One deny per ftguard key, looked up the same way.
	for (const key of FTGUARD_TAG_KEYS) {
		bucket.addToResourcePolicy(
			denyAnyPrincipal(`DenyTagOnUpload${sidPart(key)}`, {
				actions: ["s3:PutObject"],
				resources: [objects],
				conditions: {
					Null: { [`s3:RequestObjectTag/${key}`]: "false" },
					ArnNotEquals: { "aws:PrincipalArn": writer },
				},
			}),
		);
	}
	// CopyObject with x-amz-tagging-directive COPY carries the source's tags and sends no request tags, so it
	// would slip past the statement above with a foreign `ftguard:status=PROMOTABLE`.
	bucket.addToResourcePolicy(
		denyAnyPrincipal(copySid, {
			actions: ["s3:PutObject"],
			resources: [objects],
			conditions: {
				Null: { "s3:x-amz-copy-source": "false" },
				ArnNotEquals: { "aws:PrincipalArn": writer },
			},
		}),
	);
}

/** Every S3 action that writes or removes object tags. */
const TAG_WRITE_ACTIONS = [
	"s3:PutObjectTagging",
	"s3:PutObjectVersionTagging",
	"s3:DeleteObjectTagging",
	"s3:DeleteObjectVersionTagging",
] as const;

/**
 * S3 authorises replica writes (replication, S3 Batch Replication) with these actions, not PutObject /
 * PutObjectTagging: without this deny, whoever can configure replication into a data bucket could land an object
 * already tagged `ftguard:status=PROMOTABLE`, or overwrite a verdict record. Nothing replicates into ftguard's
 * buckets; replication out of them is unaffected.
 */
function denyReplicaWrites(bucket: s3.Bucket): void {
	bucket.addToResourcePolicy(
		denyAnyPrincipal("DenyReplicaWrites", {
			actions: ["s3:ReplicateObject", "s3:ReplicateTags", "s3:ReplicateDelete", "s3:ObjectOwnerOverrideToBucketOwner"],
			resources: [bucket.arnForObjects("*")],
		}),
	);
}

/**
 * Under `exactOptionalPropertyTypes` CDK's concrete `Bucket` is not assignable to its own `IBucket` (optional
 * properties such as `isWebsite` are declared differently); it is one at runtime. The single cast lives here.
 */
export function bucketRef(bucket: s3.Bucket): s3.IBucket {
	return bucket as unknown as s3.IBucket;
}

/**
 * cdk-nag's id for the IAM5 finding on a resource `<bucket Arn><suffix>` (e.g. `/*`), so the acknowledgement names
 * exactly one wildcard on one bucket and nothing else.
 */
export function objectWildcardFinding(bucket: s3.Bucket, suffix: string): string {
	return `AwsSolutions::AwsSolutions-IAM5[Resource::<${logicalIdOf(bucket)}.Arn>${suffix}]`;
}

/** Acknowledges, on `scope` (a role or policy), the IAM5 finding for `<bucket Arn><suffix>` with a reason. */
export function acknowledgeObjectWildcard(scope: IConstruct, bucket: s3.Bucket, suffix: string, reason: string): void {
	Validations.of(scope).acknowledge({ id: objectWildcardFinding(bucket, suffix), reason });
}

function objectLockProps(
	lock: CheckpointObjectLock,
): Pick<s3.BucketProps, "objectLockEnabled" | "objectLockDefaultRetention"> {
	return {
		objectLockEnabled: true,
		objectLockDefaultRetention:
			lock.mode === "COMPLIANCE"
				? s3.ObjectLockRetention.compliance(lock.retention)
				: s3.ObjectLockRetention.governance(lock.retention),
	};
}

function resolveObjectLock(lock: CheckpointObjectLock | false | undefined): CheckpointObjectLock | undefined {
	return lock === false ? undefined : (lock ?? DEFAULT_OBJECT_LOCK);
}

function validate(props: CheckpointStoreProps, noncurrent: Duration, removalPolicy: RemovalPolicy): void {
	const lock = resolveObjectLock(props.objectLock);
	if (noncurrent.toDays() < 1) {
		throw new Error("CheckpointStore: noncurrentVersionExpiration must be at least 1 day");
	}
	if (!lock) return;
	const days = lock.retention.toDays({ integral: false });
	if (!Number.isInteger(days) || days < 1) {
		throw new Error(`CheckpointStore: objectLock.retention must be a whole number of days ≥ 1 (got ${days})`);
	}
	if (noncurrent.toDays() < days) {
		throw new Error(
			`CheckpointStore: noncurrentVersionExpiration (${noncurrent.toDays()} days) is shorter than the Object Lock retention (${days} days): lifecycle could never delete what it is configured to delete`,
		);
	}
	if (lock.mode === "COMPLIANCE" && removalPolicy === RemovalPolicy.DESTROY) {
		throw new Error("CheckpointStore: RemovalPolicy.DESTROY cannot remove a bucket under COMPLIANCE Object Lock");
	}
}
