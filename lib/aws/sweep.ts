/**
 * The sweeper's AWS side (rules in lib/core/pipeline/sweep.ts): list the scan state machine's executions that
 * ended FAILED / TIMED_OUT / ABORTED in the window (paginated, bounded), read each one's input
 * (DescribeExecution) and the objects its Mark state pinned (GetExecutionHistory), and quarantine every pinned
 * object version still tagged SCANNING with that execution's scan id — through the same tagging code as record
 * (lib/aws/tagging.ts), on the exact VersionId (or after the same ETag check as record where there is none).
 *
 * The checkpoint bucket policy lets the sweeper's role write tags only as `ftguard:status=QUARANTINED` on an
 * object whose current status is SCANNING (lib/infra/checkpoint-store.ts), so even a race with a live scan
 * cannot make it promote, or overwrite a verdict.
 */

import type { S3Client } from "@aws-sdk/client-s3";
import {
	DescribeExecutionCommand,
	GetExecutionHistoryCommand,
	ListExecutionsCommand,
	type SFNClient,
	type HistoryEvent as SfnHistoryEvent,
} from "@aws-sdk/client-sfn";
import { firstLine, toFtguardError } from "../core/errors";
import { mapLimit } from "../core/pipeline/concurrency";
import { REASON_TAG, SCAN_ID_TAG, ScanStatus, STATUS_TAG } from "../core/pipeline/names";
import {
	classifyExecution,
	type ExecutionScan,
	type ExecutionSummary,
	type HistoryEvent,
	judgeObject,
	markedObjects,
	markProgress,
	STUCK_EXECUTION_STATUSES,
	SWEEP_LIMITS,
	type SweepLimits,
	type SweepSummary,
	type SweepWindow,
	scanOfExecution,
	sweepReason,
} from "../core/pipeline/sweep";
import type { ScanObject } from "../core/pipeline/types";
import { changedSince } from "./objects";
import type { HandlerLog } from "./runtime";
import { getTags, putFtguardTags } from "./tagging";

/** Log lines of a run: the handler's Powertools logger. */
export type SweepLog = Pick<HandlerLog, "info" | "warn" | "error">;

export interface SweepOptions {
	sfn: SFNClient;
	s3: S3Client;
	stateMachineArn: string;
	window: SweepWindow;
	/** epoch ms after which no further execution is started (the function's timeout, less a margin) */
	deadline: number;
	log: SweepLog;
	/** @default SWEEP_LIMITS */
	limits?: Partial<SweepLimits>;
}

/** One object the run found stuck, for the log. */
export interface SweptObject {
	scanId: string;
	bucket: string;
	key: string;
	versionId?: string;
	quarantined: boolean;
	error?: string;
}

const why = (e: unknown): string => {
	const err = toFtguardError(e);
	return `${err.code}: ${firstLine(err.message)}`;
};

/** Every execution in the window with a stuck status; `truncated` when a page bound stopped a listing. */
async function listCandidates(
	o: SweepOptions,
	limits: SweepLimits,
): Promise<{ candidates: ExecutionSummary[]; truncated: boolean }> {
	const candidates: ExecutionSummary[] = [];
	let truncated = false;
	for (const statusFilter of STUCK_EXECUTION_STATUSES) {
		let nextToken: string | undefined;
		let pages = 0;
		listing: do {
			if (pages++ >= limits.maxPagesPerStatus) {
				truncated = true;
				break;
			}
			const r = await o.sfn.send(
				new ListExecutionsCommand({
					stateMachineArn: o.stateMachineArn,
					statusFilter,
					maxResults: 100,
					...(nextToken ? { nextToken } : {}),
				}),
			);
			for (const e of r.executions ?? []) {
				const summary: ExecutionSummary = {
					executionArn: e.executionArn ?? "",
					name: e.name ?? "",
					status: e.status ?? statusFilter,
					...(e.startDate ? { startDate: new Date(e.startDate) } : {}),
					...(e.stopDate ? { stopDate: new Date(e.stopDate) } : {}),
				};
				const c = classifyExecution(summary, o.window);
				if (c === "stop") break listing;
				if (c === "examine") candidates.push(summary);
			}
			nextToken = r.nextToken;
		} while (nextToken);
	}
	return { candidates, truncated };
}

function historyEvent(e: SfnHistoryEvent): HistoryEvent {
	return {
		type: e.type ?? "",
		...(e.stateEnteredEventDetails?.name !== undefined ? { stateName: e.stateEnteredEventDetails.name } : {}),
		...(e.stateExitedEventDetails?.name !== undefined ? { stateName: e.stateExitedEventDetails.name } : {}),
		...(e.stateExitedEventDetails?.output !== undefined ? { output: e.stateExitedEventDetails.output } : {}),
	};
}

/** The objects the execution's Mark state pinned; [] when Mark never ran; a problem when unknown. */
async function pinnedObjects(
	o: SweepOptions,
	limits: SweepLimits,
	executionArn: string,
	scan: ExecutionScan,
): Promise<ScanObject[] | { problem: string }> {
	const events: HistoryEvent[] = [];
	let nextToken: string | undefined;
	for (let page = 0; page < limits.maxHistoryPages; page++) {
		const r = await o.sfn.send(
			new GetExecutionHistoryCommand({
				executionArn,
				maxResults: 100,
				reverseOrder: false,
				includeExecutionData: true,
				...(nextToken ? { nextToken } : {}),
			}),
		);
		events.push(...(r.events ?? []).map(historyEvent));
		nextToken = r.nextToken;
		const progress = markProgress(events, nextToken === undefined);
		if (progress?.kind === "exited") return markedObjects(scan, progress.output);
		if (progress?.kind === "never-entered") return [];
		if (progress?.kind === "entered-not-exited") {
			// Mark may have tagged some objects SCANNING before it failed; which ones is not recorded anywhere.
			return { problem: "Mark started but never finished: some objects may be SCANNING" };
		}
		if (nextToken === undefined) break;
	}
	return { problem: `Mark's output is not in the first ${limits.maxHistoryPages} pages of the history` };
}

/** Checks one pinned object and quarantines it when it is stuck; undefined when it is not this scan's SCANNING. */
async function sweepObject(
	o: SweepOptions,
	scan: ExecutionScan,
	status: string,
	object: ScanObject,
): Promise<SweptObject | undefined> {
	const target = {
		bucket: scan.bucket,
		key: object.key,
		...(object.versionId !== undefined ? { versionId: object.versionId } : {}),
	};
	if (object.versionId === undefined) {
		// No VersionId (a store without versioning): the key's current object must still be the one Mark pinned
		// (record's own check); a replaced object is a new upload with no tags from this scan.
		if ((await changedSince(o.s3, scan.bucket, object)) !== undefined) return undefined;
	}
	let tags: Record<string, string>;
	try {
		tags = await getTags(o.s3, target);
	} catch (e) {
		// A version that no longer exists carries no tag to fix.
		if (toFtguardError(e).code === "NOT_FOUND") return undefined;
		throw e;
	}
	const verdict = judgeObject({ status: tags[STATUS_TAG], scanId: tags[SCAN_ID_TAG] }, scan.scanId);
	if (verdict !== "stuck") return undefined;
	const swept: SweptObject = { scanId: scan.scanId, ...target, quarantined: false };
	try {
		await putFtguardTags(o.s3, target, {
			[STATUS_TAG]: ScanStatus.QUARANTINED,
			[SCAN_ID_TAG]: scan.scanId,
			[REASON_TAG]: sweepReason(status),
		});
		swept.quarantined = true;
	} catch (e) {
		swept.error = why(e);
	}
	return swept;
}

/**
 * One sweep. Per-execution and per-object failures are counted as `unchecked` and logged, never thrown: the run
 * goes on and reports. Listing failures throw (the handler still reports, see lambdas/sweep.ts).
 */
export async function sweep(o: SweepOptions): Promise<{ summary: SweepSummary; swept: SweptObject[] }> {
	const limits: SweepLimits = { ...SWEEP_LIMITS, ...o.limits };
	const summary: SweepSummary = { examined: 0, stuck: 0, quarantined: 0, unchecked: 0, truncated: false };
	const swept: SweptObject[] = [];
	const listed = await listCandidates(o, limits);
	summary.truncated = listed.truncated;
	let candidates = listed.candidates;
	if (candidates.length > limits.maxExecutions) {
		summary.truncated = true;
		candidates = candidates.slice(0, limits.maxExecutions);
	}
	await mapLimit(candidates, 4, async (e) => {
		if (Date.now() > o.deadline) {
			summary.truncated = true;
			return;
		}
		summary.examined++;
		const unchecked = (problem: string) => {
			summary.unchecked++;
			o.log.warn("execution not checked", { execution: e.executionArn, problem });
		};
		try {
			const d = await o.sfn.send(new DescribeExecutionCommand({ executionArn: e.executionArn }));
			const status = d.status ?? e.status;
			// Redriven since it was listed: it is running again and will record its own verdict.
			if (!(STUCK_EXECUTION_STATUSES as readonly string[]).includes(status)) return;
			const scan = scanOfExecution(d.name ?? e.name, d.input);
			if ("problem" in scan) return unchecked(scan.problem);
			const objects = await pinnedObjects(o, limits, e.executionArn, scan);
			if ("problem" in objects) return unchecked(objects.problem);
			await mapLimit(objects, 8, async (object) => {
				try {
					const s = await sweepObject(o, scan, status, object);
					if (!s) return;
					summary.stuck++;
					swept.push(s);
					if (s.quarantined) {
						summary.quarantined++;
						o.log.warn("stuck object quarantined", { execution: e.executionArn, status, ...s });
					} else {
						o.log.error("stuck object could not be quarantined", { execution: e.executionArn, status, ...s });
					}
				} catch (err) {
					summary.unchecked++;
					o.log.error("object not checked", { execution: e.executionArn, key: object.key, error: why(err) });
				}
			});
		} catch (err) {
			unchecked(why(err));
		}
	});
	return { summary, swept };
}
