/**
 * The sweeper's pure rules. A scan execution that ends FAILED, TIMED_OUT or ABORTED may leave its objects tagged
 * SCANNING forever (unreadable, but with no verdict and nobody told). The sweeper runs on a schedule, lists the
 * executions that ended that way since its last window, reads each one's input and the objects its Mark state
 * pinned, and quarantines every object version that still carries SCANNING *with that execution's scan id*.
 *
 * It scales with failures, not with the bucket: it never lists checkpoints, only failed executions. Everything
 * here is a decision over plain data, the run's reporting included (runSweep); the SDK calls are in
 * lib/aws/sweep.ts.
 */
import { z } from "zod";
import { FtguardError } from "../errors";
import { zodMessage } from "../schema";
import { MetricName, type MetricPoint, SWEEP } from "./names";
import { scanStateSchema } from "./schema";
import type { ScanObject, ScanState } from "./types";

/** Execution statuses that end without the workflow's own verdict path having run to Done. */
export const STUCK_EXECUTION_STATUSES = ["FAILED", "TIMED_OUT", "ABORTED"] as const;
export type StuckExecutionStatus = (typeof STUCK_EXECUTION_STATUSES)[number];

/** The state whose output pins the objects (lib/infra/state-machine.ts StateName.MARK). */
export const MARK_STATE = "Mark";

/** Bounds of one run, so that a flood of failures cannot make the sweeper time out without reporting. */
export const SWEEP_LIMITS = {
	/** ListExecutions pages per status (100 executions each). */
	maxPagesPerStatus: 20,
	/** Executions examined per run; the rest makes the run `truncated` (the metric then alarms). */
	maxExecutions: 300,
	/** GetExecutionHistory pages per execution while looking for Mark's output (it is among the first events). */
	maxHistoryPages: 5,
	/** Longest lookback a manual invocation may ask for: Step Functions keeps closed executions 90 days. */
	maxLookbackMinutes: 90 * 24 * 60,
} as const;
export type SweepLimits = { readonly [K in keyof typeof SWEEP_LIMITS]: number };

export interface SweepWindow {
	/** executions that stopped at or after this are examined */
	since: Date;
	/**
	 * ListExecutions returns the newest start first; an execution that started before this cannot have stopped
	 * after `since` (it would have hit the state machine timeout first), so listing stops there.
	 */
	listUntilStart: Date;
}

/**
 * The window of one run: the last `lookbackMinutes`. The schedule's lookback is several intervals long, so a
 * run or two that failed or came late loses nothing (an object already quarantined is no longer SCANNING and
 * is not counted twice).
 */
export function sweepWindow(now: Date, lookbackMinutes: number, maxExecutionSeconds: number): SweepWindow {
	if (
		!(Number.isFinite(lookbackMinutes) && lookbackMinutes > 0 && lookbackMinutes <= SWEEP_LIMITS.maxLookbackMinutes)
	) {
		throw new RangeError(`lookback must be 1 to ${SWEEP_LIMITS.maxLookbackMinutes} minutes (got ${lookbackMinutes})`);
	}
	if (!(Number.isFinite(maxExecutionSeconds) && maxExecutionSeconds > 0)) {
		throw new RangeError(`the longest execution must be a positive number of seconds (got ${maxExecutionSeconds})`);
	}
	const since = new Date(now.getTime() - lookbackMinutes * 60_000);
	// One extra minute: the timeout is enforced by Step Functions, not to the millisecond.
	return { since, listUntilStart: new Date(since.getTime() - (maxExecutionSeconds + 60) * 1000) };
}

/** One item of ListExecutions. */
export interface ExecutionSummary {
	executionArn: string;
	name: string;
	status: string;
	startDate?: Date;
	stopDate?: Date;
}

/**
 * What to do with a listed execution: examine it, skip it (stopped before the window, or not stopped), or stop
 * listing (it started before any execution that stopped in the window could have). A missing start date cannot
 * be placed, so it is examined (extra work, never a missed object).
 */
export function classifyExecution(e: ExecutionSummary, w: SweepWindow): "examine" | "skip" | "stop" {
	if (e.startDate !== undefined && e.startDate.getTime() < w.listUntilStart.getTime()) return "stop";
	if (!(STUCK_EXECUTION_STATUSES as readonly string[]).includes(e.status)) return "skip";
	if (e.stopDate !== undefined && e.stopDate.getTime() < w.since.getTime()) return "skip";
	return "examine";
}

const inputSchema = z.object({
	scanId: scanStateSchema.shape.scanId,
	bucket: z.string().min(1),
	marker: z.object({ key: z.string().min(1) }).loose(),
	artefact: z.string().min(1),
});

export type ExecutionScan = Pick<ScanState, "scanId" | "bucket" | "artefact"> & { markerKey: string };

/**
 * The scan an execution ran, from its input (the start function's initial state). The input's scan id must be
 * the execution's name (the start function names executions by scan id): anything else is a hand-started or
 * foreign execution, and its objects are not touched.
 */
export function scanOfExecution(name: string, input: string | undefined): ExecutionScan | { problem: string } {
	if (input === undefined) return { problem: "the execution has no input" };
	let json: unknown;
	try {
		json = JSON.parse(input);
	} catch {
		return { problem: "the execution input is not JSON" };
	}
	const r = inputSchema.safeParse(json);
	if (!r.success) return { problem: `the execution input is not a scan state: ${zodMessage(r.error)}` };
	if (r.data.scanId !== name) {
		return { problem: `the input's scan id ${r.data.scanId} is not the execution name ${name}` };
	}
	return { scanId: r.data.scanId, bucket: r.data.bucket, artefact: r.data.artefact, markerKey: r.data.marker.key };
}

/**
 * The objects Mark pinned, from the output of its TaskStateExited event (the state with `objects`), checked to
 * belong to `scan`. Undefined output (Mark never finished) and anything malformed are problems: which objects
 * carry SCANNING is then unknown.
 */
export function markedObjects(scan: ExecutionScan, output: string | undefined): ScanObject[] | { problem: string } {
	if (output === undefined) return { problem: "Mark has no output in the execution history" };
	let json: unknown;
	try {
		json = JSON.parse(output);
	} catch {
		return { problem: "Mark's output is not JSON (truncated in the history?)" };
	}
	const r = scanStateSchema.safeParse(json);
	if (!r.success) return { problem: `Mark's output is not a scan state: ${zodMessage(r.error)}` };
	if (r.data.scanId !== scan.scanId || r.data.bucket !== scan.bucket) {
		return { problem: "Mark's output is for another scan" };
	}
	if (r.data.objects === undefined) return { problem: "Mark's output has no objects" };
	return r.data.objects.map((o) => ({
		key: o.key,
		size: o.size,
		...(o.versionId !== undefined ? { versionId: o.versionId } : {}),
		...(o.etag !== undefined ? { etag: o.etag } : {}),
	}));
}

/** What Mark's presence in the history says about the objects. */
export type MarkProgress =
	| { kind: "never-entered" }
	| { kind: "exited"; output: string | undefined }
	| { kind: "entered-not-exited" };

/** A history event, reduced to what the sweeper reads. */
export interface HistoryEvent {
	type: string;
	/** stateEnteredEventDetails.name / stateExitedEventDetails.name */
	stateName?: string;
	/** stateExitedEventDetails.output */
	output?: string;
}

/** Mark's progress from the history events read so far (in order); `complete` says whether they are all of them. */
export function markProgress(events: readonly HistoryEvent[], complete: boolean): MarkProgress | undefined {
	let entered = false;
	for (const e of events) {
		if (e.stateName !== MARK_STATE) continue;
		if (e.type === "TaskStateExited") return { kind: "exited", output: e.output };
		if (e.type === "TaskStateEntered") entered = true;
	}
	if (!complete) return undefined;
	return entered ? { kind: "entered-not-exited" } : { kind: "never-entered" };
}

/**
 * One object version's ftguard tags (`ftguard:status`, `ftguard:scan-id`) → what the sweeper does with it. Only
 * `stuck` (SCANNING with this scan's id) is written; a verdict, another scan's SCANNING (a newer, possibly running
 * scan of the same object) and no status at all are left alone.
 */
export function judgeObject(
	tags: { status: string | undefined; scanId: string | undefined },
	scanId: string,
): "stuck" | "settled" | "other-scan" | "untagged" {
	if (tags.status === undefined) return "untagged";
	if (tags.status !== "SCANNING") return "settled";
	return tags.scanId === scanId ? "stuck" : "other-scan";
}

/**
 * The reason written with the quarantine (an S3 tag value: at most 256 characters of letters, digits, spaces and
 * `+ - = . _ : / @`).
 */
export function sweepReason(status: string): string {
	const clean = status.replace(/[^A-Za-z0-9_]/g, "");
	return `swept: execution ${clean || "unknown"} without a verdict`.slice(0, 256);
}

/** What one run found. */
export interface SweepSummary {
	/** executions listed in the window and examined */
	examined: number;
	/** object versions found SCANNING with the scan id of an execution that ended without a verdict */
	stuck: number;
	/** of those, quarantined by this run */
	quarantined: number;
	/** executions or objects that could not be checked (errors, unknown marked objects) */
	unchecked: number;
	/** the run hit a bound (pages, executions, time) before examining every execution in the window */
	truncated: boolean;
}

/**
 * The value of `scans_stuck_in_scanning` for a run: the stuck objects it found, plus everything it could not
 * check (an unchecked execution may hide stuck objects; a truncated run counts 1), so that "could not look"
 * alarms like "found". 0 only when every execution in the window was examined and nothing was stuck.
 */
export function stuckMetricValue(s: SweepSummary): number {
	return s.stuck + s.unchecked + (s.truncated ? 1 : 0);
}

/** The sweeper's result: what the run found, where its window began, and the value it emitted. */
export type SweepResult = SweepSummary & { since: string; metric: number };

/** The schedule's `{"lookbackMinutes": N}`; a manual invocation may pass a longer lookback after an outage. */
const sweepEventSchema = z
	.object({ lookbackMinutes: z.number().int().min(1).max(SWEEP_LIMITS.maxLookbackMinutes).optional() })
	.loose();

/** Time kept back from the function's timeout to report before Lambda stops the run. */
export const REPORT_MARGIN_MS = 60_000;
/** The time a run assumes it has when the function's remaining time is not known. */
const DEFAULT_REMAINING_MS = 5 * 60_000;

/** One sweeper invocation: its event and clock, and the handler's wiring. */
export interface SweepInvocation {
	event: unknown;
	now: Date;
	/** milliseconds before the function is stopped, when known */
	remainingMs: number | undefined;
	/** the state machine's execution timeout; read once the input is valid, so a missing setting is reported too */
	maxExecutionSeconds: () => number;
	/** the SDK side (lib/aws/sweep.ts): one run over the window, starting nothing after `deadline` (epoch ms) */
	sweep: (window: SweepWindow, deadline: number) => Promise<SweepSummary>;
	/** emits the run's data point */
	emit: (points: MetricPoint[]) => void;
}

/**
 * One sweeper run: input → window → sweep → `scans_stuck_in_scanning` ({@link stuckMetricValue}), emitted exactly
 * once whatever happens, since the alarm treats silence as breaching. A run that fails before it has a summary
 * (invalid input, missing configuration, executions it cannot list) emits 1 — it could not look — rather than wait
 * for the silence rule, then rethrows so that the invocation shows as an error.
 */
export async function runSweep(o: SweepInvocation): Promise<SweepResult> {
	const report = (value: number) => o.emit([{ name: MetricName.SCANS_STUCK_IN_SCANNING, value, unit: "Count" }]);
	try {
		const input = sweepEventSchema.safeParse(o.event ?? {});
		if (!input.success) throw new FtguardError("USAGE", `sweep: invalid input: ${zodMessage(input.error)}`);
		const lookback = input.data.lookbackMinutes ?? SWEEP.intervalMinutes * SWEEP.lookbackIntervals;
		const maxExecutionSeconds = o.maxExecutionSeconds();
		let window: SweepWindow;
		try {
			window = sweepWindow(o.now, lookback, maxExecutionSeconds);
		} catch (e) {
			throw new FtguardError("USAGE", `sweep: ${(e as Error).message}`);
		}
		const remaining = o.remainingMs ?? DEFAULT_REMAINING_MS;
		const summary = await o.sweep(window, o.now.getTime() + Math.max(0, remaining - REPORT_MARGIN_MS));
		const metric = stuckMetricValue(summary);
		report(metric);
		return { ...summary, since: window.since.toISOString(), metric };
	} catch (e) {
		report(1);
		throw e;
	}
}
