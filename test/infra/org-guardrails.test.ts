import { readFileSync } from "node:fs";
import { runSimulation, type Simulation } from "@cloud-copilot/iam-simulate";
import type * as iam from "aws-cdk-lib/aws-iam";
import { beforeAll, describe, expect, it } from "vitest";
import { DATASET_LINEAGE, DATASET_REPORT, ScanStatus, STATUS_TAG } from "../../lib/core/pipeline/names.js";
import { ACCOUNT, type CfnTemplate, REGION, TemplateResolver } from "./helpers/iam.js";
import { logicalId, sharedFtguard } from "./helpers/stack.js";

// docs/org-guardrails.md: the SCP and RCP a platform team attaches, evaluated as written on that page (placeholders
// filled from the synthesized stack) with iam-simulate.

const FOREIGN = "444455556666";
const DEPLOYMENT_ROLE = `arn:aws:iam::${ACCOUNT}:role/cdk-hnb659fds-cfn-exec-role-${ACCOUNT}-${REGION}`;
const ADMIN_ROLE = `arn:aws:iam::${ACCOUNT}:role/account-admin`;

/** The JSON block after `<!-- policy: <name> -->` in the doc. */
function documentedPolicy(name: "scp" | "scp-pipeline" | "rcp"): string {
	const doc = readFileSync(new URL("../../docs/org-guardrails.md", import.meta.url), "utf8");
	const match = new RegExp(`<!-- policy: ${name} -->\\n\`\`\`json\\n([\\s\\S]*?)\\n\`\`\``).exec(doc);
	if (!match?.[1]) throw new Error(`docs/org-guardrails.md has no ${name} block`);
	return match[1];
}

let resolver: TemplateResolver;
let scp: unknown;
let scpPipeline: unknown;
let rcp: unknown;
let names: Record<"checkpoint" | "report" | "baseModel" | "dataset", string>;
let roles: Record<
	"verdict" | "sweeper" | "scanner" | "stateMachine" | "policyWriter" | "baseModelGate" | "datasetGate",
	string
>;
/** The synthesized bucket policies of the base-model and dataset buckets, and the S3 gateway endpoint's id. */
let inputPolicies: Record<"baseModel" | "dataset", unknown>;
let s3EndpointId: string;
/** The pipeline's resources as they would be named in AWS (functions: CloudFormation's `<stack>-<logical id>-<suffix>`). */
let pipeline: {
	stackName: string;
	functions: Record<string, string>;
	stateMachine: string;
	jobDefinition: string;
	jobQueue: string;
	computeEnvironment: string;
	datasetJobDefinition: string;
	datasetJobQueue: string;
	datasetComputeEnvironment: string;
	policyObject: string;
};
const ASSET_REPOSITORY = `arn:aws:ecr:${REGION}:${ACCOUNT}:repository/cdk-hnb659fds-container-assets-${ACCOUNT}-${REGION}`;
const IMAGE_PUBLISHING_ROLE = `arn:aws:iam::${ACCOUNT}:role/cdk-hnb659fds-image-publishing-role-${ACCOUNT}-${REGION}`;

beforeAll(() => {
	const { stack, template } = sharedFtguard();
	const json = template.toJSON() as CfnTemplate;
	resolver = new TemplateResolver(json);
	names = {
		checkpoint: resolver.bucketName(logicalId(stack.store.checkpointBucket)),
		report: resolver.bucketName(logicalId(stack.store.reportBucket)),
		baseModel: resolver.bucketName(logicalId(stack.store.baseModelBucket)),
		dataset: resolver.bucketName(logicalId(stack.store.datasetBucket)),
	};
	roles = {
		verdict: logicalId(stack.store.verdictRole),
		sweeper: logicalId(stack.store.sweeperRole),
		scanner: logicalId(stack.store.scannerRole),
		stateMachine: logicalId(stack.scanPipeline.stateMachine.role as unknown as iam.Role),
		policyWriter: Object.keys(json.Resources).find((id) =>
			id.startsWith("AWS679f53fac002430cb0da5b7982bd2287ServiceRole"),
		) as string,
		baseModelGate: logicalId(stack.store.baseModelGateRole),
		datasetGate: logicalId(stack.store.datasetGateRole),
	};
	inputPolicies = {
		baseModel: resolver.bucketPolicy(logicalId(stack.store.baseModelBucket)),
		dataset: resolver.bucketPolicy(logicalId(stack.store.datasetBucket)),
	};
	s3EndpointId = resolver.resolve({ Ref: logicalId(stack.network.s3Endpoint as never) }) as string;
	const pipelineFns = { ...stack.scanPipeline.functions, start: stack.scanPipeline.startFunction };
	const fnArn = (id: string) =>
		`arn:aws:lambda:${REGION}:${ACCOUNT}:function:${stack.stackName}-${id.slice(0, 40)}-1A2B3C4D5E6F`;
	const jobDefinitionName = logicalId(stack.scanPipeline.jobDefinition as never);
	const { datasetGate } = stack.scanPipeline;
	const datasetJobDefinitionName = logicalId(datasetGate.jobDefinition as never);
	const batchArn = (type: string, id: string) => `arn:aws:batch:${REGION}:${ACCOUNT}:${type}/${id}`;
	pipeline = {
		stackName: stack.stackName,
		functions: {
			...Object.fromEntries(Object.entries(pipelineFns).map(([step, f]) => [step, fnArn(logicalId(f))])),
			sweep: fnArn(logicalId(stack.scanPipeline.sweepFunction)),
			baseModel: fnArn(logicalId(stack.scanPipeline.baseModelFunction)),
			dataset: fnArn(logicalId(datasetGate.function)),
			policyWriter: fnArn("AWS679f53fac002430cb0da5b7982bd2287"),
		},
		stateMachine: resolver.resolve({ Ref: logicalId(stack.scanPipeline.stateMachine as never) }) as string,
		jobDefinition: `arn:aws:batch:${REGION}:${ACCOUNT}:job-definition/${jobDefinitionName}:1`,
		jobQueue: `arn:aws:batch:${REGION}:${ACCOUNT}:job-queue/${logicalId(stack.scanPipeline.jobQueue as never)}`,
		computeEnvironment: `arn:aws:batch:${REGION}:${ACCOUNT}:compute-environment/${logicalId(stack.scanPipeline.computeEnvironment as never)}`,
		datasetJobDefinition: batchArn("job-definition", `${datasetJobDefinitionName}:1`),
		datasetJobQueue: batchArn("job-queue", logicalId(datasetGate.jobQueue as never)),
		datasetComputeEnvironment: batchArn("compute-environment", logicalId(datasetGate.computeEnvironment as never)),
		policyObject: `arn:aws:s3:::${names.baseModel}/${stack.scanPipeline.policyUri.replace(/^.*?\/(ftguard\/policy\/)/, "$1")}`,
	};
	const fill = (text: string): unknown => {
		const filled = text
			.replaceAll("<CHECKPOINT_BUCKET>", names.checkpoint)
			.replaceAll("<REPORT_BUCKET>", names.report)
			.replaceAll("<BASE_MODEL_BUCKET>", names.baseModel)
			.replaceAll("<DATASET_BUCKET>", names.dataset)
			.replaceAll("<VERDICT_ROLE_ARN>", resolver.roleArn(roles.verdict))
			.replaceAll("<SWEEPER_ROLE_ARN>", resolver.roleArn(roles.sweeper))
			.replaceAll("<SCANNER_ROLE_ARN>", resolver.roleArn(roles.scanner))
			.replaceAll("<BASE_MODEL_GATE_ROLE_ARN>", resolver.roleArn(roles.baseModelGate))
			.replaceAll("<DATASET_GATE_ROLE_ARN>", resolver.roleArn(roles.datasetGate))
			.replaceAll("<STATE_MACHINE_ROLE_ARN>", resolver.roleArn(roles.stateMachine))
			.replaceAll("<POLICY_WRITER_ROLE_ARN>", resolver.roleArn(roles.policyWriter))
			.replaceAll("<STATE_MACHINE_ARN>", pipeline.stateMachine)
			.replaceAll("<STACK_NAME>", pipeline.stackName)
			.replaceAll("<JOB_DEFINITION_NAME>", jobDefinitionName)
			.replaceAll("<JOB_QUEUE_ARN>", pipeline.jobQueue)
			.replaceAll("<COMPUTE_ENVIRONMENT_ARN>", pipeline.computeEnvironment)
			.replaceAll("<DATASET_JOB_DEFINITION_NAME>", datasetJobDefinitionName)
			.replaceAll("<DATASET_JOB_QUEUE_ARN>", pipeline.datasetJobQueue)
			.replaceAll("<DATASET_COMPUTE_ENVIRONMENT_ARN>", pipeline.datasetComputeEnvironment)
			.replaceAll("<ASSET_REPOSITORY_ARN>", ASSET_REPOSITORY)
			.replaceAll("<IMAGE_PUBLISHING_ROLE_ARN>", IMAGE_PUBLISHING_ROLE)
			.replaceAll("<DEPLOYMENT_ROLE_ARN>", DEPLOYMENT_ROLE);
		// every placeholder the page uses is one this test fills
		expect(filled.match(/<[A-Z_]+>/g) ?? []).toEqual([]);
		return JSON.parse(filled);
	};
	scp = fill(documentedPolicy("scp"));
	scpPipeline = fill(documentedPolicy("scp-pipeline"));
	rcp = fill(documentedPolicy("rcp"));
});

type Decision = "Allowed" | "ExplicitlyDenied" | "ImplicitlyDenied";

const allowAll = { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "*", Resource: "*" }] };
/** What the account's bucket policy would allow once an administrator had rewritten it: anything. */
const rewrittenBucketPolicy = {
	Version: "2012-10-17",
	Statement: [{ Effect: "Allow", Principal: "*", Action: "s3:*", Resource: "*" }],
};

/**
 * A request under the guardrails: the SCP on the principal's account (next to FullAWSAccess, as Organizations
 * attaches it), the RCP on the resource's account. Principals act with allow-all identity policies unless given.
 */
async function guarded(options: {
	roleArn: string;
	action: string;
	resource: string;
	resourceAccount?: string;
	identityPolicies?: { name: string; policy: unknown }[];
	resourcePolicy?: unknown;
	context?: Record<string, string | string[]>;
}): Promise<Decision> {
	const account = options.roleArn.split(":")[4] as string;
	const roleName = options.roleArn.split("/").at(-1) as string;
	const simulation: Simulation = {
		request: {
			principal: `arn:aws:sts::${account}:assumed-role/${roleName}/session`,
			action: options.action,
			resource: { resource: options.resource, accountId: options.resourceAccount ?? ACCOUNT },
			contextVariables: {
				"aws:PrincipalArn": options.roleArn,
				"aws:PrincipalAccount": account,
				"aws:SecureTransport": "true",
				...options.context,
			},
		},
		identityPolicies: options.identityPolicies ?? [{ name: "admin", policy: allowAll }],
		serviceControlPolicies:
			account === ACCOUNT
				? [
						{
							orgIdentifier: "ou-ftguard",
							policies: [
								{ name: "FullAWSAccess", policy: allowAll },
								{ name: "ftguard-scp", policy: scp },
								{ name: "ftguard-scp-pipeline", policy: scpPipeline },
							],
						},
					]
				: [],
		resourceControlPolicies:
			(options.resourceAccount ?? ACCOUNT) === ACCOUNT
				? [{ orgIdentifier: "ou-ftguard", policies: [{ name: "ftguard-rcp", policy: rcp }] }]
				: [],
		...(options.resourcePolicy ? { resourcePolicy: options.resourcePolicy } : {}),
	};
	const result = await runSimulation(simulation, { simulationMode: "Strict" });
	if (result.resultType === "error") throw new Error(`simulation invalid: ${JSON.stringify(result.errors)}`);
	return result.overallResult as Decision;
}

const promote = {
	"s3:RequestObjectTagKeys": [STATUS_TAG],
	[`s3:RequestObjectTag/${STATUS_TAG}`]: ScanStatus.PROMOTABLE,
};
const checkpoint = () => `arn:aws:s3:::${names.checkpoint}/jobs/A/model.safetensors`;

describe("the service control policy", () => {
	it("an account administrator cannot promote, even after rewriting the bucket policy", async () => {
		for (const action of [
			"s3:PutObjectTagging",
			"s3:PutObjectVersionTagging",
			"s3:DeleteObjectTagging",
			"s3:ReplicateTags",
		]) {
			const decision = await guarded({
				roleArn: ADMIN_ROLE,
				action,
				resource: checkpoint(),
				resourcePolicy: rewrittenBucketPolicy,
				context: promote,
			});
			expect(decision, action).toBe("ExplicitlyDenied");
		}
	});
	it("nor upload an object already tagged ftguard:* anywhere (to copy it in later)", async () => {
		const decision = await guarded({
			roleArn: ADMIN_ROLE,
			action: "s3:PutObject",
			resource: "arn:aws:s3:::some-other-bucket/model.safetensors",
			context: promote,
		});
		expect(decision).toBe("ExplicitlyDenied");
	});
	it("ordinary uploads elsewhere are untouched", async () => {
		const decision = await guarded({
			roleArn: ADMIN_ROLE,
			action: "s3:PutObject",
			resource: "arn:aws:s3:::some-other-bucket/model.safetensors",
			context: { "s3:RequestObjectTagKeys": ["team"] },
		});
		expect(decision).toBe("Allowed");
	});
	it.each(["s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:PutReplicationConfiguration"])(
		"only the deployment role may %s on the data buckets",
		async (action) => {
			for (const bucket of ["checkpoint", "report", "baseModel", "dataset"] as const) {
				const resource = `arn:aws:s3:::${names[bucket]}`;
				expect(await guarded({ roleArn: ADMIN_ROLE, action, resource }), `${bucket} admin`).toBe("ExplicitlyDenied");
				expect(await guarded({ roleArn: DEPLOYMENT_ROLE, action, resource }), `${bucket} deployment`).toBe("Allowed");
			}
		},
	);
	it("an administrator cannot pass the verdict role to a function of their own or widen it", async () => {
		for (const action of ["iam:PassRole", "iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy"]) {
			const resource = resolver.roleArn(roles.verdict);
			expect(
				await guarded({
					roleArn: ADMIN_ROLE,
					action,
					resource,
					context: { "iam:PassedToService": "lambda.amazonaws.com" },
				}),
				action,
			).toBe("ExplicitlyDenied");
			expect(
				await guarded({
					roleArn: DEPLOYMENT_ROLE,
					action,
					resource,
					context: { "iam:PassedToService": "lambda.amazonaws.com" },
				}),
				action,
			).toBe("Allowed");
		}
	});
	it("the pipeline still works: the verdict role promotes, the sweeper quarantines", async () => {
		const verdict = await guarded({
			roleArn: resolver.roleArn(roles.verdict),
			identityPolicies: resolver.identityPolicies(roles.verdict),
			action: "s3:PutObjectVersionTagging",
			resource: checkpoint(),
			context: promote,
		});
		expect(verdict).toBe("Allowed");
		const sweeper = await guarded({
			roleArn: resolver.roleArn(roles.sweeper),
			identityPolicies: resolver.identityPolicies(roles.sweeper),
			action: "s3:PutObjectVersionTagging",
			resource: checkpoint(),
			context: {
				"s3:RequestObjectTagKeys": [STATUS_TAG],
				[`s3:RequestObjectTag/${STATUS_TAG}`]: ScanStatus.QUARANTINED,
			},
		});
		expect(sweeper).toBe("Allowed");
	});
});

describe("case-folded ftguard tag keys (condition key names are case-insensitive)", () => {
	it.each(["FTGUARD:STATUS", "Ftguard:Status", "ftguard:Scan-Id"])(
		"an administrator cannot upload or tag an object with %s anywhere",
		async (key) => {
			const forged = { "s3:RequestObjectTagKeys": [key], [`s3:RequestObjectTag/${key}`]: ScanStatus.PROMOTABLE };
			for (const action of ["s3:PutObject", "s3:PutObjectTagging"]) {
				const resource = "arn:aws:s3:::some-other-bucket/model.safetensors";
				expect(await guarded({ roleArn: ADMIN_ROLE, action, resource, context: forged }), action).toBe(
					"ExplicitlyDenied",
				);
			}
		},
	);
	it("uploads tagged with other keys are untouched", async () => {
		const decision = await guarded({
			roleArn: ADMIN_ROLE,
			action: "s3:PutObject",
			resource: "arn:aws:s3:::some-other-bucket/model.safetensors",
			context: { "s3:RequestObjectTagKeys": ["team"], "s3:RequestObjectTag/team": "x" },
		});
		expect(decision).toBe("Allowed");
	});
});

describe("the pipeline's code (second service control policy)", () => {
	it("an administrator cannot invoke the stack's functions (record would write any verdict it is given)", async () => {
		for (const [name, arn] of Object.entries(pipeline.functions)) {
			for (const action of ["lambda:InvokeFunction", "lambda:InvokeAsync"]) {
				expect(await guarded({ roleArn: ADMIN_ROLE, action, resource: arn }), `${action} ${name}`).toBe(
					"ExplicitlyDenied",
				);
			}
		}
	});
	it("the state machine's role still invokes the step functions, and other functions are untouched", async () => {
		for (const step of ["mark", "manifest", "signature", "files", "decide", "record"]) {
			const resource = pipeline.functions[step] as string;
			const sm = resolver.roleArn(roles.stateMachine);
			expect(await guarded({ roleArn: sm, action: "lambda:InvokeFunction", resource }), step).toBe("Allowed");
			expect(await guarded({ roleArn: sm, action: "lambda:InvokeFunction", resource: `${resource}:$LATEST` })).toBe(
				"Allowed",
			);
		}
		const other = `arn:aws:lambda:${REGION}:${ACCOUNT}:function:someone-elses-function`;
		expect(await guarded({ roleArn: ADMIN_ROLE, action: "lambda:InvokeFunction", resource: other })).toBe("Allowed");
	});
	const changes = (): Array<[string, string]> => [
		["lambda:UpdateFunctionCode", pipeline.functions.record as string],
		["lambda:UpdateFunctionConfiguration", pipeline.functions.record as string],
		["lambda:UpdateFunctionCode", pipeline.functions.mark as string],
		["lambda:PublishVersion", pipeline.functions.record as string],
		["lambda:CreateAlias", pipeline.functions.record as string],
		["lambda:UpdateAlias", `${pipeline.functions.record}:live`],
		["lambda:AddPermission", pipeline.functions.record as string],
		["lambda:DeleteFunction", pipeline.functions.sweep as string],
		["states:UpdateStateMachine", pipeline.stateMachine],
		["states:DeleteStateMachine", pipeline.stateMachine],
		["batch:RegisterJobDefinition", pipeline.jobDefinition],
		["batch:UpdateComputeEnvironment", pipeline.computeEnvironment],
		["batch:UpdateJobQueue", pipeline.jobQueue],
		["batch:RegisterJobDefinition", pipeline.datasetJobDefinition],
		["batch:DeregisterJobDefinition", pipeline.datasetJobDefinition],
		["batch:UpdateComputeEnvironment", pipeline.datasetComputeEnvironment],
		["batch:UpdateJobQueue", pipeline.datasetJobQueue],
		["lambda:UpdateFunctionCode", pipeline.functions.dataset as string],
		["lambda:UpdateFunctionConfiguration", pipeline.functions.dataset as string],
		["lambda:UpdateFunctionCode", pipeline.functions.baseModel as string],
		["s3:PutObject", pipeline.policyObject],
		["s3:DeleteObject", pipeline.policyObject],
	];
	it("an administrator cannot change what the pipeline runs; the deployment role can", async () => {
		for (const [action, resource] of changes()) {
			expect(await guarded({ roleArn: ADMIN_ROLE, action, resource }), `admin ${action}`).toBe("ExplicitlyDenied");
			expect(await guarded({ roleArn: DEPLOYMENT_ROLE, action, resource }), `deployment ${action}`).toBe("Allowed");
		}
	});
	it("only CDK's image-publishing role pushes to the asset repository", async () => {
		for (const action of ["ecr:PutImage", "ecr:BatchDeleteImage"]) {
			expect(await guarded({ roleArn: ADMIN_ROLE, action, resource: ASSET_REPOSITORY }), action).toBe(
				"ExplicitlyDenied",
			);
			expect(await guarded({ roleArn: IMAGE_PUBLISHING_ROLE, action, resource: ASSET_REPOSITORY }), action).toBe(
				"Allowed",
			);
		}
	});
	it("the policy object is still written at deploy time (by the AwsCustomResource provider's role)", async () => {
		expect(pipeline.policyObject).toMatch(/^arn:aws:s3:::[a-z0-9-]+\/ftguard\/policy\/[0-9a-f]{64}\.json$/);
		expect(Object.keys(pipeline.functions)).toHaveLength(11);
		const decision = await guarded({
			roleArn: resolver.roleArn(roles.policyWriter),
			action: "s3:PutObject",
			resource: pipeline.policyObject,
		});
		expect(decision).toBe("Allowed");
	});
	it("an administrator cannot pass the scanner, state-machine or policy-writer role to a new function", async () => {
		for (const role of [roles.scanner, roles.stateMachine, roles.policyWriter]) {
			const resource = resolver.roleArn(role);
			const context = { "iam:PassedToService": "lambda.amazonaws.com" };
			expect(await guarded({ roleArn: ADMIN_ROLE, action: "iam:PassRole", resource, context }), role).toBe(
				"ExplicitlyDenied",
			);
		}
	});
	it("an administrator cannot pass a gate role to a new function or job, nor widen it; the deployment role can", async () => {
		for (const role of [roles.baseModelGate, roles.datasetGate]) {
			const resource = resolver.roleArn(role);
			for (const service of ["lambda.amazonaws.com", "ecs-tasks.amazonaws.com"]) {
				const context = { "iam:PassedToService": service };
				expect(await guarded({ roleArn: ADMIN_ROLE, action: "iam:PassRole", resource, context }), role).toBe(
					"ExplicitlyDenied",
				);
				expect(await guarded({ roleArn: DEPLOYMENT_ROLE, action: "iam:PassRole", resource, context }), role).toBe(
					"Allowed",
				);
			}
			for (const action of ["iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:UpdateAssumeRolePolicy"]) {
				expect(await guarded({ roleArn: ADMIN_ROLE, action, resource }), `${role} ${action}`).toBe("ExplicitlyDenied");
			}
		}
	});
});

describe("the input gates (base-model and dataset buckets)", () => {
	type Input = "baseModel" | "dataset";
	const INPUTS = [
		["base-model", "baseModel"],
		["dataset", "dataset"],
	] as const;
	const gateOf = (input: Input) => resolver.roleArn(input === "baseModel" ? roles.baseModelGate : roles.datasetGate);
	const gateIdentity = (input: Input) =>
		resolver.identityPolicies(input === "baseModel" ? roles.baseModelGate : roles.datasetGate);
	const inputObject = (input: Input, key = "team/v1/model.safetensors") => `arn:aws:s3:::${names[input]}/${key}`;
	const tagActions = ["s3:PutObjectTagging", "s3:PutObjectVersionTagging", "s3:DeleteObjectTagging"];

	it.each(INPUTS)(
		"the %s gate still tags its own bucket's objects: synthesized policies, bucket policy, through the endpoint",
		async (_name, input) => {
			for (const action of ["s3:PutObjectTagging", "s3:PutObjectVersionTagging"]) {
				const decision = await guarded({
					roleArn: gateOf(input),
					identityPolicies: gateIdentity(input),
					action,
					resource: inputObject(input),
					resourcePolicy: inputPolicies[input],
					context: { ...promote, "aws:SourceVpce": s3EndpointId },
				});
				expect(decision, action).toBe("Allowed");
			}
		},
	);
	it("the dataset gate still writes its report and lineage beside the data", async () => {
		for (const name of [DATASET_REPORT, DATASET_LINEAGE]) {
			const decision = await guarded({
				roleArn: gateOf("dataset"),
				identityPolicies: gateIdentity("dataset"),
				action: "s3:PutObject",
				resource: inputObject("dataset", `chat/v1/${name}`),
				resourcePolicy: inputPolicies.dataset,
				context: { "aws:SourceVpce": s3EndpointId },
			});
			expect(decision, name).toBe("Allowed");
		}
	});
	it.each(INPUTS)(
		"the %s gate cannot tag any other bucket's objects, even granted everything and with the bucket policies rewritten",
		async (_name, input) => {
			const elsewhere = [
				checkpoint(),
				inputObject(input === "baseModel" ? "dataset" : "baseModel"),
				`arn:aws:s3:::${names.report}/scans/ftg-1/verdict.json`,
				"arn:aws:s3:::some-other-bucket/model.safetensors",
			];
			for (const resource of elsewhere) {
				for (const action of ["s3:PutObjectTagging", "s3:PutObjectVersionTagging"]) {
					for (const key of [STATUS_TAG, "FTGUARD:STATUS"]) {
						const context = { "s3:RequestObjectTagKeys": [key], [`s3:RequestObjectTag/${key}`]: ScanStatus.PROMOTABLE };
						const decision = await guarded({
							roleArn: gateOf(input),
							action,
							resource,
							resourcePolicy: rewrittenBucketPolicy,
							context,
						});
						expect(decision, `${action} ${key} ${resource}`).toBe("ExplicitlyDenied");
					}
				}
			}
		},
	);
	it.each(INPUTS)(
		"the %s gate cannot upload an object tagged ftguard:*, not even into its own bucket",
		async (_name, input) => {
			for (const resource of [inputObject(input), "arn:aws:s3:::some-other-bucket/model.safetensors"]) {
				const decision = await guarded({ roleArn: gateOf(input), action: "s3:PutObject", resource, context: promote });
				expect(decision, resource).toBe("ExplicitlyDenied");
			}
		},
	);
	it.each(INPUTS)(
		"an account administrator cannot tag %s objects, even after rewriting the bucket policy",
		async (_name, input) => {
			for (const action of [...tagActions, "s3:DeleteObjectVersionTagging", "s3:ReplicateTags", "s3:ReplicateObject"]) {
				const decision = await guarded({
					roleArn: ADMIN_ROLE,
					action,
					resource: inputObject(input),
					resourcePolicy: rewrittenBucketPolicy,
					context: { ...promote, "aws:SourceVpce": s3EndpointId },
				});
				expect(decision, action).toBe("ExplicitlyDenied");
			}
			const upload = await guarded({
				roleArn: ADMIN_ROLE,
				action: "s3:PutObject",
				resource: inputObject(input),
				resourcePolicy: rewrittenBucketPolicy,
				context: promote,
			});
			expect(upload, "upload tagged PROMOTABLE").toBe("ExplicitlyDenied");
		},
	);
	it("an account administrator cannot write, overwrite or delete a dataset report or lineage", async () => {
		for (const key of [`chat/v1/${DATASET_REPORT}`, `a/b/c/${DATASET_LINEAGE}`]) {
			for (const action of ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"]) {
				const decision = await guarded({
					roleArn: ADMIN_ROLE,
					action,
					resource: inputObject("dataset", key),
					resourcePolicy: rewrittenBucketPolicy,
				});
				expect(decision, `${action} ${key}`).toBe("ExplicitlyDenied");
			}
		}
	});
	it("nor can the base-model gate (the dataset gate is the reports' only writer)", async () => {
		const decision = await guarded({
			roleArn: gateOf("baseModel"),
			action: "s3:PutObject",
			resource: inputObject("dataset", `chat/v1/${DATASET_REPORT}`),
			resourcePolicy: rewrittenBucketPolicy,
		});
		expect(decision).toBe("ExplicitlyDenied");
	});
	it("uploads of base models and datasets, untagged or with other tags, are untouched", async () => {
		for (const input of ["baseModel", "dataset"] as const) {
			for (const context of [{}, { "s3:RequestObjectTagKeys": ["team"], "s3:RequestObjectTag/team": "x" }]) {
				const decision = await guarded({
					roleArn: ADMIN_ROLE,
					action: "s3:PutObject",
					resource: inputObject(input, "team/v1/train.jsonl"),
					resourcePolicy: rewrittenBucketPolicy,
					context,
				});
				expect(decision, input).toBe("Allowed");
			}
		}
	});
	it("a principal of another account cannot tag base models or datasets, nor write a dataset report (RCP)", async () => {
		const foreignRole = `arn:aws:iam::${FOREIGN}:role/outsider`;
		for (const input of ["baseModel", "dataset"] as const) {
			for (const action of ["s3:PutObjectTagging", "s3:ReplicateObject", "s3:ReplicateTags"]) {
				const decision = await guarded({
					roleArn: foreignRole,
					action,
					resource: inputObject(input),
					resourcePolicy: rewrittenBucketPolicy,
					context: promote,
				});
				expect(decision, `${input} ${action}`).toBe("ExplicitlyDenied");
			}
		}
		const report = await guarded({
			roleArn: foreignRole,
			action: "s3:PutObject",
			resource: inputObject("dataset", `chat/v1/${DATASET_REPORT}`),
			resourcePolicy: rewrittenBucketPolicy,
		});
		expect(report).toBe("ExplicitlyDenied");
	});
});

describe("copies into the tagged buckets (resource control policy)", () => {
	// CopyObject / UploadPartCopy: s3:PutObject with a copy source. With tagging directive COPY (the default) the copy
	// takes the source object's tags and sends no request tags, so the upload denies never see a foreign PROMOTABLE.
	const TAGGED = ["checkpoint", "baseModel", "dataset"] as const;
	const object = (bucket: (typeof TAGGED)[number]) => `arn:aws:s3:::${names[bucket]}/team/v1/model.safetensors`;
	const copy = { "s3:x-amz-copy-source": "bucket-in-another-account/promoted.safetensors" };

	it.each(TAGGED)(
		"an account administrator cannot copy into the %s bucket, even after rewriting the bucket policy",
		async (bucket) => {
			const decision = await guarded({
				roleArn: ADMIN_ROLE,
				action: "s3:PutObject",
				resource: object(bucket),
				resourcePolicy: rewrittenBucketPolicy,
				context: copy,
			});
			expect(decision).toBe("ExplicitlyDenied");
		},
	);
	it.each(TAGGED)("nor can anyone else copy into the %s bucket: ftguard's roles, another account", async (bucket) => {
		for (const roleArn of [
			resolver.roleArn(roles.verdict),
			resolver.roleArn(roles.sweeper),
			resolver.roleArn(roles.baseModelGate),
			resolver.roleArn(roles.datasetGate),
			DEPLOYMENT_ROLE,
			`arn:aws:iam::${FOREIGN}:role/outsider`,
		]) {
			const decision = await guarded({
				roleArn,
				action: "s3:PutObject",
				resource: object(bucket),
				resourcePolicy: rewrittenBucketPolicy,
				context: { ...copy, "aws:SourceVpce": s3EndpointId },
			});
			expect(decision, roleArn).toBe("ExplicitlyDenied");
		}
	});
	it.each(TAGGED)("a plain upload into the %s bucket still works", async (bucket) => {
		const decision = await guarded({
			roleArn: ADMIN_ROLE,
			action: "s3:PutObject",
			resource: object(bucket),
			resourcePolicy: rewrittenBucketPolicy,
		});
		expect(decision).toBe("Allowed");
	});
	it("copies into other buckets (the report bucket, anyone else's) are untouched", async () => {
		for (const resource of [
			`arn:aws:s3:::${names.report}/loose/copy.bin`,
			"arn:aws:s3:::some-other-bucket/model.safetensors",
		]) {
			const decision = await guarded({
				roleArn: ADMIN_ROLE,
				action: "s3:PutObject",
				resource,
				resourcePolicy: rewrittenBucketPolicy,
				context: copy,
			});
			expect(decision, resource).toBe("Allowed");
		}
	});
	it("the rewritten bucket policy alone would have let the copy in (the RCP is what stops it)", async () => {
		const decision = await runSimulation(
			{
				request: {
					principal: `arn:aws:sts::${ACCOUNT}:assumed-role/account-admin/session`,
					action: "s3:PutObject",
					resource: { resource: object("checkpoint"), accountId: ACCOUNT },
					contextVariables: { "aws:PrincipalArn": ADMIN_ROLE, "aws:PrincipalAccount": ACCOUNT, ...copy },
				},
				identityPolicies: [{ name: "admin", policy: allowAll }],
				serviceControlPolicies: [
					{
						orgIdentifier: "ou-ftguard",
						policies: [
							{ name: "FullAWSAccess", policy: allowAll },
							{ name: "ftguard-scp", policy: scp },
							{ name: "ftguard-scp-pipeline", policy: scpPipeline },
						],
					},
				],
				resourceControlPolicies: [],
				resourcePolicy: rewrittenBucketPolicy,
			},
			{ simulationMode: "Strict" },
		);
		expect(decision.resultType === "error" ? decision.errors : decision.overallResult).toBe("Allowed");
	});
});

describe("size", () => {
	it.each(["scp", "scp-pipeline", "rcp"] as const)(
		"%s fits the 5,120-character policy limit with long names filled in",
		(name) => {
			const longest = JSON.stringify(JSON.parse(documentedPolicy(name)))
				.replaceAll(/<[A-Z_]+_BUCKET>/g, "b".repeat(63))
				.replaceAll(/<[A-Z_]+_ARN>/g, "a".repeat(100))
				.replaceAll(/<[A-Z_]+_NAME>/g, "n".repeat(64));
			expect(longest.length).toBeLessThanOrEqual(5120);
		},
	);
});

describe("the resource control policy", () => {
	const foreignRole = `arn:aws:iam::${FOREIGN}:role/outsider`;
	it("a principal of another account cannot tag checkpoints, whatever the bucket policy says", async () => {
		for (const action of ["s3:PutObjectTagging", "s3:ReplicateObject", "s3:ReplicateTags"]) {
			const decision = await guarded({
				roleArn: foreignRole,
				action,
				resource: checkpoint(),
				resourcePolicy: rewrittenBucketPolicy,
				context: promote,
			});
			expect(decision, action).toBe("ExplicitlyDenied");
		}
	});
	it("nor change the data buckets' policies", async () => {
		const decision = await guarded({
			roleArn: foreignRole,
			action: "s3:PutBucketPolicy",
			resource: `arn:aws:s3:::${names.checkpoint}`,
			resourcePolicy: rewrittenBucketPolicy,
		});
		expect(decision).toBe("ExplicitlyDenied");
	});
	it("the rewritten bucket policy alone would have let it in (the RCP is what stops it)", async () => {
		const decision = await runSimulation(
			{
				request: {
					principal: `arn:aws:sts::${FOREIGN}:assumed-role/outsider/session`,
					action: "s3:PutObjectTagging",
					resource: { resource: checkpoint(), accountId: ACCOUNT },
					contextVariables: { "aws:PrincipalArn": foreignRole, "aws:PrincipalAccount": FOREIGN, ...promote },
				},
				identityPolicies: [{ name: "admin", policy: allowAll }],
				serviceControlPolicies: [],
				resourceControlPolicies: [],
				resourcePolicy: rewrittenBucketPolicy,
			},
			{ simulationMode: "Strict" },
		);
		expect(decision.resultType === "error" ? decision.errors : decision.overallResult).toBe("Allowed");
	});
});
