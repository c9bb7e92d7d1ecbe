/**
 * One pickle stream of a ByteSource, read and judged as every pickle-bearing scanner needs it: the analyser or the
 * weights_only model run over growing chunks until the pickle ends (so that what follows it, such as tensor
 * storage, is never read), and the --allow-pickle rule's findings for what the model decided.
 */
import { type AnalyzeOptions, analyzePickle, type PickleAnalysis } from "./pickle";
import type { ByteSource, Finding, ScanResult } from "./types";
import { type CheckOptions, checkWeightsOnly, type WeightsOnlyResult } from "./weights-only";

/** Largest pickle stream analysed (per file, or per archive entry). */
export const MAX_PICKLE_BYTES = 256 * 1024 * 1024;
/** First read of a pickle stream: covers typical checkpoint pickles in one pass. */
export const FIRST_CHUNK = 64 * 1024;
/** Each further read multiplies the buffer by this. */
export const GROWTH = 4;

export type StreamOptions = Omit<AnalyzeOptions, "partial" | "start" | "baseOffset"> & {
	/** Offset in `src` where the pickle stream starts. @default 0 */
	offset?: number;
	/** Upper bound on bytes read. @default MAX_PICKLE_BYTES */
	maxBytes?: number;
	/** First read size (pass the stream's known size to analyse it in one pass). @default 64 KiB */
	firstChunk?: number;
};

/** What `analyzeStream` returns: the analysis and how many bytes it analysed (for budgets). */
export type StreamAnalysis = PickleAnalysis & { bytes: number };

/**
 * Analyses the pickle stream(s) starting at `offset`, reading in growing
 * chunks and re-analysing until the stream ends (or `maxPickles` are done), so
 * that what follows the pickles (tensor storage) is never read.
 *
 * The first chunk (64 KiB unless told) covers typical checkpoint pickles in one
 * pass; after that each read quadruples the buffer, so re-analysing from the
 * start costs at most ~4/3 of a single pass over the final size.
 */
export async function analyzeStream(src: ByteSource, opts: StreamOptions): Promise<StreamAnalysis> {
	const { offset: _o, maxBytes: _m, firstChunk: _f, ...rest } = opts;
	const offset = opts.offset ?? 0;
	const total = Math.max(0, src.size - offset);
	const maxBytes = Math.min(opts.maxBytes ?? MAX_PICKLE_BYTES, total);
	const want = Math.min(Math.max(1, opts.firstChunk ?? FIRST_CHUNK), maxBytes);
	let buf = await src.read(offset, want);
	for (;;) {
		const done = buf.length >= maxBytes;
		const r: StreamAnalysis = Object.assign(analyzePickle(buf, { ...rest, baseOffset: offset, partial: !done }), {
			bytes: buf.length,
		});
		// A buffer that ends exactly after a STOP may be followed by another pickle: read on
		// (unless the pickles wanted are all there), or a second pickle at a chunk boundary goes unseen.
		const atBoundary =
			!done && r.malformed === undefined && r.end === buf.length && (opts.maxPickles ?? Infinity) > r.pickles;
		if (!r.incomplete && !atBoundary) {
			if (done && maxBytes < total && r.malformed?.startsWith("truncated")) {
				r.findings.push({
					id: "pickle-too-large",
					severity: "high",
					message: `pickle stream longer than ${maxBytes} bytes; the rest was not checked`,
					...(opts.location ? { location: opts.location } : {}),
				});
			}
			return r;
		}
		const next = Math.min(maxBytes, buf.length * GROWTH);
		const more = await src.read(offset + buf.length, next - buf.length);
		if (more.length === 0) {
			return Object.assign(analyzePickle(buf, { ...rest, baseOffset: offset }), { bytes: buf.length });
		}
		buf = Buffer.concat([buf, more]);
	}
}

/**
 * Under --allow-pickle, the findings for one pickle torch.load reads (`r`: the weights_only model's result on it):
 * nothing when a weights_only loader loads it; else why not. A refusal about code (a global, callable, build or
 * append target, opcode) is `weights-only-refused` (high), with the dangerous globals CPython's unpickler would
 * import named (`dangerous-global`, critical); a corrupt pickle is malformed, and any import the full unpickler
 * would still make before failing is reported (fail closed: weights_only=False reads on where the model stopped).
 * One exception: a refusal for an opcode alone, in bytes that CPython's unpickler cannot run to their STOP either,
 * with nothing the analyser flags (no import off its allow-list, no call of a non-global, no payload found further
 * on), is not about code: no loader runs anything (random bytes are not a pickle) — malformed.
 */
export function judgeWeightsOnly(
	buf: Buffer,
	r: WeightsOnlyResult,
	at: { start?: number; baseOffset?: number; location?: string },
): ScanResult {
	if (r.outcome === "loaded") return { findings: [] };
	const full = analyzePickle(buf, {
		policy: { allowPickle: true },
		...(at.location !== undefined ? { location: at.location } : {}),
		start: at.start ?? 0,
		baseOffset: at.baseOffset ?? 0,
		maxPickles: 1,
		forbiddenFinding: false,
	});
	const serious = full.findings.filter((f) => f.severity === "critical" || f.severity === "high");
	const where = `${at.location ? `${at.location} @ ` : ""}opcode 0x${(r.offset ?? 0).toString(16)}`;
	const versions = Object.entries(r.byVersion)
		.map(([v, b]) => `torch ${v}: ${b.reason ?? b.outcome}`)
		.join("; ");
	// Inert imports (those the analyser does not flag) may come first: nothing runs before the failure either way.
	const notAPickle = r.opcode === true && serious.length === 0 && full.pickles === 0 && full.malformed !== undefined;
	if (r.outcome === "refused" && !notAPickle) {
		return {
			findings: [
				{
					id: "weights-only-refused",
					severity: "high",
					message: `torch.load(weights_only=True) refuses this pickle (${versions})`,
					location: where,
				},
				...serious.filter((f) => f.id === "dangerous-global"),
			],
		};
	}
	return {
		findings: serious,
		malformed: `${at.location ? `${at.location}: ` : ""}${r.reason ?? "not a pickle"} (${where})`,
	};
}

/**
 * Runs the weights_only model over the pickle at `offset` of `src`, reading in growing chunks (the first
 * `first` bytes, then ×4) until it is decided; `buf` is what was read from `offset`.
 */
export async function weightsOnlyStream(
	src: ByteSource,
	offset: number,
	opts: Omit<CheckOptions, "partial" | "start" | "baseOffset"> & { first?: number; maxBytes?: number },
): Promise<{ r: WeightsOnlyResult; buf: Buffer; tooLarge: boolean }> {
	const total = Math.max(0, src.size - offset);
	const max = Math.min(opts.maxBytes ?? MAX_PICKLE_BYTES, total);
	let buf = await src.read(offset, Math.min(Math.max(1, opts.first ?? FIRST_CHUNK), max));
	for (;;) {
		const partial = buf.length < max;
		const r = checkWeightsOnly(buf, { ...opts, baseOffset: offset, partial });
		if (r.outcome !== "incomplete") return { r, buf, tooLarge: false };
		if (!partial) return { r, buf, tooLarge: max < total };
		const more = await src.read(offset + buf.length, Math.min(max, buf.length * GROWTH) - buf.length);
		if (more.length === 0) return { r: checkWeightsOnly(buf, { ...opts, baseOffset: offset }), buf, tooLarge: false };
		buf = Buffer.concat([buf, more]);
	}
}

/** The finding for a pickle stream cut off at `max` bytes. */
export function tooLargeFinding(location: string | undefined, max: number): Finding {
	return {
		id: "pickle-too-large",
		severity: "high",
		message: `pickle stream longer than ${max} bytes; the rest was not checked`,
		...(location ? { location } : {}),
	};
}

/** An analysis as a scanner's result. */
export function toScanResult(r: PickleAnalysis): ScanResult {
	return r.malformed !== undefined ? { findings: r.findings, malformed: r.malformed } : { findings: r.findings };
}
