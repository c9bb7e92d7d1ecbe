import { Duration, RemovalPolicy } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { CheckpointStore } from "../../lib/infra/checkpoint-store.js";
import type { FtguardStack } from "../../lib/infra/stack.js";
import { logicalId, newStack, sharedFtguard } from "./helpers/stack.js";

let stack: FtguardStack;
let template: Template;
let ids: Record<"checkpoint" | "baseModel" | "dataset" | "report" | "accessLog" | "key", string>;
let roleIds: Record<"scanner" | "backdoorJob" | "verdict" | "sweeper" | "breakGlass" | "training", string>;

beforeAll(() => {
	({ stack, template } = sharedFtguard());
	const { store } = stack;
	ids = {
		checkpoint: logicalId(store.checkpointBucket),
		baseModel: logicalId(store.baseModelBucket),
		dataset: logicalId(store.datasetBucket),
		report: logicalId(store.reportBucket),
		accessLog: logicalId(store.accessLogBucket),
		key: logicalId(store.key),
	};
	roleIds = {
		scanner: logicalId(store.scannerRole),
		backdoorJob: logicalId(store.backdoorJobRole),
		verdict: logicalId(store.verdictRole),
		sweeper: logicalId(store.sweeperRole),
		breakGlass: logicalId(store.breakGlassRole),
		training: logicalId(stack.trainingJobs.role),
	};
});

const arn = (id: string) => ({ "Fn::GetAtt": [id, "Arn"] });
const objects = (id: string) => ({ "Fn::Join": ["", [arn(id), "/*"]] });
const bucketProps = (id: string): Record<string, unknown> =>
	(template.toJSON().Resources[id] as { Properties: Record<string, unknown> }).Properties;
const policyOf = (bucketId: string): Record<string, unknown>[] => {
	const policies = template.findResources("AWS::S3::BucketPolicy", { Properties: { Bucket: { Ref: bucketId } } });
	const [policy] = Object.values(policies) as {
		Properties: { PolicyDocument: { Statement: Record<string, unknown>[] } };
	}[];
	if (!policy) throw new Error(`no policy for ${bucketId}`);
	return policy.Properties.PolicyDocument.Statement;
};
const dataBuckets = () => [ids.checkpoint, ids.baseModel, ids.dataset, ids.report];
const allBuckets = () => [...dataBuckets(), ids.accessLog];

describe("the store's KMS key", () => {
	it("is a customer-managed key with rotation", () => {
		template.hasResourceProperties("AWS::KMS::Key", { EnableKeyRotation: true });
		expect(bucketProps(ids.key)).toMatchObject({ EnableKeyRotation: true });
	});
});

describe("every bucket", () => {
	it("blocks public access, is versioned and owner-enforced", () => {
		for (const id of allBuckets()) {
			expect(bucketProps(id), id).toMatchObject({
				PublicAccessBlockConfiguration: {
					BlockPublicAcls: true,
					BlockPublicPolicy: true,
					IgnorePublicAcls: true,
					RestrictPublicBuckets: true,
				},
				VersioningConfiguration: { Status: "Enabled" },
				OwnershipControls: { Rules: [{ ObjectOwnership: "BucketOwnerEnforced" }] },
			});
		}
	});
	it("denies any request that is not TLS (1.2 or newer)", () => {
		for (const id of allBuckets()) {
			expect(policyOf(id), id).toEqual(
				expect.arrayContaining([
					expect.objectContaining({
						Effect: "Deny",
						Action: "s3:*",
						Principal: { AWS: "*" },
						Condition: { Bool: { "aws:SecureTransport": "false" } },
						Resource: [arn(id), objects(id)],
					}),
					expect.objectContaining({
						Effect: "Deny",
						Action: "s3:*",
						Condition: { NumericLessThan: { "s3:TlsVersion": 1.2 } },
					}),
				]),
			);
		}
	});
	it("is retained when the stack is deleted", () => {
		const buckets = template.findResources("AWS::S3::Bucket");
		for (const [id, bucket] of Object.entries(buckets)) {
			expect(bucket, id).toMatchObject({ DeletionPolicy: "Retain", UpdateReplacePolicy: "Retain" });
		}
	});
});

describe("the four data buckets", () => {
	it("encrypt with the store's key (SSE-KMS, bucket key) and log access to the access-log bucket", () => {
		for (const id of dataBuckets()) {
			expect(bucketProps(id), id).toMatchObject({
				BucketEncryption: {
					ServerSideEncryptionConfiguration: [
						{
							BucketKeyEnabled: true,
							ServerSideEncryptionByDefault: { SSEAlgorithm: "aws:kms", KMSMasterKeyID: arn(ids.key) },
						},
					],
				},
				LoggingConfiguration: { DestinationBucketName: { Ref: ids.accessLog } },
			});
		}
	});
	it("expire noncurrent versions and abort stale multipart uploads", () => {
		for (const id of dataBuckets()) {
			expect(bucketProps(id), id).toMatchObject({
				LifecycleConfiguration: {
					Rules: [
						{
							Status: "Enabled",
							NoncurrentVersionExpiration: { NoncurrentDays: 90 },
							AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 },
						},
					],
				},
			});
		}
	});
	it("deny uploads that ask for another encryption, another key or SSE-C", () => {
		for (const id of dataBuckets()) {
			const statements = policyOf(id);
			const put = { Effect: "Deny", Principal: { AWS: "*" }, Action: "s3:PutObject", Resource: objects(id) };
			expect(statements, id).toEqual(
				expect.arrayContaining([
					{
						Sid: "DenyUploadsNotSseKms",
						...put,
						Condition: {
							StringNotEquals: { "s3:x-amz-server-side-encryption": "aws:kms" },
							Null: { "s3:x-amz-server-side-encryption": "false" },
						},
					},
					{
						Sid: "DenyUploadsWithOtherKey",
						...put,
						Condition: {
							StringNotEquals: {
								"s3:x-amz-server-side-encryption-aws-kms-key-id": [arn(ids.key), { Ref: ids.key }],
							},
							Null: { "s3:x-amz-server-side-encryption-aws-kms-key-id": "false" },
						},
					},
					{
						Sid: "DenyUploadsSseC",
						...put,
						Condition: { Null: { "s3:x-amz-server-side-encryption-customer-algorithm": "false" } },
					},
				]),
			);
		}
	});
	it("lock checkpoints and reports by default (GOVERNANCE, 30 days), not base models or datasets", () => {
		for (const id of [ids.checkpoint, ids.report]) {
			expect(bucketProps(id), id).toMatchObject({
				ObjectLockEnabled: true,
				ObjectLockConfiguration: {
					ObjectLockEnabled: "Enabled",
					Rule: { DefaultRetention: { Mode: "GOVERNANCE", Days: 30 } },
				},
			});
		}
		for (const id of [ids.baseModel, ids.dataset]) {
			expect(bucketProps(id).ObjectLockEnabled, id).toBeUndefined();
		}
	});
	it("have no Object Lock with objectLock: false", () => {
		const s = newStack();
		const store = new CheckpointStore(s, "Store", { objectLock: false });
		const resources = Template.fromStack(s).toJSON().Resources;
		for (const bucket of store.dataBuckets) {
			expect(resources[logicalId(bucket)].Properties.ObjectLockEnabled).toBeUndefined();
		}
	});
});

describe("the checkpoint bucket's events", () => {
	it("go to EventBridge natively, without a notifications custom resource", () => {
		expect(bucketProps(ids.checkpoint).NotificationConfiguration).toEqual({
			EventBridgeConfiguration: { EventBridgeEnabled: true },
		});
		template.resourceCountIs("Custom::S3BucketNotifications", 0);
	});
});

describe("the access-log bucket", () => {
	it("uses SSE-S3 (log delivery cannot write SSE-KMS) and expires logs", () => {
		expect(bucketProps(ids.accessLog)).toMatchObject({
			BucketEncryption: {
				ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } }],
			},
			LifecycleConfiguration: { Rules: [expect.objectContaining({ ExpirationInDays: 365 })] },
		});
		expect(bucketProps(ids.accessLog).LoggingConfiguration).toBeUndefined();
	});
	it("lets only S3 log delivery of this account write", () => {
		expect(policyOf(ids.accessLog)).toEqual(
			expect.arrayContaining([
				expect.objectContaining({
					Effect: "Allow",
					Principal: { Service: "logging.s3.amazonaws.com" },
					Action: "s3:PutObject",
					Condition: expect.objectContaining({ StringEquals: { "aws:SourceAccount": { Ref: "AWS::AccountId" } } }),
				}),
			]),
		);
	});
});

describe("the checkpoint bucket policy", () => {
	it("denies s3:GetObject* unless ftguard:status is PROMOTABLE, to all but scanner, backdoor job, break-glass, verdict and sweeper", () => {
		expect(policyOf(ids.checkpoint)).toContainEqual({
			Sid: "DenyReadUnlessPromotable",
			Effect: "Deny",
			Principal: { AWS: "*" },
			Action: "s3:GetObject*",
			Resource: objects(ids.checkpoint),
			Condition: {
				StringNotEquals: { "s3:ExistingObjectTag/ftguard:status": "PROMOTABLE" },
				ArnNotEquals: {
					"aws:PrincipalArn": [
						arn(roleIds.scanner),
						arn(roleIds.backdoorJob),
						arn(roleIds.breakGlass),
						arn(roleIds.verdict),
						arn(roleIds.sweeper),
					],
				},
			},
		});
	});
	it("denies every object-tagging write to all but the verdict and sweeper roles", () => {
		expect(policyOf(ids.checkpoint)).toContainEqual({
			Sid: "DenyTaggingExceptVerdict",
			Effect: "Deny",
			Principal: { AWS: "*" },
			Action: [
				"s3:DeleteObjectTagging",
				"s3:DeleteObjectVersionTagging",
				"s3:PutObjectTagging",
				"s3:PutObjectVersionTagging",
			],
			Resource: objects(ids.checkpoint),
			Condition: { ArnNotEquals: { "aws:PrincipalArn": [arn(roleIds.verdict), arn(roleIds.sweeper)] } },
		});
	});
	it("leaves the sweeper tag reads and one write: QUARANTINED on an object that is SCANNING", () => {
		const sweeper = { ArnEquals: { "aws:PrincipalArn": arn(roleIds.sweeper) } };
		const tagWrites = ["s3:PutObjectTagging", "s3:PutObjectVersionTagging"];
		expect(policyOf(ids.checkpoint)).toContainEqual({
			Sid: "DenySweeperAllButTags",
			Effect: "Deny",
			Principal: { AWS: "*" },
			NotAction: ["s3:GetObjectTagging", "s3:GetObjectVersionTagging", ...tagWrites],
			Resource: objects(ids.checkpoint),
			Condition: sweeper,
		});
		expect(policyOf(ids.checkpoint)).toContainEqual({
			Sid: "DenySweeperUnlessQuarantine",
			Effect: "Deny",
			Principal: { AWS: "*" },
			Action: tagWrites,
			Resource: objects(ids.checkpoint),
			Condition: { ...sweeper, StringNotEquals: { "s3:RequestObjectTag/ftguard:status": "QUARANTINED" } },
		});
		expect(policyOf(ids.checkpoint)).toContainEqual({
			Sid: "DenySweeperUnlessScanning",
			Effect: "Deny",
			Principal: { AWS: "*" },
			Action: tagWrites,
			Resource: objects(ids.checkpoint),
			Condition: { ...sweeper, StringNotEquals: { "s3:ExistingObjectTag/ftguard:status": "SCANNING" } },
		});
	});
	it("denies PutObject carrying any ftguard:* request tag to all but the verdict role", () => {
		expect(policyOf(ids.checkpoint)).toContainEqual({
			Sid: "DenyFtguardTagsOnUpload",
			Effect: "Deny",
			Principal: { AWS: "*" },
			Action: "s3:PutObject",
			Resource: objects(ids.checkpoint),
			Condition: {
				"ForAnyValue:StringLike": { "s3:RequestObjectTagKeys": "ftguard:*" },
				ArnNotEquals: { "aws:PrincipalArn": arn(roleIds.verdict) },
			},
		});
	});
	it("denies CopyObject into the bucket to all but the verdict role (copies carry the source's tags)", () => {
		expect(policyOf(ids.checkpoint)).toContainEqual({
			Sid: "DenyCopyIntoCheckpoints",
			Effect: "Deny",
			Principal: { AWS: "*" },
			Action: "s3:PutObject",
			Resource: objects(ids.checkpoint),
			Condition: {
				Null: { "s3:x-amz-copy-source": "false" },
				ArnNotEquals: { "aws:PrincipalArn": arn(roleIds.verdict) },
			},
		});
	});
	it("forbids the training-job role to list, whatever it is granted", () => {
		expect(policyOf(ids.checkpoint)).toContainEqual(
			expect.objectContaining({
				Effect: "Deny",
				Action: ["s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:ListBucketVersions"],
				Resource: arn(ids.checkpoint),
				Condition: { ArnEquals: { "aws:PrincipalArn": arn(roleIds.training) } },
			}),
		);
	});
	it("uses no policy variable outside Resource and string conditions (NotResource does not document them)", () => {
		for (const statement of policyOf(ids.checkpoint)) {
			expect(statement.NotResource, JSON.stringify(statement)).toBeUndefined();
		}
	});
	it("allows nothing: every statement except the TLS rules is a Deny", () => {
		for (const statement of policyOf(ids.checkpoint)) {
			expect(statement.Effect, JSON.stringify(statement)).toBe("Deny");
		}
	});
});

describe("the base-model bucket", () => {
	it("denies writes and deletes by the scanner and training-job roles", () => {
		const statements = policyOf(ids.baseModel);
		for (const role of [roleIds.scanner, roleIds.training]) {
			expect(statements).toContainEqual(
				expect.objectContaining({
					Effect: "Deny",
					Action: ["s3:DeleteObject*", "s3:PutObject*", "s3:ReplicateObject", "s3:RestoreObject"],
					Resource: objects(ids.baseModel),
					Condition: { ArnEquals: { "aws:PrincipalArn": arn(role) } },
				}),
			);
		}
	});
});

describe("the roles the bucket policy names", () => {
	it("scanner runs as Lambda only (the Batch job has its own role)", () => {
		template.hasResourceProperties("AWS::IAM::Role", {
			Description: Match.stringLikeRegexp("^ftguard scanner"),
			AssumeRolePolicyDocument: {
				Statement: [{ Action: "sts:AssumeRole", Effect: "Allow", Principal: { Service: "lambda.amazonaws.com" } }],
			},
		});
	});
	it("break-glass needs MFA and gets one-hour sessions", () => {
		template.hasResourceProperties("AWS::IAM::Role", {
			Description: Match.stringLikeRegexp("^ftguard break-glass"),
			MaxSessionDuration: 3600,
			AssumeRolePolicyDocument: {
				Statement: [Match.objectLike({ Condition: { Bool: { "aws:MultiFactorAuthPresent": "true" } } })],
			},
		});
	});
	it("use the store's key only through S3 (kms:ViaService)", () => {
		const policies = template.findResources("AWS::IAM::Policy");
		let kmsStatements = 0;
		for (const policy of Object.values(policies) as {
			Properties: { PolicyDocument: { Statement: Record<string, unknown>[] } };
		}[]) {
			for (const statement of policy.Properties.PolicyDocument.Statement) {
				const actions = [statement.Action].flat() as string[];
				if (!actions.some((a) => a.startsWith("kms:"))) continue;
				if (actions.every((a) => a === "kms:Sign" || a === "kms:GetPublicKey")) {
					// the provenance key (lib/infra/provenance-key.ts) signs verdicts directly, never the store's data key
					expect(statement.Resource).not.toEqual(arn(ids.key));
					continue;
				}
				kmsStatements++;
				expect(statement.Resource).toEqual(arn(ids.key));
				expect(statement.Condition).toEqual({
					StringEquals: { "kms:ViaService": { "Fn::Join": ["", ["s3.", { Ref: "AWS::Region" }, ".amazonaws.com"]] } },
				});
			}
		}
		expect(kmsStatements).toBeGreaterThanOrEqual(4);
	});
});

describe("when Object Lock is asked for", () => {
	it("locks the checkpoint and report buckets with the default retention, not the others", () => {
		const s = newStack();
		const store = new CheckpointStore(s, "Store", { objectLock: { mode: "GOVERNANCE", retention: Duration.days(30) } });
		const t = Template.fromStack(s);
		for (const bucket of [store.checkpointBucket, store.reportBucket]) {
			expect(t.toJSON().Resources[logicalId(bucket)].Properties).toMatchObject({
				ObjectLockEnabled: true,
				ObjectLockConfiguration: {
					ObjectLockEnabled: "Enabled",
					Rule: { DefaultRetention: { Mode: "GOVERNANCE", Days: 30 } },
				},
			});
		}
		for (const bucket of [store.baseModelBucket, store.datasetBucket]) {
			expect(t.toJSON().Resources[logicalId(bucket)].Properties.ObjectLockEnabled).toBeUndefined();
		}
	});
});

describe("invalid combinations throw at synth", () => {
	it("Object Lock retention longer than the noncurrent-version expiration", () => {
		expect(
			() =>
				new CheckpointStore(newStack(), "Store", {
					objectLock: { mode: "GOVERNANCE", retention: Duration.days(120) },
					noncurrentVersionExpiration: Duration.days(90),
				}),
		).toThrow(/shorter than the Object Lock retention/);
	});
	it("a retention that is not a whole number of days", () => {
		expect(
			() =>
				new CheckpointStore(newStack(), "Store", { objectLock: { mode: "GOVERNANCE", retention: Duration.hours(36) } }),
		).toThrow(/whole number of days/);
	});
	it("COMPLIANCE Object Lock with RemovalPolicy.DESTROY", () => {
		expect(
			() =>
				new CheckpointStore(newStack(), "Store", {
					objectLock: { mode: "COMPLIANCE", retention: Duration.days(7) },
					removalPolicy: RemovalPolicy.DESTROY,
				}),
		).toThrow(/COMPLIANCE/);
	});
});
