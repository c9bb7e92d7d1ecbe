import { readFileSync } from "node:fs";
import { runSimulation, type Simulation } from "@cloud-copilot/iam-simulate";
import type * as iam from "aws-cdk-lib/aws-iam";
import { beforeAll, describe, expect, it } from "vitest";
import { ScanStatus, STATUS_TAG } from "../../lib/core/pipeline/names.js";
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
let roles: Record<"verdict" | "sweeper" | "scanner" | "stateMachine" | "policyWriter", string>;
/** The pipeline's resources as they would be named in AWS (functions: CloudFormation's `<stack>-<logical id>-<suffix>`). */
let pipeline: {
	stackName: string;
	functions: Record<string, string>;
	stateMachine: string;
	jobDefinition: string;
	jobQueue: string;
	computeEnvironment: string;
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
	};
	const pipelineFns = { ...stack.scanPipeline.functions, start: stack.scanPipeline.startFunction };
	const fnArn = (id: string) =>
		`arn:aws:lambda:${REGION}:${ACCOUNT}:function:${stack.stackName}-${id.slice(0, 40)}-1A2B3C4D5E6F`;
	const jobDefinitionName = logicalId(stack.scanPipeline.jobDefinition as never);
	pipeline = {
		stackName: stack.stackName,
		functions: {
			...Object.fromEntries(Object.entries(pipelineFns).map(([step, f]) => [step, fnArn(logicalId(f))])),
			sweep: fnArn(logicalId(stack.scanPipeline.sweepFunction)),
			policyWriter: fnArn("AWS679f53fac002430cb0da5b7982bd2287"),
		},
		stateMachine: resolver.resolve({ Ref: logicalId(stack.scanPipeline.stateMachine as never) }) as string,
		jobDefinition: `arn:aws:batch:${REGION}:${ACCOUNT}:job-definition/${jobDefinitionName}:1`,
		jobQueue: `arn:aws:batch:${REGION}:${ACCOUNT}:job-queue/${logicalId(stack.scanPipeline.jobQueue as never)}`,
		computeEnvironment: `arn:aws:batch:${REGION}:${ACCOUNT}:compute-environment/${logicalId(stack.scanPipeline.computeEnvironment as never)}`,
		policyObject: `arn:aws:s3:::${names.baseModel}/${stack.scanPipeline.policyUri.replace(/^.*?\/(ftguard\/policy\/)/, "$1")}`,
	};
	const fill = (text: string): unknown =>
		JSON.parse(
			text
				.replaceAll("<CHECKPOINT_BUCKET>", names.checkpoint)
				.replaceAll("<REPORT_BUCKET>", names.report)
				.replaceAll("<BASE_MODEL_BUCKET>", names.baseModel)
				.replaceAll("<DATASET_BUCKET>", names.dataset)
				.replaceAll("<VERDICT_ROLE_ARN>", resolver.roleArn(roles.verdict))
				.replaceAll("<SWEEPER_ROLE_ARN>", resolver.roleArn(roles.sweeper))
				.replaceAll("<SCANNER_ROLE_ARN>", resolver.roleArn(roles.scanner))
				.replaceAll("<STATE_MACHINE_ROLE_ARN>", resolver.roleArn(roles.stateMachine))
				.replaceAll("<POLICY_WRITER_ROLE_ARN>", resolver.roleArn(roles.policyWriter))
				.replaceAll("<STATE_MACHINE_ARN>", pipeline.stateMachine)
				.replaceAll("<STACK_NAME>", pipeline.stackName)
				.replaceAll("<JOB_DEFINITION_NAME>", jobDefinitionName)
				.replaceAll("<JOB_QUEUE_ARN>", pipeline.jobQueue)
				.replaceAll("<COMPUTE_ENVIRONMENT_ARN>", pipeline.computeEnvironment)
				.replaceAll("<ASSET_REPOSITORY_ARN>", ASSET_REPOSITORY)
				.replaceAll("<IMAGE_PUBLISHING_ROLE_ARN>", IMAGE_PUBLISHING_ROLE)
				.replaceAll("<DEPLOYMENT_ROLE_ARN>", DEPLOYMENT_ROLE),
		);
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
		expect(Object.keys(pipeline.functions)).toHaveLength(9);
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
