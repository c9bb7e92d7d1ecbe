import { Duration } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import * as iam from "aws-cdk-lib/aws-iam";
import { beforeAll, describe, expect, it } from "vitest";
import { CheckpointStore } from "../../lib/infra/checkpoint-store.js";
import type { FtguardStack } from "../../lib/infra/stack.js";
import { TrainingJobAccess } from "../../lib/infra/training-job-access.js";
import { logicalId, newStack, sharedFtguard } from "./helpers/stack.js";

let stack: FtguardStack;
let template: Template;

beforeAll(() => {
	({ stack, template } = sharedFtguard());
});

type Statement = Record<string, unknown>;
const arn = (id: string) => ({ "Fn::GetAtt": [id, "Arn"] });
/** The IAM policy variable, spelled out (not a template literal). */
const JOB_PREFIX_PATTERN = `/jobs/${"$"}{aws:PrincipalTag/job-id}/*`;

function roleStatements(t: Template, roleId: string): Statement[] {
	const policies = t.findResources("AWS::IAM::Policy", { Properties: { Roles: [{ Ref: roleId }] } });
	return Object.values(policies).flatMap(
		(p) => (p as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument.Statement,
	);
}

describe("the training-job role's trust policy", () => {
	it("admits only the launcher, only with exactly one session tag, job-id, non-empty and without '/'", () => {
		const role = template.toJSON().Resources[logicalId(stack.trainingJobs.role)];
		expect(role.Properties.AssumeRolePolicyDocument).toEqual({
			Version: "2012-10-17",
			Statement: [
				{
					Effect: "Allow",
					Action: ["sts:AssumeRole", "sts:TagSession"],
					Principal: { AWS: arn(logicalId(stack.trainingJobs.launcherRole as iam.Role)) },
					Condition: {
						StringLike: { "aws:RequestTag/job-id": "?*" },
						StringNotLike: { "aws:RequestTag/job-id": "*/*" },
						"ForAllValues:StringEquals": { "aws:TagKeys": ["job-id"] },
					},
				},
			],
		});
		expect(role.Properties.MaxSessionDuration).toBe(12 * 3600);
	});
	it("the launcher may assume and tag only that role", () => {
		const launcherId = logicalId(stack.trainingJobs.launcherRole as iam.Role);
		expect(roleStatements(template, launcherId)).toEqual([
			{
				Sid: "AssumeTrainingJobRoleWithJobId",
				Effect: "Allow",
				Action: ["sts:AssumeRole", "sts:TagSession"],
				Resource: arn(logicalId(stack.trainingJobs.role)),
			},
		]);
	});
});

describe("the training-job role's permissions", () => {
	let statements: Statement[];
	let checkpoint: string;
	beforeAll(() => {
		statements = roleStatements(template, logicalId(stack.trainingJobs.role));
		checkpoint = logicalId(stack.store.checkpointBucket);
	});

	it("write (and multipart) only under jobs/<job-id>/ of the checkpoint bucket", () => {
		expect(statements).toContainEqual({
			Sid: "WriteOwnJobPrefix",
			Effect: "Allow",
			Action: ["s3:AbortMultipartUpload", "s3:ListMultipartUploadParts", "s3:PutObject"],
			Resource: { "Fn::Join": ["", [arn(checkpoint), JOB_PREFIX_PATTERN]] },
		});
	});
	it("include nothing else on the checkpoint bucket: no ListBucket, no Get, no tagging", () => {
		const onCheckpoint = statements.filter((s) => JSON.stringify(s.Resource).includes(checkpoint));
		expect(onCheckpoint.map((s) => s.Sid)).toEqual(["WriteOwnJobPrefix"]);
		expect(JSON.stringify(statements)).not.toMatch(/Tagging/);
	});
	it("read the base-model and dataset buckets", () => {
		const resourcesOf = (action: unknown): unknown[] =>
			statements
				.filter((st) => st.Effect === "Allow" && JSON.stringify(st.Action) === JSON.stringify(action))
				.flatMap((st) => [st.Resource].flat());
		for (const bucket of [stack.store.baseModelBucket, stack.store.datasetBucket]) {
			const id = logicalId(bucket);
			expect(resourcesOf(["s3:GetObject", "s3:GetObjectVersion"])).toContainEqual({
				"Fn::Join": ["", [arn(id), "/*"]],
			});
			expect(resourcesOf("s3:ListBucket")).toContainEqual(arn(id));
		}
	});
	it("use the key only through S3", () => {
		expect(statements).toContainEqual(
			expect.objectContaining({
				Effect: "Allow",
				Action: ["kms:Decrypt", "kms:GenerateDataKey"],
				Resource: arn(logicalId(stack.store.key)),
				Condition: { StringEquals: { "kms:ViaService": expect.anything() } },
			}),
		);
	});
	it("are capped by a permissions boundary: own prefix, model and dataset reads, the key via S3", () => {
		const role = template.toJSON().Resources[logicalId(stack.trainingJobs.role)];
		const boundaryId = logicalId(stack.trainingJobs.boundary);
		expect(role.Properties.PermissionsBoundary).toEqual({ Ref: boundaryId });
		const boundary = template.toJSON().Resources[boundaryId].Properties.PolicyDocument.Statement as Statement[];
		expect(boundary.map((st) => st.Sid)).toEqual([
			"WriteOwnJobPrefix",
			"ReadModelsAndDatasets",
			"ListModelsAndDatasets",
			"KeyViaS3",
		]);
		expect(boundary.every((st) => st.Effect === "Allow")).toBe(true);
		expect(boundary[0]).toEqual(statements.find((st) => st.Sid === "WriteOwnJobPrefix"));
		const onCheckpoint = boundary.filter((st) => JSON.stringify(st.Resource).includes(checkpoint));
		expect(onCheckpoint.map((st) => st.Sid)).toEqual(["WriteOwnJobPrefix"]);
	});
	it("deny S3 outside the isolated VPC", () => {
		expect(statements).toContainEqual({
			Sid: "DenyS3OutsideVpc",
			Effect: "Deny",
			Action: "s3:*",
			Resource: "*",
			Condition: { StringNotEquals: { "aws:SourceVpc": { Ref: logicalId(stack.network.vpc) } } },
		});
	});
});

describe("with a launcher role of the platform's", () => {
	it("trusts that role and creates no launcher", () => {
		const s = newStack();
		const store = new CheckpointStore(s, "Store");
		const launcherRole = iam.Role.fromRoleArn(s, "Launcher", "arn:aws:iam::111122223333:role/platform-launcher");
		new TrainingJobAccess(s, "Jobs", { store, launcherRole });
		const t = Template.fromStack(s);
		t.hasResourceProperties("AWS::IAM::Role", {
			Description: Match.stringLikeRegexp("^ftguard training job"),
			AssumeRolePolicyDocument: {
				Statement: [Match.objectLike({ Principal: { AWS: "arn:aws:iam::111122223333:role/platform-launcher" } })],
			},
		});
		expect(JSON.stringify(t.toJSON())).not.toContain("ftguard launcher");
	});
});

describe("invalid combinations throw at synth", () => {
	it("both launcherRole and launcherAssumedBy", () => {
		const s = newStack();
		const store = new CheckpointStore(s, "Store");
		const launcherRole = iam.Role.fromRoleArn(s, "Launcher", "arn:aws:iam::111122223333:role/platform-launcher");
		expect(
			() =>
				new TrainingJobAccess(s, "Jobs", { store, launcherRole, launcherAssumedBy: new iam.AccountRootPrincipal() }),
		).toThrow(/not both/);
	});
	it.each([Duration.minutes(30), Duration.hours(13)])("a session of %s", (maxSessionDuration) => {
		const s = newStack();
		const store = new CheckpointStore(s, "Store");
		expect(() => new TrainingJobAccess(s, "Jobs", { store, maxSessionDuration })).toThrow(/1–12 hours/);
	});
});
