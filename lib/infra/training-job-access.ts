import { Duration, Stack } from "aws-cdk-lib";
import type * as ec2 from "aws-cdk-lib/aws-ec2";
import * as iam from "aws-cdk-lib/aws-iam";
import { Construct } from "constructs";
import { acknowledgeObjectWildcard, type CheckpointStore } from "./checkpoint-store.js";
import { JOB_ID_SESSION_TAG, JOB_PREFIX } from "./tags.js";

export interface TrainingJobAccessProps {
	/** The store whose checkpoint bucket the job writes to and whose base-model and dataset buckets it reads. */
	readonly store: CheckpointStore;
	/**
	 * The role of the orchestration layer that starts training jobs: the only principal allowed to assume the
	 * training-job role, and only with a `job-id` session tag. Give either this or {@link launcherAssumedBy}.
	 * @default a new launcher role, assumed by {@link launcherAssumedBy}
	 */
	readonly launcherRole?: iam.IRole;
	/**
	 * Who may assume the launcher role this construct creates. Not allowed together with {@link launcherRole}.
	 * @default IAM principals of this account that the account allows to (`AccountRootPrincipal`)
	 */
	readonly launcherAssumedBy?: iam.IPrincipal;
	/**
	 * Longest session of the training-job role (1–12 hours). A launcher that is itself an assumed role is limited
	 * to one hour by role chaining whatever this says; see docs/launch-flow.md.
	 * @default Duration.hours(12)
	 */
	readonly maxSessionDuration?: Duration;
	/**
	 * The VPC training jobs run in. When given, the role is denied every S3 request that does not arrive through a
	 * gateway endpoint of this VPC (`aws:SourceVpc`), so credentials taken out of a job are useless outside it.
	 * @default no network condition
	 */
	readonly vpc?: Pick<ec2.IVpc, "vpcId">;
}

/**
 * The role a fine-tuning job runs with. It may write only under `jobs/${aws:PrincipalTag/job-id}/` of the
 * checkpoint bucket and read base models and datasets; it cannot list the checkpoint bucket, write tags or read
 * checkpoints, and a permissions boundary keeps it so whatever it is granted later. The job id comes from a session tag that the launcher sets when it assumes the role, so the job
 * cannot choose its prefix: the trust policy refuses sessions without exactly one tag, `job-id`, or with a `/`
 * in its value (which would reach into another job's prefix, `jobs/B/x/` being under `jobs/B/`).
 */
export class TrainingJobAccess extends Construct {
	/** The role training jobs run as (via the launcher's `sts:AssumeRole` + `sts:TagSession`). */
	public readonly role: iam.Role;
	/** Permissions boundary of {@link role}: caps any permission it is given later. */
	public readonly boundary: iam.ManagedPolicy;
	/** The only principal that may assume {@link role}. */
	public readonly launcherRole: iam.IRole;

	constructor(scope: Construct, id: string, props: TrainingJobAccessProps) {
		super(scope, id);
		if (props.launcherRole && props.launcherAssumedBy) {
			throw new Error("TrainingJobAccess: give launcherRole or launcherAssumedBy, not both");
		}
		const maxSession = props.maxSessionDuration ?? Duration.hours(12);
		const hours = maxSession.toHours({ integral: false });
		if (hours < 1 || hours > 12) {
			throw new Error(`TrainingJobAccess: maxSessionDuration must be 1–12 hours (got ${hours})`);
		}
		const { store } = props;

		const launcher =
			props.launcherRole ??
			new iam.Role(this, "LauncherRole", {
				description: "ftguard launcher: starts training jobs with a job-id session tag",
				assumedBy: props.launcherAssumedBy ?? new iam.AccountRootPrincipal(),
			});
		this.launcherRole = launcher;

		const requestTag = `aws:RequestTag/${JOB_ID_SESSION_TAG}`;
		this.role = new iam.Role(this, "Role", {
			description: "ftguard training job: writes jobs/<job-id>/ only; job-id is a launcher-set session tag",
			maxSessionDuration: maxSession,
			assumedBy: new iam.SessionTagsPrincipal(
				new iam.ArnPrincipal(launcher.roleArn).withConditions({
					// Present and non-empty …
					StringLike: { [requestTag]: "?*" },
					// … without a "/" (it would name a sub-prefix of another job) …
					StringNotLike: { [requestTag]: "*/*" },
					// … and no other tag keys.
					"ForAllValues:StringEquals": { "aws:TagKeys": [JOB_ID_SESSION_TAG] },
				}),
			),
		});

		const checkpoints = store.checkpointBucket;
		const ownPrefix = checkpoints.arnForObjects(`${JOB_PREFIX}\${aws:PrincipalTag/${JOB_ID_SESSION_TAG}}/*`);
		const writeOwnPrefix = new iam.PolicyStatement({
			sid: "WriteOwnJobPrefix",
			actions: ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
			resources: [ownPrefix],
		});
		this.role.addToPrincipalPolicy(writeOwnPrefix);
		store.grantModelAndDatasetRead(this.role);
		// base models and datasets only as their gates passed them (tag PROMOTABLE), in the bucket policies
		store.denyUnpromotedInputReads(this.role);
		store.grantKeyViaS3(this.role, ["kms:GenerateDataKey", "kms:Decrypt"]);
		store.denyCheckpointListing(this.role);

		// The boundary caps whatever the role is granted later (a broad grant added by someone else): writes to
		// its own prefix, reads of models and datasets, the key through S3 — nothing more.
		const inputs = store.inputBuckets;
		this.boundary = new iam.ManagedPolicy(this, "Boundary", {
			description: "ftguard training job: permissions boundary (own jobs/<job-id>/ prefix, model and dataset reads)",
			statements: [
				writeOwnPrefix,
				new iam.PolicyStatement({
					sid: "ReadModelsAndDatasets",
					actions: ["s3:GetObject", "s3:GetObjectVersion"],
					resources: inputs.map((b) => b.arnForObjects("*")),
				}),
				new iam.PolicyStatement({
					sid: "ListModelsAndDatasets",
					actions: ["s3:ListBucket"],
					resources: inputs.map((b) => b.bucketArn),
				}),
				new iam.PolicyStatement({
					sid: "KeyViaS3",
					actions: ["kms:GenerateDataKey", "kms:Decrypt"],
					resources: [store.key.keyArn],
					conditions: { StringEquals: { "kms:ViaService": `s3.${Stack.of(this).region}.amazonaws.com` } },
				}),
			],
		});
		iam.PermissionsBoundary.of(this.role).apply(this.boundary);
		for (const scope of [this.role, this.boundary]) {
			acknowledgeObjectWildcard(
				scope,
				checkpoints,
				`/${JOB_PREFIX}<aws:PrincipalTag/${JOB_ID_SESSION_TAG}>/*`,
				"The wildcard is the job's own prefix, fixed by the launcher's job-id session tag; checkpoint file names are chosen by the trainer",
			);
		}
		for (const bucket of inputs) {
			acknowledgeObjectWildcard(
				this.boundary,
				bucket,
				"/*",
				`Read-only (GetObject, GetObjectVersion) on every object of ${bucket.node.id}: the model and dataset keys are chosen at upload time, not at deploy time`,
			);
		}
		if (props.vpc) {
			this.role.addToPrincipalPolicy(
				new iam.PolicyStatement({
					sid: "DenyS3OutsideVpc",
					effect: iam.Effect.DENY,
					actions: ["s3:*"],
					resources: ["*"],
					conditions: { StringNotEquals: { "aws:SourceVpc": props.vpc.vpcId } },
				}),
			);
		}

		if (!props.launcherRole) {
			launcher.addToPrincipalPolicy(
				new iam.PolicyStatement({
					sid: "AssumeTrainingJobRoleWithJobId",
					actions: ["sts:AssumeRole", "sts:TagSession"],
					resources: [this.role.roleArn],
				}),
			);
		}
	}
}
