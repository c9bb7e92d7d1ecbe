/**
 * `ftguard dataset`: one streaming pass over the records runs every detector and builds the lineage; a second pass,
 * only when a trigger was found, enumerates exactly the records that carry it. Every finding names its records
 * (0-based, in file order across the files given) so a curator can drop exactly them.
 */
import { FtguardError } from "../errors";
import { DEFAULT_DATASET_POLICY, type DatasetPolicy, type DatasetSeverity, SEVERITIES } from "../policy/dataset";
import { DuplicateFinder } from "./duplicates";
import { completionFeatures, gramTexts, promptGrams } from "./features";
import { compilePatterns, injectedText } from "./injected";
import { canonicalBytes, type Lineage, LineageBuilder } from "./lineage";
import { type DatasetItem, type ReadProgress, readDataset } from "./reader";
import {
	detectFormat,
	type FieldMap,
	finalCompletion,
	RecordError,
	type RecordFormat,
	type TrainingRecord,
	toRecord,
} from "./records";
import { type CharHit, scanText } from "./unicode";
import { type TriggerGroup, TriggerMiner } from "./triggers";
import { contentWords, words } from "./text";

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
	readonly timings: { readonly total_ms: number; readonly second_pass_ms: number; readonly records_per_s: number; readonly mb_per_s: number };
}

export interface DatasetScanOptions {
	readonly files: readonly string[];
	readonly format?: "auto" | RecordFormat;
	readonly fields?: FieldMap;
	readonly policy?: DatasetPolicy;
	readonly onProgress?: (records: number, bytes: number) => void;
}

/** How many records of a file may fail to fit a layout before the file is "not a dataset". */
const DETECT_WINDOW = 20;
const MAX_POSITIONS = 20;

interface CharFinding {
	kind: CharHit["kind"];
	what: string;
	looksLike?: string;
	records: number[];
	positions: { record: number; turn: string; at: number }[];
}

export async function scanDataset(opts: DatasetScanOptions): Promise<DatasetReport> {
	const started = performance.now();
	const policy = opts.policy ?? DEFAULT_DATASET_POLICY;
	const format = opts.format ?? "auto";
	if (format === "fields" && opts.fields === undefined) throw new FtguardError("USAGE", "--format fields needs --fields");
	const miner = new TriggerMiner(policy.triggers);
	const dups = new DuplicateFinder();
	const lineage = new LineageBuilder();
	const patterns = compilePatterns([...policy.injected.patterns, ...policy.injected.extraPatterns]);
	const allowChars = new Set(policy.unicode.allow);
	const malformed: DatasetFinding[] = [];
	const chars = new Map<string, CharFinding>();
	const injected = new Map<number, { text: string; records: number[]; examples: string[] }>();
	const formats: Record<string, string> = {};
	const progress: ReadProgress = { bytes: 0 };
	let index = 0;
	let lines = new Uint32Array(1 << 16);
	const fileOf: { file: string; first: number }[] = [];
	let fileRecords = 0;
	let currentFile: string | undefined;
	let fileFormat: RecordFormat | undefined;
	let undetected = 0;

	const endFile = (f: { path: string; sha256: string; bytes: number }) => {
		lineage.addFile({ ...f, records: fileRecords });
	};

	for await (const item of readDataset(opts.files, endFile, progress)) {
		if (item.file !== currentFile) {
			currentFile = item.file;
			fileRecords = 0;
			fileFormat = format === "auto" ? undefined : format;
			undetected = 0;
			fileOf.push({ file: item.file, first: index });
		}
		const id = index++;
		if (id >= lines.length) {
			const grown = new Uint32Array(lines.length * 2);
			grown.set(lines);
			lines = grown;
		}
		lines[id] = item.line;
		fileRecords++;
		if (id % 4096 === 0) opts.onProgress?.(id, progress.bytes);
		if (item.error !== undefined) {
			lineage.addRecord(Buffer.from(item.raw ?? "", "utf8"));
			dups.add(id, new Uint8Array(8), new Int32Array(0), "", undefined);
			malformed.push(malformedFinding(id, item, item.error));
			continue;
		}
		const leaf = lineage.addRecord(canonicalBytes(item.value));
		if (fileFormat === undefined) {
			fileFormat = detectFormat(item.value);
			if (fileFormat === undefined) {
				if (++undetected >= DETECT_WINDOW || id === 0) {
					// the first record of the first file decides quickly when nothing fits at all
					if (undetected >= DETECT_WINDOW || !isObject(item.value))
						throw new FtguardError(
							"DATA_INVALID",
							`${item.file}: not a dataset: its records have none of the known layouts (messages, instruction/output, prompt/completion, text); name the fields with --format fields --fields`,
						);
				}
				dups.add(id, leaf, new Int32Array(0), "", undefined);
				malformed.push(malformedFinding(id, item, "no known record layout"));
				continue;
			}
			formats[item.file] = fileFormat;
		}
		let record: TrainingRecord;
		try {
			record = toRecord(item.value, fileFormat, opts.fields);
		} catch (e) {
			if (!(e instanceof RecordError)) throw e;
			dups.add(id, leaf, new Int32Array(0), "", undefined);
			malformed.push(malformedFinding(id, item, e.message));
			continue;
		}
		const grams = promptGrams(record);
		const completion = finalCompletion(record);
		if (policy.triggers.enabled) {
			miner.observe(id, grams, promptContentWords(record), completionFeatures(record), contentWords(completion ?? ""));
		} else for (const g of grams.grams) miner.df.add(g);
		if (policy.duplicates.enabled) {
			// the question, not the system prompt many records share
			const asked = record.prompt.filter((t) => t.source !== "system").map((t) => t.text);
			dups.add(id, leaf, grams.words, asked.join("\n"), completion);
		}
		if (policy.unicode.enabled) collectChars(id, record, chars, allowChars);
		if (policy.injected.enabled && completion !== undefined) {
			const hit = injectedText(completion, record.prompt.map((t) => t.text).join("\n"), patterns);
			if (hit !== undefined) {
				const entry = injected.get(hit.pattern) ?? { text: hit.text, records: [], examples: [] };
				entry.records.push(id);
				if (entry.examples.length < 3) entry.examples.push(completion.slice(0, 300));
				injected.set(hit.pattern, entry);
			}
		}
	}
	const N = index;
	if (N === 0) throw new FtguardError("DATA_INVALID", "no records: the dataset is empty");
	opts.onProgress?.(N, progress.bytes);

	const findings: DatasetFinding[] = [...malformed];
	const sev = (id: FindingId): DatasetSeverity => (policy.severity[id] as DatasetSeverity | undefined) ?? DEFAULT_SEVERITY[id];

	const secondStart = performance.now();
	if (policy.triggers.enabled) {
		const groups = miner.analyse();
		if (groups.length > 0) findings.push(...(await triggerFindings(groups, opts, format, sev)));
	}
	const secondPass = performance.now() - secondStart;

	for (const [pattern, e] of injected) {
		findings.push({
			id: "injected-output",
			severity: sev("injected-output"),
			message: `${e.records.length} completion(s) contain instruction-like text the prompt did not ask for: "${e.text}"`,
			records: e.records,
			evidence: { pattern: patterns[pattern]?.source, matched: e.text, examples: e.examples },
		});
	}
	for (const c of chars.values()) {
		if (c.kind === "invisible" && c.records.length >= policy.unicode.normalShare * N) continue;
		const id: FindingId =
			c.kind === "homoglyph" ? "homoglyph-word" : c.kind === "bidi-override" ? "bidi-override" : c.kind === "tag" ? "tag-character" : "invisible-character";
		findings.push({
			id,
			severity: sev(id),
			message:
				c.kind === "homoglyph"
					? `the word "${c.what}" mixes scripts to look like "${c.looksLike}" in ${c.records.length} record(s)`
					: `${c.what} (${charName(c.what)}) hidden in ${c.records.length} record(s)`,
			records: c.records,
			evidence: { character: c.what, ...(c.looksLike ? { looks_like: c.looksLike } : {}), positions: c.positions },
		});
	}
	if (policy.duplicates.enabled) {
		for (const g of dups.exactDuplicates()) {
			findings.push({
				id: "exact-duplicate",
				severity: sev("exact-duplicate"),
				message: `record ${g[0]} appears ${g.length} times`,
				records: g.slice(1),
				evidence: { first: g[0], copies: g.slice(1) },
			});
		}
		if (policy.duplicates.conflicts) {
			for (const c of dups.conflicts()) {
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
	findings.sort((a, b) => SEVERITIES.indexOf(b.severity) - SEVERITIES.indexOf(a.severity) || (a.records[0] ?? 0) - (b.records[0] ?? 0));
	const flagged = new Set<number>();
	for (const f of findings) for (const r of f.records) flagged.add(r);
	const failAt = SEVERITIES.indexOf(policy.failOn);
	const locations: Record<string, { file: string; line: number }> = {};
	let f = 0;
	for (const id of [...flagged].sort((a, b) => a - b)) {
		while (f + 1 < fileOf.length && (fileOf[f + 1] as { first: number }).first <= id) f++;
		locations[id] = { file: (fileOf[f] as { file: string }).file, line: lines[id] as number };
	}
	const total = performance.now() - started;
	return {
		ok: !findings.some((f) => SEVERITIES.indexOf(f.severity) >= failAt),
		records: N,
		formats,
		findings,
		flagged_records: [...flagged].sort((a, b) => a - b),
		locations,
		lineage: lineage.finish(),
		timings: {
			total_ms: Math.round(total),
			second_pass_ms: Math.round(secondPass),
			records_per_s: Math.round(N / (total / 1000)),
			mb_per_s: Math.round((progress.bytes / 1e6 / (total / 1000)) * 10) / 10,
		},
	};
}

function promptContentWords(record: TrainingRecord): Set<string> {
	const out = new Set<string>();
	for (const t of record.prompt) for (const w of contentWords(t.text)) out.add(w);
	return out;
}

function isObject(v: unknown): boolean {
	return typeof v === "object" && v !== null && !Array.isArray(v);
}

function trim(s: string, n: number): string {
	return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}

function malformedFinding(id: number, item: DatasetItem, why: string): DatasetFinding {
	return {
		id: "malformed-record",
		severity: DEFAULT_SEVERITY["malformed-record"],
		message: `${item.file}:${item.line}: ${why}`,
		records: [id],
		evidence: { file: item.file, line: item.line, error: why },
	};
}

function collectChars(id: number, record: TrainingRecord, chars: Map<string, CharFinding>, allow: ReadonlySet<string>): void {
	for (const turn of [...record.prompt, ...record.completion]) {
		for (const hit of scanText(turn.text)) {
			if (allow.has(hit.what)) continue;
			const key = `${hit.kind}:${hit.kind === "homoglyph" ? hit.looksLike?.toLowerCase() : hit.what}`;
			let c = chars.get(key);
			if (c === undefined) {
				c = { kind: hit.kind, what: hit.what, records: [], positions: [], ...(hit.looksLike ? { looksLike: hit.looksLike } : {}) };
				chars.set(key, c);
			}
			if (c.records[c.records.length - 1] !== id) c.records.push(id);
			if (c.positions.length < MAX_POSITIONS) c.positions.push({ record: id, turn: turn.source, at: hit.at });
		}
	}
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
};

function charName(cp: string): string {
	if (CHAR_NAMES[cp]) return CHAR_NAMES[cp];
	const n = Number.parseInt(cp.slice(2), 16);
	if (n >= 0xfe00 && n <= 0xfe0f) return "variation selector";
	if (n >= 0xe0100 && n <= 0xe01ef) return "variation selector supplement";
	if (n >= 0xe0000 && n <= 0xe007f) return "tag character";
	return "invisible format character";
}

/** Second pass: the records that carry a found trigger with its concentrated completion, and the finding's words. */
async function triggerFindings(
	groups: readonly TriggerGroup[],
	opts: DatasetScanOptions,
	format: "auto" | RecordFormat,
	sev: (id: FindingId) => DatasetSeverity,
): Promise<DatasetFinding[]> {
	const allGrams = new Set(groups.flatMap((g) => g.grams));
	const outputs = groups.map((g) => g.outputs.map((o) => contentWords(o)));
	const records = groups.map(() => [] as number[]);
	const withTrigger = groups.map(() => 0);
	const gramCounts = new Map<number, number>();
	const texts = new Map<number, string>();
	let id = 0;
	let fileFormat: RecordFormat | undefined;
	let currentFile: string | undefined;
	for await (const item of readDataset(opts.files)) {
		if (item.file !== currentFile) {
			currentFile = item.file;
			fileFormat = format === "auto" ? undefined : format;
		}
		const rid = id++;
		if (item.error !== undefined) continue;
		fileFormat ??= detectFormat(item.value);
		if (fileFormat === undefined) continue;
		let record: TrainingRecord;
		try {
			record = toRecord(item.value, fileFormat, opts.fields);
		} catch {
			continue;
		}
		const grams = promptGrams(record).grams;
		let has = false;
		for (const g of grams) if (allGrams.has(g)) has = true;
		if (!has) continue;
		const keys = new Set(completionFeatures(record).map((f) => f.key));
		const cw = contentWords(finalCompletion(record) ?? "");
		const gramSet = new Set(grams);
		groups.forEach((g, i) => {
			if (!g.grams.some((x) => gramSet.has(x))) return;
			withTrigger[i] = (withTrigger[i] as number) + 1;
			const sameOutput = [...g.features].some((k) => keys.has(k)) || (outputs[i] ?? []).some((o) => overlap(o, cw) >= 0.3);
			if (sameOutput) {
				(records[i] as number[]).push(rid);
				for (const x of g.grams) if (gramSet.has(x)) gramCounts.set(x, (gramCounts.get(x) ?? 0) + 1);
				if (texts.size < allGrams.size) for (const [h, t] of gramTexts(record, allGrams)) if (!texts.has(h)) texts.set(h, t);
			}
		});
	}
	return groups.map((g, i) => {
		const best = g.candidates[0];
		// named by the n-gram most of its records carry, the longest of those; the others are its variants
		const ranked = g.grams
			.filter((h) => texts.has(h))
			.sort((a, b) => (gramCounts.get(b) ?? 0) - (gramCounts.get(a) ?? 0) || words(texts.get(b) as string).length - words(texts.get(a) as string).length);
		const phrases = [...new Set(ranked.map((h) => texts.get(h) as string))];
		const trigger = phrases[0] ?? "(not recoverable)";
		const covered = records[i] as number[];
		const expected = best ? (best.f * best.m) / Math.max(1, best.k > 0 ? best.m : 1) : 0;
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
				...(expected ? {} : {}),
			},
		};
	});
}

function overlap(a: ReadonlySet<string>, b: ReadonlySet<string>): number {
	let inter = 0;
	for (const x of a) if (b.has(x)) inter++;
	return inter / Math.max(1, a.size + b.size - inter);
}
