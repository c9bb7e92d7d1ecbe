/**
 * Export binding: is an ONNX export an export of these weights? The backdoor scan searches the ONNX model; what
 * ships is the checkpoint, so a clean export beside backdoored weights would pass the scan. Binding proves by
 * bytes that the export's weights are the checkpoint's (docs/backdoor.md, "Export binding").
 *
 * Every floating-point constant of the export and every floating-point tensor of the checkpoint is hashed
 * (SHA-256 of its little-endian bytes, streamed). A constant is *matched* by a tensor whose bytes hash the same:
 * - as is (same dims), or reshaped (same bytes, other dims: a flattened or unsqueezed parameter);
 * - transposed: a 2-D tensor's transpose (torch stores a Linear weight W as the W^T initializer of a MatMul);
 * - widened: a float16 / bfloat16 tensor widened to float32 (exact), as is or transposed, for a float32 export
 *   of a half-precision checkpoint.
 * Derived encodings are computed only for tensors with a constant's element count that nothing matched as is.
 * Equal SHA-256 digests are taken as equal bytes — a second read to compare would add nothing short of a SHA-256
 * second preimage, the assumption every signature ftguard checks already rests on.
 *
 * The verdict (thresholds exported below): a mismatch when
 * - R1: a constant with at least MIN_ELEMENTS elements matches no tensor ("not a tensor of the checkpoint":
 *   changed weights, or a value the exporter folded — a BatchNorm folded into a convolution, a query projection
 *   pre-scaled by 1/sqrt(d), a position table sliced to a static length; folding cannot be replayed bit for bit,
 *   so it is reported, never guessed);
 * - R2: a smaller constant matches nothing and either the graph computes with it and it holds more than
 *   SMALL_ELEMENTS numbers (a weight, whatever its name: the pieces of a tensor stored apart have no twin), or
 *   it has an evident twin in the checkpoint — a tensor of its name, or an unbound tensor of its shape, size-1
 *   dims squeezed — so it is that tensor with other bytes (a changed bias or LayerNorm weight: bias-only
 *   fine-tuning is enough to implant behaviour);
 * - R3: a checkpoint tensor of 2 or more elements is bound by no live constant (a classifier head or the
 *   biases are under 1% of the bytes and decide the output);
 * - R4: the bound tensors hold less than MIN_COVERAGE of the checkpoint's floating-point bytes;
 * - R5: the export rewrites an integer input before the lookup (binding-graph.ts).
 * A constant is live when its data reaches a graph output (binding-graph.ts): only live constants bind. Scalars
 * and small constants without a twin (epsilons, 1/sqrt(d), GELU's constants, Resize scales) are not weights of
 * the checkpoint and are ignored. Integer tensors of the checkpoint (I64 position_ids, BOOL masks,
 * num_batches_tracked) are indices and counters, not parameters, and are left out of coverage; other integer
 * or 8-bit float tensors with MIN_ELEMENTS or more elements mean a quantized checkpoint, which binding cannot
 * compare with a float export (MODEL_UNSUPPORTED: could not check).
 */
import { FtguardError } from "../errors";
import type { ExportConstant, ExportConstants } from "./binding-export";
import { push, SMALL_ELEMENTS } from "./binding-graph";
import type { CheckpointTensor } from "./binding-weights";
import {
	allBytes,
	FLOAT_SIZE,
	type FloatDtype,
	isFloatDtype,
	MAX_DERIVED_BYTES,
	sha256Hex,
	sha256Of,
	transpose2d,
	widenToF32,
} from "./tensor-bytes";

/** Constants and tensors this large must bind (R1, R3). */
export const MIN_ELEMENTS = 1024;
/** The least fraction of the checkpoint's floating-point bytes the export must hold (R4). */
export const MIN_COVERAGE = 0.99;

/** Integer checkpoint tensors that are indices, masks and counters: never compared. */
const INDEX_DTYPES: ReadonlySet<string> = new Set(["I64", "BOOL"]);

export type MatchForm = "as-is" | "reshaped" | "transposed";

export interface ConstantMatch {
	constant: string;
	tensor: string;
	form: MatchForm;
	/** the tensor's dtype when it was widened to the constant's float32 */
	widenedFrom?: "F16" | "BF16";
}

export interface TensorRef {
	tensor: string;
	shape: number[];
}

export interface UnmatchedConstant {
	constant: string;
	origin: ExportConstant["origin"];
	dtype: FloatDtype;
	dims: number[];
	elements: number;
	/** the checkpoint tensor it most likely stands for: same name, else same (or transposed) shape, else size */
	nearest?: TensorRef;
}

export interface UnboundTensor {
	tensor: string;
	file: string;
	dtype: string;
	shape: number[];
	bytes: number;
}

export type BindingFindingId =
	| "export-constant-unmatched"
	| "export-tensor-unbound"
	| "export-coverage-low"
	| "export-input-rewritten";

export interface BindingFinding {
	id: BindingFindingId;
	severity: "high";
	message: string;
	/** the constant or tensor it is about */
	location?: string;
}

export interface BindingResult {
	verdict: "bound" | "mismatch";
	constants: {
		/** floating-point constants of the export */
		float: number;
		/** of them, with MIN_ELEMENTS or more elements (each must match) */
		large: number;
		/** constants of other types (shapes, indices): not compared */
		other: number;
	};
	tensors: {
		/** floating-point tensors of the checkpoint */
		float: number;
		/** integer tensors left out (indices, masks, counters; small quantized ones) */
		skipped: string[];
	};
	matched: ConstantMatch[];
	/** constants that match no tensor and count against the binding (R1, R2) */
	unmatched: UnmatchedConstant[];
	/** scalars and small constants that match nothing and have no twin in the checkpoint (ignored) */
	ignored: number;
	/** floating-point checkpoint tensors that no used constant binds */
	unbound: UnboundTensor[];
	coverage: { boundBytes: number; totalBytes: number; fraction: number };
	findings: BindingFinding[];
	thresholds: { minElements: number; minCoverage: number; smallElements: number };
}

const shape = (dims: readonly number[]) => `[${dims.join(", ")}]`;
const sameDims = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
const reversed2d = (a: readonly number[], b: readonly number[]) =>
	a.length === 2 && b.length === 2 && a[0] === b[1] && a[1] === b[0];
/** Dims without the size-1 ones: a bias stored as [1, n] is the checkpoint's [n] for a twin. */
const squeezed = (dims: readonly number[]) => dims.filter((d) => d !== 1);
const sameSqueezed = (a: readonly number[], b: readonly number[]) => sameDims(squeezed(a), squeezed(b));
const reversedSqueezed = (a: readonly number[], b: readonly number[]) => reversed2d(squeezed(a), squeezed(b));
const key = (dtype: string, digest: string) => `${dtype}:${digest}`;

interface Tensor extends CheckpointTensor {
	dtype: FloatDtype;
	digest: string;
	/** derived encodings' keys, by form, computed on demand */
	derived: Map<string, string | undefined>;
}

/** The derived encodings of `t` that could equal a constant of `dtype`, most specific first. */
function formsFor(dtype: FloatDtype, t: Tensor): { id: string; widen: boolean; transpose: boolean }[] {
	const matrix = t.shape.length === 2 && (t.shape[0] as number) > 1 && (t.shape[1] as number) > 1;
	const forms: { id: string; widen: boolean; transpose: boolean }[] = [];
	if (dtype === t.dtype && matrix) forms.push({ id: "T", widen: false, transpose: true });
	if (dtype === "F32" && (t.dtype === "F16" || t.dtype === "BF16")) {
		forms.push({ id: "W", widen: true, transpose: false });
		if (matrix) forms.push({ id: "WT", widen: true, transpose: true });
	}
	return forms;
}

async function derivedKey(
	t: Tensor,
	form: { id: string; widen: boolean; transpose: boolean },
): Promise<string | undefined> {
	if (t.derived.has(form.id)) return t.derived.get(form.id);
	let k: string | undefined;
	const size = form.widen ? 4 : FLOAT_SIZE[t.dtype];
	// too large to re-encode in memory here: left unmatched (reported), never assumed equal
	if (t.elements * size <= MAX_DERIVED_BYTES) {
		let buf = await allBytes(t.bytes);
		if (form.widen) buf = widenToF32(buf, t.dtype as "F16" | "BF16");
		if (form.transpose) buf = transpose2d(buf, t.shape[0] as number, t.shape[1] as number, size as 2 | 4 | 8);
		k = key(form.widen ? "F32" : t.dtype, sha256Hex(buf));
	}
	t.derived.set(form.id, k);
	return k;
}

/** The checkpoint tensor a constant most likely stands for (for the report): unbound ones first within a tier. */
function nearestOf(c: ExportConstant, tensors: readonly Tensor[], bound: ReadonlySet<Tensor>): Tensor | undefined {
	const tiers: ((t: Tensor) => boolean)[] = [
		(t) => t.name === c.name,
		(t) => sameDims(t.shape, c.dims),
		(t) => sameSqueezed(t.shape, c.dims),
		(t) => reversedSqueezed(t.shape, c.dims),
		(t) => t.elements === c.elements,
	];
	for (const tier of tiers) {
		const hits = tensors.filter(tier);
		const pick = hits.find((t) => !bound.has(t)) ?? hits[0];
		if (pick) return pick;
	}
	let best: Tensor | undefined;
	for (const t of tensors)
		if (best === undefined || Math.abs(t.elements - c.elements) < Math.abs(best.elements - c.elements)) best = t;
	return best;
}

/** Splits the checkpoint into floating-point tensors to bind and the integer tensors left out. */
function partition(tensors: readonly CheckpointTensor[]): { floats: CheckpointTensor[]; skipped: string[] } {
	const floats: CheckpointTensor[] = [];
	const skipped: string[] = [];
	for (const t of tensors) {
		if (isFloatDtype(t.dtype)) floats.push(t);
		else if (INDEX_DTYPES.has(t.dtype) || t.elements < MIN_ELEMENTS) skipped.push(t.name);
		else
			throw new FtguardError(
				"MODEL_UNSUPPORTED",
				`checkpoint tensor ${t.name} is ${t.dtype} ${shape(t.shape)} (a quantized checkpoint?): binding compares floating-point weights only`,
			);
	}
	if (floats.length === 0 || floats.every((t) => t.elements === 0))
		throw new FtguardError("MODEL_UNSUPPORTED", "the checkpoint holds no floating-point tensors to bind");
	return { floats, skipped };
}

/** Binds an export's constants to a checkpoint's tensors (rules in the file comment). */
export async function bindExport(
	exported: ExportConstants,
	checkpoint: readonly CheckpointTensor[],
): Promise<BindingResult> {
	const { constants } = exported;
	const { floats, skipped } = partition(checkpoint);
	const tensors: Tensor[] = [];
	const byKey = new Map<string, Tensor[]>();
	const byCount = new Map<number, Tensor[]>();
	for (const t of floats) {
		const x: Tensor = { ...t, dtype: t.dtype as FloatDtype, digest: await sha256Of(t.bytes), derived: new Map() };
		tensors.push(x);
		const k = key(x.dtype, x.digest);
		push(byKey, k, x);
		push(byCount, x.elements, x);
	}
	const matched: ConstantMatch[] = [];
	const bound = new Set<Tensor>();
	const open: { c: ExportConstant; k: string }[] = [];
	for (const c of constants) {
		const k = key(c.dtype, await sha256Of(c.bytes));
		const hits = byKey.get(k) ?? [];
		for (const t of hits) {
			matched.push({ constant: c.name, tensor: t.name, form: sameDims(t.shape, c.dims) ? "as-is" : "reshaped" });
			if (c.used) bound.add(t);
		}
		if (hits.length === 0) open.push({ c, k });
	}
	const unmatchedConstants: ExportConstant[] = [];
	for (const { c, k } of open) {
		let hit = false;
		if (c.elements <= 1) {
			// a scalar (an epsilon, 1/sqrt(d)): compared as is only
			unmatchedConstants.push(c);
			continue;
		}
		for (const t of byCount.get(c.elements) ?? []) {
			for (const form of formsFor(c.dtype, t)) {
				if ((await derivedKey(t, form)) !== k) continue;
				matched.push({
					constant: c.name,
					tensor: t.name,
					form: form.transpose ? "transposed" : sameDims(t.shape, c.dims) ? "as-is" : "reshaped",
					...(form.widen ? { widenedFrom: t.dtype as "F16" | "BF16" } : {}),
				});
				if (c.used) bound.add(t);
				hit = true;
				break;
			}
		}
		if (!hit) unmatchedConstants.push(c);
	}

	const findings: BindingFinding[] = exported.rewrites.map((r) => ({
		id: "export-input-rewritten",
		severity: "high",
		message: r.token
			? `the export rewrites its token inputs before the lookup: ${r.input} reaches ${r.node} (token ids may only be Gather indices, through Cast / Identity / Unsqueeze / Squeeze / Reshape / Flatten, or Shape / Size)`
			: `the export computes with its integer input ${r.input} at ${r.node} (a mask may only be cast and combined with constants, then added, multiplied or selected with)`,
		location: r.input,
	}));
	const unmatched: UnmatchedConstant[] = [];
	let ignored = 0;
	for (const c of unmatchedConstants) {
		const near = nearestOf(c, tensors, bound);
		const twin =
			c.elements > 1 &&
			near !== undefined &&
			(near.name === c.name ||
				(!bound.has(near) && (sameSqueezed(near.shape, c.dims) || reversedSqueezed(near.shape, c.dims))));
		// R1: a large constant; R2: a smaller one with a twin, or one the graph computes with that is more than a
		// few numbers (a weight, whatever its name and shape: the pieces of a tensor stored apart have no twin)
		if (c.elements < MIN_ELEMENTS && !twin && !(c.used && c.elements > SMALL_ELEMENTS)) {
			ignored++;
			continue;
		}
		unmatched.push({
			constant: c.name,
			origin: c.origin,
			dtype: c.dtype,
			dims: c.dims,
			elements: c.elements,
			...(near ? { nearest: { tensor: near.name, shape: near.shape } } : {}),
		});
		const why = !twin
			? "matches no checkpoint tensor as is, reshaped, transposed or widened (not a tensor of the checkpoint)"
			: `matches no checkpoint tensor although ${near?.name === c.name ? "one has its name" : "an unbound one has its shape"}`;
		findings.push({
			id: "export-constant-unmatched",
			severity: "high",
			message: `${c.dtype} constant ${c.name} ${shape(c.dims)} ${why}${near ? `; nearest checkpoint tensor: ${near.name} ${shape(near.shape)}` : ""}`,
			location: c.name,
		});
	}
	const unbound: UnboundTensor[] = [];
	let boundBytes = 0;
	let totalBytes = 0;
	for (const t of tensors) {
		const bytes = t.bytes.length;
		totalBytes += bytes;
		if (bound.has(t)) {
			boundBytes += bytes;
			continue;
		}
		unbound.push({ tensor: t.name, file: t.file, dtype: t.dtype, shape: t.shape, bytes });
		// every tensor but a scalar: biases, LayerNorm and a classifier head are enough to implant behaviour
		if (t.elements >= 2)
			findings.push({
				id: "export-tensor-unbound",
				severity: "high",
				message: `checkpoint tensor ${t.name} ${shape(t.shape)} ${t.dtype} (${bytes} bytes) is in no constant the export's graph reads`,
				location: t.name,
			});
	}
	const fraction = totalBytes === 0 ? 0 : boundBytes / totalBytes;
	if (fraction < MIN_COVERAGE)
		findings.push({
			id: "export-coverage-low",
			severity: "high",
			message: `the export holds ${(100 * fraction).toFixed(2)}% of the checkpoint's floating-point bytes (${boundBytes} of ${totalBytes}); at least ${100 * MIN_COVERAGE}% must be bound`,
		});
	return {
		verdict: findings.length === 0 ? "bound" : "mismatch",
		constants: {
			float: constants.length,
			large: constants.filter((c) => c.elements >= MIN_ELEMENTS).length,
			other: exported.otherConstants,
		},
		tensors: { float: tensors.length, skipped },
		matched,
		unmatched,
		ignored,
		unbound,
		coverage: { boundBytes, totalBytes, fraction },
		findings,
		thresholds: { minElements: MIN_ELEMENTS, minCoverage: MIN_COVERAGE, smallElements: SMALL_ELEMENTS },
	};
}
