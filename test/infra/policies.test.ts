import * as iam from "aws-cdk-lib/aws-iam";
import { beforeAll, describe, expect, it } from "vitest";
import {
	DATASET_LINEAGE,
	DATASET_MARKER,
	DATASET_REPORT,
	ScanStatus,
	STATUS_TAG,
	VERDICT_RECORD_NAME,
} from "../../lib/core/pipeline/names.js";
import { reportKey } from "../../lib/core/pipeline/record";
import {
	ACCOUNT,
	type CfnTemplate,
	decide,
	type PolicyDocument,
	type Request,
	s3EndpointPolicy,
	TemplateResolver,
} from "./helpers/iam.js";
import { logicalId, sharedFtguard, synthFtguard } from "./helpers/stack.js";

// Offline evaluation of the synthesized identity and bucket policies with @cloud-copilot/iam-simulate: every
// CloudFormation reference is resolved to the concrete ARN the resource would have in ACCOUNT.

let resolver: TemplateResolver;
let checkpointBucket: string;
let baseModelBucket: string;
let checkpointPolicy: PolicyDocument;
let baseModelPolicy: PolicyDocument;
let reportBucket: string;
let reportPolicy: PolicyDocument;
let datasetBucket: string;
let datasetPolicy: PolicyDocument;
/** Key of the deployed policy object in the base-model bucket (every VPC function role reads it). */
let policyKey: string;
/** The dataset gate's Batch queue and job definition, and the backdoor scan's GPU queue. */
let batchArns: { datasetQueue: string; datasetJobDefinition: string; gpuQueue: string };
let endpointPolicy: PolicyDocument;
let vpcId: string;
/** The S3 gateway endpoint: the verdict role's tag writes come through it (bucket policy DenyVerdictTagsOutsideVpc). */
let s3EndpointId: string;
/** A role given store.grantPromotedRead(): its synthesized policy is evaluated, not a hand-written one. */
let grantedConsumer: string;
const roles: Record<
	"scanner" | "job" | "verdict" | "sweeper" | "breakGlass" | "training" | "launcher" | "datasetGate" | "baseModelGate",
	string
> = {
	datasetGate: "",
	baseModelGate: "",
	scanner: "",
	job: "",
	verdict: "",
	sweeper: "",
	breakGlass: "",
	training: "",
	launcher: "",
};

const consumerRole = `arn:aws:iam::${ACCOUNT}:role/model-consumer`;
const uploaderRole = `arn:aws:iam::${ACCOUNT}:role/checkpoint-uploader`;

/** A policy that allows every S3 action everywhere: what an over-broad grant added later would look like. */
const s3Admin = {
	name: "s3-admin",
	policy: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "s3:*", Resource: "*" }] },
};

beforeAll(() => {
	let consumer: iam.Role | undefined;
	const { stack, template } = synthFtguard({}, (s) => {
		consumer = new iam.Role(s, "GrantedConsumer", { assumedBy: new iam.AccountRootPrincipal() });
		s.store.grantPromotedRead(consumer);
	});
	grantedConsumer = logicalId(consumer as iam.Role);
	const json = template.toJSON() as CfnTemplate;
	resolver = new TemplateResolver(json);
	const cpId = logicalId(stack.store.checkpointBucket);
	const bmId = logicalId(stack.store.baseModelBucket);
	checkpointBucket = resolver.bucketName(cpId);
	baseModelBucket = resolver.bucketName(bmId);
	checkpointPolicy = resolver.bucketPolicy(cpId);
	baseModelPolicy = resolver.bucketPolicy(bmId);
	reportBucket = resolver.bucketName(logicalId(stack.store.reportBucket));
	reportPolicy = resolver.bucketPolicy(logicalId(stack.store.reportBucket));
	endpointPolicy = s3EndpointPolicy(resolver, json);
	vpcId = resolver.resolve({ Ref: logicalId(stack.network.vpc) }) as string;
	s3EndpointId = resolver.resolve({ Ref: logicalId(stack.network.s3Endpoint as never) }) as string;
	roles.scanner = logicalId(stack.store.scannerRole);
	roles.job = logicalId(stack.store.backdoorJobRole);
	roles.verdict = logicalId(stack.store.verdictRole);
	roles.sweeper = logicalId(stack.store.sweeperRole);
	roles.breakGlass = logicalId(stack.store.breakGlassRole);
	roles.training = logicalId(stack.trainingJobs.role);
	roles.launcher = logicalId(stack.trainingJobs.launcherRole as never);
	roles.datasetGate = logicalId(stack.store.datasetGateRole);
	roles.baseModelGate = logicalId(stack.store.baseModelGateRole);
	const dsId = logicalId(stack.store.datasetBucket);
	datasetBucket = resolver.bucketName(dsId);
	datasetPolicy = resolver.bucketPolicy(dsId);
	policyKey = stack.scanPipeline.policyUri.replace(/^s3:\/\/[^/]+\//, "");
	const gate = stack.scanPipeline.datasetGate;
	batchArns = {
		datasetQueue: resolver.resolve({ "Fn::GetAtt": [logicalId(gate.jobQueue), "JobQueueArn"] }) as string,
		datasetJobDefinition: resolver.resolve({ Ref: logicalId(gate.jobDefinition) }) as string,
		gpuQueue: resolver.resolve({ "Fn::GetAtt": [logicalId(stack.scanPipeline.jobQueue), "JobQueueArn"] }) as string,
	};
});

function object(key: string): string {
	return `arn:aws:s3:::${checkpointBucket}/${key}`;
}

function statusContext(status: string | undefined): Record<string, string> {
	return status === undefined ? {} : { [`s3:ExistingObjectTag/${STATUS_TAG}`]: status };
}

/** A request by one of the stack's roles, with its synthesized identity policies, against the checkpoint bucket. */
function asStackRole(
	role: keyof typeof roles,
	request: Omit<Request, "roleArn" | "identityPolicies" | "resourcePolicy"> & {
		extraPolicies?: Request["identityPolicies"];
	},
): Request {
	const { extraPolicies, ...rest } = request;
	return {
		roleArn: resolver.roleArn(roles[role]),
		identityPolicies: [...resolver.identityPolicies(roles[role]), ...(extraPolicies ?? [])],
		permissionBoundaries: resolver.permissionsBoundary(roles[role]),
		resourcePolicy: checkpointPolicy,
		...rest,
	};
}

const consumerPolicy = {
	name: "consumer",
	policy: {
		Version: "2012-10-17",
		Statement: [{ Effect: "Allow", Action: ["s3:GetObject", "s3:GetObjectVersion"], Resource: "*" }],
	},
};
const uploaderPolicy = {
	name: "uploader",
	policy: {
		Version: "2012-10-17",
		Statement: [
			{
				Effect: "Allow",
				Action: [
					"s3:PutObject",
					"s3:PutObjectTagging",
					"s3:PutObjectVersionTagging",
					"s3:DeleteObjectTagging",
					"s3:DeleteObjectVersionTagging",
				],
				Resource: "*",
			},
		],
	},
};

function consumerReads(status: string | undefined, action = "s3:GetObject"): Promise<string> {
	return decide({
		roleArn: consumerRole,
		identityPolicies: [consumerPolicy],
		action,
		resource: object("jobs/A/model.safetensors"),
		resourcePolicy: checkpointPolicy,
		context: statusContext(status),
	});
}

function uploader(action: string, context: Record<string, string | string[]> = {}): Promise<string> {
	return decide({
		roleArn: uploaderRole,
		identityPolicies: [uploaderPolicy],
		action,
		resource: object("uploads/model.safetensors"),
		resourcePolicy: checkpointPolicy,
		context,
	});
}

describe("when a consumer reads a checkpoint", () => {
	it("is denied an untagged object", async () => {
		expect(await consumerReads(undefined)).toBe("ExplicitlyDenied");
	});
	it.each([ScanStatus.SCANNING, ScanStatus.QUARANTINED, "promotable", "PROMOTABLE "])(
		"is denied an object tagged %j",
		async (status) => {
			expect(await consumerReads(status)).toBe("ExplicitlyDenied");
		},
	);
	it("can read a PROMOTABLE object", async () => {
		expect(await consumerReads(ScanStatus.PROMOTABLE)).toBe("Allowed");
	});
	it("is denied older versions and attributes of an unpromoted object too (s3:GetObject*)", async () => {
		expect(await consumerReads(ScanStatus.QUARANTINED, "s3:GetObjectVersion")).toBe("ExplicitlyDenied");
		expect(await consumerReads(undefined, "s3:GetObjectAttributes")).toBe("ExplicitlyDenied");
	});
	it("is denied even a PROMOTABLE object over plain HTTP", async () => {
		const decision = await decide({
			roleArn: consumerRole,
			identityPolicies: [consumerPolicy],
			action: "s3:GetObject",
			resource: object("jobs/A/model.safetensors"),
			resourcePolicy: checkpointPolicy,
			context: { ...statusContext(ScanStatus.PROMOTABLE), "aws:SecureTransport": "false" },
		});
		expect(decision).toBe("ExplicitlyDenied");
	});
});

describe("when a role given grantPromotedRead reads a checkpoint", () => {
	const read = (status: string | undefined): Promise<string> =>
		decide({
			roleArn: resolver.roleArn(grantedConsumer),
			identityPolicies: resolver.identityPolicies(grantedConsumer),
			action: "s3:GetObject",
			resource: object("jobs/A/model.safetensors"),
			resourcePolicy: checkpointPolicy,
			context: statusContext(status),
		});
	it("reads a PROMOTABLE object", async () => {
		expect(await read(ScanStatus.PROMOTABLE)).toBe("Allowed");
	});
	it.each([undefined, ScanStatus.SCANNING, ScanStatus.QUARANTINED])(
		"is denied an object with status %s",
		async (status) => {
			expect(await read(status)).toBe("ExplicitlyDenied");
		},
	);
});

describe("when the scanner or break-glass role reads a checkpoint", () => {
	it.each([undefined, ScanStatus.SCANNING, ScanStatus.QUARANTINED])(
		"the scanner reads an object whatever its status (%s)",
		async (status) => {
			const request = asStackRole("scanner", {
				action: "s3:GetObject",
				resource: object("jobs/A/model.safetensors"),
				context: { ...statusContext(status), "aws:SourceVpce": s3EndpointId },
			});
			expect(await decide(request)).toBe("Allowed");
		},
	);
	it("break-glass reads a quarantined object version, from anywhere (the human escape hatch is not VPC-bound)", async () => {
		const request = asStackRole("breakGlass", {
			action: "s3:GetObjectVersion",
			resource: object("jobs/A/model.safetensors"),
			context: statusContext(ScanStatus.QUARANTINED),
		});
		expect(await decide(request)).toBe("Allowed");
	});
	// Leaked scanner, GPU-job or verdict credentials: these roles read unscanned checkpoints, so only through the
	// stack's S3 gateway endpoint (bucket policy DenyUnscannedReadsOutsideVpc).
	it.each([
		["scanner", "s3:GetObject"],
		["scanner", "s3:GetObjectVersion"],
		["job", "s3:GetObjectVersion"],
		["verdict", "s3:GetObjectVersion"],
	] as const)("%s: %s of an unscanned checkpoint only through the S3 endpoint", async (role, action) => {
		const read = (context: Record<string, string>) =>
			decide(
				asStackRole(role, {
					action,
					resource: object("jobs/B/model.safetensors"),
					context: { ...statusContext(ScanStatus.SCANNING), ...context },
				}),
			);
		expect(await read({}), "from the internet").toBe("ExplicitlyDenied");
		expect(await read({ "aws:SourceVpce": "vpce-0123456789abcdef0" }), "another endpoint").toBe("ExplicitlyDenied");
		expect(await read({ "aws:SourceVpce": s3EndpointId }), "through the stack's endpoint").toBe("Allowed");
	});
});

describe("when an uploader tries to set ftguard:status", () => {
	const promote = {
		"s3:RequestObjectTagKeys": [STATUS_TAG],
		[`s3:RequestObjectTag/${STATUS_TAG}`]: ScanStatus.PROMOTABLE,
	};
	it.each(["s3:PutObjectTagging", "s3:PutObjectVersionTagging"])("is denied %s", async (action) => {
		expect(await uploader(action, promote)).toBe("ExplicitlyDenied");
	});
	it.each(["s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging"])(
		"is denied %s (removing a QUARANTINED tag)",
		async (action) => {
			expect(await uploader(action, statusContext(ScanStatus.QUARANTINED))).toBe("ExplicitlyDenied");
		},
	);
	it("is denied replacing the tag set even without ftguard keys (that would drop the verdict)", async () => {
		expect(await uploader("s3:PutObjectTagging", { "s3:RequestObjectTagKeys": ["team"] })).toBe("ExplicitlyDenied");
	});
	it("is denied PutObject carrying ftguard:status=PROMOTABLE", async () => {
		expect(await uploader("s3:PutObject", promote)).toBe("ExplicitlyDenied");
	});
	it("is denied PutObject carrying any ftguard:* tag among others", async () => {
		expect(await uploader("s3:PutObject", { "s3:RequestObjectTagKeys": ["team", "ftguard:scan-id"] })).toBe(
			"ExplicitlyDenied",
		);
	});
	it("is denied CopyObject (a copy brings the source's tags without request tags)", async () => {
		expect(await uploader("s3:PutObject", { "s3:x-amz-copy-source": "attacker-bucket/promoted.bin" })).toBe(
			"ExplicitlyDenied",
		);
	});
	it("may still upload with its own tags, or none", async () => {
		expect(await uploader("s3:PutObject", { "s3:RequestObjectTagKeys": ["team"] })).toBe("Allowed");
		expect(await uploader("s3:PutObject")).toBe("Allowed");
	});
});

describe("when an upload is not encrypted with the store's key", () => {
	it("is denied with SSE-S3", async () => {
		expect(await uploader("s3:PutObject", { "s3:x-amz-server-side-encryption": "AES256" })).toBe("ExplicitlyDenied");
	});
	it("is denied with another KMS key", async () => {
		const other = `arn:aws:kms:us-east-1:${ACCOUNT}:key/another`;
		const context = {
			"s3:x-amz-server-side-encryption": "aws:kms",
			"s3:x-amz-server-side-encryption-aws-kms-key-id": other,
		};
		expect(await uploader("s3:PutObject", context)).toBe("ExplicitlyDenied");
	});
	it("is denied with SSE-C (customer-provided keys)", async () => {
		expect(await uploader("s3:PutObject", { "s3:x-amz-server-side-encryption-customer-algorithm": "AES256" })).toBe(
			"ExplicitlyDenied",
		);
	});
	it("is allowed without headers: the bucket default is the store's key (UploadPart never sends them)", async () => {
		expect(await uploader("s3:PutObject")).toBe("Allowed");
	});
	it("is allowed with the store's key", async () => {
		const key = checkpointPolicy.Statement.find((s) => s.Sid === "DenyUploadsWithOtherKey")?.Condition as Record<
			string,
			Record<string, string>
		>;
		const keyArn = [key.StringNotEquals?.["s3:x-amz-server-side-encryption-aws-kms-key-id"]].flat()[0] ?? "";
		expect(keyArn).toMatch(/^arn:aws:kms:/);
		const context = {
			"s3:x-amz-server-side-encryption": "aws:kms",
			"s3:x-amz-server-side-encryption-aws-kms-key-id": keyArn,
		};
		expect(await uploader("s3:PutObject", context)).toBe("Allowed");
	});
});

describe("who can promote", () => {
	const promote = {
		"s3:RequestObjectTagKeys": [STATUS_TAG],
		[`s3:RequestObjectTag/${STATUS_TAG}`]: ScanStatus.PROMOTABLE,
	};
	it("the verdict role can tag an object PROMOTABLE", async () => {
		const request = asStackRole("verdict", {
			action: "s3:PutObjectVersionTagging",
			resource: object("jobs/A/model.safetensors"),
			context: { ...promote, "aws:SourceVpce": s3EndpointId },
		});
		expect(await decide(request)).toBe("Allowed");
	});
	it.each(["scanner", "sweeper", "breakGlass", "training", "launcher"] as const)(
		"the %s role cannot, even with s3:* on everything",
		async (role) => {
			for (const action of ["s3:PutObjectTagging", "s3:PutObjectVersionTagging", "s3:DeleteObjectTagging"]) {
				const request = asStackRole(role, {
					action,
					resource: object("jobs/A/model.safetensors"),
					context: { ...promote, "aws:PrincipalTag/job-id": "A", "aws:SourceVpc": vpcId },
					extraPolicies: [s3Admin],
				});
				expect(await decide(request), `${role} ${action}`).toBe("ExplicitlyDenied");
			}
		},
	);
	it("an administrator of the account cannot either (the deny names every principal but the verdict role)", async () => {
		const decision = await decide({
			roleArn: `arn:aws:iam::${ACCOUNT}:role/Admin`,
			identityPolicies: [s3Admin],
			action: "s3:PutObjectTagging",
			resource: object("jobs/A/model.safetensors"),
			resourcePolicy: checkpointPolicy,
			context: promote,
		});
		expect(decision).toBe("ExplicitlyDenied");
	});
});

describe("the sweeper", () => {
	const key = "jobs/A/model.safetensors";
	const tagging = (status: string | undefined, existing: string | undefined) => ({
		"s3:RequestObjectTagKeys": status === undefined ? ["team"] : [STATUS_TAG, "ftguard:scan-id", "ftguard:reason"],
		...(status === undefined ? {} : { [`s3:RequestObjectTag/${STATUS_TAG}`]: status }),
		...statusContext(existing),
	});
	const sweeper = (action: string, context: Record<string, string | string[]>, admin = false) =>
		decide(
			asStackRole("sweeper", {
				action,
				resource: object(key),
				context,
				...(admin ? { extraPolicies: [s3Admin] } : {}),
			}),
		);

	it.each(["s3:PutObjectTagging", "s3:PutObjectVersionTagging"])(
		"can quarantine an object that is SCANNING (%s)",
		async (action) => {
			expect(await sweeper(action, tagging(ScanStatus.QUARANTINED, ScanStatus.SCANNING))).toBe("Allowed");
		},
	);
	it.each(["s3:GetObjectTagging", "s3:GetObjectVersionTagging"])(
		"can read the tag set of an object that is not PROMOTABLE (%s)",
		async (action) => {
			expect(await sweeper(action, statusContext(ScanStatus.SCANNING))).toBe("Allowed");
		},
	);
	it.each<[string, string | undefined, string | undefined]>([
		["promote a SCANNING object", ScanStatus.PROMOTABLE, ScanStatus.SCANNING],
		["write a tag set without a status", undefined, ScanStatus.SCANNING],
		["overwrite a PROMOTABLE verdict", ScanStatus.QUARANTINED, ScanStatus.PROMOTABLE],
		["rewrite a QUARANTINED verdict", ScanStatus.QUARANTINED, ScanStatus.QUARANTINED],
		["tag an untagged object", ScanStatus.QUARANTINED, undefined],
	])("cannot %s, even with s3:* on everything", async (_, status, existing) => {
		for (const action of ["s3:PutObjectTagging", "s3:PutObjectVersionTagging"]) {
			expect(await sweeper(action, tagging(status, existing), true), action).toBe("ExplicitlyDenied");
		}
	});
	it.each([
		"s3:GetObject",
		"s3:GetObjectVersion",
		"s3:DeleteObjectTagging",
		"s3:DeleteObjectVersionTagging",
		"s3:PutObject",
		"s3:DeleteObject",
	])("cannot %s a SCANNING checkpoint, even with s3:* on everything", async (action) => {
		expect(await sweeper(action, statusContext(ScanStatus.SCANNING), true)).toBe("ExplicitlyDenied");
	});
	it("has no object read or write of its own (without extra grants it is not allowed to GetObject)", async () => {
		expect(await sweeper("s3:GetObject", statusContext(ScanStatus.PROMOTABLE))).not.toBe("Allowed");
	});
});

describe("when training job A writes checkpoints", () => {
	const jobA = (
		action: string,
		key: string,
		extra: Record<string, string | string[]> = {},
		admin = false,
	): Promise<string> =>
		decide(
			asStackRole("training", {
				action,
				resource: key.startsWith("arn:") ? key : object(key),
				context: { "aws:PrincipalTag/job-id": "A", "aws:SourceVpc": vpcId, ...extra },
				...(admin ? { extraPolicies: [s3Admin] } : {}),
			}),
		);

	it("can write under jobs/A/", async () => {
		expect(await jobA("s3:PutObject", "jobs/A/step-100/model.safetensors")).toBe("Allowed");
		expect(await jobA("s3:AbortMultipartUpload", "jobs/A/step-100/model.safetensors")).toBe("Allowed");
		expect(await jobA("s3:ListMultipartUploadParts", "jobs/A/step-100/model.safetensors")).toBe("Allowed");
	});
	it.each(["jobs/B/model.safetensors", "jobs/AB/model.safetensors", "jobs/model.safetensors", "model.safetensors"])(
		"cannot write %s",
		async (key) => {
			expect(await jobA("s3:PutObject", key)).not.toBe("Allowed");
		},
	);
	it("cannot write jobs/B/ even if granted s3:* later (permissions boundary)", async () => {
		expect(await jobA("s3:PutObject", "jobs/B/model.safetensors", {}, true)).not.toBe("Allowed");
		expect(await jobA("s3:PutObject", "jobs/A/model.safetensors", {}, true)).toBe("Allowed");
	});
	it("cannot list the checkpoint bucket, even with s3:*", async () => {
		const bucket = `arn:aws:s3:::${checkpointBucket}`;
		expect(await jobA("s3:ListBucket", bucket)).not.toBe("Allowed");
		expect(await jobA("s3:ListBucket", bucket, {}, true)).toBe("ExplicitlyDenied");
	});
	// IAM condition key names fold case: s3:ExistingObjectTag/ftguard:status may see a tag uploaded as
	// FTGUARD:STATUS, which the case-sensitive ftguard:* match of s3:RequestObjectTagKeys lets through.
	it.each(["FTGUARD:STATUS", "Ftguard:Status"])("cannot upload a checkpoint tagged %s=PROMOTABLE", async (key) => {
		const forged = { "s3:RequestObjectTagKeys": [key], [`s3:RequestObjectTag/${key}`]: ScanStatus.PROMOTABLE };
		expect(await jobA("s3:PutObject", "jobs/A/model.safetensors", forged)).toBe("ExplicitlyDenied");
	});
	it("can still upload untagged or with its own tags", async () => {
		expect(await jobA("s3:PutObject", "jobs/A/model.safetensors")).toBe("Allowed");
		const team = { "s3:RequestObjectTagKeys": ["team"], "s3:RequestObjectTag/team": "x" };
		expect(await jobA("s3:PutObject", "jobs/A/model.safetensors", team)).toBe("Allowed");
	});
	it("cannot read its own (unpromoted) checkpoints back", async () => {
		expect(await jobA("s3:GetObject", "jobs/A/model.safetensors")).not.toBe("Allowed");
	});
	it("is denied S3 when its credentials are used outside the VPC", async () => {
		expect(await jobA("s3:PutObject", "jobs/A/model.safetensors", { "aws:SourceVpc": "vpc-elsewhere" })).toBe(
			"ExplicitlyDenied",
		);
	});
	const onBaseModels = (action: string, admin: boolean, status?: string): Promise<string> =>
		decide({
			roleArn: resolver.roleArn(roles.training),
			identityPolicies: [...resolver.identityPolicies(roles.training), ...(admin ? [s3Admin] : [])],
			permissionBoundaries: resolver.permissionsBoundary(roles.training),
			action,
			resource: `arn:aws:s3:::${baseModelBucket}/llama/model.safetensors`,
			resourcePolicy: baseModelPolicy,
			context: { "aws:PrincipalTag/job-id": "A", "aws:SourceVpc": vpcId, ...statusContext(status) },
		});
	it("can read base models the gate promoted but never write them, even with s3:*", async () => {
		expect(await onBaseModels("s3:GetObject", false, ScanStatus.PROMOTABLE)).toBe("Allowed");
		expect(await onBaseModels("s3:GetObjectVersion", false, ScanStatus.PROMOTABLE)).toBe("Allowed");
		expect(await onBaseModels("s3:PutObject", true)).toBe("ExplicitlyDenied");
		expect(await onBaseModels("s3:DeleteObject", true)).toBe("ExplicitlyDenied");
		expect(await onBaseModels("s3:PutObjectTagging", true, ScanStatus.QUARANTINED)).toBe("ExplicitlyDenied");
	});
	it.each([undefined, ScanStatus.SCANNING, ScanStatus.QUARANTINED, "promotable"])(
		"cannot read a base model tagged %s, even with s3:*",
		async (status) => {
			expect(await onBaseModels("s3:GetObject", false, status)).toBe("ExplicitlyDenied");
			expect(await onBaseModels("s3:GetObjectVersion", true, status)).toBe("ExplicitlyDenied");
		},
	);
	it("cannot reach a foreign bucket through the S3 endpoint", async () => {
		const decision = await decide({
			roleArn: resolver.roleArn(roles.training),
			identityPolicies: [s3Admin],
			action: "s3:PutObject",
			resource: "arn:aws:s3:::attacker-exfil/stolen.safetensors",
			vpcEndpointPolicy: endpointPolicy,
			context: { "aws:SourceVpc": vpcId, "aws:SourceVpce": "vpce-0123456789abcdef0" },
		});
		expect(decision).not.toBe("Allowed");
		const own = await decide({
			roleArn: resolver.roleArn(roles.training),
			identityPolicies: resolver.identityPolicies(roles.training),
			action: "s3:PutObject",
			resource: object("jobs/A/model.safetensors"),
			resourcePolicy: checkpointPolicy,
			vpcEndpointPolicy: endpointPolicy,
			context: { "aws:PrincipalTag/job-id": "A", "aws:SourceVpc": vpcId, "aws:SourceVpce": "vpce-0123456789abcdef0" },
		});
		expect(own).toBe("Allowed");
	});
});

describe("when someone assumes the training-job role", () => {
	const assume = (
		principalRole: string,
		action: "sts:AssumeRole" | "sts:TagSession",
		tags: Record<string, string>,
	): Promise<string> => {
		const context: Record<string, string | string[]> = { "aws:TagKeys": Object.keys(tags) };
		for (const [key, value] of Object.entries(tags)) context[`aws:RequestTag/${key}`] = value;
		if (Object.keys(tags).length === 0) delete context["aws:TagKeys"];
		return decide({
			roleArn: principalRole,
			identityPolicies: principalRole.endsWith(`/${roles.launcher}`) ? resolver.identityPolicies(roles.launcher) : [],
			action,
			resource: resolver.roleArn(roles.training),
			resourcePolicy: resolver.trustPolicy(roles.training),
			context,
		});
	};
	const launcher = (): string => resolver.roleArn(roles.launcher);

	it("the launcher can, with a job-id session tag", async () => {
		expect(await assume(launcher(), "sts:AssumeRole", { "job-id": "A" })).toBe("Allowed");
		expect(await assume(launcher(), "sts:TagSession", { "job-id": "A" })).toBe("Allowed");
	});
	it("the launcher cannot without a job-id (the job would have no prefix)", async () => {
		expect(await assume(launcher(), "sts:AssumeRole", {})).not.toBe("Allowed");
	});
	it("the launcher cannot with a job-id containing '/' (a sub-prefix of another job)", async () => {
		expect(await assume(launcher(), "sts:TagSession", { "job-id": "B/x" })).not.toBe("Allowed");
	});
	it("the launcher cannot add other session tags", async () => {
		expect(await assume(launcher(), "sts:TagSession", { "job-id": "A", team: "x" })).not.toBe("Allowed");
	});
	it("nobody else can, tag or not", async () => {
		expect(await assume(consumerRole, "sts:AssumeRole", { "job-id": "A" })).not.toBe("Allowed");
		expect(await assume(resolver.roleArn(roles.scanner), "sts:AssumeRole", { "job-id": "A" })).not.toBe("Allowed");
	});
});

describe("each pipeline role can make the S3 calls its handlers make", () => {
	// mark (verdict role): lists the artefact, HEADs each object (s3:GetObject / GetObjectVersion), tags SCANNING;
	// record (verdict role): HEADs each object again (changed since mark?), tags the verdict;
	// manifest, signature, files (scanner role): reads of the pinned versions, whatever their status
	const calls: Array<[keyof typeof roles, string, "bucket" | "object", string | undefined]> = [
		["verdict", "s3:ListBucket", "bucket", undefined],
		["verdict", "s3:GetObject", "object", undefined],
		["verdict", "s3:GetObjectVersion", "object", ScanStatus.SCANNING],
		["verdict", "s3:PutObjectVersionTagging", "object", undefined],
		["scanner", "s3:GetObjectVersion", "object", ScanStatus.SCANNING],
		["scanner", "s3:GetObject", "object", ScanStatus.SCANNING],
		["scanner", "s3:ListBucket", "bucket", undefined],
	];
	it.each(calls)("%s: %s on the %s (status %s)", async (role, action, on, status) => {
		const resource = on === "bucket" ? `arn:aws:s3:::${checkpointBucket}` : object("jobs/A/model.safetensors");
		const request = asStackRole(role, {
			action,
			resource,
			context: { ...statusContext(status), "aws:SourceVpc": vpcId, "aws:SourceVpce": s3EndpointId },
		});
		expect(await decide(request)).toBe("Allowed");
	});
	// reports: manifest and files write theirs, signature reads the manifest back, record writes and re-reads the
	// verdict record
	it.each([
		["scanner", "s3:PutObject", "scans/ftg-1/manifest.json"],
		["scanner", "s3:GetObject", "scans/ftg-1/manifest.json"],
		["verdict", "s3:PutObject", "scans/ftg-1/verdict.json"],
		["verdict", "s3:GetObject", "scans/ftg-1/verdict.json"],
		["job", "s3:PutObject", "scans/ftg-1/backdoor/0/report.json"],
		["job", "s3:PutObject", "scans/ftg-1/backdoor/12/triggers/class-3-trigger.png"],
	] as const)("%s: %s on reports/%s", async (role, action, key) => {
		const request = {
			roleArn: resolver.roleArn(roles[role]),
			identityPolicies: resolver.identityPolicies(roles[role]),
			permissionBoundaries: resolver.permissionsBoundary(roles[role]),
			resourcePolicy: reportPolicy,
			action,
			resource: `arn:aws:s3:::${reportBucket}/${key}`,
			context: { "aws:SourceVpc": vpcId, "aws:SourceVpce": s3EndpointId },
		};
		expect(await decide(request)).toBe("Allowed");
	});
});

describe("verdict records (scans/<scan id>/verdict.json), their pages and provenance records are the verdict role's alone", () => {
	const onReport = (role: keyof typeof roles, action: string, key: string, extra?: Request["identityPolicies"]) =>
		decide({
			roleArn: resolver.roleArn(roles[role]),
			identityPolicies: [...resolver.identityPolicies(roles[role]), ...(extra ?? [])],
			permissionBoundaries: resolver.permissionsBoundary(roles[role]),
			resourcePolicy: reportPolicy,
			action,
			resource: `arn:aws:s3:::${reportBucket}/${key}`,
			context: { "aws:SourceVpc": vpcId, "aws:SourceVpce": s3EndpointId },
		});
	it("the key the record function writes is the one the policy protects", () => {
		expect(reportKey("ftg-1", "verdict")).toBe(`scans/ftg-1/${VERDICT_RECORD_NAME}`);
	});
	it.each(["scanner", "job", "sweeper"] as const)(
		"%s cannot overwrite or delete a scan's verdict record, even with s3:* on everything",
		async (role) => {
			for (const key of [
				"scans/ftg-1/verdict.json",
				"scans/ftg-1/backdoor/verdict.json",
				"scans/ftg-1/report.html",
				"scans/ftg-1/provenance.sigstore.json",
			]) {
				for (const action of ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"]) {
					expect(await onReport(role, action, key, [s3Admin]), `${action} ${key}`).toBe("ExplicitlyDenied");
				}
			}
		},
	);
	it("the scanner still writes its manifest, and the verdict role its record", async () => {
		expect(await onReport("scanner", "s3:PutObject", "scans/ftg-1/manifest.json")).toBe("Allowed");
		expect(await onReport("verdict", "s3:PutObject", "scans/ftg-1/verdict.json")).toBe("Allowed");
		expect(await onReport("verdict", "s3:PutObject", "scans/ftg-1/report.html")).toBe("Allowed");
		expect(await onReport("verdict", "s3:PutObject", "scans/ftg-1/provenance.sigstore.json")).toBe("Allowed");
	});
});

describe("the base-model gate role", () => {
	let gate: string;
	beforeAll(() => {
		const { stack, template } = synthFtguard();
		const r = new TemplateResolver(template.toJSON() as CfnTemplate);
		gate = r.roleArn(logicalId(stack.store.baseModelGateRole));
		gateIdentity = r.identityPolicies(logicalId(stack.store.baseModelGateRole));
	});
	let gateIdentity: Request["identityPolicies"] = [];
	// The gate function runs in the isolated subnets: its requests come through the S3 gateway endpoint.
	const asGate = (action: string, resource: string, resourcePolicy: PolicyDocument, status?: string) =>
		decide({
			roleArn: gate,
			identityPolicies: gateIdentity,
			action,
			resource,
			resourcePolicy,
			context: { ...statusContext(status), "aws:SourceVpce": s3EndpointId },
		});
	const baseModel = (key: string) => `arn:aws:s3:::${baseModelBucket}/${key}`;

	it("reads and tags base models of any status (it writes the status)", async () => {
		for (const status of [undefined, ScanStatus.QUARANTINED]) {
			expect(await asGate("s3:GetObject", baseModel("m/model.safetensors"), baseModelPolicy, status)).toBe("Allowed");
			expect(await asGate("s3:GetObjectVersion", baseModel("m/model.safetensors"), baseModelPolicy, status)).toBe(
				"Allowed",
			);
			expect(
				await asGate("s3:PutObjectVersionTagging", baseModel("m/model.safetensors"), baseModelPolicy, status),
			).toBe("Allowed");
		}
		expect(await asGate("s3:ListBucket", `arn:aws:s3:::${baseModelBucket}`, baseModelPolicy)).toBe("Allowed");
	});
	it("reads the signed registry kept in the base-model bucket", async () => {
		expect(await asGate("s3:GetObject", baseModel("ftguard/registry.json"), baseModelPolicy)).toBe("Allowed");
		expect(await asGate("s3:GetObject", baseModel("ftguard/registry.json.sigstore.json"), baseModelPolicy)).toBe(
			"Allowed",
		);
	});
	it("cannot write or delete base models", async () => {
		expect(await asGate("s3:PutObject", baseModel("m/model.safetensors"), baseModelPolicy)).not.toBe("Allowed");
		expect(await asGate("s3:DeleteObject", baseModel("m/model.safetensors"), baseModelPolicy)).not.toBe("Allowed");
	});
	it("can tag nothing but base models: no checkpoint, dataset or report tags, no checkpoint reads", async () => {
		expect(await asGate("s3:PutObjectTagging", object("jobs/A/model.safetensors"), checkpointPolicy)).not.toBe(
			"Allowed",
		);
		expect(await asGate("s3:GetObject", object("jobs/A/model.safetensors"), checkpointPolicy)).not.toBe("Allowed");
		expect(
			await asGate("s3:PutObjectTagging", `arn:aws:s3:::${reportBucket}/scans/x/verdict.json`, reportPolicy),
		).not.toBe("Allowed");
	});
});

describe("tags in the base-model bucket", () => {
	const platform = `arn:aws:iam::${ACCOUNT}:role/platform-admin`;
	const asPlatform = (action: string, context: Record<string, string | string[]> = {}) =>
		decide({
			roleArn: platform,
			identityPolicies: [s3Admin],
			action,
			resource: `arn:aws:s3:::${baseModelBucket}/m/model.safetensors`,
			resourcePolicy: baseModelPolicy,
			context,
		});
	it("an uploader (even with s3:*) uploads base models but cannot tag them or bring ftguard tags in", async () => {
		expect(await asPlatform("s3:PutObject")).toBe("Allowed");
		expect(await asPlatform("s3:PutObjectTagging")).toBe("ExplicitlyDenied");
		expect(await asPlatform("s3:PutObjectVersionTagging")).toBe("ExplicitlyDenied");
		expect(await asPlatform("s3:DeleteObjectTagging")).toBe("ExplicitlyDenied");
		const forged = {
			"s3:RequestObjectTagKeys": [STATUS_TAG],
			[`s3:RequestObjectTag/${STATUS_TAG}`]: ScanStatus.PROMOTABLE,
		};
		expect(await asPlatform("s3:PutObject", forged)).toBe("ExplicitlyDenied");
		const upper = { "s3:RequestObjectTagKeys": ["FTGUARD:STATUS"], "s3:RequestObjectTag/FTGUARD:STATUS": "PROMOTABLE" };
		expect(await asPlatform("s3:PutObject", upper)).toBe("ExplicitlyDenied");
		expect(await asPlatform("s3:PutObject", { "s3:x-amz-copy-source": "other/bucket/key" })).toBe("ExplicitlyDenied");
	});
});

// ---- datasets: the dataset gate (lib/infra/dataset-gate.ts) is the only tag, report and lineage writer --------------

function dataset(key: string): string {
	return `arn:aws:s3:::${datasetBucket}/${key}`;
}
/** A request by one of the stack's roles against the dataset bucket (its synthesized identity policies). */
function onDatasets(
	role: keyof typeof roles,
	action: string,
	resource: string,
	context: Record<string, string | string[]> = {},
	admin = false,
): Promise<string> {
	return decide({
		roleArn: resolver.roleArn(roles[role]),
		identityPolicies: [...resolver.identityPolicies(roles[role]), ...(admin ? [s3Admin] : [])],
		permissionBoundaries: resolver.permissionsBoundary(roles[role]),
		resourcePolicy: datasetPolicy,
		action,
		resource: resource.startsWith("arn:") ? resource : dataset(resource),
		context: { "aws:PrincipalTag/job-id": "A", "aws:SourceVpc": vpcId, "aws:SourceVpce": s3EndpointId, ...context },
	});
}
const promoteTags = {
	"s3:RequestObjectTagKeys": [STATUS_TAG, "ftguard:scan-id"],
	[`s3:RequestObjectTag/${STATUS_TAG}`]: ScanStatus.PROMOTABLE,
};

describe("when a training job reads a dataset", () => {
	it.each(["s3:GetObject", "s3:GetObjectVersion"])("%s of a version the dataset gate tagged PROMOTABLE", async (a) => {
		expect(await onDatasets("training", a, "chat/v1/train.jsonl", statusContext(ScanStatus.PROMOTABLE))).toBe(
			"Allowed",
		);
	});
	it.each([undefined, ScanStatus.SCANNING, ScanStatus.QUARANTINED, "promotable"])(
		"is denied a version tagged %s, even with s3:*",
		async (status) => {
			for (const action of ["s3:GetObject", "s3:GetObjectVersion"]) {
				expect(await onDatasets("training", action, "chat/v1/train.jsonl", statusContext(status)), action).toBe(
					"ExplicitlyDenied",
				);
				expect(
					await onDatasets("training", action, "chat/v1/train.jsonl", statusContext(status), true),
					`${action} with s3:*`,
				).toBe("ExplicitlyDenied");
			}
		},
	);
	it("cannot write tags on a dataset, even with s3:*", async () => {
		for (const action of ["s3:PutObjectTagging", "s3:PutObjectVersionTagging", "s3:DeleteObjectTagging"]) {
			expect(await onDatasets("training", action, "chat/v1/train.jsonl", promoteTags, true), action).toBe(
				"ExplicitlyDenied",
			);
		}
	});
	it("the scanner role still reads datasets whatever their status (backdoor reference data)", async () => {
		expect(await onDatasets("scanner", "s3:GetObject", "chat/v1/train.jsonl")).toBe("Allowed");
		expect(
			await onDatasets("scanner", "s3:GetObject", "chat/v1/train.jsonl", statusContext(ScanStatus.QUARANTINED)),
		).toBe("Allowed");
	});
});

describe("when someone uploads to the dataset bucket", () => {
	const platform = `arn:aws:iam::${ACCOUNT}:role/platform-admin`;
	const asUploader = (action: string, key: string, context: Record<string, string | string[]> = {}) =>
		decide({
			roleArn: platform,
			identityPolicies: [s3Admin],
			action,
			resource: dataset(key),
			resourcePolicy: datasetPolicy,
			context,
		});
	it("an uploader (even with s3:*) uploads data and the commit marker", async () => {
		expect(await asUploader("s3:PutObject", "chat/v1/train.jsonl")).toBe("Allowed");
		expect(await asUploader("s3:PutObject", `chat/v1/${DATASET_MARKER}`)).toBe("Allowed");
		expect(await asUploader("s3:PutObject", "chat/v1/ftguard-dataset-report.json.txt")).toBe("Allowed");
		expect(await asUploader("s3:PutObject", "chat/v1/train.jsonl", { "s3:RequestObjectTagKeys": ["team"] })).toBe(
			"Allowed",
		);
	});
	it.each([
		"s3:PutObjectTagging",
		"s3:PutObjectVersionTagging",
		"s3:DeleteObjectTagging",
		"s3:DeleteObjectVersionTagging",
	])("cannot %s a dataset object", async (action) => {
		expect(await asUploader(action, "chat/v1/train.jsonl", promoteTags)).toBe("ExplicitlyDenied");
	});
	it("cannot bring ftguard tags in by upload (any letter case) or by copy", async () => {
		expect(await asUploader("s3:PutObject", "chat/v1/train.jsonl", promoteTags)).toBe("ExplicitlyDenied");
		const upper = { "s3:RequestObjectTagKeys": ["FTGUARD:STATUS"], "s3:RequestObjectTag/FTGUARD:STATUS": "PROMOTABLE" };
		expect(await asUploader("s3:PutObject", "chat/v1/train.jsonl", upper)).toBe("ExplicitlyDenied");
		expect(
			await asUploader("s3:PutObject", "chat/v1/train.jsonl", { "s3:x-amz-copy-source": "other/promoted.jsonl" }),
		).toBe("ExplicitlyDenied");
	});
	it.each([`chat/v1/${DATASET_REPORT}`, `chat/v1/${DATASET_LINEAGE}`, `a/b/c/${DATASET_REPORT}`])(
		"cannot write, overwrite or delete the gate's %s",
		async (key) => {
			for (const action of ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"]) {
				expect(await asUploader(action, key), action).toBe("ExplicitlyDenied");
			}
		},
	);
	it.each(["verdict", "scanner", "baseModelGate", "training"] as const)(
		"the %s role cannot tag datasets or write a dataset report either, even with s3:*",
		async (role) => {
			expect(await onDatasets(role, "s3:PutObjectVersionTagging", "chat/v1/train.jsonl", promoteTags, true)).toBe(
				"ExplicitlyDenied",
			);
			expect(await onDatasets(role, "s3:PutObject", `chat/v1/${DATASET_REPORT}`, {}, true)).toBe("ExplicitlyDenied");
		},
	);
});

describe("the dataset gate role", () => {
	it.each([undefined, ScanStatus.SCANNING, ScanStatus.QUARANTINED, ScanStatus.PROMOTABLE])(
		"lists and reads every dataset version whatever its status (%s)",
		async (status) => {
			for (const action of ["s3:GetObject", "s3:GetObjectVersion"]) {
				expect(await onDatasets("datasetGate", action, "chat/v1/train.jsonl", statusContext(status)), action).toBe(
					"Allowed",
				);
			}
			expect(await onDatasets("datasetGate", "s3:ListBucket", `arn:aws:s3:::${datasetBucket}`)).toBe("Allowed");
		},
	);
	it.each(["s3:GetObjectVersionTagging", "s3:PutObjectVersionTagging", "s3:PutObjectTagging"])(
		"reads and writes the tags of every version (%s), PROMOTABLE included",
		async (action) => {
			expect(await onDatasets("datasetGate", action, "chat/v1/train.jsonl", promoteTags)).toBe("Allowed");
			expect(await onDatasets("datasetGate", action, `chat/v1/${DATASET_MARKER}`, promoteTags)).toBe("Allowed");
		},
	);
	it.each([`chat/v1/${DATASET_REPORT}`, `chat/v1/${DATASET_LINEAGE}`, `org/chat/2025-01/${DATASET_REPORT}`])(
		"writes the report and lineage beside the data (%s)",
		async (key) => {
			expect(await onDatasets("datasetGate", "s3:PutObject", key)).toBe("Allowed");
		},
	);
	it.each([
		"chat/v1/train.jsonl",
		`chat/v1/${DATASET_MARKER}`,
		"chat/v1/ftguard-dataset-report.json.bak",
		DATASET_REPORT,
	])("cannot write the data file %s, even with s3:*", async (key) => {
		expect(await onDatasets("datasetGate", "s3:PutObject", key)).not.toBe("Allowed");
		expect(await onDatasets("datasetGate", "s3:PutObject", key, {}, true)).toBe("ExplicitlyDenied");
	});
	it("cannot delete dataset objects, even with s3:*", async () => {
		for (const action of ["s3:DeleteObject", "s3:DeleteObjectVersion"]) {
			expect(await onDatasets("datasetGate", action, "chat/v1/train.jsonl"), action).not.toBe("Allowed");
			expect(await onDatasets("datasetGate", action, "chat/v1/train.jsonl", {}, true), action).toBe("ExplicitlyDenied");
		}
	});
	it("cannot touch checkpoints: no read, write or tag", async () => {
		const onCheckpoints = (action: string, admin = false) =>
			decide(
				asStackRole("datasetGate", {
					action,
					resource: object("jobs/A/model.safetensors"),
					context: { ...statusContext(ScanStatus.SCANNING), ...promoteTags, "aws:SourceVpce": s3EndpointId },
					...(admin ? { extraPolicies: [s3Admin] } : {}),
				}),
			);
		for (const action of ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:PutObjectVersionTagging"]) {
			expect(await onCheckpoints(action), action).not.toBe("Allowed");
		}
		expect(await onCheckpoints("s3:GetObjectVersion", true)).toBe("ExplicitlyDenied");
		expect(await onCheckpoints("s3:PutObjectVersionTagging", true)).toBe("ExplicitlyDenied");
	});
	it("reads nothing of the base-model bucket but the deployed policy object, and tags nothing there", async () => {
		const onBaseModels = (action: string, key: string, admin = false) =>
			decide({
				roleArn: resolver.roleArn(roles.datasetGate),
				identityPolicies: [...resolver.identityPolicies(roles.datasetGate), ...(admin ? [s3Admin] : [])],
				action,
				resource: `arn:aws:s3:::${baseModelBucket}/${key}`,
				resourcePolicy: baseModelPolicy,
				context: { "aws:SourceVpce": s3EndpointId },
			});
		expect(await onBaseModels("s3:GetObject", policyKey)).toBe("Allowed");
		expect(await onBaseModels("s3:GetObject", "llama/model.safetensors")).not.toBe("Allowed");
		expect(await onBaseModels("s3:PutObject", "llama/model.safetensors")).not.toBe("Allowed");
		expect(await onBaseModels("s3:PutObjectVersionTagging", "llama/model.safetensors", true)).toBe("ExplicitlyDenied");
	});
	it("writes nothing to the report bucket", async () => {
		const decision = await decide({
			roleArn: resolver.roleArn(roles.datasetGate),
			identityPolicies: resolver.identityPolicies(roles.datasetGate),
			action: "s3:PutObject",
			resource: `arn:aws:s3:::${reportBucket}/scans/x/verdict.json`,
			resourcePolicy: reportPolicy,
			context: { "aws:SourceVpce": s3EndpointId },
		});
		expect(decision).not.toBe("Allowed");
	});
	it("submits dataset scan jobs to the dataset queue and definition only, never the GPU queue", async () => {
		const submit = (resource: string) =>
			decide({
				roleArn: resolver.roleArn(roles.datasetGate),
				identityPolicies: resolver.identityPolicies(roles.datasetGate),
				action: "batch:SubmitJob",
				resource,
			});
		expect(await submit(batchArns.datasetQueue)).toBe("Allowed");
		expect(await submit(batchArns.datasetJobDefinition)).toBe("Allowed");
		expect(await submit(batchArns.gpuQueue)).not.toBe("Allowed");
		expect(await submit(`arn:aws:batch:us-east-1:${ACCOUNT}:job-definition/other:1`)).not.toBe("Allowed");
	});
});

// ---- the gates' writes and reads count only through the VPC's S3 gateway endpoint (bucket policies DenyGateWritesOutsideVpc) ----

describe("gate writes and reads are accepted only through the VPC's S3 gateway endpoint", () => {
	const gates = () =>
		[
			{ role: "baseModelGate", bucket: baseModelBucket, policy: baseModelPolicy },
			{ role: "datasetGate", bucket: datasetBucket, policy: datasetPolicy },
		] as const;
	/** A gate role's request in its own bucket, with the S3 gateway endpoint's policy on the path. */
	const asGate = (
		gate: ReturnType<typeof gates>[number],
		action: string,
		key: string,
		context: Record<string, string | string[]>,
	) =>
		decide({
			roleArn: resolver.roleArn(roles[gate.role]),
			identityPolicies: resolver.identityPolicies(roles[gate.role]),
			action,
			resource: `arn:aws:s3:::${gate.bucket}/${key}`,
			resourcePolicy: gate.policy,
			vpcEndpointPolicy: endpointPolicy,
			context,
		});
	it.each(["s3:PutObjectTagging", "s3:PutObjectVersionTagging"])(
		"each gate role promotes its own inputs through the endpoint (%s)",
		async (action) => {
			for (const gate of gates()) {
				const decision = await asGate(gate, action, "m/v1/model.safetensors", {
					...promoteTags,
					"aws:SourceVpce": s3EndpointId,
				});
				expect(decision, gate.role).toBe("Allowed");
			}
		},
	);
	it.each(["s3:PutObjectTagging", "s3:PutObjectVersionTagging"])(
		"the same credentials outside the VPC, or through another endpoint, cannot (%s)",
		async (action) => {
			for (const gate of gates()) {
				expect(await asGate(gate, action, "m/v1/model.safetensors", promoteTags), `${gate.role} no endpoint`).toBe(
					"ExplicitlyDenied",
				);
				const other = { ...promoteTags, "aws:SourceVpce": "vpce-0123456789abcdef0" };
				expect(await asGate(gate, action, "m/v1/model.safetensors", other), `${gate.role} another endpoint`).toBe(
					"ExplicitlyDenied",
				);
			}
		},
	);
	it.each([`chat/v1/${DATASET_REPORT}`, `chat/v1/${DATASET_LINEAGE}`])(
		"the dataset gate writes %s through the endpoint only",
		async (key) => {
			const [, datasetGate] = gates();
			expect(await asGate(datasetGate, "s3:PutObject", key, { "aws:SourceVpce": s3EndpointId })).toBe("Allowed");
			expect(await asGate(datasetGate, "s3:PutObject", key, {})).toBe("ExplicitlyDenied");
			expect(await asGate(datasetGate, "s3:PutObject", key, { "aws:SourceVpce": "vpce-0123456789abcdef0" })).toBe(
				"ExplicitlyDenied",
			);
		},
	);
	it.each(["s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging"])(
		"the gates read their unscanned inputs through the endpoint only (%s)",
		async (action) => {
			for (const gate of gates()) {
				const key = "m/v1/model.safetensors";
				expect(await asGate(gate, action, key, { "aws:SourceVpce": s3EndpointId }), gate.role).toBe("Allowed");
				expect(await asGate(gate, action, key, {}), `${gate.role} no endpoint`).toBe("ExplicitlyDenied");
				expect(await asGate(gate, action, key, { "aws:SourceVpce": "vpce-0123456789abcdef0" })).toBe(
					"ExplicitlyDenied",
				);
			}
		},
	);
	it("the gates' compute is where the endpoint is: functions and the Fargate job in the subnets it routes", () => {
		const { stack, template } = sharedFtguard();
		const resources = (template.toJSON() as CfnTemplate).Resources;
		const props = (construct: { node: { defaultChild?: unknown } }) =>
			resources[logicalId(construct)]?.Properties as Record<string, unknown>;
		const subnets = stack.network.subnets.subnets;
		const routeTables = subnets.map((sn) => stack.resolve(sn.routeTable.routeTableId));
		expect(props(stack.network.s3Endpoint as never).RouteTableIds).toEqual(expect.arrayContaining(routeTables));
		const subnetRefs = subnets.map((sn) => ({ Ref: logicalId(sn as never) }));
		const { datasetGate } = stack.scanPipeline;
		const compute = props(datasetGate.computeEnvironment as never).ComputeResources as Record<string, unknown>;
		expect(compute.Subnets).toEqual(subnetRefs);
		for (const fn of [stack.scanPipeline.baseModelFunction, datasetGate.function]) {
			expect((props(fn).VpcConfig as Record<string, unknown>).SubnetIds).toEqual(subnetRefs);
		}
	});
});
