import { readFileSync } from "node:fs";
import { CfnGuardValidator } from "@cdklabs/cdk-validator-cfnguard";
import { type App, CfnResource, type IPolicyValidationContextBeta1, Stack } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as kms from "aws-cdk-lib/aws-kms";
import { beforeAll, describe, expect, it } from "vitest";
import { denyGrantsNotForAwsResources } from "../../lib/infra/proactive-controls.js";
import { ACCOUNT, type CfnTemplate, decide, REGION, TemplateResolver } from "./helpers/iam.js";
import { newApp, sharedFtguard } from "./helpers/stack.js";

// AWS Control Tower's proactive controls (the CloudFormation Guard rules bundled with
// @cdklabs/cdk-validator-cfnguard, run by its bundled cfn-guard binary: offline, no account) on the synthesized
// template, next to cdk-nag (nag.test.ts). The plugin has no per-resource suppression (only whole rules can be
// disabled), so the acknowledgements live here: one control on one resource, each with its reason.

interface Finding {
	/** Control id, e.g. `CT.KMS.PR.3`. */
	control: string;
	/** Construct path below the stack, e.g. `Store/AccessLogBucket/Resource`. */
	path: string;
	description: string;
}

interface Acknowledgement {
	control: string;
	path: string;
	reason: string;
}

const S3_ACCESS_LOGS_ONLY_SSE_S3 =
	"S3 server access logging delivers only to buckets encrypted with SSE-S3, never SSE-KMS; the logs hold no object data";
const NO_OBJECT_LOCK_ON_LOG_TARGET =
	"S3 cannot deliver server access logs to a bucket with Object Lock; the logs expire by lifecycle after accessLogRetention";
const NO_EVENTS_CONSUMER =
	"Nothing acts on this bucket's events: scans, base-model checks and dataset scans start from the checkpoint, base-model and dataset buckets' EventBridge events only; reads and writes here are in CloudTrail and the access logs";
const DLQ_OF_DLQ =
	"This queue is itself the dead-letter queue (of the start/sweep/base-model/dataset functions); a DLQ behind it would only move the same messages again. It keeps them 14 days and the dead-letter-queue alarm fires on the first one";
const PROVIDER_OUTSIDE_VPC =
	"CDK's deploy-time provider function: it calls EC2/S3 APIs and answers CloudFormation's pre-signed S3 response URL, which the isolated VPC (no NAT, no EC2 endpoint, S3 endpoint limited to ftguard's buckets) cannot reach";
const STEP_FUNCTIONS_OUTSIDE_VPC =
	"Runs outside the VPC by design: it calls Step Functions, which has no endpoint in the isolated subnets, and reads no object content (lib/infra/scan-functions.ts OUTSIDE_VPC)";

/** Every finding this design accepts, with why. Anything else fails the test. */
const ACKNOWLEDGED: readonly Acknowledgement[] = [
	{ control: "CT.S3.PR.10", path: "Store/AccessLogBucket/Resource", reason: S3_ACCESS_LOGS_ONLY_SSE_S3 },
	{
		control: "CT.S3.PR.2",
		path: "Store/AccessLogBucket/Resource",
		reason:
			"The access-log bucket is the server access logging target; logging it into itself would log its own log deliveries forever",
	},
	{ control: "CT.S3.PR.9", path: "Store/AccessLogBucket/Resource", reason: NO_OBJECT_LOCK_ON_LOG_TARGET },
	{
		control: "CT.S3.PR.9",
		path: "Store/BaseModelBucket/Resource",
		reason:
			"Base models are inputs the platform team replaces (checked against the signed base-model registry); the bucket policy denies writes to every role that reads them, and versioning keeps overwritten versions",
	},
	{
		control: "CT.S3.PR.9",
		path: "Store/DatasetBucket/Resource",
		reason:
			"Datasets must stay deletable on request (personal data in training sets); versioning keeps overwritten versions for the noncurrent-version period",
	},
	{ control: "CT.S3.PR.4", path: "Store/AccessLogBucket/Resource", reason: NO_EVENTS_CONSUMER },
	{ control: "CT.S3.PR.4", path: "Store/ReportBucket/Resource", reason: NO_EVENTS_CONSUMER },
	{ control: "CT.SQS.PR.1", path: "ScanPipeline/StartDeadLetterQueue/Resource", reason: DLQ_OF_DLQ },
	{ control: "CT.SQS.PR.1", path: "ScanPipeline/SweepDeadLetterQueue/Resource", reason: DLQ_OF_DLQ },
	{ control: "CT.SQS.PR.1", path: "ScanPipeline/BaseModelDeadLetterQueue/Resource", reason: DLQ_OF_DLQ },
	{ control: "CT.SQS.PR.1", path: "ScanPipeline/DatasetDeadLetterQueue/Resource", reason: DLQ_OF_DLQ },
	{
		control: "CT.SQS.PR.1",
		path: "ScanPipeline/DatasetJobFailureQueue/Resource",
		reason:
			"This queue is a dead end by design: it keeps the events of dataset scan jobs that ended FAILED for 14 days, nothing consumes it, and the dataset-scan-job-failed alarm fires on the first one; a DLQ behind it would never receive anything",
	},
	{ control: "CT.LAMBDA.PR.3", path: "AWS679f53fac002430cb0da5b7982bd2287/Resource", reason: PROVIDER_OUTSIDE_VPC },
	{
		control: "CT.LAMBDA.PR.3",
		path: "Custom::VpcRestrictDefaultSGCustomResourceProvider/Handler",
		reason: PROVIDER_OUTSIDE_VPC,
	},
	{ control: "CT.LAMBDA.PR.3", path: "ScanPipeline/StartFunction/Resource", reason: STEP_FUNCTIONS_OUTSIDE_VPC },
	{ control: "CT.LAMBDA.PR.3", path: "ScanPipeline/SweepFunction/Resource", reason: STEP_FUNCTIONS_OUTSIDE_VPC },
];

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;

/** Synthesizes `app` and runs the Control Tower rules on `stack`'s template. */
function guardFindings(app: App, stack: Stack, onTemplate?: (resources: Resources) => void): Finding[] {
	const assembly = app.synth();
	const templatePath = assembly.getStackByName(stack.stackName).templateFullPath;
	onTemplate?.((JSON.parse(readFileSync(templatePath, "utf8")) as { Resources: Resources }).Resources);
	const paths = new Map<string, string>();
	for (const construct of stack.node.findAll()) {
		if (construct instanceof CfnResource) {
			paths.set(stack.resolve(construct.logicalId) as string, construct.node.path.slice(stack.node.path.length + 1));
		}
	}
	// The FtguardStack template's report exceeds Node's default 1 MiB exec buffer.
	const report = new CfnGuardValidator({ maxBuffer: 64 * 1024 * 1024 }).validate({
		templatePaths: [templatePath],
	} as IPolicyValidationContextBeta1);
	return report.violations.flatMap((violation) => {
		const control = /^\[([A-Z0-9.-]+)\]/.exec(violation.description)?.[1] ?? violation.ruleName;
		return violation.violatingResources.map((resource) => ({
			control,
			path: paths.get(resource.resourceLogicalId) ?? `(not a resource of the stack: ${resource.resourceLogicalId})`,
			description: violation.description,
		}));
	});
}

const key = (f: { control: string; path: string }): string => `${f.control} ${f.path}`;

describe("AWS Control Tower proactive controls (cfn-guard)", () => {
	let findings: Finding[];
	let resources: Resources = {};
	beforeAll(() => {
		const { stack } = sharedFtguard();
		findings = guardFindings(stack.node.root as App, stack, (r) => {
			resources = r;
		});
	}, 120_000);

	it("finds nothing unacknowledged in the default FtguardStack", () => {
		const acknowledged = new Set(ACKNOWLEDGED.map(key));
		const open = findings.filter((f) => !acknowledged.has(key(f))).map((f) => `${key(f)}: ${f.description}`);
		expect(open).toEqual([]);
	});

	it("acknowledges only findings that still occur", () => {
		const found = new Set(findings.map(key));
		expect(ACKNOWLEDGED.filter((a) => !found.has(key(a))).map(key)).toEqual([]);
	});

	it("gives each acknowledgement one control, one resource and its own reason", () => {
		expect(new Set(ACKNOWLEDGED.map(key)).size).toBe(ACKNOWLEDGED.length);
		for (const ack of ACKNOWLEDGED) {
			expect(ack.control, key(ack)).toMatch(/^CT\.[A-Z0-9-]+\.PR\.\d+$/);
			expect(ack.reason.length, key(ack)).toBeGreaterThanOrEqual(60);
		}
	});

	it("holds the controls issue 14 names: KMS grants, Object Lock, launch-template monitoring, provider logs", () => {
		const failing = new Set(findings.map((f) => f.control));
		for (const control of ["CT.KMS.PR.3", "CT.EC2.PR.10", "CT.CLOUDWATCH.PR.3", "CT.CLOUDWATCH.PR.2"]) {
			expect(failing.has(control), control).toBe(false);
		}
		const locks = findings.filter((f) => f.control === "CT.S3.PR.9").map((f) => f.path);
		expect(locks).not.toContain("Store/CheckpointBucket/Resource");
		expect(locks).not.toContain("Store/ReportBucket/Resource");
	});

	it("gives every function, CDK's provider functions included, an encrypted log group with a retention", () => {
		// Without one, Lambda creates `/aws/lambda/<name>` on first use: no customer key, never expires.
		const groups = Object.entries(resources).filter(([, r]) => r.Type === "AWS::Logs::LogGroup");
		const functions = Object.entries(resources).filter(([, r]) => r.Type === "AWS::Lambda::Function");
		expect(functions.length).toBeGreaterThan(2);
		for (const [id, fn] of functions) {
			const configured = (fn.Properties?.LoggingConfig as { LogGroup?: { Ref?: string } } | undefined)?.LogGroup?.Ref;
			const group = configured
				? resources[configured]
				: groups.find(([, g]) => JSON.stringify(g.Properties?.LogGroupName ?? "").includes(`"Ref":"${id}"`))?.[1];
			expect(group, id).toBeDefined();
			expect(group?.Properties?.KmsKeyId, id).toBeDefined();
			expect(group?.Properties?.RetentionInDays, id).toBeGreaterThanOrEqual(365);
		}
	});

	it("denies an IAM principal's own kms:CreateGrant on every key, not a grant a service asks for (iam-simulate)", async () => {
		const resolver = new TemplateResolver({ Resources: resources } as unknown as CfnTemplate);
		const keys = Object.entries(resources).filter(([, r]) => r.Type === "AWS::KMS::Key");
		expect(keys.length).toBeGreaterThanOrEqual(4);
		// An administrator: allowed every KMS action by its own policy and by the key policy's account statement.
		const admin = {
			name: "admin",
			policy: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "kms:*", Resource: "*" }] },
		};
		for (const [id, key] of keys) {
			const keyPolicy = resolver.resolve(key.Properties?.KeyPolicy as never) as {
				Statement: Record<string, unknown>[];
			};
			// CDK writes AnyPrincipal as {"AWS":"*"}; AWS treats it as "*", iam-simulate accepts only "*".
			for (const s of keyPolicy.Statement) if (JSON.stringify(s.Principal) === '{"AWS":"*"}') s.Principal = "*";
			const request = (grantIsForAwsResource: "true" | "false") =>
				decide({
					roleArn: `arn:aws:iam::${ACCOUNT}:role/Admin`,
					identityPolicies: [admin],
					action: "kms:CreateGrant",
					resource: `arn:aws:kms:${REGION}:${ACCOUNT}:key/${id}`,
					resourcePolicy: keyPolicy,
					context: { "kms:GrantIsForAWSResource": grantIsForAwsResource, "aws:PrincipalIsAWSService": "false" },
				});
			expect(await request("false"), id).toBe("ExplicitlyDenied");
			// EBS, Lambda and the like create grants on the caller's behalf: still allowed.
			expect(await request("true"), id).toBe("Allowed");
		}
	});

	it("does run: a bare key and an unmonitored launch template fail, a key with the grant deny does not", () => {
		const app = newApp();
		const stack = new Stack(app, "Bad");
		new kms.Key(stack, "Bare", { enableKeyRotation: true });
		denyGrantsNotForAwsResources(new kms.Key(stack, "Guarded", { enableKeyRotation: true }));
		new ec2.LaunchTemplate(stack, "Template", { requireImdsv2: true });
		const found = guardFindings(app, stack).map(key);
		expect(found).toContain("CT.KMS.PR.3 Bare/Resource");
		expect(found).not.toContain("CT.KMS.PR.3 Guarded/Resource");
		expect(found).toContain("CT.EC2.PR.10 Template/Resource");
	}, 60_000);
});
