/**
 * Export binding over an artefact: which files are ONNX exports, which are checkpoints (a safetensors file, the
 * shards an index lists, a PyTorch zip checkpoint), and each export bound to each checkpoint. Shared by
 * `ftguard bind`, `ftguard backdoor` (the weights beside the model) and the pipeline's files stage (every object
 * of the artefact), which open files their own way (disk, pinned S3 versions) through a FileOpener.
 */
import { posix } from "node:path";
import { FtguardError } from "../errors";
import { type BindingResult, bindExport } from "./binding";
import { externalDataFiles, readExportConstants } from "./binding-export";
import { readTorchTensors } from "./binding-torch";
import {
	type FileOpener,
	readSafetensorsTensors,
	readShardIndex,
	readWeightSet,
	type WeightSet,
} from "./binding-weights";

/** A file of the artefact: artefact-relative POSIX name and the format the file scanners detected. */
export interface ArtefactFile {
	name: string;
	format?: string | undefined;
}

/**
 * Formats that hold model weights binding cannot read: beside an ONNX export they are weights nothing proves the
 * scanned export stands for, so binding cannot decide (never a pass). Raw weights (Flax msgpack, GGML, bytes a
 * model reads) among them, but for an ONNX model's own external data.
 */
export const UNREADABLE_WEIGHT_FORMATS: ReadonlySet<string> = new Set([
	"raw-weights",
	"pickle",
	"pytorch-legacy",
	"pytorch-tar",
	"numpy",
	"numpy-npz",
	"gguf",
	"keras",
	"keras-h5",
]);

export interface BindingPlan {
	/** the ONNX exports (by name or detected format) */
	models: string[];
	/** the checkpoints to bind each export to */
	sets: WeightSet[];
	/** weight files of formats binding cannot read */
	unreadable: ArtefactFile[];
}

const isOnnx = (f: ArtefactFile) => f.format === "onnx" || f.name.toLowerCase().endsWith(".onnx");
const SAFETENSORS_INDEX = /\.safetensors\.index\.json$/i;
const TORCH_INDEX = /\.(bin|pt|pth)\.index\.json$/i;

/** The external-data files of the artefact's ONNX models (normalised names): they hold an export's weights. */
async function externalDataOf(files: readonly ArtefactFile[], open: FileOpener): Promise<Set<string>> {
	const out = new Set<string>();
	for (const f of files.filter(isOnnx)) {
		const dir = posix.dirname(f.name);
		for (const location of await externalDataFiles(await open(f.name)))
			out.add(posix.normalize(posix.join(dir, location)));
	}
	return out;
}

/** Finds the exports and the checkpoints of an artefact (indexes are read to group shards). */
export async function planBinding(files: readonly ArtefactFile[], open: FileOpener): Promise<BindingPlan> {
	const names = new Set(files.map((f) => f.name));
	const sets: WeightSet[] = [];
	const sharded = new Set<string>();
	for (const f of files) {
		const kind = SAFETENSORS_INDEX.test(f.name) ? "safetensors" : TORCH_INDEX.test(f.name) ? "pytorch" : undefined;
		if (kind === undefined) continue;
		const { files: shards } = await readShardIndex(f.name, await open(f.name));
		for (const s of shards) {
			if (!names.has(s))
				throw new FtguardError("MODEL_MALFORMED", `${f.name} lists ${s}, which is not in the artefact`);
			sharded.add(s);
		}
		sets.push({ kind, files: shards, index: f.name });
	}
	const unreadable: ArtefactFile[] = [];
	const external = files.some((f) => f.format === "raw-weights") ? await externalDataOf(files, open) : new Set();
	for (const f of files) {
		if (sharded.has(f.name)) continue;
		if (f.format === "safetensors") sets.push({ kind: "safetensors", files: [f.name] });
		else if (f.format === "pytorch-zip") sets.push({ kind: "pytorch", files: [f.name] });
		else if (
			f.format !== undefined &&
			UNREADABLE_WEIGHT_FORMATS.has(f.format) &&
			!external.has(posix.normalize(f.name))
		)
			unreadable.push(f);
	}
	return {
		models: files
			.filter(isOnnx)
			.map((f) => f.name)
			.sort(),
		sets,
		unreadable,
	};
}

/** One export bound to one checkpoint. */
export interface BindingReport extends BindingResult {
	model: string;
	weights: { kind: WeightSet["kind"]; files: string[]; index?: string };
	/** time to read, hash and match */
	ms: number;
}

/** Binds the export `model` to the checkpoint `set`. Throws (could not check) when either cannot be read. */
export async function bindModel(model: string, set: WeightSet, open: FileOpener): Promise<BindingReport> {
	const started = performance.now();
	const dir = posix.dirname(model);
	// external data lies beside the model (the location was checked to stay inside its directory)
	const exported = await readExportConstants(await open(model), (location) =>
		open(dir === "." ? location : `${dir}/${location}`),
	);
	const reader = set.kind === "safetensors" ? readSafetensorsTensors : readTorchTensors;
	const result = await bindExport(exported, await readWeightSet(set, open, reader));
	return {
		model,
		weights: { kind: set.kind, files: set.files, ...(set.index !== undefined ? { index: set.index } : {}) },
		...result,
		ms: Math.round(performance.now() - started),
	};
}

/** The checkpoint's name in messages: its index, else its file(s). */
export function weightsName(w: BindingReport["weights"] | WeightSet): string {
	return w.index ?? w.files.join(", ");
}

/** One line: the pair and, for a mismatch, the count and first finding. */
export function bindingLine(r: BindingReport): string {
	const pct = `${(100 * r.coverage.fraction).toFixed(2)}% of the checkpoint's bytes bound`;
	const pair = `${r.model} ↔ ${weightsName(r.weights)}`;
	if (r.verdict === "bound") return `${pair}: bound (${r.matched.length} constants matched, ${pct})`;
	const first = r.findings[0]?.message ?? "";
	const more = r.findings.length > 1 ? ` (and ${r.findings.length - 1} more)` : "";
	return `${pair}: EXPORT_MISMATCH: ${first}${more}; ${pct}`;
}
