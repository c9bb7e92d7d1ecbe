/**
 * The sweeper handler (lambdas/sweep.ts) against a real S3-compatible server (s3rver: objects pinned by ETag)
 * and a fake Step Functions client object (lib/aws/runtime.ts setClients) that answers ListExecutions,
 * DescribeExecution and GetExecutionHistory like the service, two executions per page. Objects are marked by
 * the real mark handler and settled by the real record handler, so the tags are the ones a scan writes.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { GetObjectTaggingCommand, HeadObjectCommand, PutObjectTaggingCommand } from "@aws-sdk/client-s3";
import type { SFNClient } from "@aws-sdk/client-sfn";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { handler as mark } from "../../lambdas/mark";
import { handler as record } from "../../lambdas/record";
import { handler as sweep } from "../../lambdas/sweep";
import { s3Client, setClients } from "../../lib/aws/runtime";
import { type SweepLog, sweep as sweepAdapter } from "../../lib/aws/sweep";
import { scanIdOf } from "../../lib/core/pipeline/artefact";
import { type SweepLimits, stuckMetricValue, sweepWindow } from "../../lib/core/pipeline/sweep";
import type { ScanState } from "../../lib/core/pipeline/types";
import { REPO } from "../helpers/cli";
import { type LocalS3, startLocalS3, useForHandlers } from "../helpers/s3";

const BUCKET = "checkpoints";
const REPORTS = "reports";
const ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:ftguard-scan";
const CHECKPOINT = join(REPO, "examples/checkpoint");
const HOUR = 3_600_000;

interface FakeExecution {
	name: string;
	/** what ListExecutions says */
	status: string;
	/** what DescribeExecution says (a redriven execution is RUNNING again) */
	describedStatus?: string;
	startDate: Date;
	stopDate?: Date;
	input: string;
	history: Array<Record<string, unknown>>;
}

const executions: FakeExecution[] = [];
const calls: Array<{ command: string; input: Record<string, unknown> }> = [];
let listFails = false;
const arnOf = (name: string) => `${ARN.replace(":stateMachine:", ":execution:")}:${name}`;

/** Two executions or events per page, so the handler's pagination is exercised. */
function page<T>(items: T[], token: unknown): { items: T[]; nextToken?: string } {
	const from = Number(token ?? 0);
	const to = from + 2;
	return { items: items.slice(from, to), ...(to < items.length ? { nextToken: String(to) } : {}) };
}

const fakeSfn = {
	async send(cmd: { constructor: { name: string }; input: Record<string, unknown> }) {
		const { input } = cmd;
		calls.push({ command: cmd.constructor.name, input });
		const byArn = (arn: unknown) => {
			const e = executions.find((x) => arnOf(x.name) === arn);
			if (!e) throw Object.assign(new Error("ExecutionDoesNotExist"), { name: "ExecutionDoesNotExist" });
			return e;
		};
		switch (cmd.constructor.name) {
			case "ListExecutionsCommand": {
				if (listFails) throw Object.assign(new Error("AccessDeniedException"), { name: "AccessDeniedException" });
				if (input.stateMachineArn !== ARN) throw new Error(`unexpected state machine ${input.stateMachineArn}`);
				const matching = executions
					.filter((e) => e.status === input.statusFilter)
					.sort((a, b) => b.startDate.getTime() - a.startDate.getTime());
				const p = page(matching, input.nextToken);
				return {
					executions: p.items.map((e) => ({
						executionArn: arnOf(e.name),
						stateMachineArn: ARN,
						name: e.name,
						status: e.status,
						startDate: e.startDate,
						...(e.stopDate ? { stopDate: e.stopDate } : {}),
					})),
					...(p.nextToken ? { nextToken: p.nextToken } : {}),
				};
			}
			case "DescribeExecutionCommand": {
				const e = byArn(input.executionArn);
				return { executionArn: arnOf(e.name), name: e.name, status: e.describedStatus ?? e.status, input: e.input };
			}
			case "GetExecutionHistoryCommand": {
				const e = byArn(input.executionArn);
				expect(input).toMatchObject({ reverseOrder: false, includeExecutionData: true });
				const p = page(e.history, input.nextToken);
				return { events: p.items, ...(p.nextToken ? { nextToken: p.nextToken } : {}) };
			}
			default:
				throw new Error(`unexpected ${cmd.constructor.name}`);
		}
	},
} as unknown as SFNClient;

let s3: LocalS3;
let emf: Array<Record<string, unknown>>;

beforeAll(async () => {
	s3 = await startLocalS3([BUCKET, REPORTS]);
	useForHandlers(s3, REPORTS, {
		FTGUARD_STATE_MACHINE_ARN: ARN,
		FTGUARD_MAX_EXECUTION_SECONDS: String(8 * 3600),
	});
	delete process.env.POWERTOOLS_METRICS_DISABLED;
	setClients({ sfn: fakeSfn });
});
afterAll(async () => {
	setClients({ sfn: undefined });
	await s3?.close();
});
beforeEach(() => {
	executions.length = 0;
	calls.length = 0;
	listFails = false;
	emf = [];
	// Powertools Metrics writes one EMF JSON line per flush to stdout.
	vi.spyOn(process.stdout, "write").mockImplementation((chunk: unknown) => {
		for (const line of String(chunk).split("\n")) {
			if (line.includes('"_aws"')) emf.push(JSON.parse(line) as Record<string, unknown>);
		}
		return true;
	});
});
afterEach(() => vi.restoreAllMocks());

/** The values of scans_stuck_in_scanning emitted so far, checking namespace and dimension. */
function stuckMetrics(): number[] {
	return emf.map((d) => {
		const aws = d._aws as { CloudWatchMetrics: Array<{ Namespace: string; Dimensions: string[][] }> };
		expect(aws.CloudWatchMetrics[0]).toMatchObject({ Namespace: "ftguard", Dimensions: [["service"]] });
		expect(d.service).toBe("ftguard");
		return d.scans_stuck_in_scanning as number;
	});
}

async function tagsOf(key: string): Promise<Record<string, string>> {
	const r = await s3.client.send(new GetObjectTaggingCommand({ Bucket: BUCKET, Key: key }));
	return Object.fromEntries((r.TagSet ?? []).map((t) => [t.Key, t.Value]));
}

async function setTags(key: string, tags: Record<string, string>): Promise<void> {
	await s3.client.send(
		new PutObjectTaggingCommand({
			Bucket: BUCKET,
			Key: key,
			Tagging: { TagSet: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) },
		}),
	);
}

/** Uploads the example checkpoint under `prefix` and runs the real mark handler: its objects are SCANNING. */
async function marked(prefix: string): Promise<{ initial: ScanState; marked: ScanState; keys: string[] }> {
	const names = readdirSync(CHECKPOINT).filter((n) => n !== "model.sig");
	for (const n of names) await s3.put(BUCKET, `${prefix}${n}`, readFileSync(join(CHECKPOINT, n)));
	const key = `${prefix}model.sig`;
	await s3.put(BUCKET, key, readFileSync(join(CHECKPOINT, "model.sig")));
	const head = await s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
	const marker = { key, etag: (head.ETag ?? "").replaceAll('"', "") };
	const initial: ScanState = { scanId: scanIdOf(BUCKET, key, marker), bucket: BUCKET, marker, artefact: prefix };
	const state = await mark(initial);
	return { initial, marked: state, keys: state.objects.map((o) => o.key) };
}

/** Registers an execution as Step Functions would list it: ended `status` `stoppedAgo` ms ago, Mark done. */
function execution(
	scan: { initial: ScanState; marked?: ScanState },
	status: string,
	stoppedAgo: number,
	over: Partial<FakeExecution> = {},
): FakeExecution {
	const stopDate = new Date(Date.now() - stoppedAgo);
	const e: FakeExecution = {
		name: scan.initial.scanId,
		status,
		startDate: new Date(stopDate.getTime() - 10 * 60_000),
		stopDate,
		input: JSON.stringify(scan.initial),
		history: [
			{ type: "ExecutionStarted", id: 1 },
			{ type: "TaskStateEntered", id: 2, stateEnteredEventDetails: { name: "Mark" } },
			{ type: "TaskScheduled", id: 3 },
			{ type: "TaskSucceeded", id: 4 },
			...(scan.marked
				? [
						{
							type: "TaskStateExited",
							id: 5,
							stateExitedEventDetails: { name: "Mark", output: JSON.stringify(scan.marked) },
						},
						{ type: "TaskStateEntered", id: 6, stateEnteredEventDetails: { name: "Manifest" } },
					]
				: []),
			{ type: status === "ABORTED" ? "ExecutionAborted" : "ExecutionFailed", id: 7 },
		],
		...over,
	};
	executions.push(e);
	return e;
}

const scheduled = { source: "aws.events", "detail-type": "Scheduled Event", lookbackMinutes: 60 };

describe("the sweeper", () => {
	it("quarantines every object a FAILED or TIMED_OUT scan left SCANNING, on its scan id, and reports how many", async () => {
		const a = await marked("jobs/s1/failed/");
		const b = await marked("jobs/s1/timed-out/");
		// a tag of the uploader's own is kept, as record keeps it
		await setTags(`${a.initial.artefact}config.json`, {
			...(await tagsOf(`${a.initial.artefact}config.json`)),
			team: "vision",
		});
		execution(a, "FAILED", 5 * 60_000);
		execution(b, "TIMED_OUT", 20 * 60_000);

		const r = await sweep(scheduled);
		expect(r).toMatchObject({ examined: 2, stuck: 8, quarantined: 8, unchecked: 0, truncated: false, metric: 8 });
		expect(stuckMetrics()).toEqual([8]);
		for (const [scan, status] of [
			[a, "FAILED"],
			[b, "TIMED_OUT"],
		] as const) {
			for (const key of scan.keys) {
				const tags = await tagsOf(key);
				expect(tags, key).toMatchObject({
					"ftguard:status": "QUARANTINED",
					"ftguard:scan-id": scan.initial.scanId,
					"ftguard:reason": `swept: execution ${status} without a verdict`,
				});
			}
		}
		expect((await tagsOf(`${a.initial.artefact}config.json`)).team).toBe("vision");
		// each status is listed, for this state machine
		const lists = calls.filter((c) => c.command === "ListExecutionsCommand").map((c) => c.input.statusFilter);
		expect(new Set(lists)).toEqual(new Set(["FAILED", "TIMED_OUT", "ABORTED"]));

		// The next run sees the same executions, but nothing is SCANNING any more: 0, and it still reports.
		const again = await sweep(scheduled);
		expect(again).toMatchObject({ examined: 2, stuck: 0, metric: 0 });
		expect(stuckMetrics()).toEqual([8, 0]);
	});

	it("reports 0 when no scan failed (the alarm needs a data point every run)", async () => {
		const r = await sweep({ source: "aws.events", "detail-type": "Scheduled Event" });
		expect(r).toMatchObject({ examined: 0, stuck: 0, unchecked: 0, metric: 0 });
		expect(stuckMetrics()).toEqual([0]);
	});

	it("never touches an object another scan re-marked, a verdict, or an object replaced since mark", async () => {
		const c = await marked("jobs/s1/raced/");
		const [config, model, sig, tokenizer] = c.keys as [string, string, string, string];
		// a newer scan of the same artefact marked one object, and another object already has a verdict
		await setTags(config, { "ftguard:status": "SCANNING", "ftguard:scan-id": "ftg-newer" });
		await setTags(model, { "ftguard:status": "PROMOTABLE", "ftguard:scan-id": "ftg-newer" });
		// re-uploaded after mark: a new object (new ETag). s3rver keeps the old tag set on overwrite (S3 would not),
		// so it still says SCANNING with this scan's id: only the ETag check (record's) keeps the sweeper off it.
		await s3.put(BUCKET, tokenizer, '{"changed": true}');
		execution(c, "ABORTED", 60_000);

		const r = await sweep(scheduled);
		expect(r).toMatchObject({ examined: 1, stuck: 1, quarantined: 1, metric: 1 });
		expect(await tagsOf(config)).toEqual({ "ftguard:status": "SCANNING", "ftguard:scan-id": "ftg-newer" });
		expect(await tagsOf(model)).toEqual({ "ftguard:status": "PROMOTABLE", "ftguard:scan-id": "ftg-newer" });
		expect(await tagsOf(tokenizer)).toEqual({ "ftguard:status": "SCANNING", "ftguard:scan-id": c.initial.scanId });
		expect(await tagsOf(sig)).toMatchObject({ "ftguard:status": "QUARANTINED", "ftguard:scan-id": c.initial.scanId });
	});

	it("finds nothing stuck after a scan that failed in QuarantinedAfterError (record already quarantined)", async () => {
		const d = await marked("jobs/s1/forced/");
		await record({ ...d.marked, error: { state: "decide", cause: "boom" } });
		execution(d, "FAILED", 60_000);
		const r = await sweep(scheduled);
		expect(r).toMatchObject({ examined: 1, stuck: 0, metric: 0 });
		for (const key of d.keys) expect((await tagsOf(key))["ftguard:status"]).toBe("QUARANTINED");
		expect((await tagsOf(d.keys[0] as string))["ftguard:reason"]).toBeUndefined();
	});

	it("counts what it cannot check, and leaves those objects alone", async () => {
		const e = await marked("jobs/s1/mark-died/");
		execution({ initial: e.initial }, "ABORTED", 60_000); // Mark entered, never exited
		const f = await marked("jobs/s1/foreign/");
		execution(f, "FAILED", 60_000, { name: "hand-started" }); // input's scan id is not the execution name
		const r = await sweep(scheduled);
		expect(r).toMatchObject({ examined: 2, stuck: 0, unchecked: 2, metric: 2 });
		for (const key of [...e.keys, ...f.keys]) expect((await tagsOf(key))["ftguard:status"]).toBe("SCANNING");
		expect(stuckMetrics()).toEqual([2]);
	});

	it("skips executions outside the window, stops listing at the window, and leaves a redriven one running", async () => {
		const old = await marked("jobs/s1/old/");
		const ancient = await marked("jobs/s1/ancient/");
		const redriven = await marked("jobs/s1/redriven/");
		const recent = await marked("jobs/s1/recent/");
		execution(old, "FAILED", 2 * HOUR); // stopped before the 60-minute window
		// started 10 h ago: with an 8 h execution timeout it cannot have stopped in the last hour, so listing stops here
		execution(ancient, "FAILED", 30 * 60_000, { startDate: new Date(Date.now() - 10 * HOUR) });
		execution(redriven, "FAILED", 60_000, { describedStatus: "RUNNING" });
		execution(recent, "FAILED", 60_000);
		const r = await sweep(scheduled);
		expect(r).toMatchObject({ examined: 2, stuck: 4, quarantined: 4, metric: 4 });
		const described = calls.filter((c) => c.command === "DescribeExecutionCommand").map((c) => c.input.executionArn);
		expect(described.sort()).toEqual([arnOf(recent.initial.scanId), arnOf(redriven.initial.scanId)].sort());
		for (const key of [...old.keys, ...ancient.keys, ...redriven.keys]) {
			expect((await tagsOf(key))["ftguard:status"]).toBe("SCANNING");
		}
		// a manual run after an outage may look further back: 3 h reaches old's objects, and lists back far enough
		// (3 h + 8 h) to reach ancient's
		const wide = await sweep({ lookbackMinutes: 3 * 60 });
		expect(wide).toMatchObject({ stuck: 8, quarantined: 8 });
		expect((await tagsOf(old.keys[0] as string))["ftguard:status"]).toBe("QUARANTINED");
		expect((await tagsOf(redriven.keys[0] as string))["ftguard:status"]).toBe("SCANNING");
	});

	it("counts a run cut short by its bounds as 1 more (the alarm fires; the next runs catch up)", async () => {
		const g = await marked("jobs/s1/bounded-1/");
		const h = await marked("jobs/s1/bounded-2/");
		execution(g, "FAILED", 60_000);
		execution(h, "FAILED", 2 * 60_000);
		const log = { info() {}, warn() {}, error() {} } as unknown as SweepLog;
		const run = (limits: Partial<SweepLimits>, deadline = Date.now() + 60_000) =>
			sweepAdapter({
				sfn: fakeSfn,
				s3: s3Client(),
				stateMachineArn: ARN,
				window: sweepWindow(new Date(), 60, 8 * 3600),
				deadline,
				log,
				limits,
			});
		const capped = await run({ maxExecutions: 1 });
		expect(capped.summary).toMatchObject({ examined: 1, stuck: 4, truncated: true });
		expect(stuckMetricValue(capped.summary)).toBe(5);
		const paged = await run({ maxPagesPerStatus: 0 });
		expect(paged.summary).toMatchObject({ examined: 0, truncated: true });
		const late = await run({}, Date.now() - 1);
		expect(late.summary).toMatchObject({ examined: 0, truncated: true });
		expect(stuckMetricValue((await run({})).summary)).toBe(4); // the other execution's objects
	});

	it("still reports (1: could not look) and fails when it cannot list executions", async () => {
		listFails = true;
		await expect(sweep(scheduled)).rejects.toMatchObject({ name: expect.stringMatching(/^ftguard\./) });
		expect(stuckMetrics()).toEqual([1]);
	});

	it("refuses a lookback it cannot honour, and reports", async () => {
		await expect(sweep({ lookbackMinutes: 0 })).rejects.toMatchObject({ name: "ftguard.USAGE" });
		expect(stuckMetrics()).toEqual([1]);
	});
});
