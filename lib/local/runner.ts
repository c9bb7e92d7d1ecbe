/**
 * Runs the synthesized scan definition in-process with aws-local-stepfunctions:
 * every Task state calls what `definition.ts` mapped it to — the Lambda step's
 * own handler (lambdas/<step>.ts, the same function AWS runs) or the local batch
 * runner. Retries, Catches, Choices, timeouts and ResultPaths are the ASL's own.
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
import type { LambdaStep } from "../infra/state-machine";
import type { LocalDefinition } from "./definition";

export type TaskHandler = (input: unknown) => Promise<unknown>;

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
	/** called with the state name before each Task runs */
	onTask?: (state: string) => void;
}

export type ExecutionOutcome =
	| { ok: true; output: ScanState }
	| { ok: false; error: { name: string; message: string }; lastInput?: ScanState };

export interface LocalStateMachine {
	execute(input: ScanState): Promise<ExecutionOutcome>;
}

export function createLocalStateMachine(definition: LocalDefinition, options: RunnerOptions): LocalStateMachine {
	const machine = new StateMachine(definition.asl as never, {
		validationOptions: { checkArn: true, checkPaths: true },
	});
	return {
		async execute(input) {
			let lastInput: ScanState | undefined;
			const handlers: Record<string, (input: unknown) => Promise<never>> = {};
			for (const [name, target] of Object.entries(definition.tasks)) {
				const fn =
					target.kind === "batch"
						? options.batch
						: (options.lambdaOverrides?.[target.step] ?? LAMBDA_HANDLERS[target.step]);
				handlers[name] = async (taskInput: unknown) => {
					options.onTask?.(name);
					if (target.kind === "lambda") lastInput = taskInput as ScanState;
					// JSON in, JSON out: what crosses the Lambda invoke boundary in AWS.
					const result = await fn(JSON.parse(JSON.stringify(taskInput)));
					return JSON.parse(JSON.stringify(result ?? null)) as never;
				};
			}
			try {
				const output = await machine.run(input as never, {
					overrides: {
						taskResourceLocalHandlers: handlers,
						...(options.retryIntervalOverrides ? { retryIntervalOverrides: options.retryIntervalOverrides } : {}),
					},
				}).result;
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
			}
		},
	};
}
