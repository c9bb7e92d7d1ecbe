/**
 * Runs the synthesized scan definition in-process with aws-local-stepfunctions:
 * every Task state calls what `definition.ts` mapped it to — the Lambda step's
 * own handler (lambdas/<step>.ts, the same function AWS runs) or the local batch
 * runner. Retries, Catches, Choices, timeouts and ResultPaths are the ASL's own.
 *
 * Two things of AWS the library does not do are done here. Reserved concurrency: a Lambda step invoked while
 * as many invocations of its function run as the stack reserves for it fails at once with
 * Lambda.TooManyRequestsException (as a synchronous invoke does in AWS), and the definition's Retry decides what
 * follows. Cancellation: a task whose state times out, or whose execution ends (stopped, timed out), has its
 * signal aborted — the batch runner then kills the job, as the .sync integration's TerminateJob does. A batch task's
 * timeout is this runner's own: its States.Timeout is raised only once the job has ended and its credentials are
 * revoked (the library's timer for that state is set later, as a backstop), and an execution that ends waits for its
 * batch jobs the same way, so the verdict (or the execution's end) comes after anything the job could write.
 */
import "./with-resolvers";
import { StateMachine } from "aws-local-stepfunctions";
import { handler as decide } from "../../lambdas/decide";
import { handler as files } from "../../lambdas/files";
import { handler as manifest } from "../../lambdas/manifest";
import { handler as mark } from "../../lambdas/mark";
import { handler as record } from "../../lambdas/record";
import { handler as signature } from "../../lambdas/signature";
import type { ScanState } from "../core/pipeline/types";
import { LAMBDA_THROTTLE_ERROR, type LambdaStep } from "../infra/state-machine";
import { type LocalDefinition, statesOf } from "./definition";

/** What a task gets besides its input: `signal` aborts when the state times out or the execution ends. */
export interface TaskContext {
	signal: AbortSignal;
}

export type TaskHandler = (input: unknown, context?: TaskContext) => Promise<unknown>;

/** The error of a throttled synchronous invoke, by the name Step Functions gives it. */
export class LambdaThrottled extends Error {
	constructor(step: LambdaStep, limit: number) {
		super(`Rate Exceeded. (ReservedFunctionConcurrentInvocationLimitExceeded: ftguard-${step}, ${limit})`);
		this.name = LAMBDA_THROTTLE_ERROR;
	}
}

/** aws-local-stepfunctions' TimeoutSeconds when a Task has none (every Task of the scan definition has one). */
const LIBRARY_DEFAULT_TIMEOUT_S = 60;

/**
 * How much later than this runner's timer the library's own timer of a batch Task fires: the time a cancelled job
 * has to be killed and its credentials revoked before the library would move on regardless (a backstop: that takes
 * milliseconds).
 */
export const BATCH_CANCEL_GRACE_S = 60;

/** A Task state's timeout, raised by this runner (the library's own StatesTimeoutError is not exported). */
export class StateTimedOut extends Error {
	constructor(state: string, seconds: number) {
		super(`${state}: the state timed out after ${seconds} s (States.Timeout)`);
		this.name = "States.Timeout";
	}
}

/** The deployed handler of each Lambda step. */
export const LAMBDA_HANDLERS: Readonly<Record<LambdaStep, TaskHandler>> = {
	mark,
	manifest,
	signature,
	files,
	decide,
	record,
};

export interface RunnerOptions {
	/** the batch job (batch-runner.ts bound to the local endpoint) */
	batch: TaskHandler;
	/** replaces the handler of a Lambda step (fault injection in tests) */
	lambdaOverrides?: Partial<Record<LambdaStep, TaskHandler>>;
	/** retry waits in milliseconds per state name, instead of the ASL's intervals (tests) */
	retryIntervalOverrides?: Record<string, number>;
	/** called with the state name before each Task runs (not for an invoke that was throttled) */
	onTask?: (state: string) => void;
	/** TimeoutSeconds per state name, instead of the definition's (tests: a job past a short state timeout) */
	timeoutOverrides?: Record<string, number>;
	/**
	 * Multiplies every TimeoutSeconds of the definition, the states' and the execution's (before `timeoutOverrides`;
	 * rounded, at least 1 s): hours of the deployed definition in seconds, in its own proportions (tests). @default 1
	 */
	timeScale?: number;
	/** called with the step each time an invoke is throttled */
	onThrottle?: (step: LambdaStep) => void;
}

export type ExecutionOutcome =
	| { ok: true; output: ScanState }
	| { ok: false; error: { name: string; message: string }; lastInput?: ScanState };

export interface LocalStateMachine {
	/** Runs one execution; aborting `stop` stops it (StopExecution). */
	execute(input: ScanState, stop?: AbortSignal): Promise<ExecutionOutcome>;
}

export function createLocalStateMachine(definition: LocalDefinition, options: RunnerOptions): LocalStateMachine {
	const asl = structuredClone(definition.asl);
	const scale = options.timeScale ?? 1;
	if (!(scale > 0)) throw new Error(`timeScale must be positive (got ${scale})`);
	if (scale !== 1) {
		const scaled = (s: unknown) => Math.max(1, Math.round(Number(s) * scale));
		if (asl.TimeoutSeconds !== undefined) asl.TimeoutSeconds = scaled(asl.TimeoutSeconds);
		for (const state of Object.values(statesOf(asl))) {
			if (state.TimeoutSeconds !== undefined) state.TimeoutSeconds = scaled(state.TimeoutSeconds);
		}
	}
	for (const [name, seconds] of Object.entries(options.timeoutOverrides ?? {})) {
		const state = statesOf(asl)[name];
		if (!state) throw new Error(`timeoutOverrides: no state ${name}`);
		state.TimeoutSeconds = seconds;
	}
	// this runner's timeout of each Task, in seconds; the library's timer of a batch Task is the backstop, later
	const stateTimeoutS = Object.fromEntries(
		Object.keys(definition.tasks).map((name) => [
			name,
			Number(statesOf(asl)[name]?.TimeoutSeconds) || LIBRARY_DEFAULT_TIMEOUT_S,
		]),
	);
	const libraryAsl = structuredClone(asl);
	for (const [name, target] of Object.entries(definition.tasks)) {
		const state = statesOf(libraryAsl)[name];
		if (target.kind === "batch" && state) state.TimeoutSeconds = (stateTimeoutS[name] ?? 0) + BATCH_CANCEL_GRACE_S;
	}
	const machine = new StateMachine(libraryAsl as never, {
		validationOptions: { checkArn: true, checkPaths: true },
	});
	// One count per function, shared by every execution (Record and RecordQuarantine invoke the same function).
	const inFlight = Object.fromEntries(Object.keys(definition.reservedConcurrency).map((s) => [s, 0])) as Record<
		LambdaStep,
		number
	>;
	return {
		async execute(input, stop) {
			let lastInput: ScanState | undefined;
			// the tasks of this execution still running: aborted when it ends, however it ends
			const active = new Set<AbortController>();
			// its batch jobs until they have ended (killed, credentials revoked): the execution ends after them
			const jobs = new Set<Promise<unknown>>();
			const handlers: Record<string, (input: unknown) => Promise<never>> = {};
			for (const [name, target] of Object.entries(definition.tasks)) {
				const fn =
					target.kind === "batch"
						? options.batch
						: (options.lambdaOverrides?.[target.step] ?? LAMBDA_HANDLERS[target.step]);
				const timeoutS = stateTimeoutS[name] ?? LIBRARY_DEFAULT_TIMEOUT_S;
				handlers[name] = async (taskInput: unknown) => {
					if (target.kind === "lambda") {
						const limit = definition.reservedConcurrency[target.step];
						if (inFlight[target.step] >= limit) {
							options.onThrottle?.(target.step);
							throw new LambdaThrottled(target.step, limit);
						}
						inFlight[target.step] += 1;
					}
					const controller = new AbortController();
					active.add(controller);
					// A Lambda task: set before the library's own timer of the same length (it starts it after calling this
					// handler), which moves the execution on while the function still runs, as in AWS. A batch task: the
					// timeout is raised here, once the job has ended (the library's timer is later).
					let timedOut = false;
					const timer = setTimeout(() => {
						timedOut = true;
						controller.abort(new Error("States.Timeout"));
					}, timeoutS * 1000);
					try {
						options.onTask?.(name);
						if (target.kind === "lambda") lastInput = taskInput as ScanState;
						// JSON in, JSON out: what crosses the Lambda invoke boundary in AWS.
						const call = fn(JSON.parse(JSON.stringify(taskInput)), { signal: controller.signal });
						if (target.kind === "batch") jobs.add(call.catch(() => {}));
						const result = await call.catch((e: unknown) => {
							if (timedOut && target.kind === "batch") throw new StateTimedOut(name, timeoutS);
							throw e;
						});
						if (timedOut && target.kind === "batch") throw new StateTimedOut(name, timeoutS);
						return JSON.parse(JSON.stringify(result ?? null)) as never;
					} finally {
						clearTimeout(timer);
						active.delete(controller);
						// the slot is held until the function returns, also after its state timed out (as in Lambda)
						if (target.kind === "lambda") inFlight[target.step] -= 1;
					}
				};
			}
			const run = machine.run(input as never, {
				overrides: {
					taskResourceLocalHandlers: handlers,
					...(options.retryIntervalOverrides ? { retryIntervalOverrides: options.retryIntervalOverrides } : {}),
				},
			});
			const onStop = () => run.abort();
			if (stop?.aborted) run.abort();
			stop?.addEventListener("abort", onStop, { once: true });
			try {
				const output = await run.result;
				return { ok: true, output: output as unknown as ScanState };
			} catch (e) {
				// An execution that ends in a Fail state: its Error is the cause's name (Ftguard.QuarantinedAfterError, …).
				const err = e as Error & { cause?: { name?: string; message?: string } };
				const failed = err.name === "ExecutionError" && err.cause?.name ? err.cause : err;
				return {
					ok: false,
					error: { name: failed.name ?? err.name, message: failed.message ?? err.message },
					...(lastInput ? { lastInput } : {}),
				};
			} finally {
				stop?.removeEventListener("abort", onStop);
				for (const c of active) c.abort(new Error("execution ended"));
				await Promise.allSettled([...jobs]);
			}
		},
	};
}
