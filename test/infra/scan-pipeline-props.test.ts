/**
 * resolveScanPipelineProps: ScanPipeline's defaults and every rule it enforces, checked on plain values (no stack).
 */
import { Duration, RemovalPolicy, Size } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import { describe, expect, it } from "vitest";
import { defaultPolicy } from "../../lib/core/policy/index.js";
import { FUNCTION_SIZING } from "../../lib/infra/scan-functions.js";
import { resolveScanPipelineProps, type ScanPipelineOptions } from "../../lib/infra/scan-pipeline-props.js";
import { LAMBDA_STEPS } from "../../lib/infra/state-machine.js";

const resolve =
	(options: ScanPipelineOptions = {}) =>
	() =>
		resolveScanPipelineProps(options);

/** The other steps' task timeouts on a scan's path (record twice: RecordQuarantine), in seconds: 59 minutes. */
const OTHER_STEPS_SECONDS = 59 * 60;

describe("defaults", () => {
	const settings = resolveScanPipelineProps({});

	it("Node.js 22 on every function, 10 of each in flight, X-Ray on", () => {
		expect(settings.runtime.name).toBe(lambda.Runtime.NODEJS_22_X.name);
		expect(settings.reservedConcurrency).toBe(10);
		expect(settings.tracing).toBe(true);
	});

	it("one 8-vCPU, 30 GiB, 1-GPU job of up to 3 two-hour attempts, on G5/G6 up to 64 vCPUs", () => {
		const { memory, attemptTimeout, ...job } = settings.backdoorJob;
		expect(job).toEqual({ vcpus: 8, gpus: 1, attempts: 3 });
		expect(memory.toMebibytes()).toBe(Size.gibibytes(30).toMebibytes());
		expect(attemptTimeout.toSeconds()).toBe(2 * 3600);
		expect(settings.maxvCpus).toBe(64);
		expect(settings.gpuInstanceClasses).toEqual([ec2.InstanceClass.G5, ec2.InstanceClass.G6]);
	});

	it("an 8-hour deadline (backdoor stage 6 h + 2 h); each step's task timeout is its function's plus a minute", () => {
		expect(settings.executionTimeout.toSeconds()).toBe(8 * 3600);
		for (const step of LAMBDA_STEPS) {
			expect(settings.taskTimeouts[step].toSeconds(), step).toBe(FUNCTION_SIZING[step].timeout.toSeconds() + 60);
		}
	});

	it("the schema's default policy, a 15-minute sweep with its alarm, logs kept a year, everything retained", () => {
		expect(settings.policy).toEqual(defaultPolicy());
		expect(settings.sweepInterval.toMinutes()).toBe(15);
		expect(settings.sweepIntervalMinutes).toBe(15);
		expect(settings.stuckScanAlarm).toBe(true);
		expect(settings.logRetention).toBe(logs.RetentionDays.ONE_YEAR);
		expect(settings.removalPolicy).toBe(RemovalPolicy.RETAIN);
	});
});

describe("given settings", () => {
	it("are kept", () => {
		const settings = resolveScanPipelineProps({
			runtime: lambda.Runtime.NODEJS_20_X,
			reservedConcurrency: 3,
			backdoorJob: { vcpus: 4, gpus: 2, attempts: 1, attemptTimeout: Duration.minutes(30) },
			maxvCpus: 16,
			gpuInstanceClasses: [ec2.InstanceClass.G6E],
			backdoorTimeout: Duration.hours(1),
			executionTimeout: Duration.hours(3),
			policy: { backdoor: { detectors: ["nc"], neuralCleanse: { rule: "ftguard" } } },
			sweepInterval: Duration.minutes(5),
			stuckScanAlarm: false,
			tracing: false,
			logRetention: logs.RetentionDays.ONE_MONTH,
			removalPolicy: RemovalPolicy.DESTROY,
		});
		expect(settings).toMatchObject({
			reservedConcurrency: 3,
			backdoorJob: { vcpus: 4, gpus: 2, attempts: 1 },
			maxvCpus: 16,
			gpuInstanceClasses: [ec2.InstanceClass.G6E],
			sweepIntervalMinutes: 5,
			stuckScanAlarm: false,
			tracing: false,
			logRetention: logs.RetentionDays.ONE_MONTH,
			removalPolicy: RemovalPolicy.DESTROY,
		});
		expect(settings.runtime.name).toBe("nodejs20.x");
		expect(settings.executionTimeout.toSeconds()).toBe(3 * 3600);
		expect(settings.policy.backdoor.detectors).toEqual(["nc"]);
	});

	it("the execution timeout may be exactly the backdoor stage plus the other steps", () => {
		const seconds = 6 * 3600 + OTHER_STEPS_SECONDS;
		expect(resolve({ executionTimeout: Duration.seconds(seconds) })().executionTimeout.toSeconds()).toBe(seconds);
		expect(resolve({ executionTimeout: Duration.seconds(seconds - 1) })).toThrow(
			`ScanPipeline: executionTimeout must be at least backdoorTimeout plus the other steps' task timeouts (${seconds} s, got ${seconds - 1} s)`,
		);
	});

	it("a sweep interval of 5 or 60 whole minutes is accepted", () => {
		expect(resolve({ sweepInterval: Duration.minutes(5) })().sweepIntervalMinutes).toBe(5);
		expect(resolve({ sweepInterval: Duration.hours(1) })().sweepIntervalMinutes).toBe(60);
	});
});

describe("settings that cannot work are refused, naming the setting", () => {
	it("a runtime other than Node.js", () => {
		expect(resolve({ runtime: lambda.Runtime.PYTHON_3_12 })).toThrow(
			"ScanPipeline: runtime must be a Node.js runtime (got python3.12)",
		);
	});

	it("a reserved concurrency that is not a positive integer", () => {
		for (const n of [0, -1, 1.5]) expect(resolve({ reservedConcurrency: n }), String(n)).toThrow(/reservedConcurrency/);
	});

	it("a job without a GPU or vCPU, with 0 or more than 10 attempts, or attempts shorter than Batch's minute", () => {
		expect(resolve({ backdoorJob: { gpus: 0 } })).toThrow(/backdoorJob\.gpus must be a positive integer \(got 0\)/);
		expect(resolve({ backdoorJob: { vcpus: 0 } })).toThrow(/backdoorJob\.vcpus must be a positive integer/);
		expect(resolve({ backdoorJob: { vcpus: 2.5 } })).toThrow(/backdoorJob\.vcpus/);
		expect(resolve({ backdoorJob: { attempts: 0 } })).toThrow(/backdoorJob\.attempts must be an integer from 1 to 10/);
		expect(resolve({ backdoorJob: { attempts: 11 } })).toThrow(/attempts/);
		expect(resolve({ backdoorJob: { attemptTimeout: Duration.seconds(59) } })).toThrow(
			"ScanPipeline: backdoorJob.attemptTimeout must be at least 60 seconds (Batch's minimum)",
		);
	});

	it("a compute environment too small for one job", () => {
		expect(resolve({ maxvCpus: 4 })).toThrow(
			"ScanPipeline: maxvCpus (4) must be at least backdoorJob.vcpus (8): no job could run",
		);
		expect(resolve({ maxvCpus: 4, backdoorJob: { vcpus: 4 } })().maxvCpus).toBe(4);
	});

	it("timeouts that cannot hold a scan", () => {
		expect(resolve({ backdoorTimeout: Duration.hours(1) })).toThrow(
			"ScanPipeline: backdoorTimeout must be at least backdoorJob.attemptTimeout",
		);
		expect(resolve({ executionTimeout: Duration.hours(1) })).toThrow(/executionTimeout/);
	});

	it("an invalid policy, with the schema's message", () => {
		expect(resolve({ policy: { version: 2 } })).toThrow(/^ScanPipeline policy: version/);
		expect(resolve({ policy: { backdoor: { detectors: [] } } })).toThrow(/^ScanPipeline policy: backdoor\.detectors/);
	});

	it("a sweep interval outside 5 to 60 whole minutes", () => {
		for (const interval of [Duration.minutes(2), Duration.seconds(450), Duration.hours(2)]) {
			expect(resolve({ sweepInterval: interval }), interval.toHumanString()).toThrow(/sweepInterval must be 5 to 60/);
		}
	});

	it("the first rule broken is the one named", () => {
		expect(resolve({ runtime: lambda.Runtime.PYTHON_3_12, reservedConcurrency: 0 })).toThrow(/runtime/);
		expect(resolve({ reservedConcurrency: 0, backdoorJob: { gpus: 0 } })).toThrow(/reservedConcurrency/);
		expect(resolve({ maxvCpus: 1, backdoorTimeout: Duration.minutes(1) })).toThrow(/maxvCpus/);
		expect(resolve({ policy: { version: 2 }, sweepInterval: Duration.minutes(1) })).toThrow(/ScanPipeline policy/);
	});
});
