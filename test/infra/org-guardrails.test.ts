import { readFileSync } from "node:fs";
import { runSimulation, type Simulation } from "@cloud-copilot/iam-simulate";
import { beforeAll, describe, expect, it } from "vitest";
import { ScanStatus, STATUS_TAG } from "../../lib/infra/tags.js";
import { ACCOUNT, type CfnTemplate, REGION, TemplateResolver } from "./helpers/iam.js";
import { logicalId, synthFtguard } from "./helpers/stack.js";

// docs/org-guardrails.md: the SCP and RCP a platform team attaches, evaluated as written on that page (placeholders
// filled from the synthesized stack) with iam-simulate.

const FOREIGN = "444455556666";
const DEPLOYMENT_ROLE = `arn:aws:iam::${ACCOUNT}:role/cdk-hnb659fds-cfn-exec-role-${ACCOUNT}-${REGION}`;
const ADMIN_ROLE = `arn:aws:iam::${ACCOUNT}:role/account-admin`;

/** The JSON block after `<!-- policy: <name> -->` in the doc. */
function documentedPolicy(name: "scp" | "rcp"): string {
	const doc = readFileSync(new URL("../../docs/org-guardrails.md", import.meta.url), "utf8");
	const match = new RegExp(`<!-- policy: ${name} -->\\n\`\`\`json\\n([\\s\\S]*?)\\n\`\`\``).exec(doc);
	if (!match?.[1]) throw new Error(`docs/org-guardrails.md has no ${name} block`);
	return match[1];
}

let resolver: TemplateResolver;
let scp: unknown;
let rcp: unknown;
let names: Record<"checkpoint" | "report" | "baseModel" | "dataset", string>;
let roles: Record<"verdict" | "sweeper", string>;

beforeAll(() => {
	const { stack, template } = synthFtguard();
	resolver = new TemplateResolver(template.toJSON() as CfnTemplate);
	names = {
		checkpoint: resolver.bucketName(logicalId(stack.store.checkpointBucket)),
		report: resolver.bucketName(logicalId(stack.store.reportBucket)),
		baseModel: resolver.bucketName(logicalId(stack.store.baseModelBucket)),
		dataset: resolver.bucketName(logicalId(stack.store.datasetBucket)),
	};
	roles = {
		verdict: logicalId(stack.store.verdictRole),
		sweeper: logicalId(stack.store.sweeperRole),
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
				.replaceAll("<DEPLOYMENT_ROLE_ARN>", DEPLOYMENT_ROLE),
		);
	scp = fill(documentedPolicy("scp"));
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
