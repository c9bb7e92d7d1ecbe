import { runSimulation, type Simulation } from "@cloud-copilot/iam-simulate";
import { Validations } from "aws-cdk-lib";
import { beforeAll, describe, expect, it } from "vitest";
import { ScanStatus, STATUS_TAG } from "../../lib/core/pipeline/names.js";
import { BLOCK_JOB_IMDS, JOB_USER } from "../../lib/infra/backdoor-batch-job.js";
import {
	ACCOUNT,
	type CfnTemplate,
	decide,
	type PolicyDocument,
	REGION,
	s3EndpointPolicy,
	TemplateResolver,
} from "./helpers/iam.js";
import { logicalId, synthFtguard } from "./helpers/stack.js";

// Issue 14: defects that only show in a real account, checked offline on the synthesized template (iam-simulate over
// the resolved policies, as helpers/iam.ts resolves them for ACCOUNT / REGION).

const FOREIGN = "444455556666";
const REFERENCE = {
	data: "s3://ftguard-reference/digits/x.npy",
	labels: "s3://ftguard-reference/digits/y.npy",
	texts: "s3://ftguard-reference/text/ref.jsonl",
	tokenizer: "s3://ftguard-reference/text/tokenizer.json",
};

let json: CfnTemplate;
let resolver: TemplateResolver;
let ids: Record<
	| "topic"
	| "topicKey"
	| "checkpoint"
	| "report"
	| "baseModel"
	| "jobRole"
	| "verdict"
	| "sweeper"
	| "scanner"
	| "stateMachineRole"
	| "startQueue"
	| "sweepQueue"
	| "startRule"
	| "sweepRule"
	| "startRole"
	| "jobDefinition"
	| "computeEnvironment"
	| "flowLogGroup"
	| "jobLogGroup",
	string
>;
let policyKey: string;
/** The reason given for the instance role's AwsSolutions-IAM4 acknowledgement (construct metadata, not the template). */
let instanceRoleAcknowledgement: string;
let s3EndpointId: string;

beforeAll(() => {
	const { stack, template } = synthFtguard({
		scanPipeline: {
			policy: {
				referenceData: [
					{ family: "digits", dataUri: REFERENCE.data, labelsUri: REFERENCE.labels },
					{ family: "bert", dataUri: REFERENCE.texts, tokenizerUri: REFERENCE.tokenizer },
				],
			},
		},
	});
	json = template.toJSON() as CfnTemplate;
	resolver = new TemplateResolver(json);
	const p = stack.scanPipeline;
	ids = {
		topic: logicalId(stack.alarms.topic),
		topicKey: logicalId(stack.alarms.topicKey as never),
		checkpoint: logicalId(stack.store.checkpointBucket),
		report: logicalId(stack.store.reportBucket),
		baseModel: logicalId(stack.store.baseModelBucket),
		jobRole: logicalId(stack.store.backdoorJobRole),
		verdict: logicalId(stack.store.verdictRole),
		sweeper: logicalId(stack.store.sweeperRole),
		scanner: logicalId(stack.store.scannerRole),
		stateMachineRole: logicalId(p.stateMachine.role as never),
		startQueue: logicalId(p.startDeadLetterQueue),
		sweepQueue: logicalId(p.sweepDeadLetterQueue),
		startRule: logicalId(p.rule),
		sweepRule: logicalId(p.sweepSchedule),
		startRole: logicalId(p.startRole),
		jobDefinition: logicalId(p.jobDefinition),
		computeEnvironment: logicalId(p.computeEnvironment),
		flowLogGroup: logicalId(stack.network.flowLogGroup),
		jobLogGroup: logicalId(p.jobLogGroup),
	};
	policyKey = p.policyUri.split("/").slice(3).join("/");
	const acknowledged = (p.computeEnvironment.instanceRole?.node.metadata ?? [])
		.filter((e) => e.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
		.flatMap((e) => Object.entries(e.data as Record<string, string>));
	instanceRoleAcknowledgement =
		acknowledged.find(([id]) => id.includes("AmazonEC2ContainerServiceforEC2Role"))?.[1] ?? "";
	s3EndpointId = resolver.resolve({ Ref: logicalId(stack.network.s3Endpoint as never) }) as string;
});

type Decision = "Allowed" | "ExplicitlyDenied" | "ImplicitlyDenied";

/** A request by any principal (a service principal, another account's role) against one resource. */
async function simulate(options: {
	principal: string;
	action: string;
	resource: string;
	resourceAccount?: string;
	identityPolicies?: { name: string; policy: unknown }[];
	resourcePolicy?: unknown;
	vpcEndpointPolicy?: unknown;
	context?: Record<string, string | string[]>;
}): Promise<Decision> {
	const simulation: Simulation = {
		request: {
			principal: options.principal,
			action: options.action,
			resource: { resource: options.resource, accountId: options.resourceAccount ?? ACCOUNT },
			contextVariables: { "aws:SecureTransport": "true", ...options.context },
		},
		identityPolicies: (options.identityPolicies ?? []) as never,
		serviceControlPolicies: [],
		resourceControlPolicies: [],
		...(options.resourcePolicy ? { resourcePolicy: options.resourcePolicy } : {}),
		...(options.vpcEndpointPolicy
			? { vpcEndpointPolicies: [{ name: "endpoint", policy: options.vpcEndpointPolicy }] }
			: {}),
	};
	const result = await runSimulation(simulation, { simulationMode: "Strict" });
	if (result.resultType === "error") throw new Error(`simulation invalid: ${JSON.stringify(result.errors)}`);
	return result.overallResult as Decision;
}

function properties(id: string): Record<string, unknown> {
	const resource = json.Resources[id];
	if (!resource) throw new Error(`no resource ${id}`);
	return (resource.Properties ?? {}) as Record<string, unknown>;
}

/** The resolved policy document of the one resource of `type` whose `refProperty` names `targetId`. */
function attachedPolicy(type: string, refProperty: string, targetId: string): PolicyDocument {
	for (const resource of Object.values(json.Resources)) {
		if (resource.Type !== type) continue;
		const targets = [resource.Properties?.[refProperty]].flat() as { Ref?: string }[];
		if (targets.some((t) => t?.Ref === targetId)) {
			return resolver.resolve(resource.Properties?.PolicyDocument ?? null) as unknown as PolicyDocument;
		}
	}
	throw new Error(`no ${type} for ${targetId}`);
}

/** CDK writes AnyPrincipal as {"AWS":"*"}; AWS reads it as "*", which is the form iam-simulate accepts in endpoint policies. */
function anyPrincipalAsStar(policy: PolicyDocument): PolicyDocument {
	for (const statement of policy.Statement) {
		if (JSON.stringify(statement.Principal) === '{"AWS":"*"}') statement.Principal = "*";
	}
	return policy;
}

const s3Admin = {
	name: "s3-admin",
	policy: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "s3:*", Resource: "*" }] },
};
const allowAll = {
	name: "admin",
	policy: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "*", Resource: "*" }] },
};

describe("defect 1: services can deliver to the stack's topic and queues", () => {
	const alarmOf = (account: string) => ({
		"aws:SourceAccount": account,
		"aws:SourceArn": `arn:aws:cloudwatch:${REGION}:${account}:alarm:ftguard-scan-errors`,
	});
	const topicArn = () => resolver.resolve({ Ref: ids.topic }) as string;
	const topicPolicy = () => attachedPolicy("AWS::SNS::TopicPolicy", "Topics", ids.topic);

	it("CloudWatch may publish this account's alarms to the alarm topic", async () => {
		const decision = await simulate({
			principal: "cloudwatch.amazonaws.com",
			action: "sns:Publish",
			resource: topicArn(),
			resourcePolicy: topicPolicy(),
			context: alarmOf(ACCOUNT),
		});
		expect(decision).toBe("Allowed");
	});
	it("an alarm of another account may not publish to it", async () => {
		const decision = await simulate({
			principal: "cloudwatch.amazonaws.com",
			action: "sns:Publish",
			resource: topicArn(),
			resourcePolicy: topicPolicy(),
			context: alarmOf(FOREIGN),
		});
		expect(decision).not.toBe("Allowed");
	});
	it("an alarm ARN of another account is refused even with this account as source account", async () => {
		const decision = await simulate({
			principal: "cloudwatch.amazonaws.com",
			action: "sns:Publish",
			resource: topicArn(),
			resourcePolicy: topicPolicy(),
			context: { ...alarmOf(FOREIGN), "aws:SourceAccount": ACCOUNT },
		});
		expect(decision).not.toBe("Allowed");
	});
	// AWS documents the key statement for CloudWatch → encrypted topic without conditions (SNS Developer Guide,
	// "Enable compatibility between event sources from AWS services and encrypted topics") and does not say that
	// CloudWatch's KMS calls carry aws:SourceArn / aws:SourceAccount: the key must not depend on them, or every
	// alarm is dropped silently. The topic policy (above) still refuses other accounts' alarms.
	it.each(["kms:Decrypt", "kms:GenerateDataKey"])(
		"the topic key lets CloudWatch %s whether or not the KMS request carries a source",
		async (action) => {
			const keyPolicy = resolver.resolve(properties(ids.topicKey).KeyPolicy as never);
			const keyArn = `arn:aws:kms:${REGION}:${ACCOUNT}:key/${ids.topicKey}`;
			const as = (context: Record<string, string>) =>
				simulate({
					principal: "cloudwatch.amazonaws.com",
					action,
					resource: keyArn,
					resourcePolicy: keyPolicy,
					context,
				});
			expect(await as(alarmOf(ACCOUNT))).toBe("Allowed");
			expect(await as({}), "no aws:SourceArn / aws:SourceAccount on the KMS call").toBe("Allowed");
		},
	);
	it.each([
		["startQueue", "startRule", "sweepRule"],
		["sweepQueue", "sweepRule", "startRule"],
	] as const)("EventBridge may dead-letter into %s from its own rule only", async (queue, rule, otherRule) => {
		const queueArn = resolver.resolve({ "Fn::GetAtt": [ids[queue], "Arn"] }) as string;
		const policy = attachedPolicy("AWS::SQS::QueuePolicy", "Queues", ids[queue]);
		const from = (ruleId: string) =>
			simulate({
				principal: "events.amazonaws.com",
				action: "sqs:SendMessage",
				resource: queueArn,
				resourcePolicy: policy,
				context: {
					"aws:SourceAccount": ACCOUNT,
					"aws:SourceArn": resolver.resolve({ "Fn::GetAtt": [ruleId, "Arn"] }) as string,
				},
			});
		expect(await from(ids[rule])).toBe("Allowed");
		expect(await from(ids[otherRule])).not.toBe("Allowed");
	});
	it.each([
		["startRole", "startQueue"],
		["sweeper", "sweepQueue"],
	] as const)(
		"Lambda's async dead letters: %s may send to %s (Lambda sends as the function's role)",
		async (role, queue) => {
			const decision = await decide({
				roleArn: resolver.roleArn(ids[role]),
				identityPolicies: resolver.identityPolicies(ids[role]),
				action: "sqs:SendMessage",
				resource: resolver.resolve({ "Fn::GetAtt": [ids[queue], "Arn"] }) as string,
				resourcePolicy: attachedPolicy("AWS::SQS::QueuePolicy", "Queues", ids[queue]),
			});
			expect(decision).toBe("Allowed");
		},
	);
	it("the queues need no key policy: they are SQS-managed (SSE-SQS)", () => {
		for (const queue of [ids.startQueue, ids.sweepQueue]) {
			expect(properties(queue)).toMatchObject({ SqsManagedSseEnabled: true });
			expect(properties(queue).KmsMasterKeyId).toBeUndefined();
		}
	});
});

describe("defect 2: replica writes cannot land objects in the verdict-carrying buckets", () => {
	const replicaActions = [
		"s3:ReplicateObject",
		"s3:ReplicateTags",
		"s3:ReplicateDelete",
		"s3:ObjectOwnerOverrideToBucketOwner",
	];
	it.each(["checkpoint", "report"] as const)(
		"a principal with s3:* on everything is denied every replica write into the %s bucket",
		async (bucket) => {
			const resourcePolicy = resolver.bucketPolicy(ids[bucket]);
			const resource = `arn:aws:s3:::${resolver.bucketName(ids[bucket])}/jobs/A/model.safetensors`;
			for (const action of replicaActions) {
				const decision = await decide({
					roleArn: `arn:aws:iam::${ACCOUNT}:role/replication`,
					identityPolicies: [s3Admin],
					action,
					resource,
					resourcePolicy,
					context: {
						"s3:RequestObjectTagKeys": [STATUS_TAG],
						[`s3:RequestObjectTag/${STATUS_TAG}`]: ScanStatus.PROMOTABLE,
					},
				});
				expect(decision, action).toBe("ExplicitlyDenied");
			}
		},
	);
	it("…while the same principal can still read a PROMOTABLE checkpoint (the deny is the replica writes only)", async () => {
		const decision = await decide({
			roleArn: `arn:aws:iam::${ACCOUNT}:role/replication`,
			identityPolicies: [s3Admin],
			action: "s3:GetObject",
			resource: `arn:aws:s3:::${resolver.bucketName(ids.checkpoint)}/jobs/A/model.safetensors`,
			resourcePolicy: resolver.bucketPolicy(ids.checkpoint),
			context: { [`s3:ExistingObjectTag/${STATUS_TAG}`]: ScanStatus.PROMOTABLE },
		});
		expect(decision).toBe("Allowed");
	});
});

/** The property that holds each type's physical name. */
const NAME_PROPERTY: Readonly<Record<string, string>> = {
	"AWS::Logs::LogGroup": "LogGroupName",
	"AWS::S3::Bucket": "BucketName",
	"AWS::IAM::Role": "RoleName",
	"AWS::IAM::ManagedPolicy": "ManagedPolicyName",
	"AWS::IAM::InstanceProfile": "InstanceProfileName",
	"AWS::Lambda::Function": "FunctionName",
	"AWS::SQS::Queue": "QueueName",
	"AWS::SNS::Topic": "TopicName",
	"AWS::KMS::Alias": "AliasName",
	"AWS::StepFunctions::StateMachine": "StateMachineName",
	"AWS::Events::Rule": "Name",
	"AWS::CloudWatch::Alarm": "AlarmName",
	"AWS::EC2::LaunchTemplate": "LaunchTemplateName",
	"AWS::EC2::SecurityGroup": "GroupName",
	"AWS::Batch::ComputeEnvironment": "ComputeEnvironmentName",
	"AWS::Batch::JobQueue": "JobQueueName",
	"AWS::Batch::JobDefinition": "JobDefinitionName",
	"AWS::ECR::Repository": "RepositoryName",
};

/** A name is fixed when it refers to no resource of the template (literals and pseudo parameters only). */
function isFixed(name: unknown): boolean {
	const text = JSON.stringify(name);
	return ![...text.matchAll(/"(?:Ref|Fn::GetAtt)":\s*(?:\["|")([^"]+)"/g)].some((m) => !m[1]?.startsWith("AWS::"));
}

describe("defect 3: no fixed-name resource blocks a redeploy after a failed first deploy", () => {
	const named = () =>
		Object.entries(
			json.Resources as Record<string, { Type: string; Properties?: Record<string, unknown>; DeletionPolicy?: string }>,
		).filter(([, r]) => {
			const property = NAME_PROPERTY[r.Type];
			return property !== undefined && r.Properties?.[property] !== undefined && isFixed(r.Properties[property]);
		});
	it("finds the named log groups (the check is not vacuous)", () => {
		const names = named().map(([, r]) => r.Properties?.LogGroupName);
		expect(names).toEqual(
			expect.arrayContaining(["/ftguard/Ftguard/lambda/mark", "/aws/vendedlogs/states/ftguard-Ftguard-scan"]),
		);
		expect(names.length).toBeGreaterThanOrEqual(9);
	});
	it("no resource with a fixed physical name has DeletionPolicy Retain: RetainExceptOnCreate where retained", () => {
		for (const [id, resource] of named()) {
			expect(resource.DeletionPolicy, id).not.toBe("Retain");
			expect(["RetainExceptOnCreate", "Delete", undefined], id).toContain(resource.DeletionPolicy);
		}
		const logGroups = named().filter(([, r]) => r.Type === "AWS::Logs::LogGroup");
		for (const [id, resource] of logGroups) expect(resource.DeletionPolicy, id).toBe("RetainExceptOnCreate");
	});
	it("the unnamed flow-log and job log groups are not left behind by a failed create either", () => {
		for (const id of [ids.flowLogGroup, ids.jobLogGroup]) {
			expect((json.Resources[id] as { DeletionPolicy?: string }).DeletionPolicy, id).toBe("RetainExceptOnCreate");
		}
	});
});

describe("defect 4 (IAM): the state machine can follow and stop its Batch job", () => {
	const asStateMachine = (action: string, resource: string) =>
		decide({
			roleArn: resolver.roleArn(ids.stateMachineRole),
			identityPolicies: resolver.identityPolicies(ids.stateMachineRole),
			action,
			resource,
		});
	const job = `arn:aws:batch:${REGION}:${ACCOUNT}:job/0a1b2c3d-job`;
	it("batch:DescribeJobs (no resource-level permissions)", async () => {
		expect(await asStateMachine("batch:DescribeJobs", "*")).toBe("Allowed");
	});
	it("batch:TerminateJob on this account's jobs", async () => {
		expect(await asStateMachine("batch:TerminateJob", job)).toBe("Allowed");
		expect(await asStateMachine("batch:TerminateJob", `arn:aws:batch:${REGION}:${FOREIGN}:job/x`)).not.toBe("Allowed");
	});
	it.each(["events:PutTargets", "events:PutRule", "events:DescribeRule"])(
		"%s on the managed rule StepFunctionsGetEventsForBatchJobsRule",
		async (action) => {
			expect(
				await asStateMachine(action, `arn:aws:events:${REGION}:${ACCOUNT}:rule/StepFunctionsGetEventsForBatchJobsRule`),
			).toBe("Allowed");
		},
	);
});

describe("defect 6: the Batch job knows its region", () => {
	it("sets AWS_REGION and AWS_DEFAULT_REGION to the stack's region", () => {
		const env = (
			properties(ids.jobDefinition).ContainerProperties as { Environment: { Name: string; Value: unknown }[] }
		).Environment;
		expect(env).toEqual(
			expect.arrayContaining([
				{ Name: "AWS_REGION", Value: { Ref: "AWS::Region" } },
				{ Name: "AWS_DEFAULT_REGION", Value: { Ref: "AWS::Region" } },
			]),
		);
	});
});

/** A request for each interface endpoint's service: an action on a resource of `account`. */
const ENDPOINT_CALLS: Readonly<Record<string, (account: string) => { action: string; resource: string }>> = {
	EcrApi: (a) => ({ action: "ecr:BatchGetImage", resource: `arn:aws:ecr:${REGION}:${a}:repository/images` }),
	EcrDocker: (a) => ({
		action: "ecr:GetDownloadUrlForLayer",
		resource: `arn:aws:ecr:${REGION}:${a}:repository/images`,
	}),
	Ecs: (a) => ({ action: "ecs:Poll", resource: `arn:aws:ecs:${REGION}:${a}:container-instance/c/1` }),
	EcsAgent: (a) => ({ action: "ecs:Poll", resource: `arn:aws:ecs:${REGION}:${a}:container-instance/c/1` }),
	EcsTelemetry: (a) => ({
		action: "ecs:StartTelemetrySession",
		resource: `arn:aws:ecs:${REGION}:${a}:container-instance/c/1`,
	}),
	Logs: (a) => ({ action: "logs:PutLogEvents", resource: `arn:aws:logs:${REGION}:${a}:log-group:exfil:log-stream:s` }),
	Sts: (a) => ({ action: "sts:AssumeRole", resource: `arn:aws:iam::${a}:role/exfil` }),
};

describe("defect 7: the interface endpoints serve this account's principals and resources only", () => {
	const endpointPolicy = (name: string): PolicyDocument => {
		const entry = Object.entries(json.Resources).find(
			([id, r]) =>
				r.Type === "AWS::EC2::VPCEndpoint" &&
				id.startsWith(`NetworkVpc${name}`) &&
				r.Properties?.VpcEndpointType === "Interface",
		);
		if (!entry) throw new Error(`no interface endpoint ${name}`);
		const document = entry[1].Properties?.PolicyDocument;
		expect(document, `${name} has an endpoint policy`).toBeDefined();
		return anyPrincipalAsStar(resolver.resolve(document ?? null) as unknown as PolicyDocument);
	};
	/** A foreign resource that trusts everyone: only the endpoint policy can stop the call. */
	const openResourcePolicy = (action: string, resource: string) => ({
		Version: "2012-10-17",
		Statement: [
			{ Effect: "Allow", Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` }, Action: action, Resource: resource },
		],
	});
	it.each(Object.keys(ENDPOINT_CALLS))(
		"%s: a principal of this account reaches a resource of this account",
		async (name) => {
			const call = (ENDPOINT_CALLS[name] as (a: string) => { action: string; resource: string })(ACCOUNT);
			const decision = await simulate({
				principal: `arn:aws:sts::${ACCOUNT}:assumed-role/job/session`,
				...call,
				identityPolicies: [allowAll],
				vpcEndpointPolicy: endpointPolicy(name),
				context: { "aws:PrincipalAccount": ACCOUNT, "aws:ResourceAccount": ACCOUNT },
			});
			expect(decision).toBe("Allowed");
		},
	);
	it.each(Object.keys(ENDPOINT_CALLS))(
		"%s: foreign credentials cannot use it, even on their own account's resources",
		async (name) => {
			const call = (ENDPOINT_CALLS[name] as (a: string) => { action: string; resource: string })(FOREIGN);
			const decision = await simulate({
				principal: `arn:aws:sts::${FOREIGN}:assumed-role/attacker/session`,
				...call,
				resourceAccount: FOREIGN,
				identityPolicies: [allowAll],
				vpcEndpointPolicy: endpointPolicy(name),
				context: { "aws:PrincipalAccount": FOREIGN, "aws:ResourceAccount": FOREIGN },
			});
			expect(decision).not.toBe("Allowed");
		},
	);
	it.each(Object.keys(ENDPOINT_CALLS))(
		"%s: this account's principals cannot reach another account's resources",
		async (name) => {
			const call = (ENDPOINT_CALLS[name] as (a: string) => { action: string; resource: string })(FOREIGN);
			const decision = await simulate({
				principal: `arn:aws:sts::${ACCOUNT}:assumed-role/job/session`,
				...call,
				resourceAccount: FOREIGN,
				identityPolicies: [allowAll],
				resourcePolicy: openResourcePolicy(call.action, call.resource),
				vpcEndpointPolicy: endpointPolicy(name),
				context: { "aws:PrincipalAccount": ACCOUNT, "aws:ResourceAccount": FOREIGN },
			});
			expect(decision).toBe("ExplicitlyDenied");
		},
	);
	it("web identity (unsigned, no principal account) may assume this account's roles through the STS endpoint only", async () => {
		const provider = `arn:aws:iam::${ACCOUNT}:oidc-provider/oidc.example.com`;
		const assume = (account: string) =>
			simulate({
				principal: provider,
				action: "sts:AssumeRoleWithWebIdentity",
				resource: `arn:aws:iam::${account}:role/job`,
				resourceAccount: account,
				resourcePolicy: {
					Version: "2012-10-17",
					Statement: [{ Effect: "Allow", Principal: { Federated: provider }, Action: "sts:AssumeRoleWithWebIdentity" }],
				},
				vpcEndpointPolicy: endpointPolicy("Sts"),
				context: { "aws:ResourceAccount": account },
			});
		expect(await assume(ACCOUNT)).toBe("Allowed");
		expect(await assume(FOREIGN)).not.toBe("Allowed");
	});
	it("actions without a resource still work for this account (ecr:GetAuthorizationToken)", async () => {
		const decision = await simulate({
			principal: `arn:aws:sts::${ACCOUNT}:assumed-role/job/session`,
			action: "ecr:GetAuthorizationToken",
			resource: "*",
			identityPolicies: [allowAll],
			vpcEndpointPolicy: endpointPolicy("EcrApi"),
			context: { "aws:PrincipalAccount": ACCOUNT },
		});
		expect(decision).toBe("Allowed");
	});
});

describe("defect 8: the GPU job has its own least-privilege role", () => {
	const checkpointObject = () => `arn:aws:s3:::${resolver.bucketName(ids.checkpoint)}/jobs/A/model.onnx`;
	/** The role the job definition actually runs as (what a container on the GPU host gets). */
	const jobDefinitionRole = (): string =>
		(properties(ids.jobDefinition).ContainerProperties as { JobRoleArn: { "Fn::GetAtt": [string, string] } })
			.JobRoleArn["Fn::GetAtt"][0];
	const asJob = (
		action: string,
		resource: string,
		resourcePolicy: PolicyDocument,
		context: Record<string, string> = {},
	) =>
		decide({
			roleArn: resolver.roleArn(jobDefinitionRole()),
			identityPolicies: resolver.identityPolicies(jobDefinitionRole()),
			action,
			resource,
			resourcePolicy,
			context,
		});
	it("the job definition runs as the job role, which no function uses", () => {
		expect((properties(ids.jobDefinition).ContainerProperties as { JobRoleArn: unknown }).JobRoleArn).toEqual({
			"Fn::GetAtt": [ids.jobRole, "Arn"],
		});
		for (const [id, r] of Object.entries(json.Resources)) {
			if (r.Type !== "AWS::Lambda::Function") continue;
			expect(JSON.stringify(r.Properties?.Role), id).not.toContain(ids.jobRole);
		}
	});
	it("is trusted by ECS tasks of this account only", () => {
		expect(properties(ids.jobRole).AssumeRolePolicyDocument).toMatchObject({
			Statement: [
				{
					Principal: { Service: "ecs-tasks.amazonaws.com" },
					Condition: { StringEquals: { "aws:SourceAccount": { Ref: "AWS::AccountId" } } },
				},
			],
		});
	});
	it("reads the pinned checkpoint version whatever its status, never an unpinned read", async () => {
		const policy = resolver.bucketPolicy(ids.checkpoint);
		// through the stack's S3 gateway endpoint: the compute environment is in the isolated subnets
		const scanning = { [`s3:ExistingObjectTag/${STATUS_TAG}`]: ScanStatus.SCANNING, "aws:SourceVpce": s3EndpointId };
		expect(await asJob("s3:GetObjectVersion", checkpointObject(), policy, scanning)).toBe("Allowed");
		expect(await asJob("s3:GetObject", checkpointObject(), policy, scanning)).not.toBe("Allowed");
	});
	it("cannot read a checkpoint with its credentials outside the VPC (no or another endpoint)", async () => {
		const policy = resolver.bucketPolicy(ids.checkpoint);
		const scanning = { [`s3:ExistingObjectTag/${STATUS_TAG}`]: ScanStatus.SCANNING };
		expect(await asJob("s3:GetObjectVersion", checkpointObject(), policy, scanning)).toBe("ExplicitlyDenied");
		const elsewhere = { ...scanning, "aws:SourceVpce": "vpce-0123456789abcdef0" };
		expect(await asJob("s3:GetObjectVersion", checkpointObject(), policy, elsewhere)).toBe("ExplicitlyDenied");
	});
	it("cannot write, tag or list checkpoints", async () => {
		const policy = resolver.bucketPolicy(ids.checkpoint);
		for (const action of ["s3:PutObject", "s3:PutObjectTagging", "s3:PutObjectVersionTagging", "s3:DeleteObject"]) {
			expect(await asJob(action, checkpointObject(), policy), action).not.toBe("Allowed");
		}
		expect(await asJob("s3:ListBucket", `arn:aws:s3:::${resolver.bucketName(ids.checkpoint)}`, policy)).not.toBe(
			"Allowed",
		);
	});
	it("reads the deployed policy and exactly the reference data the policy names", async () => {
		const baseModel = resolver.bucketPolicy(ids.baseModel);
		const bm = resolver.bucketName(ids.baseModel);
		expect(await asJob("s3:GetObject", `arn:aws:s3:::${bm}/${policyKey}`, baseModel)).toBe("Allowed");
		expect(await asJob("s3:GetObject", `arn:aws:s3:::${bm}/models/base.safetensors`, baseModel)).not.toBe("Allowed");
		const ref = (uri: string) => `arn:aws:s3:::${uri.slice("s3://".length)}`;
		const open = {
			Version: "2012-10-17",
			Statement: [
				{ Effect: "Allow", Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` }, Action: "s3:GetObject", Resource: "*" },
			],
		};
		expect(await asJob("s3:GetObject", ref(REFERENCE.data), open as never)).toBe("Allowed");
		expect(await asJob("s3:GetObject", ref(REFERENCE.labels), open as never)).toBe("Allowed");
		expect(await asJob("s3:GetObject", ref(REFERENCE.texts), open as never)).toBe("Allowed");
		expect(await asJob("s3:GetObject", ref(REFERENCE.tokenizer), open as never)).toBe("Allowed");
		expect(await asJob("s3:GetObject", ref("s3://ftguard-reference/other.npy"), open as never)).not.toBe("Allowed");
		expect(await asJob("s3:GetObject", ref("s3://ftguard-reference/text/other.json"), open as never)).not.toBe(
			"Allowed",
		);
	});
	it("writes only the backdoor folder of scan prefixes in the report bucket", async () => {
		const report = resolver.bucketPolicy(ids.report);
		const key = (k: string) => `arn:aws:s3:::${resolver.bucketName(ids.report)}/${k}`;
		expect(await asJob("s3:PutObject", key("scans/ftg-1/backdoor/0/report.json"), report)).toBe("Allowed");
		expect(await asJob("s3:GetObject", key("scans/ftg-1/backdoor/shards/nc-0.json"), report)).toBe("Allowed");
		expect(await asJob("s3:PutObject", key("scans/ftg-1/verdict.json"), report)).not.toBe("Allowed");
		expect(await asJob("s3:PutObject", key("scans/ftg-1/manifest.json"), report)).not.toBe("Allowed");
	});

	describe("verdict tags are written only through the VPC's S3 gateway endpoint", () => {
		const promote = {
			"s3:RequestObjectTagKeys": [STATUS_TAG],
			[`s3:RequestObjectTag/${STATUS_TAG}`]: ScanStatus.PROMOTABLE,
		};
		const asVerdict = (context: Record<string, string | string[]>) =>
			decide({
				roleArn: resolver.roleArn(ids.verdict),
				identityPolicies: resolver.identityPolicies(ids.verdict),
				action: "s3:PutObjectVersionTagging",
				resource: checkpointObject(),
				resourcePolicy: resolver.bucketPolicy(ids.checkpoint),
				vpcEndpointPolicy: s3EndpointPolicy(resolver, json),
				context,
			});
		it("the verdict role promotes through the endpoint", async () => {
			expect(await asVerdict({ ...promote, "aws:SourceVpce": s3EndpointId })).toBe("Allowed");
		});
		it("the same credentials outside the VPC (or through another endpoint) cannot", async () => {
			expect(await asVerdict(promote)).toBe("ExplicitlyDenied");
			expect(await asVerdict({ ...promote, "aws:SourceVpce": "vpce-0123456789abcdef0" })).toBe("ExplicitlyDenied");
		});
		it("the verdict record too: written through the endpoint only", async () => {
			const record = (context: Record<string, string>) =>
				decide({
					roleArn: resolver.roleArn(ids.verdict),
					identityPolicies: resolver.identityPolicies(ids.verdict),
					action: "s3:PutObject",
					resource: `arn:aws:s3:::${resolver.bucketName(ids.report)}/scans/ftg-1/verdict.json`,
					resourcePolicy: resolver.bucketPolicy(ids.report),
					context,
				});
			expect(await record({ "aws:SourceVpce": s3EndpointId })).toBe("Allowed");
			expect(await record({})).toBe("ExplicitlyDenied");
		});
		it("the sweeper (outside the VPC) still quarantines a SCANNING object", async () => {
			const decision = await decide({
				roleArn: resolver.roleArn(ids.sweeper),
				identityPolicies: resolver.identityPolicies(ids.sweeper),
				action: "s3:PutObjectVersionTagging",
				resource: checkpointObject(),
				resourcePolicy: resolver.bucketPolicy(ids.checkpoint),
				context: {
					"s3:RequestObjectTagKeys": [STATUS_TAG],
					[`s3:RequestObjectTag/${STATUS_TAG}`]: ScanStatus.QUARANTINED,
					[`s3:ExistingObjectTag/${STATUS_TAG}`]: ScanStatus.SCANNING,
				},
			});
			expect(decision).toBe("Allowed");
		});
		it("mark and record run in the VPC (so their requests carry the endpoint)", () => {
			for (const [id, r] of Object.entries(json.Resources)) {
				if (r.Type !== "AWS::Lambda::Function") continue;
				if (JSON.stringify(r.Properties?.Role).includes(ids.verdict)) {
					expect(r.Properties?.VpcConfig, id).toBeDefined();
				}
			}
		});
	});
});

describe("defect 9: job containers cannot reach the instance role", () => {
	const userData = (): string => {
		const template = Object.values(json.Resources).find((r) => r.Type === "AWS::EC2::LaunchTemplate");
		const data = (template?.Properties?.LaunchTemplateData as { UserData?: { "Fn::Base64": string } } | undefined)
			?.UserData;
		if (!data) throw new Error("the launch template has no user data");
		return data["Fn::Base64"];
	};
	it("the user data is a MIME multi-part archive (what Batch requires of launch templates)", () => {
		const text = userData();
		expect(text).toMatch(/^Content-Type: multipart\/mixed; boundary="([^"]+)"\nMIME-Version: 1\.0\n/);
		const boundary = /boundary="([^"]+)"/.exec(text)?.[1] as string;
		expect(text).toContain(`--${boundary}\nContent-Type: text/cloud-boothook; charset="utf-8"\n\n${BLOCK_JOB_IMDS}`);
		expect(text.trimEnd().endsWith(`--${boundary}--`)).toBe(true);
	});
	it("drops non-root (host-network) and bridge-network traffic to instance metadata", () => {
		const text = userData();
		expect(text).toContain("-I OUTPUT 1 -d 169.254.169.254/32 -m owner ! --uid-owner 0 -j DROP");
		expect(text).toContain("-I DOCKER-USER 1 -i docker+ -d 169.254.169.254/32 -j DROP");
	});
	it("the job runs as a non-root user, so the uid rule applies to it", () => {
		expect(JOB_USER).not.toMatch(/^0(:|$)/);
		expect((properties(ids.jobDefinition).ContainerProperties as { User?: string }).User).toBe(JOB_USER);
	});
	it("the instance role has only the ECS agent's managed policy", () => {
		const profileRole = Object.entries(json.Resources).find(
			([, r]) =>
				r.Type === "AWS::IAM::Role" &&
				JSON.stringify(r.Properties?.AssumeRolePolicyDocument).includes("ec2.amazonaws.com"),
		);
		if (!profileRole) throw new Error("no instance role");
		const [roleId, role] = profileRole;
		expect(JSON.stringify(role.Properties?.ManagedPolicyArns)).toContain("AmazonEC2ContainerServiceforEC2Role");
		expect(role.Properties?.ManagedPolicyArns).toHaveLength(1);
		expect(role.Properties?.Policies).toBeUndefined();
		const attached = Object.values(json.Resources).filter(
			(r) => r.Type === "AWS::IAM::Policy" && JSON.stringify(r.Properties?.Roles).includes(roleId),
		);
		expect(attached).toEqual([]);
	});
	it("the cdk-nag acknowledgement on the instance role says how the job is kept from it", () => {
		expect(instanceRoleAcknowledgement).toMatch(/host mode/);
		expect(instanceRoleAcknowledgement).not.toMatch(/containers cannot reach/i);
	});
});

describe("defect 11", () => {
	it("the state machine logs to /aws/vendedlogs/states/…", () => {
		const machine = Object.values(json.Resources).find((r) => r.Type === "AWS::StepFunctions::StateMachine");
		const destination = JSON.stringify(machine?.Properties?.LoggingConfiguration);
		const groupId = /"([A-Za-z0-9]+)","Arn"/.exec(destination)?.[1] as string;
		expect(properties(groupId).LogGroupName).toMatch(/^\/aws\/vendedlogs\/states\//);
	});
	it("the GPU compute environment spans every isolated subnet (one per availability zone)", () => {
		const subnets = Object.entries(json.Resources)
			.filter(([, r]) => r.Type === "AWS::EC2::Subnet")
			.map(([id]) => ({ Ref: id }));
		expect(subnets.length).toBeGreaterThanOrEqual(2);
		const azs = new Set(
			Object.values(json.Resources)
				.filter((r) => r.Type === "AWS::EC2::Subnet")
				.map((r) => JSON.stringify(r.Properties?.AvailabilityZone)),
		);
		expect(azs.size).toBe(subnets.length);
		const resources = properties(ids.computeEnvironment).ComputeResources as { Subnets: unknown[] };
		expect(resources.Subnets).toEqual(expect.arrayContaining(subnets));
		expect(resources.Subnets.length).toBe(subnets.length);
	});

	describe("uploads name the store's key by ARN or key id; aliases are refused", () => {
		const upload = (keyId: string) =>
			decide({
				roleArn: `arn:aws:iam::${ACCOUNT}:role/checkpoint-uploader`,
				identityPolicies: [s3Admin],
				action: "s3:PutObject",
				resource: `arn:aws:s3:::${resolver.bucketName(ids.checkpoint)}/jobs/A/model.safetensors`,
				resourcePolicy: resolver.bucketPolicy(ids.checkpoint),
				context: {
					"s3:x-amz-server-side-encryption": "aws:kms",
					"s3:x-amz-server-side-encryption-aws-kms-key-id": keyId,
				},
			});
		const keyLogicalId = () =>
			Object.entries(json.Resources).find(
				([id, r]) => r.Type === "AWS::KMS::Key" && id.startsWith("StoreKey"),
			)?.[0] as string;
		it("the key ARN", async () => {
			expect(await upload(`arn:aws:kms:${REGION}:${ACCOUNT}:key/${keyLogicalId()}`)).toBe("Allowed");
		});
		it("the bare key id", async () => {
			expect(await upload(keyLogicalId())).toBe("Allowed");
		});
		it.each([
			"alias/ftguard",
			`arn:aws:kms:${REGION}:${ACCOUNT}:alias/ftguard`,
			`arn:aws:kms:${REGION}:${FOREIGN}:key/other`,
		])("not %s", async (keyId) => {
			expect(await upload(keyId)).toBe("ExplicitlyDenied");
		});
	});
});
