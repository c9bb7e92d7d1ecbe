/**
 * The local stand-in for AWS Batch behind the `batch:submitJob.sync` Task: the
 * backdoor-scan entry (batch-jobs/backdoor-scan/entry.ts) as a child process on
 * CPU, with the task's ContainerOverrides environment and the local S3 endpoint.
 * It returns what the .sync integration returns for a SUCCEEDED job and throws
 * `States.TaskFailed` (cause: the job description as JSON) for a non-zero exit or
 * a timeout, as the integration does for a FAILED job — the state machine's
 * Catch turns that into QUARANTINED.
 *
 * The job is a process group of its own (a container): its attempt timeout, or
 * the task's `signal` (its state timed out, its execution was stopped), kills
 * the whole group with SIGKILL (in AWS the .sync integration calls TerminateJob).
 * batch-job-guard.mjs ends the group if the pipeline dies first. A process can
 * leave its group (a new session), so what guarantees that nothing the job
 * writes lands after its end is not the kill but its credentials: each attempt
 * gets an access key of its own (`issueCredentials`), revoked before the runner
 * reports the attempt ended, whatever ended it (lib/local/job-credentials.ts).
 *
 * Jobs queue for a slot ({@link BatchSlots}: the compute environment's maxvCpus /
 * the job's vCPUs, from the synthesized stack), as they wait RUNNABLE for
 * capacity in AWS Batch; the time queued counts against the task's state timeout,
 * as it does in Step Functions, and the attempt timeout starts when the job runs.
 * A job cancelled while queued never starts.
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { JobCredentialsGrant } from "./object-server";

/**
 * The capacity of the local compute environment: at most `slots` jobs run at once, the others wait in submission
 * order (RUNNABLE). A waiting job whose task is cancelled leaves the queue (TerminateJob cancels a RUNNABLE job).
 */
export class BatchSlots {
	private running = 0;
	private readonly waiting: Array<() => void> = [];
	/** the most jobs seen running at once */
	peak = 0;

	constructor(readonly slots: number) {
		if (!Number.isInteger(slots) || slots < 1)
			throw new Error(`BatchSlots: slots must be a positive integer (got ${slots})`);
	}

	/** Jobs waiting for a slot now. */
	get queued(): number {
		return this.waiting.length;
	}

	/** Resolves with the slot's release once the job may run; rejects if `signal` aborts first. */
	acquire(signal?: AbortSignal): Promise<() => void> {
		const take = (): (() => void) => {
			this.running += 1;
			this.peak = Math.max(this.peak, this.running);
			let released = false;
			return () => {
				if (released) return;
				released = true;
				this.running -= 1;
				this.waiting.shift()?.();
			};
		};
		if (signal?.aborted) return Promise.reject(signal.reason);
		if (this.running < this.slots) return Promise.resolve(take());
		return new Promise((resolve, reject) => {
			const ready = () => {
				signal?.removeEventListener("abort", cancel);
				resolve(take());
			};
			const cancel = () => {
				const i = this.waiting.indexOf(ready);
				if (i >= 0) this.waiting.splice(i, 1);
				reject(signal?.reason);
			};
			this.waiting.push(ready);
			signal?.addEventListener("abort", cancel, { once: true });
		});
	}
}

export interface BatchRunnerOptions {
	/** repository root: where batch-jobs/ and node_modules/tsx are */
	root: string;
	/** the local S3 endpoint the job reads and writes through */
	s3Endpoint: string;
	/** a key pair for one attempt, revoked before the runner reports the attempt ended (ObjectServer.issueJobCredentials) */
	issueCredentials: () => Promise<JobCredentialsGrant>;
	region: string;
	/** the compute environment's capacity; @default no limit */
	slots?: BatchSlots;
	/** kill the job after this long; @default 600_000 (the job definition's attempt timeout is hours, on a GPU) */
	timeoutMs?: number;
	/** the entry to run; @default batch-jobs/backdoor-scan/entry.ts */
	entry?: string;
	/** each line the job writes to stderr (its log) */
	log?: (line: string) => void;
	/** each line the job writes to stdout (its EMF metric lines, which CloudWatch reads in AWS); @default `log` */
	stdout?: (line: string) => void;
	/** aborted when the task is cancelled (state timeout, execution stopped): the job is killed */
	signal?: AbortSignal;
	/** called with the job's pid once it runs (tests check it is gone) */
	onSpawn?: (pid: number) => void;
}

/** Job stopped because its task was cancelled; the state machine has already moved on (States.Timeout, …). */
export class BatchJobCancelled extends Error {
	constructor(reason: string) {
		super(reason);
		this.name = "States.TaskFailed";
	}
}

const GUARD = join(dirname(fileURLToPath(import.meta.url)), "batch-job-guard.mjs");

interface SubmitJobParameters {
	JobName?: string;
	JobQueue?: string;
	JobDefinition?: string;
	ContainerOverrides?: { Environment?: Array<{ Name: string; Value: string }> };
}

export class BatchJobFailed extends Error {
	constructor(cause: Record<string, unknown>) {
		super(JSON.stringify(cause));
		this.name = "States.TaskFailed";
	}
}

/** Runs one job to completion; resolves with the job description (SUCCEEDED) or throws BatchJobFailed. */
export async function runBatchJob(input: unknown, options: BatchRunnerOptions): Promise<Record<string, unknown>> {
	const params = (input ?? {}) as SubmitJobParameters;
	const submitted = Date.now();
	if (options.signal?.aborted) throw new BatchJobCancelled(`job not started: ${String(options.signal.reason)}`);
	let release: () => void = () => {};
	if (options.slots) {
		try {
			release = await options.slots.acquire(options.signal);
		} catch {
			throw new BatchJobCancelled(`job cancelled while RUNNABLE: ${String(options.signal?.reason)}`);
		}
	}
	try {
		const credentials = await options.issueCredentials();
		try {
			return await runAttempt(params, options, credentials, submitted);
		} finally {
			// before the attempt is reported ended, to anyone: nothing made with its key lands after this
			await credentials.revoke();
		}
	} finally {
		release();
	}
}

async function runAttempt(
	params: SubmitJobParameters,
	options: BatchRunnerOptions,
	credentials: { accessKeyId: string; secretAccessKey: string },
	submitted: number,
): Promise<Record<string, unknown>> {
	const jobEnv = Object.fromEntries((params.ContainerOverrides?.Environment ?? []).map((e) => [e.Name, e.Value]));
	const env: NodeJS.ProcessEnv = {};
	// The job sees only what a container would: no FTGUARD_* or AWS_* of the pipeline process.
	for (const [k, v] of Object.entries(process.env)) {
		if (!k.startsWith("FTGUARD_") && !k.startsWith("AWS_")) env[k] = v;
	}
	Object.assign(env, {
		FTGUARD_DEVICE: "cpu",
		...jobEnv,
		AWS_ENDPOINT_URL_S3: options.s3Endpoint,
		AWS_ACCESS_KEY_ID: credentials.accessKeyId,
		AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
		AWS_REGION: options.region,
		AWS_BATCH_JOB_ID: randomUUID(),
		// the container runs Node 22; here the SDK's "upgrade from Node 20" notice would only be noise
		NODE_NO_WARNINGS: "1",
	});
	const jobId = env.AWS_BATCH_JOB_ID as string;
	const entry = options.entry ?? join(options.root, "batch-jobs/backdoor-scan/entry.ts");
	const timeoutMs = options.timeoutMs ?? 600_000;
	const started = Date.now();
	const describe = (status: string, extra: Record<string, unknown>) => ({
		JobName: params.JobName ?? "ftguard-backdoor-scan",
		JobId: jobId,
		JobQueue: params.JobQueue,
		JobDefinition: params.JobDefinition,
		Status: status,
		CreatedAt: submitted,
		StartedAt: started,
		StoppedAt: Date.now(),
		...extra,
	});
	if (options.signal?.aborted) throw new BatchJobCancelled(`job not started: ${String(options.signal.reason)}`);
	const { code, signal, timedOut, cancelled } = await new Promise<{
		code: number | null;
		signal: NodeJS.Signals | null;
		timedOut: boolean;
		cancelled: boolean;
	}>((resolve, reject) => {
		const child = spawn(process.execPath, ["--import", GUARD, "--import", "tsx", entry], {
			cwd: options.root,
			env,
			// stdin: the guard's lifeline to this process; detached: a process group (and session) of its own
			stdio: ["pipe", "pipe", "pipe"],
			detached: true,
		});
		if (child.pid !== undefined) options.onSpawn?.(child.pid);
		const killGroup = () => {
			try {
				if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
			} catch {
				child.kill("SIGKILL"); // the group is gone already; the child itself, if it is not
			}
		};
		let timedOut = false;
		let cancelled = false;
		const timer = setTimeout(() => {
			timedOut = true;
			killGroup();
		}, timeoutMs);
		const cancel = () => {
			cancelled = true;
			killGroup();
		};
		options.signal?.addEventListener("abort", cancel, { once: true });
		const lines = (to: ((line: string) => void) | undefined) => {
			let pending = "";
			return {
				data(chunk: Buffer) {
					pending += chunk.toString("utf8");
					const complete = pending.split("\n");
					pending = complete.pop() ?? "";
					for (const line of complete) to?.(line);
				},
				end() {
					if (pending) to?.(pending);
				},
			};
		};
		const out = lines(options.stdout ?? options.log);
		const err = lines(options.log);
		child.stdout.on("data", out.data);
		child.stderr.on("data", err.data);
		child.on("error", (e) => {
			clearTimeout(timer);
			options.signal?.removeEventListener("abort", cancel);
			reject(e);
		});
		// what the job left running in its group goes with it, as a container's processes do; a process that left
		// the group may still hold the job's stdout/stderr: the job has ended all the same once it exits
		child.on("exit", () => {
			killGroup();
			setTimeout(() => {
				child.stdout.destroy();
				child.stderr.destroy();
			}, 1000).unref();
		});
		child.on("close", (code, signal) => {
			clearTimeout(timer);
			options.signal?.removeEventListener("abort", cancel);
			out.end();
			err.end();
			resolve({ code, signal, timedOut, cancelled });
		});
	});
	if (cancelled) throw new BatchJobCancelled(`job ${jobId} killed: ${String(options.signal?.reason)}`);
	if (code === 0 && !timedOut) return describe("SUCCEEDED", { Container: { ExitCode: 0 } });
	const reason = timedOut
		? `Job attempt duration exceeded timeout (${Math.round(timeoutMs / 1000)} s)`
		: `Essential container in task exited${code !== null ? ` (exit ${code})` : ` (signal ${signal})`}`;
	throw new BatchJobFailed(describe("FAILED", { StatusReason: reason, Container: { ExitCode: code, Reason: reason } }));
}
