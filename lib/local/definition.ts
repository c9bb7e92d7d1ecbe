/**
 * The scan state machine's definition as CDK synthesizes it, for the local
 * pipeline: the FtguardStack is built in-process (no CLI, no credentials, no
 * assets written), the state machine's `DefinitionString` is resolved to the
 * template's Fn::Join / Ref / Fn::GetAtt form and flattened with the same
 * `definitionFromTemplate` a `cdk.out` template would go through, each reference
 * becoming a stable local ARN or a local bucket name. Then every Task state is
 * mapped to what runs it here: a Lambda function ARN → `lambdas/<step>.ts`, a
 * `batch:submitJob.sync` → the backdoor-scan entry as a child process. A Task
 * that maps to nothing is an error, never a silent pass.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "aws-cdk-lib";
import type { CfnComputeEnvironment, CfnJobDefinition } from "aws-cdk-lib/aws-batch";
import type { CfnFunction } from "aws-cdk-lib/aws-lambda";
import type { CfnStateMachine } from "aws-cdk-lib/aws-stepfunctions";
import type { IConstruct } from "constructs";
import type { ScanPipelineProps } from "../infra/scan-pipeline-props";
import { FtguardStack } from "../infra/stack";
import { definitionFromTemplate, LAMBDA_STEPS, type LambdaStep } from "../infra/state-machine";

export const LOCAL_ACCOUNT = "000000000000";
export const LOCAL_REGION = "us-east-1";

/** Local names of the store's buckets (the template's bucket Refs resolve to these). */
export interface LocalBuckets {
	checkpoints: string;
	reports: string;
	baseModels: string;
	datasets: string;
}

export const DEFAULT_BUCKETS: LocalBuckets = {
	checkpoints: "checkpoints",
	reports: "reports",
	baseModels: "base-models",
	datasets: "datasets",
};

export type TaskTarget =
	| { kind: "lambda"; step: LambdaStep; functionArn: string }
	| { kind: "batch"; resource: string };

export interface AslState {
	Type: string;
	Resource?: string;
	[field: string]: unknown;
}

export interface LocalDefinition {
	/** the ASL, references resolved */
	asl: { StartAt: string; States: Record<string, AslState>; [field: string]: unknown };
	/** what runs each Task state, by state name */
	tasks: Record<string, TaskTarget>;
	buckets: LocalBuckets;
	/** where the batch job reads the deployed policy (FTGUARD_POLICY_URI of its environment), if it does */
	policyUri?: string;
	/** each Lambda step's reserved concurrency, as the stack sets it on the function (the local runner enforces it) */
	reservedConcurrency: Record<LambdaStep, number>;
	/**
	 * The GPU compute environment's capacity in backdoor jobs: `slots` = ⌊maxvCpus / the job's vCPUs⌋ (the most that
	 * run at once; the others wait RUNNABLE), and the job definition's attempt timeout
	 */
	batch: { maxvCpus: number; jobVcpus: number; slots: number; attemptTimeoutSeconds: number };
}

/** What of the scan pipeline's props a local definition may set (tests: a small compute environment, short timeouts). */
export type LocalScanPipelineProps = Pick<
	ScanPipelineProps,
	"maxvCpus" | "backdoorJob" | "backdoorTimeout" | "executionTimeout"
>;

export interface DefinitionOptions {
	/** the policy deployed with the stack (it sets the batch job's detector settings); @default the stack's default */
	policy?: unknown;
	buckets?: LocalBuckets;
	/** the stack's reservedConcurrency prop (tests: a small burst against a small limit); @default the stack's default */
	reservedConcurrency?: number;
	/** more scan pipeline props (tests: the compute environment's size, the timeouts); @default the stack's defaults */
	scanPipeline?: Partial<LocalScanPipelineProps>;
}

function cdkContext(root: string): Record<string, unknown> {
	const json = JSON.parse(readFileSync(join(root, "cdk.json"), "utf8")) as { context?: Record<string, unknown> };
	return json.context ?? {};
}

/**
 * Builds the stack and returns its scan definition mapped to local runners. `root` is the repository root
 * (cdk.json's feature flags are applied, as `cdk synth` does).
 */
export function loadLocalDefinition(root: string, options: DefinitionOptions = {}): LocalDefinition {
	const buckets = options.buckets ?? DEFAULT_BUCKETS;
	const app = new App({ context: cdkContext(root), outdir: mkdtempSync(join(tmpdir(), "ftguard-cdk-")) });
	// The handlers are not bundled here (they run from source): an empty handlers dir gives each function an inline
	// stub. The definition only refers to the functions' ARNs, so it is the same as with the bundled code.
	const stack = new FtguardStack(app, "Ftguard", {
		scanPipeline: {
			...options.scanPipeline,
			handlersDir: mkdtempSync(join(tmpdir(), "ftguard-no-handlers-")),
			...(options.policy !== undefined ? { policy: options.policy } : {}),
			...(options.reservedConcurrency !== undefined ? { reservedConcurrency: options.reservedConcurrency } : {}),
		},
	});
	const logicalId = (c: IConstruct): string => {
		const child = c.node.defaultChild as { logicalId: string } | undefined;
		if (!child) throw new Error(`${c.node.path} has no default child`);
		return stack.resolve(child.logicalId) as string;
	};
	const functionOf = new Map<string, LambdaStep>(
		LAMBDA_STEPS.map((step) => [logicalId(stack.scanPipeline.functions[step]), step]),
	);
	const bucketOf = new Map<string, string>([
		[logicalId(stack.store.checkpointBucket), buckets.checkpoints],
		[logicalId(stack.store.reportBucket), buckets.reports],
		[logicalId(stack.store.baseModelBucket), buckets.baseModels],
		[logicalId(stack.store.datasetBucket), buckets.datasets],
	]);
	const pipeline = stack.scanPipeline;
	const named = new Map<string, string>([
		[logicalId(pipeline.jobQueue), `arn:aws:batch:${LOCAL_REGION}:${LOCAL_ACCOUNT}:job-queue/ftguard-local`],
		[
			logicalId(pipeline.jobDefinition),
			`arn:aws:batch:${LOCAL_REGION}:${LOCAL_ACCOUNT}:job-definition/ftguard-backdoor-scan:1`,
		],
	]);
	const pseudo: Record<string, string> = {
		"AWS::Partition": "aws",
		"AWS::Region": LOCAL_REGION,
		"AWS::AccountId": LOCAL_ACCOUNT,
		"AWS::URLSuffix": "amazonaws.com",
	};
	const resolve = (id: string, attribute: string): string => {
		const p = pseudo[id];
		if (p) return p;
		const step = functionOf.get(id);
		if (step && attribute === "Arn") return functionArn(step);
		const bucket = bucketOf.get(id);
		if (bucket && attribute === "Ref") return bucket;
		if (bucket && attribute === "Arn") return `arn:aws:s3:::${bucket}`;
		const arn = named.get(id);
		if (arn) return arn;
		throw new Error(`the scan definition refers to ${id}.${attribute}, which has no local counterpart`);
	};
	const cfn = pipeline.stateMachine.node.defaultChild as CfnStateMachine;
	const template = {
		Resources: {
			[logicalId(pipeline.stateMachine)]: {
				Type: "AWS::StepFunctions::StateMachine",
				Properties: { DefinitionString: stack.resolve(cfn.definitionString) },
			},
		},
	};
	const asl = definitionFromTemplate(template, resolve) as LocalDefinition["asl"];
	const tasks = mapTasks(asl);
	const policyUri = batchEnvironmentValue(asl, tasks, "FTGUARD_POLICY_URI");
	const reservedConcurrency = Object.fromEntries(
		LAMBDA_STEPS.map((step) => {
			const fn = pipeline.functions[step].node.defaultChild as CfnFunction;
			const n = stack.resolve(fn.reservedConcurrentExecutions) as unknown;
			if (typeof n !== "number") throw new Error(`the ${step} function has no reserved concurrency`);
			return [step, n];
		}),
	) as Record<LambdaStep, number>;
	const batch = batchCapacity(
		stack.resolve((pipeline.computeEnvironment.node.defaultChild as CfnComputeEnvironment).computeResources),
		stack.resolve((pipeline.jobDefinition.node.defaultChild as CfnJobDefinition).containerProperties),
		stack.resolve((pipeline.jobDefinition.node.defaultChild as CfnJobDefinition).timeout),
	);
	return { asl, tasks, buckets, reservedConcurrency, batch, ...(policyUri !== undefined ? { policyUri } : {}) };
}

/** The compute environment's capacity in jobs, from the resolved template properties (CloudFormation's casing). */
function batchCapacity(
	computeResources: unknown,
	containerProperties: unknown,
	timeout: unknown,
): LocalDefinition["batch"] {
	const maxvCpus = Number(
		(computeResources as { maxvCpus?: unknown; MaxvCpus?: unknown })?.maxvCpus ??
			(computeResources as { MaxvCpus?: unknown })?.MaxvCpus,
	);
	const requirements = ((containerProperties as { resourceRequirements?: unknown[]; ResourceRequirements?: unknown[] })
		?.resourceRequirements ??
		(containerProperties as { ResourceRequirements?: unknown[] })?.ResourceRequirements ??
		[]) as Array<Record<string, unknown>>;
	const vcpu = requirements.find((r) => (r.type ?? r.Type) === "VCPU");
	const jobVcpus = Number(vcpu?.value ?? vcpu?.Value);
	const attemptTimeoutSeconds = Number(
		(timeout as { attemptDurationSeconds?: unknown; AttemptDurationSeconds?: unknown })?.attemptDurationSeconds ??
			(timeout as { AttemptDurationSeconds?: unknown })?.AttemptDurationSeconds,
	);
	if (!(maxvCpus > 0) || !(jobVcpus > 0)) {
		throw new Error(`the stack's GPU compute environment or job definition has no vCPUs (${maxvCpus}, ${jobVcpus})`);
	}
	const slots = Math.floor(maxvCpus / jobVcpus);
	if (slots < 1)
		throw new Error(`the compute environment's maxvCpus (${maxvCpus}) is below one job's vCPUs (${jobVcpus})`);
	return { maxvCpus, jobVcpus, slots, attemptTimeoutSeconds };
}

/** A constant variable of the batch tasks' ContainerOverrides environment (the first batch task that sets it). */
export function batchEnvironmentValue(
	asl: LocalDefinition["asl"],
	tasks: Record<string, TaskTarget>,
	name: string,
): string | undefined {
	for (const [state, target] of Object.entries(tasks)) {
		if (target.kind !== "batch") continue;
		const params = statesOf(asl)[state]?.Parameters as
			| { ContainerOverrides?: { Environment?: Array<{ Name?: string; Value?: unknown }> } }
			| undefined;
		const entry = params?.ContainerOverrides?.Environment?.find((e) => e.Name === name);
		if (typeof entry?.Value === "string") return entry.Value;
	}
	return undefined;
}

/**
 * Every state of the definition by name, those of Map iterations (ItemProcessor, or the older Iterator) and Parallel
 * branches included: state names are unique across a whole state machine. The objects are the definition's own, so
 * a change to one (a scaled timeout) changes the definition.
 */
export function statesOf(asl: { States: Record<string, AslState> }): Record<string, AslState> {
	const all: Record<string, AslState> = {};
	const walk = (states: Record<string, AslState>) => {
		for (const [name, state] of Object.entries(states)) {
			all[name] = state;
			const nested = [state.ItemProcessor, state.Iterator, ...(Array.isArray(state.Branches) ? state.Branches : [])];
			for (const n of nested) {
				const inner = (n as { States?: Record<string, AslState> } | undefined)?.States;
				if (inner) walk(inner);
			}
		}
	};
	walk(asl.States);
	return all;
}

export function functionArn(step: LambdaStep): string {
	return `arn:aws:lambda:${LOCAL_REGION}:${LOCAL_ACCOUNT}:function:ftguard-${step}`;
}

/** What runs each Task: a Lambda step by its function ARN, or the batch runner; anything else throws. */
export function mapTasks(asl: LocalDefinition["asl"]): Record<string, TaskTarget> {
	const steps = new Map<string, LambdaStep>(LAMBDA_STEPS.map((s) => [functionArn(s), s]));
	const tasks: Record<string, TaskTarget> = {};
	for (const [name, state] of Object.entries(statesOf(asl))) {
		if (state.Type !== "Task") continue;
		const resource = state.Resource ?? "";
		const step = steps.get(resource);
		if (step) tasks[name] = { kind: "lambda", step, functionArn: resource };
		else if (resource.startsWith("arn:aws:states:::batch:submitJob")) tasks[name] = { kind: "batch", resource };
		else throw new Error(`Task ${name}: no local runner for ${resource}`);
	}
	return tasks;
}
