/**
 * `ftguard dataset`: one streaming pass over the records runs every detector and builds the lineage; a second pass,
 * only when a trigger was found, enumerates exactly the records that carry it. Every finding names its records
 * (0-based, in file order across the files given) so a curator can drop exactly them.
 *
 * How it is fast (issue 16: at least 50 MB/s, and as fast as `jq -c .` parses): records are read in batches of raw
 * lines; parsing them, their canonical JSON and leaf hashes (and the Merkle subtrees over each batch), and their
 * digest (features.ts: n-gram hashes, content words, completion features, near-duplicate signatures, suspicious
 * characters, injected text) happen on worker threads when the input is large, or on this thread — the same code. What
 * depends on record order (the n-gram sketch, lossy counting, duplicates, lineage) is then applied on this thread,
 * batch after batch in file order, so the report is the same whichever thread digested what.
 */
import { stat } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { FtguardError } from "../errors";
import { type DatasetPolicy, type DatasetSeverity, DEFAULT_DATASET_POLICY, SEVERITIES } from "../policy/dataset";
import { DuplicateFinder, EXAMPLE_CHARS } from "./duplicates";
import { DUP_CSIG, DUP_SIG, EMPTY_COMPLETION, gramTexts, RecordDigest } from "./features";
import { compilePatterns, injectedHit, injectedPrefilter, type Prefilter } from "./injected";
import {
	alignedSubtrees,
	canonicalJson,
	type Lineage,
	LineageBuilder,
	type LineageFile,
	leafFromBytes,
	leafHash,
	NotCanonicalError,
	nonCanonicalText,
} from "./lineage";
import {
	type DatasetItem,
	isParquet,
	parseRecord,
	type ReadProgress,
	type RecordBatch,
	readDataset,
	readRecordBatches,
} from "./reader";
import {
	detectFormat,
	type FieldMap,
	finalCompletion,
	RecordError,
	type RecordFormat,
	type TrainingRecord,
	toRecord,
} from "./records";
import { CountMinSketch } from "./sketch";
import { isAscii, words } from "./text";
import { contentHashes, type ObservedRecord, similarity, type TriggerGroup, TriggerMiner } from "./triggers";
import { hasRtl, scanText } from "./unicode";

export type FindingId =
	| "malformed-record"
	| "trigger"
	| "injected-output"
	| "invisible-character"
	| "bidi-override"
	| "tag-character"
	| "homoglyph-word"
	| "exact-duplicate"
	| "conflicting-duplicates";

const DEFAULT_SEVERITY: Record<FindingId, DatasetSeverity> = {
	"malformed-record": "medium",
	trigger: "high",
	"injected-output": "high",
	"invisible-character": "medium",
	"bidi-override": "high",
	"tag-character": "high",
	"homoglyph-word": "high",
	"exact-duplicate": "low",
	"conflicting-duplicates": "medium",
};

export interface DatasetFinding {
	readonly id: FindingId;
	readonly severity: DatasetSeverity;
	readonly message: string;
	readonly records: readonly number[];
	readonly evidence: Record<string, unknown>;
}

export interface DatasetReport {
	readonly ok: boolean;
	readonly records: number;
	readonly formats: Record<string, string>;
	readonly findings: readonly DatasetFinding[];
	readonly flagged_records: readonly number[];
	/** where each flagged record is: file and 1-based line (Parquet: row) */
	readonly locations: Record<string, { readonly file: string; readonly line: number }>;
	readonly lineage: Lineage;
	readonly timings: {
		readonly total_ms: number;
		readonly second_pass_ms: number;
		readonly records_per_s: number;
		readonly mb_per_s: number;
	};
}

export interface DatasetScanOptions {
	readonly files: readonly string[];
	readonly format?: "auto" | RecordFormat;
	readonly fields?: FieldMap;
	readonly policy?: DatasetPolicy;
	readonly onProgress?: (records: number, bytes: number) => void;
	/**
	 * Worker threads that parse and digest records (0: all on the calling thread). Default: one per core (at most 4)
	 * for inputs of 16 MiB or more when running compiled (the bundle), else 0; FTGUARD_DATASET_THREADS overrides it.
	 * The report is the same whatever the number: records are reduced in file order on the calling thread.
	 */
	readonly threads?: number;
	/** The most bytes of data to read, as read (gzip inflated): past it the scan stops, TOO_LARGE. Default: no limit. */
	readonly maxReadBytes?: number;
	/**
	 * (tests) what the duplicate finder keeps in memory: completions, and 64 Ki-record pages of signatures; the rest
	 * is read again (completions) or written to a temporary file (signatures)
	 */
	readonly inMemory?: { readonly completions: number; readonly signaturePages: number };
}

/** How many records of a file may fail to fit a layout before the file is "not a dataset". */
const DETECT_WINDOW = 20;
const MAX_POSITIONS = 20;
/** Records that must carry the same native-homoglyph spelling before it is a finding (fewer: a typo). */
const NATIVE_HOMOGLYPH_RECORDS = 3;
/** records per batch (the first batch of a file is small: its layout must be known before the next is sent) */
const BATCH_RECORDS = 2048;
const FIRST_BATCH_RECORDS = 64;
const BATCH_BYTES = 1 << 20;
/** batches sent to workers and not yet applied, per worker */
const IN_FLIGHT = 3;
const AUTO_THREADS_MIN_BYTES = 16 << 20;

const CHAR_KINDS = ["invisible", "bidi-override", "tag", "homoglyph", "native-homoglyph"] as const;
type CharKind = (typeof CHAR_KINDS)[number];

interface CharFinding {
	kind: CharKind;
	what: string;
	looksLike?: string;
	records: number[];
	positions: { record: number; turn: string; at: number }[];
}

// ------------------------------------------------------------------------------------------ per-record work (any thread)

/** What a thread needs to know to digest records. */
interface Settings {
	readonly triggers: boolean;
	readonly duplicates: boolean;
	readonly unicode: boolean;
	readonly injected: boolean;
	readonly patterns: readonly string[];
	readonly fields: FieldMap | undefined;
}

/** A batch of one file's records, the first numbered `firstId`; `format` undefined: the layout is still to be found. */
interface ScanJob {
	readonly op: "scan";
	readonly file: string;
	readonly firstId: number;
	readonly format: RecordFormat | undefined;
	readonly undetected: number;
	readonly batch: RecordBatch;
}

/** Record status in a digested batch. */
const OK = 0;
const UNPARSED = 1;
const NO_LAYOUT = 2;
const BAD_RECORD = 3;

/**
 * A digested batch. Record i's numbers are `ints[intAt[i]…]` (for an OK record: a header, then its prompt n-grams,
 * words, tokens, content words and completion content words, its features, its suspicious characters), its feature
 * keys `nums[numAt[i]…]`, its strings `strs[strAt[i]…]` (the completion first, when there is one).
 */
interface ScanResult {
	readonly count: number;
	readonly status: Uint8Array;
	readonly ints: Int32Array;
	readonly intAt: Int32Array;
	readonly nums: Float64Array;
	readonly numAt: Int32Array;
	readonly strs: string[];
	readonly strAt: Int32Array;
	/** 8 bytes of each record's leaf hash, and the aligned Merkle subtrees over the batch (hashes as latin1 strings) */
	readonly prefixes: Uint8Array;
	readonly subtrees: { hash: string; size: number }[];
	/** the file's layout after this batch, the record where it was found (-1: not here), records that had none */
	readonly format: RecordFormat | undefined;
	readonly detectedAt: number;
	readonly undetected: number;
	/** the file is not a dataset (DATA_INVALID) */
	readonly fatal?: string;
	/** the OK records' prompt n-grams one after another, for a sketch on another thread (workers only) */
	readonly grams?: Int32Array;
}

// header of an OK record's numbers
const H_GRAMS = 0;
const H_WORDS = 1;
const H_TOKENS = 2;
const H_PROMPT = 3;
const H_COMPLETION = 4;
const H_FEATURES = 5;
const H_WORDSET = 6;
const H_CFP = 7;
const H_SIG = 8; // 4 ints: 16 bytes
const H_CSIG = 12; // 2 ints: 8 bytes
const H_INJECTED = 14;
const H_CHARS = 15;
const H_HAS_COMPLETION = 16;
const HEADER = 17;

class IntWriter {
	data = new Int32Array(1 << 16);
	length = 0;
	ensure(n: number): void {
		if (this.length + n <= this.data.length) return;
		const next = new Int32Array(Math.max(this.data.length * 2, this.length + n));
		next.set(this.data.subarray(0, this.length));
		this.data = next;
	}
	push(v: number): void {
		if (this.length === this.data.length) this.ensure(1);
		this.data[this.length++] = v;
	}
	take(): Int32Array {
		const out = this.data.slice(0, this.length);
		this.length = 0;
		return out;
	}
}

/** Digests records: one per thread, its buffers reused batch after batch. */
class RecordProcessor {
	private readonly digest = new RecordDigest();
	private readonly decoder = new TextDecoder("utf-8", { fatal: true });
	private readonly patterns: RegExp[];
	/** all patterns as one alternation, for ASCII completions: one that matches none (nearly all) is rejected in one search */
	private readonly anyPattern: Prefilter | undefined;
	private readonly scratch = { buf: Buffer.allocUnsafe(1 << 16) };
	private readonly ints = new IntWriter();
	private nums = new Float64Array(1 << 14);
	/** the record being digested, and its prompt's text (made only when the injected-output check wants it) */
	private current: TrainingRecord | undefined;
	private readonly promptText = () => (this.current as TrainingRecord).prompt.map((t) => t.text).join("\n");

	constructor(private readonly s: Settings) {
		this.patterns = compilePatterns(s.patterns);
		this.anyPattern = injectedPrefilter(s.patterns);
	}

	scan(job: ScanJob): ScanResult {
		const b = job.batch;
		const bytes = (i: number) => b.bytes.subarray(b.starts[i] as number, b.ends[i] as number);
		return this.scanItems(
			job,
			b.count,
			(i) => parseRecord(bytes(i), job.file, b.lines[i] as number, this.decoder),
			bytes,
		);
	}

	/** Digest `count` items; `bytes`: their JSON texts, when there are (the leaf hash is then made from the text). */
	scanItems(
		job: Omit<ScanJob, "op" | "batch">,
		count: number,
		item: (i: number) => DatasetItem,
		bytes?: (i: number) => Uint8Array,
	): ScanResult {
		const status = new Uint8Array(count);
		const intAt = new Int32Array(count + 1);
		const numAt = new Int32Array(count + 1);
		const strAt = new Int32Array(count + 1);
		const strs: string[] = [];
		const prefixes = new Uint8Array(count * 8);
		const leaves: string[] = [];
		const ints = this.ints;
		let nn = 0;
		let format = job.format;
		let undetected = job.undetected;
		let detectedAt = -1;
		for (let i = 0; i < count; i++) {
			const id = job.firstId + i;
			intAt[i] = ints.length;
			numAt[i] = nn;
			strAt[i] = strs.length;
			const it = item(i);
			let leaf: string | undefined;
			let error = it.error;
			if (error === undefined) {
				try {
					leaf =
						(bytes === undefined ? undefined : leafFromBytes(bytes(i), this.scratch)) ??
						leafHash(canonicalJson(it.value), this.scratch);
				} catch (e) {
					// nesting deeper than the canonicaliser's stack (thousands of levels): no training record is that; nor a
					// number no float holds (1e400). The record is malformed, its leaf its text as read
					if (e instanceof RangeError) error = "nested too deeply to read as a record";
					else if (e instanceof NotCanonicalError)
						error = "has a number outside the 64-bit float range (or NaN): it has no canonical JSON (RFC 8785)";
					else throw e;
					leaf = leafHash(
						bytes === undefined ? (it.raw ?? nonCanonicalText(it.value)) : Buffer.from(bytes(i)).toString("utf8"),
						this.scratch,
					);
				}
			}
			if (error !== undefined) {
				leaf ??= leafHash(it.raw ?? "", this.scratch);
				status[i] = UNPARSED;
				strs.push(error);
			} else {
				let record: TrainingRecord | undefined;
				if (format === undefined) {
					format = detectFormat(it.value);
					if (format === undefined) {
						if (++undetected >= DETECT_WINDOW || id === 0) {
							// the first record of the first file decides quickly when nothing fits at all
							if (undetected >= DETECT_WINDOW || !isObject(it.value))
								return this.fatal(
									`${it.file}: not a dataset: its records have none of the known layouts (messages, instruction/output, prompt/completion, text); name the fields with --format fields --fields`,
								);
						}
						status[i] = NO_LAYOUT;
					} else detectedAt = id;
				}
				if (format !== undefined) {
					try {
						record = toRecord(it.value, format, this.s.fields);
					} catch (e) {
						if (!(e instanceof RecordError)) throw e;
						status[i] = BAD_RECORD;
						strs.push(e.message);
					}
				}
				if (record !== undefined) {
					status[i] = OK;
					nn = this.record(record, nn, strs);
				}
			}
			const done = leaf as string;
			for (let k = 0; k < 8; k++) prefixes[i * 8 + k] = done.charCodeAt(k);
			leaves.push(done);
		}
		intAt[count] = ints.length;
		numAt[count] = nn;
		strAt[count] = strs.length;
		return {
			count,
			status,
			ints: ints.take(),
			intAt,
			nums: this.nums.slice(0, nn),
			numAt,
			strs,
			strAt,
			prefixes,
			subtrees: alignedSubtrees(job.firstId, leaves),
			format,
			detectedAt,
			undetected,
		};
	}

	private fatal(message: string): ScanResult {
		this.ints.length = 0;
		const none = new Int32Array(1);
		return {
			count: 0,
			status: new Uint8Array(0),
			ints: new Int32Array(0),
			intAt: none,
			nums: new Float64Array(0),
			numAt: none,
			strs: [],
			strAt: none,
			prefixes: new Uint8Array(0),
			subtrees: [],
			format: undefined,
			detectedAt: -1,
			undetected: 0,
			fatal: message,
		};
	}

	/** One record's numbers and strings; returns the new end of `nums`. */
	private record(record: TrainingRecord, nn: number, strs: string[]): number {
		const s = this.s;
		const d = this.digest;
		d.digest(record, s.duplicates);
		const c = d.completion;
		const ints = this.ints;
		const head = ints.length;
		ints.ensure(HEADER);
		ints.length += HEADER;
		const h = ints.data;
		h.fill(0, head, head + HEADER);
		h[head + H_WORDSET] = d.wordSet;
		h[head + H_CFP] = d.cfp;
		// the signatures' bytes, four to an int (little-endian: a Uint8Array over the ints reads them back in order)
		const sig = d.sig;
		for (let j = 0; j < DUP_SIG / 4; j++)
			h[head + H_SIG + j] =
				(sig[4 * j] as number) |
				((sig[4 * j + 1] as number) << 8) |
				((sig[4 * j + 2] as number) << 16) |
				((sig[4 * j + 3] as number) << 24);
		const csig = d.csig;
		for (let j = 0; j < DUP_CSIG / 4; j++)
			h[head + H_CSIG + j] =
				(csig[4 * j] as number) |
				((csig[4 * j + 1] as number) << 8) |
				((csig[4 * j + 2] as number) << 16) |
				((csig[4 * j + 3] as number) << 24);
		h[head + H_HAS_COMPLETION] = c === undefined ? 0 : 1;
		// the record's strings: its completion first, then the texts of its features that are not the completion
		const strBase = strs.length;
		if (c !== undefined) strs.push(c);
		// the miner's view: n-grams, words, tokens, then both content-word sets sorted (samples are compared by merging)
		if (s.triggers) {
			this.append(d.grams.values, d.grams.size, false);
			this.append(d.words.values, d.words.size, false);
			this.append(d.tokens, d.tokenCount, false);
			this.append(d.promptWords.values, d.promptWords.size, true);
			this.append(d.completionWords.values, d.completionWords.size, true);
			const hd = ints.data;
			hd[head + H_GRAMS] = d.grams.size;
			hd[head + H_WORDS] = d.words.size;
			hd[head + H_TOKENS] = d.tokenCount;
			hd[head + H_PROMPT] = d.promptWords.size;
			hd[head + H_COMPLETION] = d.completionWords.size;
			hd[head + H_FEATURES] = d.featureCount;
			if (nn + d.featureCount > this.nums.length) {
				const next = new Float64Array(Math.max(this.nums.length * 2, nn + d.featureCount));
				next.set(this.nums.subarray(0, nn));
				this.nums = next;
			}
			ints.ensure(4 * d.featureCount);
			for (let f = 0; f < d.featureCount; f++) {
				this.nums[nn++] = d.featureKeys[f] as number;
				const text = d.featureTexts[f] as string;
				let ref = -1;
				if (text !== c) {
					ref = strs.length - strBase;
					strs.push(text);
				}
				ints.push(d.featureKinds[f] as number);
				ints.push(ref);
				ints.push(d.featureStarts[f] as number);
				ints.push(d.featureEnds[f] as number);
			}
		}
		ints.data[head + H_INJECTED] = -1;
		if (s.injected && c !== undefined) {
			this.current = record;
			const hit = injectedHit(c, d.completionIsAscii, this.promptText, this.patterns, this.anyPattern);
			if (hit !== undefined) {
				ints.data[head + H_INJECTED] = hit.pattern;
				strs.push(hit.text);
			}
		}
		if (s.unicode) {
			let n = 0;
			// right-to-left text in any turn: bidi marks and isolates are the record's ordinary punctuation
			let rtl: boolean | undefined;
			for (let side = 0; side < 2; side++) {
				const turns = side === 0 ? record.prompt : record.completion;
				for (let t = 0; t < turns.length; t++) {
					const turn = turns[t] as { source: string; text: string };
					// every suspicious character is beyond ASCII (the digest knows which turns are)
					const known =
						turns === record.prompt
							? t < d.promptAscii.length && d.promptAscii[t] === 1
							: t === turns.length - 1 && d.completionIsAscii;
					if (known || isAscii(turn.text)) continue;
					rtl ??= [...record.prompt, ...record.completion].some((x) => hasRtl(x.text));
					for (const hit of scanText(turn.text, { rtl })) {
						ints.push(CHAR_KINDS.indexOf(hit.kind));
						ints.push(hit.at);
						strs.push(hit.what, hit.looksLike ?? "", turn.source);
						n++;
					}
				}
			}
			ints.data[head + H_CHARS] = n;
		}
		return nn;
	}

	/** `values[0, n)` onto the numbers (sorted ascending when `sorted`): plain loops, no views, for tens of values. */
	private append(values: Int32Array, n: number, sorted: boolean): void {
		const ints = this.ints;
		ints.ensure(n);
		const at = ints.length;
		const d = ints.data;
		if (!sorted) for (let i = 0; i < n; i++) d[at + i] = values[i] as number;
		else if (n <= 64) {
			for (let i = 0; i < n; i++) {
				const v = values[i] as number;
				let j = at + i - 1;
				for (; j >= at && (d[j] as number) > v; j--) d[j + 1] = d[j] as number;
				d[j + 1] = v;
			}
		} else {
			d.set(values.subarray(0, n), at);
			d.subarray(at, at + n).sort();
		}
		ints.length += n;
	}

	/** Second pass: the records of the batch that carry one of the trigger n-grams. */
	triggers(job: TriggerJob): TriggerHit[] {
		const b = job.batch;
		const out: TriggerHit[] = [];
		const wanted = new Set(job.grams);
		const d = this.digest;
		for (let i = 0; i < b.count; i++) {
			const id = job.firstId + i;
			if (job.format === undefined || id < job.formatFrom) continue;
			const it = parseRecord(
				b.bytes.subarray(b.starts[i] as number, b.ends[i] as number),
				job.file,
				b.lines[i] as number,
				this.decoder,
			);
			const hit = this.triggerHit(it, id, job.format, wanted, d);
			if (hit !== undefined) out.push(hit);
		}
		return out;
	}

	triggerHit(
		it: DatasetItem,
		id: number,
		format: RecordFormat,
		wanted: ReadonlySet<number>,
		d: RecordDigest,
	): TriggerHit | undefined {
		if (it.error !== undefined) return undefined;
		let record: TrainingRecord;
		try {
			record = toRecord(it.value, format, this.s.fields);
		} catch {
			return undefined;
		}
		d.digestPrompt(record);
		const grams: number[] = [];
		for (let g = 0; g < d.grams.size; g++)
			if (wanted.has(d.grams.values[g] as number)) grams.push(d.grams.values[g] as number);
		if (grams.length === 0) return undefined;
		d.digest(record, false);
		return {
			id,
			grams,
			keys: Array.from(d.featureKeys.subarray(0, d.featureCount)),
			completionWords: d.completionWords.values.slice(0, d.completionWords.size).sort(),
			texts: [...gramTexts(record, wanted)],
		};
	}
}

interface TriggerJob {
	readonly op: "triggers";
	readonly file: string;
	readonly firstId: number;
	/** the file's layout, and its first record that had it (earlier records are skipped, as in the first pass) */
	readonly format: RecordFormat | undefined;
	readonly formatFrom: number;
	readonly grams: Int32Array;
	readonly batch: RecordBatch;
}

interface TriggerHit {
	readonly id: number;
	/** the trigger n-grams among its prompt's */
	readonly grams: readonly number[];
	readonly keys: readonly number[];
	readonly completionWords: Int32Array;
	readonly texts: readonly (readonly [number, string])[];
}

// ------------------------------------------------------------------------------------------------------ worker threads

interface WorkerInit {
	readonly ftguardDatasetWorker: true;
	/** digest batches, or keep the n-gram sketch (fed in record order by the calling thread) */
	readonly role: "digest" | "sketch";
	readonly settings: Settings;
}

type WorkerReply =
	| { id: number; ok: true; result: ScanResult | TriggerHit[] }
	| { id: number; ok: false; message: string };

if (!isMainThread && (workerData as Partial<WorkerInit> | null)?.ftguardDatasetWorker === true) {
	const init = workerData as WorkerInit;
	const port = parentPort as NonNullable<typeof parentPort>;
	if (init.role === "sketch") {
		const df = new CountMinSketch();
		port.on("message", (m: Int32Array | "finish") => {
			if (m === "finish") port.postMessage(df.counters, [df.counters.buffer as ArrayBuffer]);
			else df.addAll(m, 0, m.length);
		});
	} else {
		const proc = new RecordProcessor(init.settings);
		port.on("message", (m: { id: number; job: ScanJob | TriggerJob }) => {
			try {
				if (m.job.op === "scan") {
					const r = proc.scan(m.job);
					const grams = r.count > 0 && init.settings.triggers ? gramsOf(r) : undefined;
					const out: ScanResult = grams === undefined ? r : { ...r, grams };
					port.postMessage({ id: m.id, ok: true, result: out } satisfies WorkerReply, [
						r.status.buffer as ArrayBuffer,
						r.ints.buffer as ArrayBuffer,
						r.intAt.buffer as ArrayBuffer,
						r.nums.buffer as ArrayBuffer,
						r.numAt.buffer as ArrayBuffer,
						r.strAt.buffer as ArrayBuffer,
						r.prefixes.buffer as ArrayBuffer,
						...(grams === undefined ? [] : [grams.buffer as ArrayBuffer]),
					]);
				} else port.postMessage({ id: m.id, ok: true, result: proc.triggers(m.job) } satisfies WorkerReply);
			} catch (e) {
				port.postMessage({ id: m.id, ok: false, message: (e as Error)?.message ?? String(e) } satisfies WorkerReply);
			}
		});
	}
	port.postMessage({ ready: true });
}

/** The OK records' n-grams of a digested batch, one after another. */
function gramsOf(r: ScanResult): Int32Array {
	let n = 0;
	for (let i = 0; i < r.count; i++) if (r.status[i] === OK) n += r.ints[(r.intAt[i] as number) + H_GRAMS] as number;
	const out = new Int32Array(n);
	let at = 0;
	for (let i = 0; i < r.count; i++) {
		if (r.status[i] !== OK) continue;
		const head = r.intAt[i] as number;
		const g = r.ints[head + H_GRAMS] as number;
		out.set(r.ints.subarray(head + HEADER, head + HEADER + g), at);
		at += g;
	}
	return out;
}

/**
 * Where batches are digested: worker threads (each takes batches in turn; the replies are awaited in order), or this
 * thread when there are none. Workers run this module's compiled file; under a TypeScript loader there are none.
 */
class Digesters {
	private readonly workers: Worker[] = [];
	/** the thread that keeps the n-gram sketch while there are workers (none: the miner counts them itself) */
	private sketch: Worker | undefined;
	private readonly waiting = new Map<
		number,
		{ resolve: (r: ScanResult | TriggerHit[]) => void; reject: (e: Error) => void }
	>();
	private next = 0;
	private failed: Error | undefined;
	private inlineProcessor: RecordProcessor | undefined;

	private constructor(private readonly settings: Settings) {}

	/** This thread's processor, made when first wanted (with workers: only for Parquet files) */
	get inline(): RecordProcessor {
		this.inlineProcessor ??= new RecordProcessor(this.settings);
		return this.inlineProcessor;
	}

	static async start(threads: number, settings: Settings): Promise<Digesters> {
		const d = new Digesters(settings);
		const url = new URL(import.meta.url);
		if (threads <= 0 || url.protocol !== "file:" || !/\.[cm]?js$/.test(url.pathname)) return d;
		const start = async (role: WorkerInit["role"]): Promise<Worker> => {
			const w = new Worker(fileURLToPath(url), {
				workerData: { ftguardDatasetWorker: true, role, settings } satisfies WorkerInit,
				// a worker holds a few batches: a bounded heap keeps the scan's memory predictable (a 64 MiB record still fits)
				resourceLimits: { maxOldGenerationSizeMb: 384, maxYoungGenerationSizeMb: 16 },
				stdout: false,
				stderr: false,
			});
			await new Promise<void>((resolve, reject) => {
				w.once("message", () => resolve());
				w.once("error", reject);
				w.once("exit", (code) => reject(new Error(`dataset worker exited (${code})`)));
			}).catch(async (e) => {
				await w.terminate();
				throw e;
			});
			w.on("error", (e) => d.fail(e));
			w.on("exit", (code) => {
				if (code !== 0 && !d.closing) d.fail(new Error(`dataset worker exited (${code})`));
			});
			return w;
		};
		try {
			const started = await Promise.all(Array.from({ length: threads }, () => start("digest")));
			for (const w of started) w.on("message", (r: WorkerReply) => d.reply(r));
			d.workers.push(...started);
			if (settings.triggers && process.env.FTGUARD_DATASET_NOSKETCH === undefined) d.sketch = await start("sketch");
		} catch {
			// no workers here (a bundle that cannot be a worker's entry): everything on this thread
			await d.close();
			d.workers.length = 0;
			d.sketch = undefined;
		}
		return d;
	}

	get threads(): number {
		return this.workers.length;
	}

	private reply(r: WorkerReply): void {
		const w = this.waiting.get(r.id);
		if (w === undefined) return;
		this.waiting.delete(r.id);
		if (r.ok) w.resolve(r.result);
		else w.reject(new Error(r.message));
	}

	private fail(e: Error): void {
		this.failed ??= e;
		for (const w of this.waiting.values()) w.reject(e);
		this.waiting.clear();
	}

	run<J extends ScanJob | TriggerJob>(job: J): Promise<J extends ScanJob ? ScanResult : TriggerHit[]> {
		type R = J extends ScanJob ? ScanResult : TriggerHit[];
		if (this.workers.length === 0) {
			try {
				return Promise.resolve((job.op === "scan" ? this.inline.scan(job) : this.inline.triggers(job)) as R);
			} catch (e) {
				return Promise.reject(e);
			}
		}
		if (this.failed) return Promise.reject(this.failed);
		const id = this.next++;
		const w = this.workers[id % this.workers.length] as Worker;
		return new Promise<R>((resolve, reject) => {
			this.waiting.set(id, { resolve: resolve as (r: ScanResult | TriggerHit[]) => void, reject });
			w.postMessage({ id, job }, [job.batch.bytes.buffer as ArrayBuffer]);
		});
	}

	/** Whether the n-grams are counted on the sketch thread (`count`, then `sketchCounters`). */
	get countsGrams(): boolean {
		return this.sketch !== undefined;
	}

	/** Count a batch's n-grams (in record order: batches are passed in the order they are applied). */
	count(grams: Int32Array): void {
		this.sketch?.postMessage(grams, [grams.buffer as ArrayBuffer]);
	}

	/** The sketch thread's counters, once every batch has been passed. */
	async sketchCounters(): Promise<Uint32Array> {
		const w = this.sketch as Worker;
		const counters = new Promise<Uint32Array>((resolve, reject) => {
			w.once("message", (m: Uint32Array) => resolve(m));
			w.once("error", reject);
		});
		w.postMessage("finish");
		return counters;
	}

	private closing = false;

	async close(): Promise<void> {
		this.closing = true;
		const all = [...this.workers, ...(this.sketch ? [this.sketch] : [])];
		this.workers.length = 0;
		this.sketch = undefined;
		await Promise.all(all.map((w) => w.terminate()));
	}
}

function defaultThreads(opts: DatasetScanOptions, bytes: number): number {
	const env = process.env.FTGUARD_DATASET_THREADS;
	if (env !== undefined && /^\d+$/.test(env)) return Number(env);
	if (opts.threads !== undefined) return opts.threads;
	return bytes >= AUTO_THREADS_MIN_BYTES ? Math.min(availableParallelism(), 4) : 0;
}

// --------------------------------------------------------------------------------------------------------- the scan

/** Line numbers of records, kept as the points where they stop counting up by one (usually one per file). */
class LineMap {
	private readonly ids: number[] = [];
	private readonly lines: number[] = [];
	private lastId = -2;
	private lastLine = -2;

	set(id: number, line: number): void {
		if (id !== this.lastId + 1 || line !== this.lastLine + 1) {
			this.ids.push(id);
			this.lines.push(line);
		}
		this.lastId = id;
		this.lastLine = line;
	}

	get(id: number): number {
		let lo = 0;
		let hi = this.ids.length - 1;
		while (lo < hi) {
			const mid = (lo + hi + 1) >> 1;
			if ((this.ids[mid] as number) <= id) lo = mid;
			else hi = mid - 1;
		}
		return (this.lines[lo] as number) + (id - (this.ids[lo] as number));
	}
}

/** An OK record of a digested batch, as the miner reads it. */
class RecordView implements ObservedRecord {
	id = 0;
	data: Int32Array = new Int32Array(0);
	at = 0;
	grams = 0;
	words = 0;
	tokens = 0;
	promptWords = 0;
	completionWords = 0;
	features = 0;
	private featuresAt = 0;
	private nums: Float64Array = new Float64Array(0);
	private numAt = 0;
	private strs: string[] = [];
	private strAt = 0;
	completion: string | undefined;

	load(id: number, r: ScanResult, i: number): void {
		const head = r.intAt[i] as number;
		const d = r.ints;
		this.id = id;
		this.data = d;
		this.at = head + HEADER;
		this.grams = d[head + H_GRAMS] as number;
		this.words = d[head + H_WORDS] as number;
		this.tokens = d[head + H_TOKENS] as number;
		this.promptWords = d[head + H_PROMPT] as number;
		this.completionWords = d[head + H_COMPLETION] as number;
		this.features = d[head + H_FEATURES] as number;
		this.featuresAt = this.at + this.grams + this.words + this.tokens + this.promptWords + this.completionWords;
		this.nums = r.nums;
		this.numAt = r.numAt[i] as number;
		this.strs = r.strs;
		this.strAt = r.strAt[i] as number;
		this.completion = d[head + H_HAS_COMPLETION] === 1 ? (r.strs[this.strAt] as string) : undefined;
	}

	featureKind(f: number): number {
		return this.data[this.featuresAt + 4 * f] as number;
	}

	featureKey(f: number): number {
		return this.nums[this.numAt + f] as number;
	}

	featureString(f: number): string {
		const ref = this.data[this.featuresAt + 4 * f + 1] as number;
		return ref < 0 ? (this.completion as string) : (this.strs[this.strAt + ref] as string);
	}

	featureStart(f: number): number {
		return this.data[this.featuresAt + 4 * f + 2] as number;
	}

	featureEnd(f: number): number {
		return this.data[this.featuresAt + 4 * f + 3] as number;
	}

	/** a batch's numbers are its own (made for it, never written again): samples may be views of them */
	readonly dataKept = true;

	/** where the record's strings after its completion and feature texts start, and the characters' numbers */
	extras(): { strings: number; chars: number } {
		let refs = 0;
		for (let f = 0; f < this.features; f++) if ((this.data[this.featuresAt + 4 * f + 1] as number) >= 0) refs++;
		return {
			strings: this.strAt + (this.completion === undefined ? 0 : 1) + refs,
			chars: this.featuresAt + 4 * this.features,
		};
	}

	get completionText(): string | undefined {
		return this.completion;
	}
}

export async function scanDataset(opts: DatasetScanOptions): Promise<DatasetReport> {
	const started = performance.now();
	const policy = opts.policy ?? DEFAULT_DATASET_POLICY;
	const format = opts.format ?? "auto";
	if (format === "fields" && opts.fields === undefined)
		throw new FtguardError("USAGE", "--format fields needs --fields");
	const settings: Settings = {
		triggers: policy.triggers.enabled,
		duplicates: policy.duplicates.enabled,
		unicode: policy.unicode.enabled,
		injected: policy.injected.enabled,
		patterns: [...policy.injected.patterns, ...policy.injected.extraPatterns],
		fields: opts.fields,
	};
	const patterns = compilePatterns(settings.patterns);
	let totalBytes = 0;
	for (const f of opts.files) totalBytes += await fileSize(f);
	const digesters = await Digesters.start(defaultThreads(opts, totalBytes), settings);
	let state: ScanState | undefined;
	try {
		state = new ScanState(opts, policy, format, digesters);
		const progress: ReadProgress = {
			bytes: 0,
			...(opts.maxReadBytes === undefined ? {} : { maxRead: opts.maxReadBytes }),
		};
		await state.firstPass(progress);
		const N = state.index;
		if (N === 0) throw new FtguardError("DATA_INVALID", "no records: the dataset is empty");
		opts.onProgress?.(N, progress.bytes);

		const findings: DatasetFinding[] = [...state.malformed];
		const sev = (id: FindingId): DatasetSeverity =>
			(policy.severity[id] as DatasetSeverity | undefined) ?? DEFAULT_SEVERITY[id];

		const secondStart = performance.now();
		if (policy.triggers.enabled) {
			const groups = state.miner.analyse();
			if (groups.length > 0) findings.push(...(await state.triggerFindings(groups, sev)));
		}
		const secondPass = performance.now() - secondStart;
		// the miner's samples and the workers are done with: their memory goes before the duplicates' analysis needs its own
		state.releaseMiner();
		await digesters.close();

		for (const [pattern, e] of state.injected) {
			findings.push({
				id: "injected-output",
				severity: sev("injected-output"),
				message: `${e.records.length} completion(s) contain instruction-like text the prompt did not ask for: "${e.text}"`,
				records: e.records,
				evidence: { pattern: patterns[pattern]?.source, matched: e.text, examples: e.examples },
			});
		}
		for (const c of state.chars.values()) {
			if (c.kind === "invisible" && c.records.length >= policy.unicode.normalShare * N) continue;
			// a Cyrillic (Greek, Armenian) word with a Latin look-alike in text of its script: once it is a typo
			if (c.kind === "native-homoglyph" && c.records.length < NATIVE_HOMOGLYPH_RECORDS) continue;
			const homoglyph = c.kind === "homoglyph" || c.kind === "native-homoglyph";
			const id: FindingId = homoglyph
				? "homoglyph-word"
				: c.kind === "bidi-override"
					? "bidi-override"
					: c.kind === "tag"
						? "tag-character"
						: "invisible-character";
			findings.push({
				id,
				severity: sev(id),
				message: homoglyph
					? `the word "${c.what}" mixes scripts to look like "${c.looksLike}" in ${c.records.length} record(s)`
					: `${c.what} (${charName(c.what)}) hidden in ${c.records.length} record(s)`,
				records: c.records,
				evidence: { character: c.what, ...(c.looksLike ? { looks_like: c.looksLike } : {}), positions: c.positions },
			});
		}
		if (policy.duplicates.enabled) {
			for (const g of state.dups.exactDuplicates(state.lineage.prefixes)) {
				findings.push({
					id: "exact-duplicate",
					severity: sev("exact-duplicate"),
					message: `record ${g[0]} appears ${g.length} times`,
					records: g.slice(1),
					evidence: { first: g[0], copies: g.slice(1) },
				});
			}
			if (policy.duplicates.conflicts) {
				const clusters = state.dups.clusters();
				const more = await state.completionsOf(state.dups.missingTexts(clusters));
				for (const c of state.dups.conflicts(clusters, more)) {
					const majority = (c.classes[0]?.length ?? 0) > (c.classes[1]?.length ?? 0);
					findings.push({
						id: "conflicting-duplicates",
						severity: sev("conflicting-duplicates"),
						message: `${c.classes.flat().length} near-identical prompts have ${c.classes.length} different completions${majority ? `; the majority (${c.classes[0]?.length}) answer "${trim(c.examples[0] ?? "", 80)}"` : ""}`,
						records: c.classes.flat().sort((a, b) => a - b),
						evidence: {
							completions: c.classes.map((cl, i) => ({ records: cl, example: trim(c.examples[i] ?? "", 200) })),
							majority: majority ? c.classes[0] : null,
						},
					});
				}
			}
		}
		findings.sort(
			(a, b) =>
				SEVERITIES.indexOf(b.severity) - SEVERITIES.indexOf(a.severity) || (a.records[0] ?? 0) - (b.records[0] ?? 0),
		);
		const flagged = new Set<number>();
		for (const f of findings) for (const r of f.records) flagged.add(r);
		const failAt = SEVERITIES.indexOf(policy.failOn);
		const locations: Record<string, { file: string; line: number }> = {};
		let f = 0;
		const fileOf = state.fileOf;
		for (const id of [...flagged].sort((a, b) => a - b)) {
			while (f + 1 < fileOf.length && (fileOf[f + 1] as { first: number }).first <= id) f++;
			locations[id] = { file: (fileOf[f] as { file: string }).file, line: state.lines.get(id) };
		}
		const total = performance.now() - started;
		return {
			ok: !findings.some((f) => SEVERITIES.indexOf(f.severity) >= failAt),
			records: N,
			formats: state.formats,
			findings,
			flagged_records: [...flagged].sort((a, b) => a - b),
			locations,
			lineage: state.lineage.finish(),
			timings: {
				total_ms: Math.round(total),
				second_pass_ms: Math.round(secondPass),
				records_per_s: Math.round(N / (total / 1000)),
				mb_per_s: Math.round((progress.bytes / 1e6 / (total / 1000)) * 10) / 10,
			},
		};
	} finally {
		state?.dups.close();
		await digesters.close();
	}
}

async function fileSize(f: string): Promise<number> {
	try {
		return (await stat(f)).size;
	} catch {
		return 0; // the reader reports it
	}
}

/** The first pass's state, applied batch after batch in file order, and the second pass. */
class ScanState {
	miner: TriggerMiner;
	readonly dups: DuplicateFinder;
	readonly lineage = new LineageBuilder();
	readonly malformed: DatasetFinding[] = [];
	readonly chars = new Map<string, CharFinding>();
	readonly injected = new Map<number, { text: string; records: number[]; examples: string[] }>();
	readonly formats: Record<string, string> = {};
	readonly fileOf: { file: string; first: number }[] = [];
	readonly lines = new LineMap();
	/** per file: its layout and the first record that had it (the second pass skips those before) */
	private readonly layouts = new Map<string, { format: RecordFormat | undefined; from: number }>();
	private readonly allow: ReadonlySet<string>;
	private readonly view = new RecordView();
	index = 0;
	private fileRecords = 0;

	constructor(
		private readonly opts: DatasetScanOptions,
		private readonly policy: DatasetPolicy,
		private readonly format: "auto" | RecordFormat,
		private readonly digesters: Digesters,
	) {
		this.miner = new TriggerMiner(policy.triggers, undefined, undefined, !digesters.countsGrams);
		this.dups = new DuplicateFinder(opts.inMemory?.completions, opts.inMemory?.signaturePages);
		this.allow = new Set(policy.unicode.allow);
	}

	private progress: ReadProgress = { bytes: 0 };

	async firstPass(progress: ReadProgress): Promise<void> {
		this.progress = progress;
		// digested batches not yet applied, in file order; each resolves to the function that applies it
		const pending: Promise<() => void>[] = [];
		const inFlight = Math.max(1, this.digesters.threads) * IN_FLIGHT;
		const drain = async (keep: number) => {
			while (pending.length > keep) (await (pending.shift() as Promise<() => void>))();
		};
		for (const file of this.opts.files) {
			let started = false;
			const startFile = () => {
				if (started) return;
				started = true;
				this.fileRecords = 0;
			};
			const endFile = (f: Omit<LineageFile, "records">) => {
				// no record of the file fitted a layout (a pretty-printed config, a file of other JSON): not a dataset
				if (this.layout(file).format === undefined)
					throw new FtguardError(
						"DATA_INVALID",
						`${file}: not a dataset: no record has one of the known layouts (messages, instruction/output, prompt/completion, text); name the fields with --format fields --fields`,
					);
				this.lineage.addFile({ ...f, records: started ? this.fileRecords : 0 });
			};
			if (await isParquet(file)) {
				// Parquet rows come parsed: digested here, in batches
				await drain(0);
				let items: DatasetItem[] = [];
				const flush = () => {
					if (items.length === 0) return;
					const batch = items;
					items = [];
					startFile();
					const job = this.job(file, batch.length);
					this.apply(
						file,
						job,
						this.digesters.inline.scanItems(job, batch.length, (i) => batch[i] as DatasetItem),
						batch,
					);
				};
				const onFile = (f: Omit<LineageFile, "records">) => {
					flush();
					endFile(f);
				};
				for await (const item of readDataset([file], onFile, progress)) {
					items.push(item);
					// one at a time until the file's layout is known
					if (items.length >= BATCH_RECORDS || this.layout(file).format === undefined) flush();
				}
				continue;
			}
			const limits = { maxRecords: BATCH_RECORDS, firstRecords: FIRST_BATCH_RECORDS, maxBytes: BATCH_BYTES };
			const onFile = (f: Omit<LineageFile, "records">) => pending.push(Promise.resolve(() => endFile(f)));
			try {
				for await (const batch of readRecordBatches(file, limits, onFile, progress)) {
					const job = this.job(file, batch.count);
					const lineNos = batch.lines;
					const digested = this.digesters.run({ op: "scan", ...job, batch });
					pending.push(
						digested.then((r) => () => {
							startFile();
							this.apply(file, job, r, lineNos);
						}),
					);
					// the layout must be known before the file's next batch is digested
					await drain(job.format === undefined ? 0 : inFlight);
				}
			} catch (e) {
				// a record before the reader's error may have failed the scan first, as it would one record at a time
				await drain(0);
				throw e;
			}
		}
		await drain(0);
		if (this.digesters.countsGrams)
			this.miner.useSketch(new CountMinSketch(undefined, undefined, await this.digesters.sketchCounters()));
	}

	/** Let go of the miner (its samples, entries and sketch): nothing reads it after the trigger findings. */
	releaseMiner(): void {
		this.miner = undefined as unknown as TriggerMiner;
	}

	private layout(file: string): { format: RecordFormat | undefined; from: number } {
		let l = this.layouts.get(file);
		if (l === undefined) {
			l = {
				format: this.format === "auto" ? undefined : this.format,
				from: this.format === "auto" ? Number.POSITIVE_INFINITY : 0,
			};
			this.layouts.set(file, l);
		}
		return l;
	}

	/** The next batch of `file`, numbered from the records already sent. */
	private sent = 0;
	private undetected = new Map<string, number>();
	private job(file: string, count: number): Omit<ScanJob, "op" | "batch"> {
		const job = {
			file,
			firstId: this.sent,
			format: this.layout(file).format,
			undetected: this.undetected.get(file) ?? 0,
		};
		this.sent += count;
		return job;
	}

	/** Apply a digested batch: everything that depends on record order happens here, in file order. */
	private apply(
		file: string,
		job: Omit<ScanJob, "op" | "batch">,
		r: ScanResult,
		lineNos: Int32Array | readonly DatasetItem[],
	): void {
		if (r.fatal !== undefined) throw new FtguardError("DATA_INVALID", r.fatal);
		if (job.firstId !== this.index)
			throw new FtguardError("INTERNAL", `dataset batch out of order: ${job.firstId} ≠ ${this.index}`);
		const layout = this.layout(file);
		if (layout.format === undefined && r.format !== undefined) {
			layout.format = r.format;
			layout.from = r.detectedAt;
			this.formats[file] = r.format;
		}
		this.undetected.set(file, r.undetected);
		this.lineage.addLeaves(r.prefixes, r.subtrees);
		if (r.grams !== undefined) this.digesters.count(r.grams);
		if (this.fileRecords === 0 && r.count > 0) this.fileOf.push({ file, first: this.index });
		const { triggers, duplicates, unicode, injected } = this.policy;
		const view = this.view;
		for (let i = 0; i < r.count; i++) {
			const id = this.index++;
			const line = lineNos instanceof Int32Array ? (lineNos[i] as number) : (lineNos[i] as DatasetItem).line;
			this.lines.set(id, line);
			this.fileRecords++;
			if (id % 4096 === 0) this.opts.onProgress?.(id, this.progress.bytes);
			const status = r.status[i];
			const strAt = r.strAt[i] as number;
			if (status !== OK) {
				if (duplicates.enabled) {
					if (status === UNPARSED) this.dups.addUnparsed(id, EMPTY_SIG, EMPTY_CFP, EMPTY_CSIG);
					else this.dups.add(id, 0, EMPTY_SIG, EMPTY_CFP, EMPTY_CSIG, undefined);
				}
				const why = status === NO_LAYOUT ? "no known record layout" : (r.strs[strAt] as string);
				this.malformed.push(malformedFinding(id, { file, line }, why));
				continue;
			}
			view.load(id, r, i);
			if (triggers.enabled) this.miner.observe(view);
			const head = r.intAt[i] as number;
			const completion = view.completionText;
			if (duplicates.enabled) {
				const sig = new Uint8Array(r.ints.buffer, r.ints.byteOffset + (head + H_SIG) * 4, DUP_SIG);
				const csig = new Uint8Array(r.ints.buffer, r.ints.byteOffset + (head + H_CSIG) * 4, DUP_CSIG);
				this.dups.add(id, r.ints[head + H_WORDSET] as number, sig, r.ints[head + H_CFP] as number, csig, completion);
			}
			const { strings, chars } = view.extras();
			let s = strings;
			const pattern = r.ints[head + H_INJECTED] as number;
			if (pattern >= 0) {
				const text = r.strs[s++] as string;
				if (injected.enabled && completion !== undefined) {
					const entry = this.injected.get(pattern) ?? { text, records: [], examples: [] };
					entry.records.push(id);
					if (entry.examples.length < 3) entry.examples.push(completion.slice(0, 300));
					this.injected.set(pattern, entry);
				}
			}
			if (unicode.enabled) {
				const n = r.ints[head + H_CHARS] as number;
				for (let k = 0; k < n; k++, s += 3) {
					const what = r.strs[s] as string;
					if (this.allow.has(what)) continue;
					const kind = CHAR_KINDS[r.ints[chars + 2 * k] as number] as CharKind;
					const looksLike = (r.strs[s + 1] as string) || undefined;
					// (a native homoglyph by its exact spelling: its recurrence is what tells a planted token from typos)
					const key = `${kind}:${kind === "homoglyph" ? looksLike?.toLowerCase() : what}`;
					let c = this.chars.get(key);
					if (c === undefined) {
						c = { kind, what, records: [], positions: [], ...(looksLike ? { looksLike } : {}) };
						this.chars.set(key, c);
					}
					if (c.records[c.records.length - 1] !== id) c.records.push(id);
					if (c.positions.length < MAX_POSITIONS)
						c.positions.push({ record: id, turn: r.strs[s + 2] as string, at: r.ints[chars + 2 * k + 1] as number });
				}
			}
		}
	}

	/**
	 * The completions (first EXAMPLE_CHARS characters) of records `ids` (ascending), read again: the duplicate finder keeps only
	 * the first records' (64 Ki). Only the wanted records are parsed; a read error fails the scan as in the first pass.
	 */
	async completionsOf(ids: readonly number[]): Promise<Map<number, string>> {
		const out = new Map<number, string>();
		if (ids.length === 0) return out;
		let next = 0;
		let id = 0;
		const take = (value: unknown, rid: number, layout: { format: RecordFormat | undefined; from: number }) => {
			if (layout.format === undefined || rid < layout.from) return;
			try {
				const c = finalCompletion(toRecord(value, layout.format, this.opts.fields));
				if (c !== undefined) out.set(rid, c.slice(0, EXAMPLE_CHARS));
			} catch {
				// not a record of the layout: it has no completion
			}
		};
		const decoder = new TextDecoder("utf-8", { fatal: true });
		for (const file of this.opts.files) {
			if (next >= ids.length) break;
			const layout = this.layout(file);
			if (await isParquet(file)) {
				for await (const item of readDataset([file])) {
					const rid = id++;
					if (rid !== ids[next]) continue;
					next++;
					if (item.error === undefined) take(item.value, rid, layout);
					if (next >= ids.length) break;
				}
				continue;
			}
			const limits = { maxRecords: BATCH_RECORDS, firstRecords: BATCH_RECORDS, maxBytes: BATCH_BYTES };
			for await (const b of readRecordBatches(file, limits)) {
				while (next < ids.length && (ids[next] as number) < id + b.count) {
					const i = (ids[next++] as number) - id;
					const bytes = b.bytes.subarray(b.starts[i] as number, b.ends[i] as number);
					const item = parseRecord(bytes, file, b.lines[i] as number, decoder);
					if (item.error === undefined) take(item.value, id + i, layout);
				}
				id += b.count;
				// (every wanted record read: the rest of the file is not)
				if (next >= ids.length) break;
			}
		}
		return out;
	}

	/** Second pass: the records that carry a found trigger with its concentrated completion, and the finding's words. */
	async triggerFindings(
		groups: readonly TriggerGroup[],
		sev: (id: FindingId) => DatasetSeverity,
	): Promise<DatasetFinding[]> {
		const allGrams = new Set(groups.flatMap((g) => g.grams));
		const wanted = Int32Array.from(allGrams);
		const outputs = groups.map((g) => g.outputs.map((o) => contentHashes(o)));
		const records = groups.map(() => [] as number[]);
		const withTrigger = groups.map(() => 0);
		const gramCounts = new Map<number, number>();
		const texts = new Map<number, string>();
		const take = (hits: readonly TriggerHit[]) => {
			for (const hit of hits) {
				const keys = new Set(hit.keys);
				const gramSet = new Set(hit.grams);
				groups.forEach((g, i) => {
					if (!g.grams.some((x) => gramSet.has(x))) return;
					withTrigger[i] = (withTrigger[i] as number) + 1;
					const sameOutput =
						[...g.features].some((k) => keys.has(k)) ||
						(outputs[i] ?? []).some((o) => similarity(o, hit.completionWords) >= 0.3);
					if (sameOutput) {
						(records[i] as number[]).push(hit.id);
						for (const x of g.grams) if (gramSet.has(x)) gramCounts.set(x, (gramCounts.get(x) ?? 0) + 1);
						if (texts.size < allGrams.size) for (const [h, t] of hit.texts) if (!texts.has(h)) texts.set(h, t);
					}
				});
			}
		};
		let id = 0;
		const pending: Promise<TriggerHit[]>[] = [];
		const inFlight = Math.max(1, this.digesters.threads) * IN_FLIGHT;
		for (const file of this.opts.files) {
			const layout = this.layout(file);
			if (await isParquet(file)) {
				for (const p of pending.splice(0)) take(await p);
				const d = new RecordDigest();
				for await (const item of readDataset([file])) {
					const rid = id++;
					if (layout.format === undefined || rid < layout.from) continue;
					const hit = this.digesters.inline.triggerHit(item, rid, layout.format, allGrams, d);
					if (hit !== undefined) take([hit]);
				}
				continue;
			}
			for await (const batch of readRecordBatches(file, {
				maxRecords: BATCH_RECORDS,
				firstRecords: BATCH_RECORDS,
				maxBytes: BATCH_BYTES,
			})) {
				pending.push(
					this.digesters.run({
						op: "triggers",
						file,
						firstId: id,
						format: layout.format,
						formatFrom: layout.from,
						grams: wanted,
						batch,
					}),
				);
				id += batch.count;
				while (pending.length > inFlight) take(await (pending.shift() as Promise<TriggerHit[]>));
			}
		}
		for (const p of pending.splice(0)) take(await p);
		return groups.map((g, i) => {
			const best = g.candidates[0];
			// named by the n-gram most of its records carry, the longest of those; the others are its variants
			const ranked = g.grams
				.filter((h) => texts.has(h))
				.sort(
					(a, b) =>
						(gramCounts.get(b) ?? 0) - (gramCounts.get(a) ?? 0) ||
						wordCount(texts.get(b) as string) - wordCount(texts.get(a) as string),
				);
			const phrases = [...new Set(ranked.map((h) => texts.get(h) as string))];
			const trigger = phrases[0] ?? "(not recoverable)";
			const covered = records[i] as number[];
			return {
				id: "trigger" as const,
				severity: sev("trigger"),
				message: `the prompt text "${trigger}" comes with the same output in ${covered.length} records ("${trim(best?.feature.text ?? "", 100)}"); by chance: p ≈ 1e${Math.round(best?.log10p ?? 0)}`,
				records: covered,
				evidence: {
					trigger,
					variants: phrases.slice(0, 12),
					output: best?.feature.text,
					output_kind: best?.feature.kind,
					records_with_trigger: withTrigger[i],
					records_with_output: best?.m,
					log10_p_value: best ? Math.round(best.log10p * 10) / 10 : undefined,
				},
			};
		});
	}
}

const EMPTY_SIG = new Uint8Array(DUP_SIG).fill(0xff);
const EMPTY_CSIG = new Uint8Array(DUP_CSIG).fill(0xff);
const EMPTY_CFP = EMPTY_COMPLETION;

function wordCount(text: string): number {
	return words(text).length;
}

function isObject(v: unknown): boolean {
	return typeof v === "object" && v !== null && !Array.isArray(v);
}

function trim(s: string, n: number): string {
	return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}

function malformedFinding(id: number, item: { file: string; line: number }, why: string): DatasetFinding {
	return {
		id: "malformed-record",
		severity: DEFAULT_SEVERITY["malformed-record"],
		message: `${item.file}:${item.line}: ${why}`,
		records: [id],
		evidence: { file: item.file, line: item.line, error: why },
	};
}

const CHAR_NAMES: Record<string, string> = {
	"U+200B": "zero width space",
	"U+200C": "zero width non-joiner",
	"U+200D": "zero width joiner",
	"U+200E": "left-to-right mark",
	"U+200F": "right-to-left mark",
	"U+2060": "word joiner",
	"U+FEFF": "zero width no-break space",
	"U+00AD": "soft hyphen",
	"U+202A": "left-to-right embedding",
	"U+202B": "right-to-left embedding",
	"U+202C": "pop directional formatting",
	"U+202D": "left-to-right override",
	"U+202E": "right-to-left override",
	"U+2066": "left-to-right isolate",
	"U+2067": "right-to-left isolate",
	"U+2068": "first strong isolate",
	"U+2069": "pop directional isolate",
	"U+00A0": "no-break space",
	"U+202F": "narrow no-break space",
	"U+205F": "medium mathematical space",
	"U+3000": "ideographic space",
};

function charName(cp: string): string {
	if (CHAR_NAMES[cp]) return CHAR_NAMES[cp];
	const n = Number.parseInt(cp.slice(2), 16);
	if (n >= 0xfe00 && n <= 0xfe0f) return "variation selector";
	if (n >= 0xe0100 && n <= 0xe01ef) return "variation selector supplement";
	if (n >= 0xe0000 && n <= 0xe007f) return "tag character";
	if (n >= 0x2000 && n <= 0x200a) return "typographic space";
	return "invisible format character";
}
