/**
 * The deployment's configuration file (`npx cdk deploy -c config=ftguard.config.json`): what a platform team sets
 * without writing TypeScript — the policy (the same document `ftguard pipeline --policy` reads, validated by its
 * schema), alarm e-mail subscriptions, GPU capacity, Object Lock, removal policy and the smoke-test key.
 *
 * Pure: zod and the policy schema, no aws-cdk-lib, so `ftguard aws preflight --config` reads the same file with the
 * same rules. bin/app.ts turns a parsed config into FtguardStack props (lib/infra/stack.ts `stackPropsFromConfig`).
 * Every problem is one line naming the field: `gpu.maxVcpus: expected a positive integer`.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { z } from "zod";
import { FtguardError } from "../core/errors.js";
import { type Policy, policySchema, type Signer } from "../core/policy/index.js";
import type { OutputMonitorOptions } from "./output-monitor.js";

/**
 * GPU defaults of the scan pipeline's Batch compute environment (ScanPipelineProps.gpuInstanceClasses and
 * maxvCpus). A test synthesizes the default stack and checks that it uses these, so preflight without a config
 * checks what a default deploy gets.
 */
export const GPU_DEFAULTS = { instanceClasses: ["g5", "g6"], maxVcpus: 64 } as const;

/**
 * vCPUs one backdoor-scan job asks for (BackdoorJobOptions.vcpus default): a compute environment with fewer max vCPUs
 * can never place it. A test checks the synthesized job definition.
 */
export const BACKDOOR_JOB_VCPUS = 8;

/** What the config's `removalPolicy` may say (aws-cdk-lib RemovalPolicy names). */
export const REMOVAL_POLICIES = ["RETAIN", "RETAIN_ON_UPDATE_OR_DELETE", "DESTROY"] as const;
export type RemovalPolicyName = (typeof REMOVAL_POLICIES)[number];

const positiveInt = (what = "a positive integer") =>
	z
		.number({ error: `expected ${what}` })
		.int({ error: `expected ${what}` })
		.positive({ error: `expected ${what}` });

/** Up to 20 S3 locations (bucket, optional key prefix) the output monitor reads. */
const bucketLocations = () =>
	z
		.array(
			z
				.object({
					name: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, { error: "expected a bucket name" }),
					prefix: z.string().max(1024).optional(),
				})
				.strict(),
		)
		.max(20)
		.default([]);

const email = z.email({ error: "expected an e-mail address" });
const pemText = z.string().includes("-----BEGIN ", { message: "must be PEM text" });

/** `g5`, `g6e`, `g4dn`, `p4d`: an EC2 instance family with GPUs (AWS Batch takes a family for all its sizes). */
const gpuClass = z
	.string()
	.regex(/^(g|p)[0-9]+[a-z]*$/, { error: 'expected a GPU instance family such as "g5", "g6e" or "g4dn"' });

export const deployConfigSchema = z
	.object({
		/** Pins the stack's environment; both or neither (else cdk context `account` / `region`, else agnostic). */
		account: z
			.string()
			.regex(/^[0-9]{12}$/, { error: "expected a 12-digit AWS account id" })
			.optional(),
		region: z
			.string()
			.regex(/^[a-z]{2}(-[a-z]+)+-[0-9]+$/, { error: 'expected a region name such as "eu-west-1"' })
			.optional(),
		/** The policy document inline (lib/core/policy schema) … */
		policy: z.unknown().optional(),
		/** … or the path of the policy file `ftguard pipeline --policy` reads, relative to this config file. */
		policyFile: z.string().min(1).optional(),
		alarms: z
			.object({
				/** Subscribed to the alarm topic; each address must confirm the subscription e-mail. */
				emails: z.array(email).max(100).default([]),
			})
			.strict()
			.default({ emails: [] }),
		gpu: z
			.object({
				instanceClasses: z.array(gpuClass).min(1, { error: "expected at least one instance family" }).optional(),
				/**
				 * ⌊maxVcpus / 8⌋ backdoor scans run at once; the others wait RUNNABLE until their scan's deadline (the
				 * execution timeout, 8 h, less the other steps: 7 h 01 min). Burst sizing (docs/deploy.md, 1):
				 * ⌈checkpoints committed at once / ⌊maxVcpus / 8⌋⌉ × one scan's time ≤ 7 h 01 min.
				 */
				maxVcpus: positiveInt().optional(),
			})
			.strict()
			.default({}),
		/**
		 * The production output monitor (docs/monitor.md): the inference log groups (one JSON record per event) and
		 * the buckets / prefixes where SageMaker Data Capture or Bedrock invocation logs land (EventBridge
		 * notifications on). Absent: no monitor.
		 */
		outputMonitor: z
			.object({
				logGroupNames: z
					.array(z.string().regex(/^[\w\-/.#]{1,512}$/, { error: "expected a log group name" }))
					.max(100)
					.default([]),
				captureBuckets: bucketLocations(),
				/**
				 * Where Bedrock delivers bodies too large to log inline (`largeDataDeliveryS3Config`): the monitor reads
				 * a record's `outputBodyS3Path` / `inputBodyS3Path` there, and only there.
				 */
				bedrockLargeDataBuckets: bucketLocations(),
				windowTtlDays: positiveInt("a whole number of days ≥ 1").optional(),
			})
			.strict()
			.refine((m) => m.logGroupNames.length + m.captureBuckets.length > 0, {
				error: "give logGroupNames or captureBuckets",
			})
			.optional(),
		/**
		 * Object Lock on the checkpoint and report buckets, decided before the first deploy (S3 sets it only when a
		 * bucket is created). Absent: the store's default (GOVERNANCE, 30 days); `false`: none.
		 */
		objectLock: z
			.union([
				z.literal(false),
				z
					.object({
						mode: z.enum(["GOVERNANCE", "COMPLIANCE"], { error: 'expected "GOVERNANCE" or "COMPLIANCE"' }),
						retentionDays: positiveInt("a whole number of days ≥ 1"),
					})
					.strict(),
			])
			.optional(),
		/** Days overwritten or deleted object versions are kept; at least the Object Lock retention. */
		noncurrentVersionDays: positiveInt("a whole number of days ≥ 1").optional(),
		removalPolicy: z
			.enum(REMOVAL_POLICIES, { error: `expected one of ${REMOVAL_POLICIES.map((p) => `"${p}"`).join(", ")}` })
			.default("RETAIN"),
		/**
		 * The public key `ftguard aws smoke --key` signs with: added to the policy's signers. Whoever holds its private
		 * key can sign a checkpoint the pipeline promotes, like any other signer.
		 */
		smokeTest: z
			.object({ pem: pemText.optional(), pemFile: z.string().min(1).optional() })
			.strict()
			.refine((s) => (s.pem === undefined) !== (s.pemFile === undefined), { error: "give exactly one of pem, pemFile" })
			.optional(),
	})
	.strict()
	.superRefine((c, ctx) => {
		if ((c.policy === undefined) === (c.policyFile === undefined)) {
			ctx.addIssue({ code: "custom", path: ["policy"], message: "give exactly one of policy, policyFile" });
		}
		if ((c.account === undefined) !== (c.region === undefined)) {
			ctx.addIssue({
				code: "custom",
				path: [c.account === undefined ? "account" : "region"],
				message: "give account and region together (or neither)",
			});
		}
		if (c.gpu.maxVcpus !== undefined && c.gpu.maxVcpus < BACKDOOR_JOB_VCPUS) {
			ctx.addIssue({
				code: "custom",
				path: ["gpu", "maxVcpus"],
				message: `must be at least ${BACKDOOR_JOB_VCPUS}, the vCPUs of one backdoor-scan job`,
			});
		}
		if (c.objectLock && c.noncurrentVersionDays !== undefined && c.noncurrentVersionDays < c.objectLock.retentionDays) {
			ctx.addIssue({
				code: "custom",
				path: ["noncurrentVersionDays"],
				message: `must be at least objectLock.retentionDays (${c.objectLock.retentionDays})`,
			});
		}
		if (c.objectLock && c.objectLock.mode === "COMPLIANCE" && c.removalPolicy === "DESTROY") {
			ctx.addIssue({
				code: "custom",
				path: ["removalPolicy"],
				message: "DESTROY cannot remove a bucket under COMPLIANCE Object Lock",
			});
		}
	});

export type DeployConfigInput = z.input<typeof deployConfigSchema>;

/** A validated configuration with its policy resolved (file read, schema defaults applied, smoke key added). */
export interface DeployConfig {
	account?: string;
	region?: string;
	/** The policy as deployed: the team's signers, then the smoke-test key when there is one. */
	policy: Policy;
	alarmEmails: string[];
	gpu: { instanceClasses: string[]; maxVcpus: number };
	/** Whether `gpu` came from the file (false: the scan pipeline's defaults, GPU_DEFAULTS). */
	gpuConfigured: { instanceClasses: boolean; maxVcpus: boolean };
	/** absent: the store's default (GOVERNANCE, 30 days); false: no Object Lock */
	objectLock?: { mode: "GOVERNANCE" | "COMPLIANCE"; retentionDays: number } | false;
	noncurrentVersionDays?: number;
	removalPolicy: RemovalPolicyName;
	/** The smoke-test signer's public key (PEM), when configured. */
	smokeTestPem?: string;
	/** Inference logs the output monitor is attached to (absent: no monitor). */
	outputMonitor?: OutputMonitorOptions;
}

/** One-line USAGE error: `<field>: <message>`, the file in details. */
function configError(field: string, message: string, source: string, cause?: unknown): FtguardError {
	return new FtguardError("USAGE", `${field}: ${message}`, {
		details: { config: source, field },
		...(cause === undefined ? {} : { cause }),
	});
}

function firstIssue(error: z.ZodError, prefix: readonly (string | number)[] = []): { field: string; message: string } {
	let issue: z.core.$ZodIssue | undefined = error.issues[0];
	// `false` or an object: report the branch that got furthest (the object's field), not "Invalid input"
	if (issue?.code === "invalid_union" && issue.errors.length > 0) {
		const base = issue.path;
		const deepest = issue.errors
			.map((branch) => branch[0])
			.filter((i): i is z.core.$ZodIssue => i !== undefined)
			.sort((x, y) => y.path.length - x.path.length)[0];
		if (deepest && deepest.path.length > 0) issue = { ...deepest, path: [...base, ...deepest.path] };
		else issue = { ...issue, message: "expected false or an object { mode, retentionDays }" };
	}
	const path = [...prefix, ...(issue?.path ?? [])].map(String);
	let message = issue?.message ?? "invalid";
	if (issue?.code === "unrecognized_keys") message = `unknown key ${issue.keys.map((k) => `"${k}"`).join(", ")}`;
	return { field: path.join(".") || "(root)", message };
}

function readText(path: string, field: string, source: string): string {
	try {
		return readFileSync(path, "utf8");
	} catch (e) {
		const why = (e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message;
		throw configError(field, `${path}: ${why}`, source, e);
	}
}

/**
 * Validates a parsed config document. `baseDir` resolves `policyFile` and `smokeTest.pemFile`; `source` names the
 * document in errors' details.
 */
export function parseDeployConfig(json: unknown, baseDir: string, source = "config"): DeployConfig {
	const r = deployConfigSchema.safeParse(json);
	if (!r.success) {
		const { field, message } = firstIssue(r.error);
		throw configError(field, message, source);
	}
	const c = r.data;
	let policyDoc: unknown = c.policy;
	let policyField = "policy";
	if (c.policyFile !== undefined) {
		const path = resolve(baseDir, c.policyFile);
		policyField = "policyFile";
		const text = readText(path, "policyFile", source);
		try {
			policyDoc = JSON.parse(text);
		} catch (e) {
			throw configError("policyFile", `${c.policyFile}: not JSON (${(e as Error).message})`, source, e);
		}
	}
	const p = policySchema.safeParse(policyDoc);
	if (!p.success) {
		const { field, message } = firstIssue(p.error, [policyField]);
		throw configError(field, message, source);
	}
	const policy = p.data;
	let smokeTestPem: string | undefined;
	if (c.smokeTest) {
		smokeTestPem =
			c.smokeTest.pem ?? readText(resolve(baseDir, c.smokeTest.pemFile as string), "smokeTest.pemFile", source);
		if (!smokeTestPem.includes("-----BEGIN ")) throw configError("smokeTest.pemFile", "must be PEM text", source);
		const signer: Signer = { kind: "public-key", pem: smokeTestPem };
		policy.signers = [...policy.signers, signer];
	}
	if (policy.signers.length === 0) {
		throw configError(
			`${policyField}.signers`,
			"no signer is trusted, so every scan would end QUARANTINED: give at least one",
			source,
		);
	}
	return {
		...(c.account !== undefined ? { account: c.account } : {}),
		...(c.region !== undefined ? { region: c.region } : {}),
		policy,
		alarmEmails: c.alarms.emails,
		gpu: {
			instanceClasses: [...(c.gpu.instanceClasses ?? GPU_DEFAULTS.instanceClasses)],
			maxVcpus: c.gpu.maxVcpus ?? GPU_DEFAULTS.maxVcpus,
		},
		gpuConfigured: { instanceClasses: c.gpu.instanceClasses !== undefined, maxVcpus: c.gpu.maxVcpus !== undefined },
		...(c.objectLock !== undefined ? { objectLock: c.objectLock } : {}),
		...(c.noncurrentVersionDays !== undefined ? { noncurrentVersionDays: c.noncurrentVersionDays } : {}),
		removalPolicy: c.removalPolicy,
		...(smokeTestPem !== undefined ? { smokeTestPem } : {}),
		...(c.outputMonitor !== undefined ? { outputMonitor: c.outputMonitor } : {}),
	};
}

/** Reads and validates a config file (`policyFile` and `smokeTest.pemFile` relative to it). */
export function loadDeployConfig(file: string): DeployConfig {
	const path = resolve(file);
	const text = readText(path, "(file)", file);
	let json: unknown;
	try {
		json = JSON.parse(text);
	} catch (e) {
		throw configError("(file)", `${file}: not JSON (${(e as Error).message})`, file, e);
	}
	return parseDeployConfig(json, dirname(path), file);
}
