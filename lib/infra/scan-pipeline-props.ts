/**
 * ScanPipeline's props and {@link resolveScanPipelineProps}, the pure function that checks them and fills in their
 * defaults before the pipeline creates any resource.
 */
import { Duration, RemovalPolicy, Size } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import { SWEEP } from "../core/pipeline/names.js";
import { type Policy, parsePolicy } from "../core/policy/index.js";
import type { Alarms } from "./alarms.js";
import type { CheckpointStore } from "./checkpoint-store.js";
import type { IsolatedNetwork } from "./isolated-network.js";
import type { OutputMonitorOptions } from "./output-monitor.js";
import { FUNCTION_SIZING } from "./scan-functions.js";
import { backdoorStateTimeoutSeconds, LAMBDA_STEPS, type LambdaStep } from "./state-machine.js";
import { RESERVED_CONCURRENCY } from "./tags.js";

/** Size and retries of the backdoor-scan Batch job. */
export interface BackdoorJobOptions {
	/** @default 8 */
	readonly vcpus?: number;
	/** @default Size.gibibytes(30) (fits a g5/g6 .2xlarge with the ECS agent's share) */
	readonly memory?: Size;
	/** @default 1 */
	readonly gpus?: number;
	/** Timeout of one attempt. @default Duration.hours(2) */
	readonly attemptTimeout?: Duration;
	/** Attempts in all; only host failures (instance terminated or reclaimed) are retried. @default 3 */
	readonly attempts?: number;
}

export interface ScanPipelineProps {
	readonly store: CheckpointStore;
	readonly network: IsolatedNetwork;
	readonly alarms: Alarms;
	/**
	 * The policy document (lib/core/policy schema: signers, file policy, backdoor detectors and thresholds,
	 * reference data per model family or input shape, base-model registry). Validated at synth (an invalid one
	 * throws) and deployed to the base-model bucket (read-only to scanning and training roles) under a
	 * content-addressed key, `FTGUARD_POLICY_URI` in the functions.
	 * @default the schema's defaults: no signers, so nothing verifies and every scan ends QUARANTINED
	 */
	readonly policy?: unknown;
	/**
	 * Reserved concurrency of every scan function (and so the number of scans in flight per step).
	 * @default 10
	 */
	readonly reservedConcurrency?: number;
	/**
	 * GPU instance classes of the Batch compute environment.
	 * @default [G5, G6]
	 */
	readonly gpuInstanceClasses?: readonly ec2.InstanceClass[];
	/**
	 * Maximum vCPUs of the compute environment (it scales from 0); at least backdoorJob.vcpus. At most
	 * ⌊maxvCpus / backdoorJob.vcpus⌋ backdoor scans run at once, the others wait RUNNABLE (see executionTimeout).
	 * @default 64
	 */
	readonly maxvCpus?: number;
	/** @default BackdoorJobOptions defaults */
	readonly backdoorJob?: BackdoorJobOptions;
	/**
	 * The least time the backdoor stage gets: waiting for a GPU instance plus every attempt; at least the attempt
	 * timeout. It sizes the default execution timeout; the BackdoorScan state's own timeout is what the execution
	 * timeout leaves after the other steps (backdoorStateTimeoutSeconds in state-machine.ts), never less than this,
	 * so that a scan queued behind a burst is ended only by its deadline.
	 * @default Duration.hours(6)
	 */
	readonly backdoorTimeout?: Duration;
	/**
	 * Timeout of a whole execution: the scan's deadline; at least backdoorTimeout plus the other steps' task
	 * timeouts. Sizing rule for bursts (docs/deploy.md): at least the other steps (~1 h) + ⌈commits at once / jobs at
	 * once⌉ × the time of one backdoor scan, where jobs at once = ⌊maxvCpus / backdoorJob.vcpus⌋.
	 * @default backdoorTimeout + 2 hours
	 */
	readonly executionTimeout?: Duration;
	/**
	 * Runtime of the functions. cdk-nag's AwsSolutions-L1 wants the newest Node.js runtime CDK knows; an older one
	 * is acknowledged per function (a whole-rule acknowledgement: L1 has no finding ids).
	 * @default lambda.Runtime.NODEJS_22_X (the Node.js line of the Batch image; the code also runs on 20 and 24)
	 */
	readonly runtime?: lambda.Runtime;
	/**
	 * X-Ray tracing of the state machine and the functions (AwsSolutions-SF2 is acknowledged when off).
	 * @default true
	 */
	readonly tracing?: boolean;
	/** @default logs.RetentionDays.ONE_YEAR */
	readonly logRetention?: logs.RetentionDays;
	/**
	 * What happens to the log groups and their key when the stack is deleted.
	 * @default RemovalPolicy.RETAIN
	 */
	readonly removalPolicy?: RemovalPolicy;
	/**
	 * Directory of the handler files `<step>.ts` (and `start.ts`). A missing file is deployed as a stub that
	 * throws (every scan then ends QUARANTINED with an error), with a synth warning.
	 * @default the repository's `lambdas/`
	 */
	readonly handlersDir?: string;
	/**
	 * Alarm on the sweeper's `scans_stuck_in_scanning`: objects it found SCANNING after their scan ended without a
	 * verdict, or the sweeper silent (missing data breaches; see SWEEP in lib/core/pipeline/names.ts).
	 * @default true
	 */
	readonly stuckScanAlarm?: boolean;
	/**
	 * How often the sweeper runs (lambdas/sweep.ts): whole minutes, 5 to 60. Its lookback and the stuck-scan alarm's
	 * period follow (SWEEP in lib/core/pipeline/names.ts).
	 * @default Duration.minutes(SWEEP.intervalMinutes) (15 minutes)
	 */
	readonly sweepInterval?: Duration;
	/**
	 * Attaches the production output monitor (lib/infra/output-monitor.ts) to these inference logs: log groups and/or
	 * capture buckets. Its thresholds are the policy's `monitor` section.
	 * @default no output monitor
	 */
	readonly outputMonitor?: OutputMonitorOptions;
}

/** The settings {@link resolveScanPipelineProps} checks and completes (handlersDir depends on the package location). */
export type ScanPipelineOptions = Omit<ScanPipelineProps, "store" | "network" | "alarms" | "handlersDir">;

/** ScanPipelineOptions with every default applied, every rule checked and the policy parsed. */
export interface ScanPipelineSettings {
	readonly runtime: lambda.Runtime;
	readonly reservedConcurrency: number;
	readonly backdoorJob: Required<BackdoorJobOptions>;
	readonly maxvCpus: number;
	readonly gpuInstanceClasses: readonly ec2.InstanceClass[];
	/** Each Lambda step's task timeout: its function's timeout plus a minute. */
	readonly taskTimeouts: Readonly<Record<LambdaStep, Duration>>;
	readonly executionTimeout: Duration;
	readonly policy: Policy;
	readonly sweepInterval: Duration;
	/** {@link sweepInterval} in (whole) minutes. */
	readonly sweepIntervalMinutes: number;
	readonly tracing: boolean;
	readonly logRetention: logs.RetentionDays;
	readonly removalPolicy: RemovalPolicy;
	readonly stuckScanAlarm: boolean;
}

/**
 * Checks `options` and applies the defaults; throws `ScanPipeline: …` naming the first setting that cannot work
 * (and `ScanPipeline policy: …` for an invalid policy). Pure: it creates no construct.
 */
export function resolveScanPipelineProps(options: ScanPipelineOptions): ScanPipelineSettings {
	const runtime = options.runtime ?? lambda.Runtime.NODEJS_22_X;
	if (runtime.family !== lambda.RuntimeFamily.NODEJS) {
		throw new Error(`ScanPipeline: runtime must be a Node.js runtime (got ${runtime.name})`);
	}
	const reservedConcurrency = options.reservedConcurrency ?? RESERVED_CONCURRENCY.perFunction;
	if (!Number.isInteger(reservedConcurrency) || reservedConcurrency < 1) {
		throw new Error(`ScanPipeline: reservedConcurrency must be a positive integer (got ${reservedConcurrency})`);
	}
	const backdoorJob = resolveJobOptions(options.backdoorJob);
	const maxvCpus = options.maxvCpus ?? 64;
	if (maxvCpus < backdoorJob.vcpus) {
		throw new Error(
			`ScanPipeline: maxvCpus (${options.maxvCpus}) must be at least backdoorJob.vcpus (${backdoorJob.vcpus}): no job could run`,
		);
	}
	const backdoorTimeout = options.backdoorTimeout ?? Duration.hours(6);
	if (backdoorTimeout.toSeconds() < backdoorJob.attemptTimeout.toSeconds()) {
		throw new Error("ScanPipeline: backdoorTimeout must be at least backdoorJob.attemptTimeout");
	}
	const taskTimeouts = Object.fromEntries(
		LAMBDA_STEPS.map((s) => [s, FUNCTION_SIZING[s].timeout.plus(Duration.minutes(1))]),
	) as Record<LambdaStep, Duration>;
	// the BackdoorScan state gets what the deadline leaves after the other steps: at least backdoorTimeout
	const others = Object.fromEntries(LAMBDA_STEPS.map((s) => [s, taskTimeouts[s].toSeconds()])) as Record<
		LambdaStep,
		number
	>;
	const minimum = backdoorTimeout.toSeconds() - backdoorStateTimeoutSeconds(0, others);
	const executionTimeout = options.executionTimeout ?? backdoorTimeout.plus(Duration.hours(2));
	if (executionTimeout.toSeconds() < minimum) {
		throw new Error(
			`ScanPipeline: executionTimeout must be at least backdoorTimeout plus the other steps' task timeouts (${minimum} s, got ${executionTimeout.toSeconds()} s)`,
		);
	}
	const policy = parsePolicy(JSON.stringify(options.policy ?? {}), "ScanPipeline policy");
	const sweepInterval = options.sweepInterval ?? Duration.minutes(SWEEP.intervalMinutes);
	const sweepIntervalMinutes = sweepInterval.toMinutes({ integral: false });
	if (!Number.isInteger(sweepIntervalMinutes) || sweepIntervalMinutes < 5 || sweepIntervalMinutes > 60) {
		throw new Error(`ScanPipeline: sweepInterval must be 5 to 60 whole minutes (got ${sweepIntervalMinutes})`);
	}
	return {
		runtime,
		reservedConcurrency,
		backdoorJob,
		maxvCpus,
		gpuInstanceClasses: options.gpuInstanceClasses ?? [ec2.InstanceClass.G5, ec2.InstanceClass.G6],
		taskTimeouts,
		executionTimeout,
		policy,
		sweepInterval,
		sweepIntervalMinutes,
		tracing: options.tracing ?? true,
		logRetention: options.logRetention ?? logs.RetentionDays.ONE_YEAR,
		removalPolicy: options.removalPolicy ?? RemovalPolicy.RETAIN,
		stuckScanAlarm: options.stuckScanAlarm ?? true,
	};
}

function resolveJobOptions(options: BackdoorJobOptions = {}): Required<BackdoorJobOptions> {
	const resolved = {
		vcpus: options.vcpus ?? 8,
		memory: options.memory ?? Size.gibibytes(30),
		gpus: options.gpus ?? 1,
		attemptTimeout: options.attemptTimeout ?? Duration.hours(2),
		attempts: options.attempts ?? 3,
	};
	if (!Number.isInteger(resolved.gpus) || resolved.gpus < 1) {
		throw new Error(`ScanPipeline: backdoorJob.gpus must be a positive integer (got ${resolved.gpus})`);
	}
	if (!Number.isInteger(resolved.vcpus) || resolved.vcpus < 1) {
		throw new Error(`ScanPipeline: backdoorJob.vcpus must be a positive integer (got ${resolved.vcpus})`);
	}
	if (!Number.isInteger(resolved.attempts) || resolved.attempts < 1 || resolved.attempts > 10) {
		throw new Error(`ScanPipeline: backdoorJob.attempts must be an integer from 1 to 10 (got ${resolved.attempts})`);
	}
	if (resolved.attemptTimeout.toSeconds() < 60) {
		throw new Error("ScanPipeline: backdoorJob.attemptTimeout must be at least 60 seconds (Batch's minimum)");
	}
	return resolved;
}
