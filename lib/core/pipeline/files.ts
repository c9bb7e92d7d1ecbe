/**
 * The file-safety stage over sources that are not files on disk (objects in S3):
 * the same scanners, detection and fail-closed rules as `scanPaths` in
 * lib/core/formats/scan.ts, one object at a time through a ByteSource, so a
 * scanner reads only the bytes it asks for.
 */
import { FtguardError, toFtguardError } from "../errors";
import { type FileReport, type ScanOptions, scanSource as scanEngine } from "../formats/scan";
import { type ByteSource, type Finding, verdictOf } from "../formats/types";
import type { ReferenceData } from "../policy";
import { type BackdoorPolicy, type BackdoorWaiver, waiverFor } from "../policy/backdoor";
import type { BackdoorModel, BackdoorWaiverRecord, ScanState } from "./types";

/**
 * No local path exists for an object; ONNX external-data references resolve
 * under this directory, which can never exist (a path below /dev/null), so they
 * read as missing: fail closed rather than reading the Lambda's own disk.
 */
const NO_LOCAL_DIR = "/dev/null/ftguard-object";

/**
 * Scans one object with the engine `scanPaths` uses (lib/core/formats/scan.ts);
 * `path` is what the report names it by. A read that fails (the object changed or
 * vanished) is a finding, so the stage quarantines instead of stopping.
 */
export async function scanSource(
	source: ByteSource,
	path: string,
	name: string,
	options: ScanOptions,
): Promise<FileReport> {
	try {
		return await scanEngine(
			source,
			{ displayPath: path, name, path: `${NO_LOCAL_DIR}/${name}`, modelDir: NO_LOCAL_DIR },
			options,
		);
	} catch (e) {
		const finding: Finding = { id: "read-error", severity: "high", message: toFtguardError(e).message };
		return {
			path,
			format: "unknown",
			verdict: verdictOf({ findings: [finding] }),
			findings: [finding],
			size: source.size,
			bytesRead: source.bytesRead,
		};
	}
}

export interface FilesOutcome {
	safe: boolean;
	unsafe: number;
	malformed: number;
	/** one line per file that is not safe (at most {@link MAX_REASONS}, then a count) */
	reasons: string[];
}

export const MAX_REASONS = 20;

/** The stage's result: safe only when there is at least one file and every file is safe. */
export function summariseFiles(reports: readonly FileReport[]): FilesOutcome {
	const bad = reports.filter((r) => r.verdict !== "safe");
	const lines = bad.map((r) => {
		const f = r.findings.find((x) => x.severity === "critical" || x.severity === "high");
		const why = f ? `${f.id}: ${f.message}` : (r.malformed ?? r.verdict);
		return `${r.path}: ${r.verdict} (${why})`;
	});
	const reasons =
		lines.length > MAX_REASONS ? [...lines.slice(0, MAX_REASONS), `… and ${lines.length - MAX_REASONS} more`] : lines;
	if (reports.length === 0) reasons.push("no files to scan");
	return {
		safe: reports.length > 0 && bad.length === 0,
		unsafe: reports.filter((r) => r.verdict === "unsafe").length,
		malformed: reports.filter((r) => r.verdict === "malformed").length,
		reasons,
	};
}

/** Every ONNX model of the artefact (by name or by detected format), sorted. */
export function onnxModelsOf(reports: readonly { key: string; report: FileReport }[]): string[] {
	return reports
		.filter((r) => r.key.toLowerCase().endsWith(".onnx") || r.report.format === "onnx")
		.map((r) => r.key)
		.sort();
}

/**
 * The most ONNX models one scan covers (one backdoor job each, run side by side by the state machine's Map): an
 * artefact with more is not scanned (a reason decide quarantines on unless waived), so that one commit cannot
 * queue an unbounded number of GPU jobs.
 */
export const MAX_BACKDOOR_MODELS = 16;

/**
 * Formats whose files are model weights, or a pickle a weights loader runs (torch.load, joblib, numpy): an
 * artefact with one of them is a model that must be scanned for backdoors. Plain strings, not FormatName: the
 * scanner's list grows, and a name this file does not know counts as weights anyway (below).
 */
export const WEIGHT_FORMATS: ReadonlySet<string> = new Set([
	"safetensors",
	"pickle",
	"pytorch-zip",
	"pytorch-legacy",
	"pytorch-tar",
	"numpy",
	"numpy-npz",
	"onnx",
	"gguf",
	"keras",
	"keras-h5",
	"raw-weights",
]);

/**
 * Formats the scanner recognises that hold no weights: configuration, tokenizer settings and vocabularies, chat
 * templates, text, JSON data, images, Python (remote code, refused by the files stage anyway). Closed on purpose:
 * a format not named here — "unknown", a read error, a container (zip, tar, gzip…), a format a newer scanner adds —
 * may hold weights (fail closed).
 */
export const NON_WEIGHT_FORMATS: ReadonlySet<string> = new Set([
	"hf-config",
	"hf-tokenizer-config",
	"python",
	"text",
	"json",
	"image",
	"sentencepiece",
]);

/**
 * Whether an artefact holds model weights, from the format the files step found for each file: `none` only when
 * there is at least one file and every file is of a format known to hold none; `maybe` when the only candidates
 * are files of unrecognised format (named).
 */
export function weightsOf(
	files: readonly { key: string; format?: string | undefined }[],
): { weights: "yes" } | { weights: "maybe"; unrecognised: string[] } | { weights: "none" } {
	if (files.some((f) => f.format !== undefined && WEIGHT_FORMATS.has(f.format))) return { weights: "yes" };
	const unrecognised = files.filter((f) => f.format === undefined || !NON_WEIGHT_FORMATS.has(f.format));
	if (files.length === 0 || unrecognised.length > 0) {
		return { weights: "maybe", unrecognised: unrecognised.map((f) => f.key).sort() };
	}
	return { weights: "none" };
}

export const NO_ONNX_EXPORT = "no ONNX export to scan for backdoors";

/** One ONNX model of the artefact as the files step found it. */
export interface PlannedModel {
	key: string;
	/** the pinned VersionId (absent on a store without versioning) */
	versionId?: string | undefined;
	/** config.json's family (the model's directory, else the artefact's) and the model's input shape (model-info.ts) */
	family?: string | undefined;
	inputShape?: string | undefined;
	/** the model takes token ids (an `input_ids` input): a text classifier, scanned with texts and a tokenizer */
	takesTokenIds?: boolean | undefined;
	/** the reference data the policy names for the model (referenceDataFor) */
	reference?: ReferenceData | undefined;
	/** a config.json beside the model names no family ftguard can read (the DP gate then applies every family's limits) */
	configUnreadable?: boolean | undefined;
}

/** What the files step knows when it plans the backdoor scan. */
export interface BackdoorPlanInput {
	/** the artefact (key prefix or single key): what a waiver's `prefix` is matched against */
	artefact: string;
	/** every scanned object (not the marker) with the format the files step found */
	files: readonly { key: string; format?: string | undefined }[];
	/** every ONNX model of the artefact (onnxModelsOf), each with its facts and reference data */
	models: readonly PlannedModel[];
	/** the artefact's family (its top-level config.json): what a waiver's `family` is matched against */
	family?: string | undefined;
	/** the store keeps versions (the marker has a VersionId): every model must then be pinned */
	versioned: boolean;
	policy: Pick<BackdoorPolicy, "required" | "waivers">;
	/** when a waiver's expiry is judged */
	now: Date;
}

/** The backdoor job's inputs for one model ("" for what does not apply: see backdoorModelSchema). */
function jobInputs(model: PlannedModel, reference: ReferenceData): BackdoorModel {
	return {
		modelKey: model.key,
		modelVersionId: model.versionId ?? "",
		dataUri: reference.dataUri,
		labelsUri: reference.labelsUri ?? "",
		tokenizerUri: reference.tokenizerUri ?? "",
		textField: reference.textField ?? "",
		labelsField: reference.labelsField ?? "",
		dataKind: reference.dataKind,
	};
}

/**
 * Why the reference data the policy names for `model` cannot drive it: text data (a tokenizer) for a model that
 * takes tensors, or tensors for a model that takes token ids. Undefined when it can.
 */
function referenceMismatch(model: PlannedModel, reference: ReferenceData): string | undefined {
	const text = reference.tokenizerUri !== undefined;
	if (text === (model.takesTokenIds === true)) return undefined;
	const entry = reference.family !== undefined ? `family ${reference.family}` : `input shape ${reference.inputShape}`;
	return text
		? `${model.key}: the reference data for ${entry} is text (a tokenizer), but the model takes no token ids (input_ids)`
		: `${model.key}: the reference data for ${entry} is tensors (.npy), but the model takes token ids (input_ids): give a text entry with tokenizerUri`;
}

/** Why `model` has no reference data, in the words of the policy's keys. */
function noReferenceData(model: PlannedModel, several: boolean): string {
	const shape = model.inputShape;
	const why =
		model.family !== undefined
			? `no reference data for family ${model.family}${shape !== undefined ? ` or input shape ${shape}` : ""}`
			: shape !== undefined
				? `no reference data for input shape ${shape} (no family in config.json)`
				: "no reference data for this model (no family in config.json, no readable input shape)";
	return several ? `${model.key}: ${why}` : why;
}

function waiverRecord(w: BackdoorWaiver): BackdoorWaiverRecord {
	return {
		reason: w.reason,
		...(w.family !== undefined ? { family: w.family } : {}),
		...(w.prefix !== undefined ? { prefix: w.prefix } : {}),
		...(w.approvedBy !== undefined ? { approvedBy: w.approvedBy } : {}),
		...(w.expires !== undefined ? { expires: w.expires } : {}),
	};
}

/** The policy-wide `backdoor.required: false`, recorded as a waiver so that every verdict it lets through says so. */
export const POLICY_NOT_REQUIRED: BackdoorWaiverRecord = { reason: "the policy's backdoor.required is false" };

const named = (keys: readonly string[]) =>
	keys.slice(0, 5).join(", ") + (keys.length > 5 ? `, … (${keys.length})` : "");

/**
 * The files state's `backdoor` field. A scan runs (`required: true`) when every ONNX model of the artefact has the
 * reference data the policy names for its family / input shape: `models` lists them, one backdoor job each.
 * Otherwise nothing runs, and the field says why: no model weights at all (`noWeights`, nothing to scan), or
 * `notScanned` — weights without an ONNX export, an ONNX model without reference data, more models than one scan
 * covers — which decide quarantines unless a policy waiver for the artefact's family / prefix (or
 * `backdoor.required: false`) is recorded here. A model without a VersionId on a versioned store is a bug of the
 * caller (the scan would read whatever version is current): it throws.
 */
export function backdoorPlan(input: BackdoorPlanInput): NonNullable<ScanState["backdoor"]> {
	const family = input.family !== undefined ? { family: input.family } : {};
	const { models } = input;
	for (const m of models) {
		if (input.versioned && m.versionId === undefined)
			throw new FtguardError("USAGE", `${m.key} has no VersionId on a versioned store`);
	}
	const unreferenced = models.find((m) => m.reference === undefined);
	const mismatched = models.flatMap((m) => {
		const why = m.reference ? referenceMismatch(m, m.reference) : undefined;
		return why !== undefined ? [{ model: m, why }] : [];
	})[0];
	if (
		models.length > 0 &&
		models.length <= MAX_BACKDOOR_MODELS &&
		unreferenced === undefined &&
		mismatched === undefined
	) {
		return {
			required: true,
			models: models.map((m) => jobInputs(m, m.reference as ReferenceData)),
			...family,
		};
	}
	let notScanned: string;
	if (models.length > MAX_BACKDOOR_MODELS) {
		notScanned = `${models.length} ONNX models (${named(models.map((m) => m.key))}): more than the ${MAX_BACKDOOR_MODELS} one scan covers`;
	} else if (unreferenced) {
		notScanned = noReferenceData(unreferenced, models.length > 1);
	} else if (mismatched) {
		notScanned = mismatched.why;
	} else {
		const w = weightsOf(input.files);
		if (w.weights === "none") return { required: false, noWeights: true, ...family };
		notScanned =
			w.weights === "maybe"
				? `${NO_ONNX_EXPORT} (files of unrecognised format may hold weights: ${named(w.unrecognised)})`
				: NO_ONNX_EXPORT;
	}
	const plan: NonNullable<ScanState["backdoor"]> = {
		required: false,
		notScanned,
		...(unreferenced ? { modelKey: unreferenced.key } : mismatched ? { modelKey: mismatched.model.key } : {}),
		...family,
	};
	if (!input.policy.required) return { ...plan, waiver: POLICY_NOT_REQUIRED };
	const { active, expired } = waiverFor(input.policy.waivers, { key: input.artefact, family: input.family }, input.now);
	if (active) return { ...plan, waiver: waiverRecord(active) };
	if (expired) return { ...plan, expiredWaiver: waiverRecord(expired) };
	return plan;
}
