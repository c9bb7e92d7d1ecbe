/**
 * The local pipeline: the object server's "Object Created" events → the start
 * logic (commit markers only, scan id = execution name, a duplicate event starts
 * nothing) → the synthesized definition executed in-process → a verdict.
 *
 * The training-input gates run as in AWS too: a base-model marker in the base-model bucket invokes the base-model
 * function (lambdas/base-model.ts), a dataset marker in the dataset bucket the dataset function (lambdas/dataset.ts),
 * whose Batch scans of large versions run on a local CPU queue of one slot (batch-jobs/dataset-scan/entry.ts). Their
 * verdicts are reported like the scans' (waitForVerdict, onVerdict).
 *
 * The Lambda handlers read their configuration from the environment once per
 * process (lib/aws/runtime.ts), so `start` sets it for this process: one local
 * pipeline per process.
 */
import { Console } from "node:console";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { handler as baseModelHandler } from "../../lambdas/base-model";
import { type DatasetGateOutput, datasetHandler } from "../../lambdas/dataset";
import type { MonitorAlarmSummary } from "../../lambdas/monitor";
import { pipelineMetrics, setEmfOutput } from "../aws/metrics";
import { parseS3Uri } from "../aws/object-store";
import { listObjects } from "../aws/objects";
import { pipelineLogger } from "../aws/runtime";
import { getTags } from "../aws/tagging";
import { normalizeEtag, resolveMarker } from "../core/pipeline/artefact";
import { type GateTarget, parseGateTarget } from "../core/pipeline/input-gate";
import { DATASET_ENV, DATASET_REPORT, ScanStatus, STATUS_TAG } from "../core/pipeline/names";
import { initialState } from "../core/pipeline/start";
import type { BackdoorResult, ScanState } from "../core/pipeline/types";
import { type LambdaStep, SCAN_REPORT_PREFIX } from "../infra/state-machine";
import { BatchSlots, runBatchJob } from "./batch-runner";
import {
	DEFAULT_BUCKETS,
	type LocalBuckets,
	type LocalDefinition,
	type LocalScanPipelineProps,
	loadLocalDefinition,
} from "./definition";
import {
	LOCAL_CREDENTIALS,
	LOCAL_REGION,
	type ObjectCreatedEvent,
	type ObjectServer,
	startObjectServer,
} from "./object-server";

export { repositoryRoot } from "./package-root";

import type { MonitorStore } from "./monitor-store";
import { repositoryRoot } from "./package-root";
import { type LocalProvenanceKey, localProvenanceKey } from "./provenance-key";
import { createLocalStateMachine, type ExecutionOutcome, type LocalStateMachine, type TaskHandler } from "./runner";

export type VerdictStatus = "PROMOTABLE" | "QUARANTINED" | "NOT_RECORDED";

export interface LocalVerdict {
	scanId: string;
	bucket: string;
	markerKey: string;
	artefact: string;
	/** NOT_RECORDED: even the forced quarantine could not be written; the objects stay SCANNING (unreadable) */
	status: VerdictStatus;
	reasons: string[];
	/** what the verdict rests on besides passed checks (a waived backdoor scan); absent when none */
	notes?: string[];
	error?: { state: string; cause: string };
	/** each ONNX model's backdoor scan outcome (the Map state's results, as decide left them), when a scan ran */
	backdoor?: BackdoorResult[];
	/** SUCCEEDED, or the Fail state's error name (Ftguard.QuarantinedAfterError, …) */
	execution: string;
	/** from the marker's event to the end of the execution */
	seconds: number;
}

export interface LocalPipelineOptions {
	port?: number;
	dataDir?: string;
	/** the policy (parsed JSON): the handlers get it inline (FTGUARD_POLICY), the stack its batch settings */
	policy: unknown;
	buckets?: LocalBuckets;
	/** more buckets to create (e.g. one holding trusted reference data) */
	extraBuckets?: string[];
	/** @default 600_000 */
	batchTimeoutMs?: number;
	/** fault injection: replace a Lambda step's handler or the batch job */
	lambdaOverrides?: Partial<Record<LambdaStep, TaskHandler>>;
	batchOverride?: TaskHandler;
	/** retry waits in milliseconds per state name (tests) */
	retryIntervalOverrides?: Record<string, number>;
	/** TimeoutSeconds per state name instead of the definition's (tests: a job past a short state timeout) */
	timeoutOverrides?: Record<string, number>;
	/** every TimeoutSeconds of the definition multiplied by this (tests: hours in seconds; runner.ts) */
	timeScale?: number;
	/**
	 * Scan pipeline props of the stack the definition is synthesized from (tests: a small compute environment, whose
	 * maxvCpus / job vCPUs sets how many batch jobs run at once here; short timeouts)
	 */
	scanPipeline?: Partial<LocalScanPipelineProps>;
	/**
	 * The stack's reserved concurrency per scan function (tests: a burst against a small limit). Enforced as Lambda
	 * does; @default the stack's own
	 */
	reservedConcurrency?: number;
	/** the batch job's entry instead of batch-jobs/backdoor-scan/entry.ts (tests) */
	batchEntry?: string;
	/** called with each batch job's pid (tests) */
	onBatchSpawn?: (pid: number) => void;
	/** called with the step each time a Lambda invoke is throttled (reserved concurrency reached) */
	onThrottle?: (step: LambdaStep) => void;
	/** log lines (the batch job's output, starts, duplicates) */
	log?: (line: string) => void;
	/**
	 * Where the handlers' Powertools logs and EMF metric lines go (in AWS: the function's log group). @default
	 * stdout, as in Lambda
	 */
	handlerLog?: NodeJS.WritableStream;
	/** datasets up to this many bytes are scanned by the dataset function, larger ones by a Batch job (tests) */
	datasetFunctionMaxBytes?: number;
	/**
	 * On start, rescan every artefact an earlier process left SCANNING (a crash mid-scan, with the same --data-dir).
	 * @default true
	 */
	recover?: boolean;
	/**
	 * The output monitor (docs/monitor.md): inference log objects (Data Capture, Bedrock, JSONL) written to this
	 * bucket go to lambdas/monitor.ts, as an EventBridge rule sends them in AWS, with the windows in a local
	 * DynamoDB-compatible server (dynalite, in memory). @default no monitor
	 */
	monitorBucket?: string;
	/**
	 * The EC private key (PEM) the record handler signs provenance records with (FTGUARD_PROVENANCE_KEY_FILE): reused
	 * when the file exists, else generated there, its public key written beside it (lib/local/provenance-key.ts).
	 * @default a key of this run only, in a temporary directory removed on close
	 */
	provenanceKeyFile?: string;
}

/** What the output monitor made of one log object (the monitor function's result, and its alarms). */
export interface LocalMonitorResult {
	key: string;
	ok: boolean;
	records: number;
	malformed: number;
	alarms: MonitorAlarmSummary[];
	error?: string;
}

export interface StartOutcome {
	started: boolean;
	scanId?: string;
	reason?: "not-a-marker" | "other-bucket" | "duplicate";
}

/** The local stand-ins of the dataset gate's Batch queue (names only: the jobs run on the local batch runner). */
export const LOCAL_DATASET_JOB_QUEUE = "ftguard-dataset-local";
export const LOCAL_DATASET_JOB_DEFINITION = "ftguard-dataset-scan";

export class LocalPipeline {
	private readonly executions = new Map<string, Promise<LocalVerdict>>();
	private readonly stoppers = new Map<string, AbortController>();
	private readonly verdicts = new Map<string, LocalVerdict>();
	private readonly waiters = new Set<(v: LocalVerdict) => void>();
	/** duplicate marker events that started nothing */
	duplicates = 0;
	/** the dataset function, submitting its Batch scans to the local runner (set by start) */
	private dataset: (event: unknown) => Promise<DatasetGateOutput> = () =>
		Promise.reject(new Error("the local pipeline has not started"));
	/** gate invocations and dataset Batch jobs not yet settled (close waits for them) */
	private readonly gates = new Set<Promise<unknown>>();
	private readonly batchGates: Promise<LocalVerdict>[] = [];

	private constructor(
		readonly server: ObjectServer,
		readonly definition: LocalDefinition,
		private readonly machine: LocalStateMachine,
		private readonly options: LocalPipelineOptions,
		/** the local compute environment's job slots (tests read `peak`) */
		readonly batchSlots: BatchSlots,
	) {}

	static async start(options: LocalPipelineOptions): Promise<LocalPipeline> {
		const root = repositoryRoot();
		const buckets = options.buckets ?? DEFAULT_BUCKETS;
		const definition = loadLocalDefinition(root, {
			policy: options.policy,
			buckets,
			...(options.reservedConcurrency !== undefined ? { reservedConcurrency: options.reservedConcurrency } : {}),
			...(options.scanPipeline ? { scanPipeline: options.scanPipeline } : {}),
		});
		const server = await startObjectServer({
			...(options.port !== undefined ? { port: options.port } : {}),
			...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}),
			buckets: [
				...new Set([
					...Object.values(buckets),
					...(options.extraBuckets ?? []),
					...(options.monitorBucket !== undefined ? [options.monitorBucket] : []),
				]),
			],
			noCopyInto: [buckets.checkpoints],
		});
		// loaded only with a monitor bucket: dynalite and the DynamoDB client are no part of a pipeline without one
		const monitorStore =
			options.monitorBucket !== undefined ? await (await import("./monitor-store")).startMonitorStore() : undefined;
		Object.assign(process.env, {
			FTGUARD_S3_ENDPOINT: server.endpoint,
			AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
			AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
			AWS_REGION: LOCAL_REGION,
			FTGUARD_REPORT_BUCKET: buckets.reports,
			FTGUARD_REPORT_PREFIX: SCAN_REPORT_PREFIX,
			FTGUARD_POLICY: JSON.stringify(options.policy),
			[DATASET_ENV.JOB_QUEUE]: LOCAL_DATASET_JOB_QUEUE,
			[DATASET_ENV.JOB_DEFINITION]: LOCAL_DATASET_JOB_DEFINITION,
		});
		delete process.env.FTGUARD_POLICY_URI;
		// provenance is signed with a local key here, never through a KMS key an outer environment may name
		const provenanceTmp =
			options.provenanceKeyFile === undefined ? mkdtempSync(join(tmpdir(), "ftguard-provenance-")) : undefined;
		const provenance = localProvenanceKey(
			options.provenanceKeyFile ?? join(provenanceTmp as string, "provenance.key.pem"),
		);
		delete process.env.FTGUARD_PROVENANCE_KMS_KEY;
		process.env.FTGUARD_PROVENANCE_KEY_FILE = provenance.keyFile;
		if (monitorStore) {
			Object.assign(process.env, {
				FTGUARD_DYNAMODB_ENDPOINT: monitorStore.endpoint,
				FTGUARD_MONITOR_TABLE: monitorStore.table,
			});
		}
		if (options.handlerLog) {
			// Powertools writes through a Console of its own, made on stdout when the singleton is created.
			const c = new Console({ stdout: options.handlerLog, stderr: options.handlerLog });
			(pipelineMetrics() as unknown as { console: Console }).console = c;
			(pipelineLogger() as unknown as { console: Console }).console = c;
			setEmfOutput(options.handlerLog);
		}
		if (definition.policyUri) {
			// The batch job reads the deployed policy object, as in AWS: the same policy, where the stack put it.
			const { bucket, key } = parseS3Uri(definition.policyUri);
			await server.client.send(
				new PutObjectCommand({
					Bucket: bucket,
					Key: key,
					Body: JSON.stringify(options.policy),
					ContentType: "application/json",
				}),
			);
		}
		const log = options.log ?? (() => {});
		// the GPU compute environment: maxvCpus / the job's vCPUs jobs at once, the others queued (RUNNABLE)
		const slots = new BatchSlots(definition.batch.slots);
		// what every local batch job (the backdoor scan, the dataset scan) runs with
		const jobs = {
			root,
			s3Endpoint: server.endpoint,
			// each attempt its own key, revoked before the attempt is reported ended
			issueCredentials: () => server.issueJobCredentials(),
			region: LOCAL_REGION,
			...(options.batchTimeoutMs !== undefined ? { timeoutMs: options.batchTimeoutMs } : {}),
			// its EMF metric lines join the handlers' (in AWS both go to CloudWatch Logs)
			...(options.handlerLog ? { stdout: (line: string) => options.handlerLog?.write(`${line}\n`) } : {}),
		};
		const batch: TaskHandler =
			options.batchOverride ??
			((input, context) =>
				runBatchJob(input, {
					...jobs,
					slots,
					...(options.batchEntry !== undefined ? { entry: options.batchEntry } : {}),
					...(options.onBatchSpawn ? { onSpawn: options.onBatchSpawn } : {}),
					...(context ? { signal: context.signal } : {}),
					log: (line) => log(`batch: ${line}`),
				}));
		const machine = createLocalStateMachine(definition, {
			batch,
			...(options.lambdaOverrides ? { lambdaOverrides: options.lambdaOverrides } : {}),
			...(options.retryIntervalOverrides ? { retryIntervalOverrides: options.retryIntervalOverrides } : {}),
			...(options.timeoutOverrides ? { timeoutOverrides: options.timeoutOverrides } : {}),
			...(options.timeScale !== undefined ? { timeScale: options.timeScale } : {}),
			...(options.onThrottle ? { onThrottle: options.onThrottle } : {}),
		});
		const pipeline = new LocalPipeline(server, definition, machine, options, slots);
		pipeline.provenance = provenance;
		pipeline.provenanceTmp = provenanceTmp;
		pipeline.monitorStore = monitorStore;
		// the dataset gate's CPU queue: one job at a time; the job reads the policy as the function does
		const datasetSlots = new BatchSlots(1);
		pipeline.dataset = datasetHandler(
			async (params) => {
				const environment = [
					...params.ContainerOverrides.Environment,
					{ Name: "FTGUARD_POLICY", Value: JSON.stringify(options.policy) },
				];
				const job = runBatchJob(
					{ ...params, ContainerOverrides: { Environment: environment } },
					{
						...jobs,
						slots: datasetSlots,
						entry: join(root, "batch-jobs/dataset-scan/entry.ts"),
						log: (line) => log(`dataset job: ${line}`),
					},
				);
				const target = parseGateTarget(
					params.ContainerOverrides.Environment.find((e) => e.Name === DATASET_ENV.TARGET)?.Value,
					DATASET_ENV.TARGET,
				);
				pipeline.batchGates.push(pipeline.settleDatasetJob(target, job, Date.now()));
				return { jobId: `local-${params.JobName}` };
			},
			options.datasetFunctionMaxBytes !== undefined ? { maxFunctionBytes: options.datasetFunctionMaxBytes } : {},
		);
		server.onObjectCreated((event) => {
			pipeline.handleEvent(event).catch((e: Error) => log(`start failed for ${event.detail.object.key}: ${e.message}`));
		});
		if (options.recover ?? true) await pipeline.recoverInterrupted();
		return pipeline;
	}

	get endpoint(): string {
		return this.server.endpoint;
	}

	/** Executions started so far (one per distinct scan id). */
	get executionCount(): number {
		return this.executions.size;
	}

	/**
	 * What the start Lambda and EventBridge rule do: only commit markers in the checkpoint bucket start a scan, and
	 * the scan id (the execution name) is unique, so a redelivered event starts nothing.
	 */
	async handleEvent(event: ObjectCreatedEvent): Promise<StartOutcome> {
		const received = Date.now();
		const { buckets } = this.definition;
		if (event.detail.bucket.name === buckets.datasets || event.detail.bucket.name === buckets.baseModels) {
			return this.handleInputEvent(event, received);
		}
		if (this.options.monitorBucket !== undefined && event.detail.bucket.name === this.options.monitorBucket) {
			this.handleMonitorEvent(event);
			return { started: false, reason: "other-bucket" };
		}
		if (event.detail.bucket.name !== buckets.checkpoints) {
			return { started: false, reason: "other-bucket" };
		}
		let e = event;
		if (!e.detail.object.etag) {
			// s3rver's Copy records carry no ETag: read it, so the scan is still pinned to what was copied.
			const head = await this.server.client.send(
				new HeadObjectCommand({ Bucket: e.detail.bucket.name, Key: e.detail.object.key }),
			);
			e = {
				...e,
				detail: { ...e.detail, object: { ...e.detail.object, etag: normalizeEtag(head.ETag ?? "") } },
			};
		}
		const state = initialState(e);
		if (!state) return { started: false, reason: "not-a-marker" };
		if (this.executions.has(state.scanId)) {
			this.duplicates += 1;
			this.options.log?.(`duplicate event for ${state.marker.key}: scan ${state.scanId} already exists`);
			return { started: false, scanId: state.scanId, reason: "duplicate" };
		}
		this.options.log?.(`scan ${state.scanId} started for ${state.marker.key}`);
		const stopper = new AbortController();
		this.stoppers.set(state.scanId, stopper);
		const run = this.machine.execute(state, stopper.signal).then((outcome) => {
			this.stoppers.delete(state.scanId);
			return this.settle(state, outcome, received);
		});
		this.executions.set(state.scanId, run);
		return { started: true, scanId: state.scanId };
	}

	/**
	 * What the EventBridge rules on the input buckets do: a base-model marker invokes the base-model function, a
	 * dataset marker the dataset function (asynchronously, as an EventBridge target); other keys start nothing.
	 */
	private async handleInputEvent(event: ObjectCreatedEvent, received: number): Promise<StartOutcome> {
		const dataset = event.detail.bucket.name === this.definition.buckets.datasets;
		const run = dataset ? this.dataset(event) : baseModelHandler(event);
		const base = {
			bucket: event.detail.bucket.name,
			markerKey: event.detail.object.key,
			artefact: event.detail.object.key.slice(0, event.detail.object.key.lastIndexOf("/") + 1),
		};
		const settled = run.then(
			(out) => {
				if (!out.checked) return undefined;
				if ("place" in out && out.place === "submitted") {
					this.options.log?.(`dataset ${base.markerKey}: too large for the function, Batch job ${out.job.jobId}`);
					return undefined;
				}
				const checkId = "checkId" in out ? out.checkId : "";
				const status = "status" in out ? out.status : ScanStatus.QUARANTINED;
				const v: LocalVerdict = {
					...base,
					scanId: checkId,
					status: status === ScanStatus.PROMOTABLE ? "PROMOTABLE" : "QUARANTINED",
					reasons: out.reasons,
					...("notes" in out && out.notes.length ? { notes: out.notes } : {}),
					execution: "SUCCEEDED",
					seconds: (Date.now() - received) / 1000,
				};
				return this.record(v);
			},
			(e: Error) =>
				this.record({
					...base,
					scanId: "",
					status: "QUARANTINED",
					reasons: [`${dataset ? "dataset" : "base-model"}: ${e.name.replace(/^ftguard\./, "")}: ${e.message}`],
					execution: e.name,
					seconds: (Date.now() - received) / 1000,
				}),
		);
		this.gates.add(settled);
		settled.finally(() => this.gates.delete(settled));
		const out = await run.catch(() => undefined);
		if (out && !out.checked) return { started: false, reason: "not-a-marker" };
		return { started: true, ...(out && "checkId" in out ? { scanId: out.checkId } : {}) };
	}

	/** What the monitor made of each log object so far, in the order they were processed. */
	readonly monitorResults: LocalMonitorResult[] = [];
	private monitorStore: MonitorStore | undefined;
	/** the key provenance records are signed with, and its public key's file (for `ftguard provenance verify`) */
	provenance: LocalProvenanceKey | undefined;
	private provenanceTmp: string | undefined;
	private readonly monitorWaiters = new Set<(r: LocalMonitorResult) => void>();

	/** The monitor function on a log object's event (asynchronously, as an EventBridge target); its alarms logged. */
	private handleMonitorEvent(event: ObjectCreatedEvent): void {
		const key = event.detail.object.key;
		const run = import("../../lambdas/monitor")
			.then(({ handler }) => handler(event))
			.then(
				(r): LocalMonitorResult => ({
					key,
					ok: true,
					records: r.records,
					malformed: r.malformed,
					alarms: r.alarmList,
				}),
				(e: Error): LocalMonitorResult => ({ key, ok: false, records: 0, malformed: 0, alarms: [], error: e.message }),
			);
		const settled = run.then((r) => {
			this.monitorResults.push(r);
			for (const a of r.alarms) this.options.log?.(`monitor: ${a.type} alarm for ${a.model_version}: ${a.detail}`);
			if (!r.ok) this.options.log?.(`monitor: ${key}: ${r.error}`);
			for (const w of this.monitorWaiters) w(r);
		});
		this.gates.add(settled);
		settled.finally(() => this.gates.delete(settled));
	}

	/** Resolves with the monitor's result for the log object `key` (already processed or the next one). */
	waitForMonitor(key: string, timeoutMs = 60_000): Promise<LocalMonitorResult> {
		const done = this.monitorResults.find((r) => r.key === key);
		if (done) return Promise.resolve(done);
		return new Promise((resolve, reject) => {
			const timer = setTimeout(() => {
				this.monitorWaiters.delete(waiter);
				reject(new Error(`no monitor result for ${key} within ${timeoutMs} ms`));
			}, timeoutMs);
			const waiter = (r: LocalMonitorResult) => {
				if (r.key !== key) return;
				clearTimeout(timer);
				this.monitorWaiters.delete(waiter);
				resolve(r);
			};
			this.monitorWaiters.add(waiter);
		});
	}

	/** The verdict of a dataset Batch job: the report it wrote beside the data, or QUARANTINED when it failed. */
	private async settleDatasetJob(target: GateTarget, job: Promise<unknown>, submitted: number): Promise<LocalVerdict> {
		const base = {
			scanId: target.checkId,
			bucket: target.bucket,
			markerKey: target.marker.key,
			artefact: target.artefact,
		};
		try {
			await job;
			const r = await this.server.client.send(
				new GetObjectCommand({ Bucket: target.bucket, Key: `${target.artefact}${DATASET_REPORT}` }),
			);
			const doc = JSON.parse(await (r.Body as { transformToString(): Promise<string> }).transformToString()) as {
				dataset?: { checkId?: string };
				verdict?: { status?: string; reasons?: string[] };
			};
			if (doc.dataset?.checkId !== target.checkId) throw new Error("the job wrote no report of this check");
			return this.record({
				...base,
				status: doc.verdict?.status === "PROMOTABLE" ? "PROMOTABLE" : "QUARANTINED",
				reasons: doc.verdict?.reasons ?? ["no verdict in the report"],
				execution: "SUCCEEDED",
				seconds: (Date.now() - submitted) / 1000,
			});
		} catch (e) {
			return this.record({
				...base,
				status: "QUARANTINED",
				reasons: [`dataset job failed: ${(e as Error).message}`],
				execution: (e as Error).name,
				seconds: (Date.now() - submitted) / 1000,
			});
		}
	}

	private record(v: LocalVerdict): LocalVerdict {
		this.verdicts.set(`${v.bucket}/${v.markerKey}/${v.scanId || Date.now()}`, v);
		for (const w of this.waiters) w(v);
		return v;
	}

	private settle(state: ScanState, outcome: ExecutionOutcome, received: number): LocalVerdict {
		const seconds = (Date.now() - received) / 1000;
		const base = { scanId: state.scanId, bucket: state.bucket, markerKey: state.marker.key, artefact: state.artefact };
		let v: LocalVerdict;
		if (outcome.ok) {
			const out = outcome.output;
			v = {
				...base,
				status: out.verdict?.status ?? "QUARANTINED",
				reasons: out.verdict?.reasons ?? ["no verdict in the execution's output"],
				...(out.verdict?.notes?.length ? { notes: out.verdict.notes } : {}),
				...(out.error ? { error: out.error } : {}),
				...(out.backdoor?.results ? { backdoor: out.backdoor.results } : {}),
				execution: "SUCCEEDED",
				seconds,
			};
		} else {
			// Stopped or timed out, the execution recorded nothing: its objects stay SCANNING (unreadable), and in AWS
			// the sweeper quarantines them.
			const notRecorded = /VerdictNotRecorded|ExecutionAbortedError|ExecutionTimeoutError/.test(outcome.error.name);
			// the forced verdict's reasons ("error: <state>") are in what the last Lambda task was given
			const forced = outcome.lastInput?.verdict?.reasons ?? [];
			v = {
				...base,
				status: notRecorded ? "NOT_RECORDED" : "QUARANTINED",
				reasons: [...forced, `execution failed: ${outcome.error.name}: ${outcome.error.message}`],
				...(outcome.lastInput?.error ? { error: outcome.lastInput.error } : {}),
				execution: outcome.error.name,
				seconds,
			};
		}
		return this.record(v);
	}

	/**
	 * Rescans each commit marker whose artefact (or the marker itself) is still tagged SCANNING: a scan that an
	 * earlier process started and never finished (executions do not outlive the process here). Nothing is
	 * PROMOTABLE meanwhile: SCANNING is unreadable. Returns the markers rescanned.
	 */
	async recoverInterrupted(): Promise<string[]> {
		const s3 = this.server.client;
		const bucket = this.definition.buckets.checkpoints;
		const objects = (await listObjects(s3, bucket, "")).map((o) => ({ key: o.key, etag: normalizeEtag(o.etag ?? "") }));
		const scanning = new Set<string>();
		for (const o of objects) {
			if ((await getTags(s3, { bucket, key: o.key }))[STATUS_TAG] === ScanStatus.SCANNING) scanning.add(o.key);
		}
		const rescanned: string[] = [];
		for (const o of objects) {
			const marker = resolveMarker(o.key);
			if (!marker) continue;
			const covered = (k: string) =>
				marker.kind === "directory" ? k.startsWith(marker.artefact) : k === marker.artefact;
			if (!scanning.has(o.key) && ![...scanning].some(covered)) continue;
			this.options.log?.(`rescanning ${o.key}: left SCANNING by an earlier run`);
			const started = await this.handleEvent({
				version: "0",
				source: "aws.s3",
				"detail-type": "Object Created",
				time: new Date().toISOString(),
				region: LOCAL_REGION,
				detail: { bucket: { name: bucket }, object: { key: o.key, etag: o.etag }, reason: "Recovery" },
			});
			if (started.started) rescanned.push(o.key);
		}
		return rescanned;
	}

	/** StopExecution: ends the scan's execution (and kills its batch job); false if it is not running. */
	stop(scanId: string): boolean {
		const stopper = this.stoppers.get(scanId);
		stopper?.abort(new Error("execution stopped"));
		return stopper !== undefined;
	}

	/** Scan ids of the executions running now. */
	runningScans(): string[] {
		return [...this.stoppers.keys()];
	}

	/** Every verdict so far. */
	allVerdicts(): LocalVerdict[] {
		return [...this.verdicts.values()];
	}

	/**
	 * Resolves with the first verdict whose marker key is `markerKey` (already given or still to come), skipping the
	 * scans in `exceptScanIds` (earlier scans of the same key).
	 */
	waitForVerdict(markerKey: string, timeoutMs = 600_000, exceptScanIds: readonly string[] = []): Promise<LocalVerdict> {
		const wanted = (v: LocalVerdict) => v.markerKey === markerKey && !exceptScanIds.includes(v.scanId);
		const done = [...this.verdicts.values()].find(wanted);
		if (done) return Promise.resolve(done);
		return new Promise((resolve, reject) => {
			const timer = setTimeout(() => {
				this.waiters.delete(waiter);
				reject(new Error(`no verdict for ${markerKey} within ${timeoutMs} ms`));
			}, timeoutMs);
			const waiter = (v: LocalVerdict) => {
				if (!wanted(v)) return;
				clearTimeout(timer);
				this.waiters.delete(waiter);
				resolve(v);
			};
			this.waiters.add(waiter);
		});
	}

	/** Calls `listener` with each verdict as it is recorded; returns the unsubscribe function. */
	onVerdict(listener: (v: LocalVerdict) => void): () => void {
		this.waiters.add(listener);
		return () => this.waiters.delete(listener);
	}

	/** Waits for the running executions, then stops the server. */
	async close(): Promise<void> {
		await Promise.allSettled([...this.executions.values(), ...this.gates]);
		await Promise.allSettled(this.batchGates);
		await this.monitorStore?.close();
		await this.server.close();
		if (this.provenanceTmp !== undefined) rmSync(this.provenanceTmp, { recursive: true, force: true });
	}
}
