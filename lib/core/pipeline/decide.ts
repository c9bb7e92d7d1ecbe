/**
 * The promotion decision: PROMOTABLE only when every stage ran and passed and
 * no state failed; anything else — a failed check, an error, a stage that never
 * ran, a field that is not exactly what a pass looks like — is QUARANTINED, with
 * one reason per problem.
 */
import { z } from "zod";
import { NC_RULES, waiverActive } from "../policy/backdoor";
import { zodMessage } from "../schema";
import { normalizeEtag, resourceNameOf } from "./artefact";
import type { ScanStatus } from "./names";
import type { ScanState } from "./types";

export interface Decision {
	status: Exclude<ScanStatus, "SCANNING">;
	/** one per problem; none exactly when PROMOTABLE */
	reasons: string[];
	/** what the verdict rests on besides passed checks: a waived backdoor scan, a model with no weights (absent when none) */
	notes?: string[];
}

/** A JSON object: `null`, arrays and scalars where a stage's result belongs count as missing. */
function present<T>(v: T | undefined): v is T {
	return typeof v === "object" && v !== null && !Array.isArray(v);
}
const isRecord = (v: unknown): v is Record<string, unknown> => present(v);

/** How reasons name a model of the artefact: its key relative to the artefact (a single-file artefact: its key). */
function modelName(state: ScanState, key: string): string {
	const name = resourceNameOf(state.artefact, key);
	return name === undefined || name === "." ? key : name;
}

/** The backdoor Map state's outcome for model `index` of the plan, when it is an object. */
function resultAt(bd: Record<string, unknown>, index: number): Record<string, unknown> | undefined {
	const r = Array.isArray(bd.results) ? (bd.results[index] as unknown) : undefined;
	return isRecord(r) && r.index === index ? r : undefined;
}

/** The planned model `index`'s key, when the plan has one there. */
function modelKeyAt(bd: Record<string, unknown>, index: number): string | undefined {
	const m = Array.isArray(bd.models) ? (bd.models[index] as unknown) : undefined;
	return isRecord(m) && typeof m.modelKey === "string" ? m.modelKey : undefined;
}

/**
 * Whether a state failed, for the scan-errors metric: the execution's `error`, or the scan of a model that ended
 * in an error. A backdoor job that exited 1 fails its Batch task too; once decide has read its report and found the
 * model suspect (decideWithEvidence), that is a finding, not an error.
 */
export function scanErrored(state: ScanState): boolean {
	if (state.error !== undefined) return true;
	const bd = state.backdoor;
	if (!present(bd) || !Array.isArray(bd.results)) return false;
	return bd.results.some((r) => isRecord(r) && r.error !== undefined && r.verdict !== "suspect");
}

/**
 * The backdoor stage when a scan was required: every planned model must have its Map result, for that model, and
 * clean. Total over anything JSON can carry (handlers parse the state first, but the decision must not depend on
 * that): a value of the wrong shape is a failure.
 */
function scannedBackdoor(state: ScanState, bd: Record<string, unknown>, reasons: string[]): void {
	const models = Array.isArray(bd.models) ? bd.models : [];
	if (models.length === 0) {
		reasons.push("backdoor: no model to scan");
		return;
	}
	if (!Array.isArray(bd.results)) {
		// the Map state never ran (its failure is `error: backdoor`)
		reasons.push("missing: backdoor scan");
		return;
	}
	if (bd.results.length !== models.length)
		reasons.push(`backdoor: ${bd.results.length} scan results for ${models.length} models`);
	models.forEach((_, i) => {
		const key = modelKeyAt(bd, i);
		const name = key !== undefined ? modelName(state, key) : `model ${i}`;
		const r = resultAt(bd, i);
		if (r === undefined) reasons.push(`missing: backdoor scan of ${name}`);
		else if (r.verdict === "suspect") {
			const finding = typeof r.finding === "string" && r.finding ? ` (${r.finding})` : "";
			reasons.push(`backdoor: suspect ${name}${finding}`);
		} else if (r.error !== undefined) reasons.push(`error: backdoor ${name}`);
		else if (r.verdict !== "clean" || key === undefined || r.modelKey !== key)
			reasons.push(`backdoor: ${name}: no clean verdict`);
	});
}

/** "for family X under prefix P (reason; approved by A; expires E)", or "by policy (…)" for backdoor.required false. */
function describeWaiver(w: Record<string, unknown>): string {
	const str = (k: string) => (typeof w[k] === "string" && w[k] !== "" ? (w[k] as string) : undefined);
	const scope = [
		str("family") !== undefined ? `for family ${str("family")}` : undefined,
		str("prefix") !== undefined ? `under prefix ${str("prefix")}` : undefined,
	].filter((x) => x !== undefined);
	const details = [
		str("reason"),
		str("approvedBy") !== undefined ? `approved by ${str("approvedBy")}` : undefined,
		str("expires") !== undefined ? `expires ${str("expires")}` : undefined,
	].filter((x) => x !== undefined);
	return `${scope.length > 0 ? scope.join(" ") : "by policy"} (${details.join("; ")})`;
}

/**
 * The backdoor stage when no scan ran (`required: false`). Only two things let it pass: the files step found no
 * model weights at all (every file of a format known to hold none), or it recorded why the artefact could not be
 * scanned together with a waiver that still applies. Anything else — no reason, a waiver without its reason or
 * past its expiry, a field of the wrong type — is "not scanned: …".
 */
function skippedBackdoor(bd: Record<string, unknown>, now: Date | undefined, reasons: string[], notes: string[]): void {
	const why = bd.notScanned;
	if (why === undefined) {
		if (bd.noWeights === true) notes.push("backdoor: not applicable (no model weights)");
		else reasons.push("not scanned: no reason recorded for skipping the backdoor scan");
		return;
	}
	if (typeof why !== "string" || why === "") {
		reasons.push("not scanned: no reason recorded for skipping the backdoor scan");
		return;
	}
	const w = bd.waiver;
	const valid =
		isRecord(w) &&
		typeof w.reason === "string" &&
		w.reason.trim() !== "" &&
		(w.expires === undefined ||
			(typeof w.expires === "string" && (now === undefined || waiverActive({ expires: w.expires }, now))));
	if (valid) {
		notes.push(`backdoor: not scanned: ${why}; waived ${describeWaiver(w)}`);
		return;
	}
	reasons.push(`not scanned: ${why}`);
	const expired = isRecord(w) ? w : bd.expiredWaiver;
	if (isRecord(expired) && typeof expired.expires === "string") {
		reasons.push(`backdoor: waiver ${describeWaiver(expired)} has expired`);
	}
}

/**
 * The DP-SGD gate (lib/core/dp/gate.ts): each problem it recorded is a reason. Its outcome is re-judged from its own
 * fields too, so a state whose problems list was lost or emptied cannot pass a required or over-limit run.
 */
function dpReasons(dp: Record<string, unknown>, reasons: string[]): void {
	const problems = dp.problems;
	if (!Array.isArray(problems) || !problems.every((p) => typeof p === "string")) {
		reasons.push("dp: no list of problems");
		return;
	}
	for (const p of problems) reasons.push(`dp: ${p}`);
	if (problems.length > 0) return;
	const { declared, required, epsilon, maxEpsilon, delta, maxDelta } = dp;
	const num = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);
	if (typeof declared !== "boolean" || typeof required !== "boolean") reasons.push("dp: no gate outcome");
	else if (required && !declared) reasons.push("dp: DP-SGD training is required but the artefact declares none");
	else if (declared && !(num(epsilon) && epsilon >= 0)) reasons.push("dp: the declared run was not accounted");
	// any ε or δ the state carries is held to the limits it carries, declared or not
	else if (
		epsilon !== undefined &&
		maxEpsilon !== undefined &&
		!(num(epsilon) && num(maxEpsilon) && epsilon <= maxEpsilon)
	)
		reasons.push(`dp: ε ${epsilon} is above the policy's maxEpsilon ${maxEpsilon}`);
	else if (delta !== undefined && !(num(delta) && num(maxDelta) && delta <= maxDelta))
		reasons.push(`dp: δ ${delta} is above the policy's maxDelta ${maxDelta}`);
}

/**
 * `now` re-checks a recorded waiver's expiry (the files step judged it when it ran; the handlers pass the clock,
 * a pure caller may leave it out).
 */
export function decide(state: ScanState, now?: Date): Decision {
	const reasons: string[] = [];
	const notes: string[] = [];
	if (state.error !== undefined) reasons.push(`error: ${present(state.error) ? state.error.state : "unknown"}`);
	if (!Array.isArray(state.objects)) reasons.push("missing: mark");
	else if (state.objects.length === 0) reasons.push("mark: no objects");
	if (!present(state.manifest)) reasons.push("missing: manifest");
	const sig = state.signature;
	if (!present(sig)) reasons.push("missing: signature");
	else if (sig.verified !== true)
		reasons.push(`signature: ${sig.code ?? "not verified"}${sig.reason ? ` (${sig.reason})` : ""}`);
	const files = state.files;
	if (!present(files)) reasons.push("missing: files");
	else if (files.safe !== true || files.unsafe !== 0 || files.malformed !== 0) {
		reasons.push(`files: ${files.unsafe} unsafe, ${files.malformed} malformed`);
		for (const r of Array.isArray(files.reasons) ? files.reasons : []) reasons.push(`files: ${r}`);
	}
	if (!present(state.dp)) reasons.push("missing: dp");
	else dpReasons(state.dp as Record<string, unknown>, reasons);
	const bd = state.backdoor;
	if (!present(bd)) reasons.push("missing: backdoor");
	else if (bd.required === true) {
		scannedBackdoor(state, bd as Record<string, unknown>, reasons);
	} else if (bd.required === false) skippedBackdoor(bd as Record<string, unknown>, now, reasons, notes);
	else reasons.push("backdoor: required is not a boolean");
	const status = reasons.length === 0 ? "PROMOTABLE" : "QUARANTINED";
	return notes.length > 0 ? { status, reasons, notes } : { status, reasons };
}

/**
 * The verdict the record state writes: recomputed from the state (never taken
 * on trust), a QUARANTINED verdict already in the state stands with its
 * reasons, and objects replaced since mark quarantine the artefact.
 */
export function finalDecision(state: ScanState, changedKeys: readonly string[], now?: Date): Decision {
	const d = decide(state, now);
	const reasons = [...d.reasons];
	for (const r of state.verdict?.reasons ?? []) if (!reasons.includes(r)) reasons.push(r);
	for (const k of changedKeys) reasons.push(`changed during scan: ${k}`);
	const promotable = d.status === "PROMOTABLE" && state.verdict?.status !== "QUARANTINED" && reasons.length === 0;
	return { status: promotable ? "PROMOTABLE" : "QUARANTINED", reasons, ...(d.notes ? { notes: d.notes } : {}) };
}

/**
 * What the decide Lambda learnt from the report.json of a backdoor job that failed with exit 1 (`suspect`), for
 * model `index` of the plan: either a confirmed finding for that model, or why the report could not be used.
 */
export type BackdoorEvidence =
	| { kind: "suspect"; index: number; reportUri: string; finding: string }
	| { kind: "unreadable"; index: number; reportUri: string; reason: string };

const MAX_SUSPECT_CLASSES_NAMED = 5;

/**
 * The container exit code of the failed Batch job behind a caught BackdoorScan, or undefined when the cause is
 * not a job description with one. `cause` is the Catch's `States.JsonToString($.error)`: `{"Error","Cause"}` where
 * Cause is the job description (a JSON string, PascalCase as Step Functions renders it). Anything else — a
 * timeout, a States.* error, a truncated or hand-made cause — is undefined, never a throw.
 */
export function batchExitCode(cause: unknown): number | undefined {
	const parse = (v: unknown): unknown => {
		if (typeof v !== "string" || v.length > 1 << 20) return undefined;
		try {
			return JSON.parse(v) as unknown;
		} catch {
			return undefined;
		}
	};
	const field = (o: unknown, ...names: string[]): unknown => {
		if (!present(o as Record<string, unknown> | undefined)) return undefined;
		for (const n of names) if (n in (o as Record<string, unknown>)) return (o as Record<string, unknown>)[n];
		return undefined;
	};
	const outer = parse(cause);
	let job: unknown;
	if (outer !== undefined) {
		// The catcher wraps {Error, Cause}; tolerate a bare job description too.
		const inner = field(outer, "Cause", "cause");
		job = typeof inner === "string" ? parse(inner) : outer;
	} else if (typeof cause === "string") {
		// aws-local-stepfunctions (the local pipeline) renders States.JsonToString without escaping the nested
		// Cause string, so the wrapper is not JSON there: take the job description between the wrapper's quotes.
		const m = /^\{"Error":"[^"\\]*","Cause":"(\{.*\})"\}$/s.exec(cause);
		job = m?.[1] === undefined ? undefined : parse(m[1]);
	}
	if (field(job, "Status", "status") !== undefined && field(job, "Status", "status") !== "FAILED") return undefined;
	const code = field(field(job, "Container", "container"), "ExitCode", "exitCode");
	return typeof code === "number" && Number.isInteger(code) ? code : undefined;
}

/**
 * The models (indices of the plan) whose backdoor report decide should read: the scan's Batch task failed and the
 * job's exit code says `suspect` (1). Exit 2 (could not check), timeouts and host failures stay
 * `error: backdoor <model>`.
 */
export function backdoorReportsWanted(state: ScanState): number[] {
	const bd = state.backdoor;
	if (!present(bd) || bd.required !== true || !Array.isArray(bd.models)) return [];
	const b = bd as Record<string, unknown>;
	return bd.models.flatMap((_, i) => {
		const r = resultAt(b, i);
		const error = r?.error;
		return modelKeyAt(b, i) !== undefined &&
			isRecord(error) &&
			error.state === "backdoor" &&
			batchExitCode(error.cause) === 1
			? [i]
			: [];
	});
}

const num = z.number().refine(Number.isFinite);
/**
 * The fields of a backdoor report (+ the job's `scanned`) that the verdict names: lib/core/backdoor/scan.ts
 * BackdoorReport (image models: Neural Cleanse figures) or lib/core/backdoor/text-scan.ts TextBackdoorReport (text
 * models: the trigger found per label).
 */
const reportSchema = z.object({
	verdict: z.enum(["clean", "suspect"]),
	suspect_classes: z.array(z.number().int().min(0)),
	reasons: z.array(z.string()).optional(),
	scanned: z.object({
		model: z.object({ uri: z.string(), version_id: z.string().nullable(), etag: z.string().nullable() }),
	}),
	detectors: z
		.object({
			neural_cleanse: z
				.object({
					rule: z.enum(NC_RULES),
					l1_norms: z.array(num),
					anomaly_indices: z.array(num.nullable()),
					log_anomaly_indices: z.array(num),
				})
				.optional(),
			calibrated: z
				.object({
					per_class: z.array(z.object({ cls: z.number().int().min(0), p_value: num, strongest: z.string() }).loose()),
				})
				.loose()
				.optional(),
		})
		.optional(),
	labels: z
		.array(z.object({ label: z.number().int().min(0), trigger: z.string(), attack_success: num }).loose())
		.optional(),
});

const fmt = (v: number, digits: number) => String(Number(v.toFixed(digits)));
const MAX_TRIGGER_CHARS = 40;

/** What the report says about suspect class `c`: its Neural Cleanse figures, its text trigger, or the detector. */
function classFinding(report: z.infer<typeof reportSchema>, c: number): string {
	const nc = report.detectors?.neural_cleanse;
	const index = nc?.rule === "vanilla" ? nc.anomaly_indices[c] : nc?.log_anomaly_indices[c];
	const l1 = nc?.l1_norms[c];
	const cal = nc?.rule === "calibrated" ? report.detectors?.calibrated?.per_class.find((p) => p.cls === c) : undefined;
	if (cal !== undefined && typeof l1 === "number")
		return `class ${c}: p ${cal.p_value.toPrecision(2)} against clean models (${cal.strongest.slice(0, 40)}), trigger L1 ${fmt(l1, 1)}`;
	if (typeof index === "number" && typeof l1 === "number") {
		return `class ${c}: anomaly index ${fmt(index, 2)}, trigger L1 ${fmt(l1, 1)}`;
	}
	const text = report.labels?.find((l) => l.label === c);
	if (text !== undefined) {
		const t = text.trigger.length > MAX_TRIGGER_CHARS ? `${text.trigger.slice(0, MAX_TRIGGER_CHARS)}…` : text.trigger;
		return `class ${c}: trigger ${JSON.stringify(t)}, attack success ${fmt(text.attack_success, 2)}`;
	}
	// Flagged by a detector other than Neural Cleanse (Activation Clustering): name the detector.
	const by = (report.reasons ?? []).map((x) => /^([a-z_]+):/.exec(x)?.[1]).filter((x) => x !== undefined);
	return `class ${c}${by.length > 0 ? `: ${[...new Set(by)].join(", ")}` : ""}`;
}

/**
 * Turns the parsed report.json of model `index` into evidence: `suspect` only when the report says so for that
 * model (same URI, and the same VersionId / ETag where both sides have one); anything else is `unreadable` with
 * the reason, so the verdict keeps "error: backdoor <model>" (fail closed: a report can only make a reason more
 * precise).
 */
export function interpretBackdoorReport(
	state: ScanState,
	index: number,
	reportUri: string,
	json: unknown,
): BackdoorEvidence {
	const unreadable = (reason: string): BackdoorEvidence => ({ kind: "unreadable", index, reportUri, reason });
	const r = reportSchema.safeParse(json);
	if (!r.success) return unreadable(`not a backdoor report: ${zodMessage(r.error)}`);
	const report = r.data;
	const model = state.backdoor?.models?.[index];
	if (model === undefined) return unreadable(`the plan has no model ${index}`);
	const modelUri = `s3://${state.bucket}/${model.modelKey}`;
	const scanned = report.scanned.model;
	if (scanned.uri !== modelUri) return unreadable(`the report is for ${scanned.uri}, not ${modelUri}`);
	if (model.modelVersionId !== "" && scanned.version_id !== model.modelVersionId) {
		return unreadable(`the report is for version ${scanned.version_id ?? "none"}, not ${model.modelVersionId}`);
	}
	const pinned = state.objects?.find((o) => o.key === model.modelKey)?.etag;
	if (pinned !== undefined && scanned.etag !== null && normalizeEtag(pinned) !== normalizeEtag(scanned.etag)) {
		return unreadable(`the report is for ETag ${scanned.etag}, not ${pinned}`);
	}
	if (report.verdict !== "suspect" || report.suspect_classes.length === 0) {
		return unreadable(`the job exited 1 but the report says ${report.verdict}`);
	}
	const named = report.suspect_classes.slice(0, MAX_SUSPECT_CLASSES_NAMED).map((c) => classFinding(report, c));
	const more = report.suspect_classes.length - named.length;
	return { kind: "suspect", index, reportUri, finding: `${named.join("; ")}${more > 0 ? `; ${more} more` : ""}` };
}

/**
 * The decide state's pure core: the state with the backdoor evidence applied (a confirmed finding makes that
 * model's result `verdict: "suspect"` with its `finding` and `reportUri`, so record's recomputation names it too)
 * and the verdict. Unreadable evidence adds a reason and changes nothing else.
 */
export function decideWithEvidence(
	state: ScanState,
	evidence: readonly BackdoorEvidence[],
	now?: Date,
): { state: ScanState; verdict: Decision } {
	let next = state;
	const results = state.backdoor?.results;
	if (results !== undefined && evidence.some((e) => e.kind === "suspect")) {
		const updated = results.map((r, i) => {
			const e = evidence.find((x) => x.index === i);
			return e?.kind === "suspect"
				? { ...r, verdict: "suspect" as const, reportUri: e.reportUri, finding: e.finding }
				: r;
		});
		next = { ...state, backdoor: { ...(state.backdoor as NonNullable<ScanState["backdoor"]>), results: updated } };
	}
	const verdict = decide(next, now);
	for (const e of evidence) {
		if (e.kind !== "unreadable") continue;
		// decide() already says "error: backdoor <model>" (status QUARANTINED); this says why it is not more precise.
		const key = state.backdoor?.models?.[e.index]?.modelKey;
		verdict.reasons.push(
			`backdoor: report of ${key !== undefined ? modelName(state, key) : `model ${e.index}`} could not be read (${e.reason})`,
		);
		verdict.status = "QUARANTINED";
	}
	return { state: next, verdict };
}
