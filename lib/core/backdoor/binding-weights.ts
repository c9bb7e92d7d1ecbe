/**
 * The tensors of a checkpoint, for export binding: names, dtypes, shapes and where their bytes are, from
 * safetensors files (one, or the shards a `model.safetensors.index.json` lists) and PyTorch zip checkpoints
 * (binding-torch.ts). Headers are validated by the readers the file scanners use (formats/safetensors.ts); tensor
 * bytes stay ranges of the files until the matcher streams them.
 */
import { posix } from "node:path";
import { FtguardError } from "../errors";
import { JsonObject, type JsonValue, parseStrictJson, readSafetensorsLayout } from "../formats/safetensors";
import type { ByteSource } from "../formats/types";
import { rangeBytes, type TensorBytes } from "./tensor-bytes";

export interface CheckpointTensor {
	name: string;
	/** the file it is stored in */
	file: string;
	/** safetensors dtype names (F32, F16, BF16, I64 …), torch storages mapped to them */
	dtype: string;
	shape: number[];
	elements: number;
	/** contiguous, row-major, little-endian */
	bytes: TensorBytes;
}

/** One checkpoint: the files a loader reads together. */
export interface WeightSet {
	kind: "safetensors" | "pytorch";
	/** the files that hold its tensors, artefact-relative */
	files: string[];
	/** the index that lists them (sharded checkpoints) */
	index?: string;
}

/** Opens an artefact file by its artefact-relative name. */
export type FileOpener = (name: string) => Promise<ByteSource>;

const MAX_INDEX_BYTES = 64 * 1024 * 1024;

const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

/** The tensors of one safetensors file; a file the reference parser refuses is MODEL_MALFORMED. */
export async function readSafetensorsTensors(file: string, source: ByteSource): Promise<CheckpointTensor[]> {
	const layout = await readSafetensorsLayout(source);
	if (typeof layout === "string") throw new FtguardError("MODEL_MALFORMED", `${file}: ${layout}`);
	return layout.tensors.map((t) => ({
		name: t.name,
		file,
		dtype: t.dtype,
		shape: t.shape,
		elements: product(t.shape),
		bytes: rangeBytes(source, t.begin, t.end - t.begin, `${file}: tensor ${t.name}`),
	}));
}

/**
 * The shard files an index's `weight_map` names, artefact-relative (beside the index, as transformers resolves
 * them), and which tensor it says is in which shard.
 */
export async function readShardIndex(
	index: string,
	source: ByteSource,
): Promise<{ files: string[]; map: Map<string, string> }> {
	const bad = (why: string) => new FtguardError("MODEL_MALFORMED", `${index}: ${why}`);
	if (source.size > MAX_INDEX_BYTES) throw bad(`larger than ${MAX_INDEX_BYTES} bytes`);
	let root: JsonValue;
	try {
		root = parseStrictJson((await source.read(0, source.size)).toString("utf8"));
	} catch (e) {
		throw bad(`not valid JSON (${e instanceof Error ? e.message : String(e)})`);
	}
	const weightMap = root instanceof JsonObject ? root.get("weight_map") : undefined;
	if (!(weightMap instanceof JsonObject)) throw bad("no weight_map object");
	const dir = posix.dirname(index);
	const map = new Map<string, string>();
	for (const [tensor, shard] of weightMap.entries) {
		if (typeof shard !== "string" || shard === "" || shard.startsWith("/") || shard.split(/[\\/]/).includes(".."))
			throw bad(`weight_map[${JSON.stringify(tensor)}] is not a file beside the index`);
		map.set(tensor, dir === "." ? shard : `${dir}/${shard}`);
	}
	if (map.size === 0) throw bad("weight_map is empty");
	return { files: [...new Set(map.values())].sort(), map };
}

/** Reads one checkpoint file's tensors (safetensors, PyTorch zip). */
export type TensorReader = (file: string, source: ByteSource) => Promise<CheckpointTensor[]>;

/**
 * Every tensor of a weight set, each file read by `read`. A sharded set is every tensor of every shard (loaders
 * read whole shards): the index must agree with the shards (each tensor it names is in the shard it names) and
 * no tensor may be in two files (which one a loader keeps is its own business).
 */
export async function readWeightSet(set: WeightSet, open: FileOpener, read: TensorReader): Promise<CheckpointTensor[]> {
	const tensors: CheckpointTensor[] = [];
	const where = new Map<string, string>();
	for (const file of set.files) {
		for (const t of await read(file, await open(file))) {
			const first = where.get(t.name);
			if (first !== undefined)
				throw new FtguardError(
					"MODEL_MALFORMED",
					first === file
						? `tensor ${t.name} is in ${file} twice (which one a loader keeps is its own business)`
						: `tensor ${t.name} is in two files: ${first} and ${file}`,
				);
			where.set(t.name, file);
			tensors.push(t);
		}
	}
	if (set.index !== undefined) {
		const { map } = await readShardIndex(set.index, await open(set.index));
		for (const [tensor, shard] of map)
			if (where.get(tensor) !== shard)
				throw new FtguardError(
					"MODEL_MALFORMED",
					`${set.index}: ${tensor} is not in ${shard}, where the index puts it`,
				);
	}
	return tensors;
}
