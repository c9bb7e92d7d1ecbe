/**
 * A platform team's first deploy without code edits (`npx cdk deploy -c config=ftguard.config.json`, docs/deploy.md):
 * the config file is validated with one line naming the field (also by bin/app.ts itself, before any synth), the
 * shipped example is valid, and each setting reaches the template — the policy the pipeline deploys (signers, the
 * smoke-test key), alarm e-mail subscriptions, GPU families and max vCPUs, Object Lock, removal policy. The defaults
 * preflight assumes are the ones the stack synthesizes, and the constructs import from another app as "ftguard/infra".
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Match } from "aws-cdk-lib/assertions";
import { describe, expect, it } from "vitest";
import { isFtguardError } from "../../lib/core/errors";
import { parsePolicy } from "../../lib/core/policy";
import { BACKDOOR_JOB_VCPUS, GPU_DEFAULTS, loadDeployConfig, parseDeployConfig } from "../../lib/infra/config";
import { stackPropsFromConfig } from "../../lib/infra/stack";
import { reservedConcurrencyTotal } from "../../lib/infra/tags";
import { REPO } from "../helpers/cli";
import { sharedFtguard, synthFtguard } from "./helpers/stack";

const EXAMPLE = join(REPO, "examples/ftguard.config.json");
// biome-ignore lint/suspicious/noExplicitAny: JSON documents the table below mutates field by field
type Doc = any;
const example = (): Doc => JSON.parse(readFileSync(EXAMPLE, "utf8"));
const work = mkdtempSync(join(tmpdir(), "ftguard-deploy-config-"));
const smokePem = execFileSync("openssl", ["ec", "-pubout"], {
	input: execFileSync("openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-noout"]),
	stdio: ["pipe", "pipe", "ignore"],
}).toString();

function errorOf(doc: unknown): string {
	try {
		parseDeployConfig(doc, work, "test.json");
	} catch (e) {
		if (isFtguardError(e)) {
			expect(e.code).toBe("USAGE");
			expect(e.message).not.toContain("\n");
			return e.message;
		}
		throw e;
	}
	return "valid";
}

describe("deployment config (lib/infra/config.ts)", () => {
	it("the shipped example is valid, and its policy is exactly what the pipeline's policy parser makes of it", () => {
		const c = loadDeployConfig(EXAMPLE);
		expect(c.policy).toEqual(parsePolicy(JSON.stringify(example().policy)));
		expect(c).toMatchObject({
			alarmEmails: ["ml-platform-oncall@example.com"],
			gpu: { instanceClasses: ["g5", "g6"], maxVcpus: 64 },
			objectLock: { mode: "GOVERNANCE", retentionDays: 30 },
			removalPolicy: "RETAIN",
		});
	});

	it.each([
		["gpu.maxVcpus: expected a positive integer", (c: Doc) => (c.gpu.maxVcpus = 0)],
		["gpu.maxVcpus: expected a positive integer", (c: Doc) => (c.gpu.maxVcpus = "64")],
		["gpu.maxVcpus: expected a positive integer", (c: Doc) => (c.gpu.maxVcpus = 8.5)],
		["gpu.maxVcpus: must be at least 8, the vCPUs of one backdoor-scan job", (c: Doc) => (c.gpu.maxVcpus = 4)],
		[
			'gpu.instanceClasses.0: expected a GPU instance family such as "g5", "g6e" or "g4dn"',
			(c: Doc) => (c.gpu.instanceClasses = ["m5"]),
		],
		["alarms.emails.1: expected an e-mail address", (c: Doc) => c.alarms.emails.push("oncall")],
		[
			'removalPolicy: expected one of "RETAIN", "RETAIN_ON_UPDATE_OR_DELETE", "DESTROY"',
			(c: Doc) => (c.removalPolicy = "retain"),
		],
		["objectLock.retentionDays: expected a whole number of days ≥ 1", (c: Doc) => (c.objectLock.retentionDays = 0)],
		['objectLock.mode: expected "GOVERNANCE" or "COMPLIANCE"', (c: Doc) => (c.objectLock.mode = "LEGAL_HOLD")],
		["objectLock: expected false or an object { mode, retentionDays }", (c: Doc) => (c.objectLock = true)],
		[
			"noncurrentVersionDays: must be at least objectLock.retentionDays (30)",
			(c: Doc) => (c.noncurrentVersionDays = 10),
		],
		[
			"removalPolicy: DESTROY cannot remove a bucket under COMPLIANCE Object Lock",
			(c: Doc) => {
				c.objectLock.mode = "COMPLIANCE";
				c.removalPolicy = "DESTROY";
			},
		],
		['(root): unknown key "gpus"', (c: Doc) => (c.gpus = {})],
		["policy.signers.0.issuer: Invalid URL", (c: Doc) => (c.policy.signers[0].issuer = "github")],
		['policy.files: unknown key "allow_pickle"', (c: Doc) => (c.policy.files.allow_pickle = true)],
		[
			"policy.signers: no signer is trusted, so every scan would end QUARANTINED: give at least one",
			(c: Doc) => (c.policy.signers = []),
		],
		["policy: give exactly one of policy, policyFile", (c: Doc) => (c.policyFile = "policy.json")],
		["region: give account and region together (or neither)", (c: Doc) => (c.account = "123456789012")],
		["smokeTest: give exactly one of pem, pemFile", (c: Doc) => (c.smokeTest = {})],
		["outputMonitor: give logGroupNames or captureBuckets", (c: Doc) => (c.outputMonitor = {})],
		[
			"outputMonitor.captureBuckets.0.name: expected a bucket name",
			(c: Doc) => (c.outputMonitor = { captureBuckets: [{ name: "s3://ml-capture" }] }),
		],
		[
			"outputMonitor.bedrockLargeDataBuckets.0.name: expected a bucket name",
			(c: Doc) =>
				(c.outputMonitor = { logGroupNames: ["/b"], bedrockLargeDataBuckets: [{ name: "s3://bedrock-large" }] }),
		],
	])("refuses with one line naming the field: %s", (message, mutate) => {
		const c = example();
		mutate(c);
		expect(errorOf(c)).toBe(message);
	});

	it("policyFile: the same file `ftguard pipeline --policy` reads, relative to the config; the smoke key joins the signers", () => {
		mkdirSync(join(work, "conf"), { recursive: true });
		writeFileSync(join(work, "conf/policy.json"), JSON.stringify(example().policy));
		writeFileSync(join(work, "conf/smoke.pub.pem"), smokePem);
		writeFileSync(
			join(work, "conf/ftguard.config.json"),
			JSON.stringify({ policyFile: "policy.json", smokeTest: { pemFile: "smoke.pub.pem" } }),
		);
		const c = loadDeployConfig(join(work, "conf/ftguard.config.json"));
		expect(c.policy.signers).toEqual([example().policy.signers[0], { kind: "public-key", pem: smokePem }]);
		expect(c.smokeTestPem).toBe(smokePem);
		// a smoke key alone is a trusted signer: valid
		expect(errorOf({ policy: {}, smokeTest: { pem: smokePem } })).toBe("valid");
		writeFileSync(join(work, "conf/bad-policy.json"), JSON.stringify({ signers: [{ kind: "public-key", pem: "x" }] }));
		expect(errorOf({ policyFile: join(work, "conf/bad-policy.json") })).toBe(
			"policyFile.signers.0.pem: must be PEM text",
		);
		expect(errorOf({ policyFile: "missing.json" })).toMatch(/^policyFile: .*missing\.json: no such file$/);
	});
});

describe("the config in the synthesized stack", () => {
	it("every setting reaches the template; the deployed policy is the config's (smoke key included)", () => {
		const config = parseDeployConfig(
			{
				...example(),
				alarms: { emails: ["a@example.com", "b@example.com"] },
				gpu: { instanceClasses: ["g6e"], maxVcpus: 16 },
				objectLock: { mode: "COMPLIANCE", retentionDays: 120 },
				removalPolicy: "RETAIN_ON_UPDATE_OR_DELETE",
				smokeTest: { pem: smokePem },
				outputMonitor: {
					logGroupNames: ["/aws/sagemaker/Endpoints/bot"],
					captureBuckets: [{ name: "ml-capture" }],
					bedrockLargeDataBuckets: [{ name: "ml-bedrock-large", prefix: "big/" }],
				},
			},
			work,
		);
		const { stack, template } = synthFtguard(stackPropsFromConfig(config, { description: "t" }));
		// the output monitor, attached to the configured logs
		template.hasResourceProperties("AWS::Logs::SubscriptionFilter", { LogGroupName: "/aws/sagemaker/Endpoints/bot" });
		template.resourceCountIs("AWS::DynamoDB::Table", 1);
		template.hasResourceProperties("AWS::Lambda::Function", {
			Environment: {
				Variables: Match.objectLike({
					FTGUARD_MONITOR_LARGE_DATA: JSON.stringify([{ name: "ml-bedrock-large", prefix: "big/" }]),
				}),
			},
		});
		// the policy the functions read: validated, content-addressed, with the team's signer and the smoke key
		expect(stack.scanPipeline.policy).toEqual(config.policy);
		expect(stack.scanPipeline.policy.signers.map((s) => s.kind)).toEqual(["keyless", "public-key"]);
		const json = JSON.stringify(template.toJSON());
		expect(json).toContain(JSON.stringify(example().policy.signers[0].identity).slice(1, -1));
		template.resourceCountIs("AWS::SNS::Subscription", 2);
		template.hasResourceProperties("AWS::SNS::Subscription", { Protocol: "email", Endpoint: "a@example.com" });
		template.hasResourceProperties("AWS::SNS::Subscription", { Protocol: "email", Endpoint: "b@example.com" });
		template.hasResourceProperties("AWS::Batch::ComputeEnvironment", {
			ComputeResources: Match.objectLike({ InstanceTypes: ["g6e"], MaxvCpus: 16 }),
		});
		const locked = template.findResources("AWS::S3::Bucket", {
			Properties: {
				ObjectLockEnabled: true,
				ObjectLockConfiguration: {
					ObjectLockEnabled: "Enabled",
					Rule: { DefaultRetention: { Mode: "COMPLIANCE", Days: 120 } },
				},
			},
		});
		expect(Object.keys(locked)).toHaveLength(2); // checkpoints and reports
		// noncurrent versions kept as long as the lock (the store refuses shorter)
		for (const bucket of Object.values(locked) as { Properties: { LifecycleConfiguration: { Rules: unknown[] } } }[]) {
			expect(JSON.stringify(bucket.Properties.LifecycleConfiguration)).toContain('"NoncurrentDays":120');
		}
		// the configured removal policy on every bucket (CloudFormation's name for RETAIN_ON_UPDATE_OR_DELETE)
		for (const [, b] of Object.entries(template.findResources("AWS::S3::Bucket"))) {
			expect((b as { DeletionPolicy?: string }).DeletionPolicy).toBe("RetainExceptOnCreate");
		}
		expect(Object.keys(template.findOutputs("*")).sort()).toEqual(
			expect.arrayContaining(["AlarmTopicArn", "CheckpointBucketName", "ReportBucketName", "S3Endpoint"]),
		);
	}, 180_000);

	it("no config: the GPU defaults preflight checks and the concurrency it counts are what the stack synthesizes", () => {
		const { template } = sharedFtguard();
		template.hasResourceProperties("AWS::Batch::ComputeEnvironment", {
			ComputeResources: Match.objectLike({
				InstanceTypes: [...GPU_DEFAULTS.instanceClasses],
				MaxvCpus: GPU_DEFAULTS.maxVcpus,
			}),
		});
		// the job's vCPUs the config's minimum max vCPUs is made of
		template.hasResourceProperties("AWS::Batch::JobDefinition", {
			ContainerProperties: Match.objectLike({
				ResourceRequirements: Match.arrayWith([{ Type: "VCPU", Value: String(BACKDOOR_JOB_VCPUS) }]),
			}),
		});
		const reserved = Object.values(template.findResources("AWS::Lambda::Function")).reduce(
			(sum: number, f) =>
				sum +
				((f as { Properties: { ReservedConcurrentExecutions?: number } }).Properties.ReservedConcurrentExecutions ?? 0),
			0,
		);
		expect(reserved).toBe(reservedConcurrencyTotal());
	}, 180_000);
});

describe("bin/app.ts with -c config=…", () => {
	it("an invalid file stops the app before synth: exit 1, one line naming the field and the file", () => {
		const bad = example();
		bad.gpu.maxVcpus = -8;
		const file = join(work, "bad.config.json");
		writeFileSync(file, JSON.stringify(bad));
		const r = spawnSync(process.execPath, ["--import", "tsx", join(REPO, "bin/app.ts")], {
			cwd: REPO,
			env: { ...process.env, CDK_CONTEXT_JSON: JSON.stringify({ config: file }), CDK_OUTDIR: join(work, "out") },
			encoding: "utf8",
		});
		expect(r.status).toBe(1);
		expect(r.stderr.trim()).toBe(`ftguard config: gpu.maxVcpus: expected a positive integer (${file})`);
	}, 60_000);
});

describe("package exports", () => {
	it('another CDK app imports the constructs as "ftguard/infra" (and one module as "ftguard/infra/<name>")', () => {
		const app = join(work, "consumer");
		mkdirSync(join(app, "node_modules"), { recursive: true });
		symlinkSync(REPO, join(app, "node_modules/ftguard"), "dir");
		writeFileSync(join(app, "package.json"), JSON.stringify({ name: "consumer", type: "module", private: true }));
		writeFileSync(
			join(app, "app.ts"),
			[
				'import { CheckpointStore, FtguardStack, ScanPipeline, stackPropsFromConfig, loadDeployConfig } from "ftguard/infra";',
				'import { Alarms } from "ftguard/infra/alarms";',
				"console.log(JSON.stringify([FtguardStack, CheckpointStore, ScanPipeline, Alarms, stackPropsFromConfig, loadDeployConfig].map((x) => typeof x)));",
			].join("\n"),
		);
		// the consumer's own tsx (here the repository's), as its cdk.json would run it
		const out = execFileSync(join(REPO, "node_modules/.bin/tsx"), ["app.ts"], { cwd: app, encoding: "utf8" });
		expect(JSON.parse(out.trim().split("\n").at(-1) as string)).toEqual(Array(6).fill("function"));
		// the CLI's bin is untouched by the exports map
		const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as {
			bin: unknown;
			exports: Record<string, unknown>;
		};
		expect(pkg.bin).toEqual({ ftguard: "bin/ftguard.mjs" });
	}, 120_000);
});
