/**
 * Reference data for text classifiers: labelled texts (JSONL) tokenized with the model's own Hugging Face
 * `tokenizer.json`, through @huggingface/tokenizers (the maintained pure-JS port of the Rust library, so no Python).
 *
 * Reference data is curated input the scan depends on: a malformed line, a missing field, a label outside the
 * model's classes or a tokenizer the library cannot build is DATA_INVALID with the line, never skipped — a scan on
 * the texts that happened to parse would be a scan of different data than the policy names.
 */
import { readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { FtguardError, toFtguardError } from "../errors";

/** A tokenizer.json larger than this is refused before it is parsed (real ones are a few MB; 50 MB holds a 250k vocab). */
export const MAX_TOKENIZER_BYTES = 64 << 20;
/** Reference texts: bounded, as every input ftguard reads. */
export const MAX_TEXTS_BYTES = 256 << 20;

export interface TextTokenizer {
	/** Token ids of a text as the model sees it: special tokens ([CLS] … [SEP]) included. */
	encode(text: string): number[];
	/** The ids of one word or phrase without special tokens (a trigger to insert). */
	encodePlain(text: string): number[];
	decode(ids: readonly number[]): string;
	/** Per-token strings, for reports ("##ing"). */
	token(id: number): string;
	readonly vocabSize: number;
	/** The padding id ([PAD], else 0). */
	readonly padId: number;
	/** Ids that are special tokens: never proposed as trigger tokens. */
	readonly specialIds: ReadonlySet<number>;
}

export interface LabelledTexts {
	texts: string[];
	labels: number[];
}

const invalid = (file: string, msg: string) =>
	new FtguardError("DATA_INVALID", `${file}: ${msg}`, { details: { file } });

async function readBounded(path: string, max: number, what: string): Promise<string> {
	try {
		const s = await stat(path);
		if (!s.isFile()) throw invalid(path, `${what} is not a regular file`);
		if (s.size > max) throw invalid(path, `${what} is ${s.size} bytes; at most ${max} are read`);
		return await readFile(path, "utf8");
	} catch (e) {
		throw toFtguardError(e);
	}
}

interface TokenizerJson {
	model?: { vocab?: unknown };
	added_tokens?: { id: number; content: string; special?: boolean }[];
}

/** Loads tokenizer.json (and tokenizer_config.json beside it, when present). */
export async function loadTokenizer(path: string): Promise<TextTokenizer> {
	const raw = await readBounded(path, MAX_TOKENIZER_BYTES, "tokenizer");
	let config: Record<string, unknown> = {};
	const configPath = join(dirname(path), "tokenizer_config.json");
	try {
		config = JSON.parse(await readFile(configPath, "utf8")) as Record<string, unknown>;
	} catch (e) {
		if ((e as NodeJS.ErrnoException).code !== "ENOENT")
			throw invalid(configPath, `unreadable (${(e as Error).message})`);
	}
	return parseTokenizer(raw, path, config);
}

/** A tokenizer from tokenizer.json's text (`source` names it in errors), with tokenizer_config.json's settings. */
export function parseTokenizer(raw: string, source: string, config: Record<string, unknown> = {}): TextTokenizer {
	const path = source;
	if (raw.length > MAX_TOKENIZER_BYTES) throw invalid(path, `tokenizer is over ${MAX_TOKENIZER_BYTES} bytes`);
	let json: TokenizerJson;
	try {
		json = JSON.parse(raw) as TokenizerJson;
	} catch (e) {
		throw invalid(path, `not JSON (${(e as Error).message})`);
	}
	let tok: Tokenizer;
	try {
		tok = new Tokenizer(json as object, config);
	} catch (e) {
		throw invalid(path, `not a tokenizer the library can build (${(e as Error).message})`);
	}
	const vocab = json.model?.vocab;
	const byId = new Map<number, string>();
	if (vocab !== null && typeof vocab === "object" && !Array.isArray(vocab))
		for (const [t, id] of Object.entries(vocab as Record<string, number>)) byId.set(id, t);
	else if (Array.isArray(vocab))
		// Unigram models list [piece, score] pairs in id order
		for (const [i, v] of (vocab as unknown[]).entries()) byId.set(i, Array.isArray(v) ? String(v[0]) : String(v));
	const specialIds = new Set<number>();
	for (const a of json.added_tokens ?? []) {
		byId.set(a.id, a.content);
		if (a.special) specialIds.add(a.id);
	}
	if (byId.size === 0) throw invalid(path, "the tokenizer has no vocabulary");
	const vocabSize = Math.max(...byId.keys()) + 1;
	const pad = [...byId.entries()].find(([, t]) => t === "[PAD]" || t === "<pad>")?.[0] ?? 0;
	const encode = (text: string, special: boolean) => {
		try {
			return tok.encode(text, { add_special_tokens: special }).ids;
		} catch (e) {
			throw invalid(path, `cannot tokenize a text (${(e as Error).message})`);
		}
	};
	return {
		encode: (text) => encode(text, true),
		encodePlain: (text) => encode(text, false),
		decode: (ids) => tok.decode([...ids], { skip_special_tokens: false }),
		token: (id) => byId.get(id) ?? `<${id}>`,
		vocabSize,
		padId: pad,
		specialIds,
	};
}

/**
 * Labelled texts from JSON lines: `{"<textField>": "…", "<labelField>": 3}`. A label may be a class index or, when
 * `labelNames` is given (the model config's id2label), a class name.
 */
export async function readLabelledTexts(path: string, opts: LabelledTextOptions = {}): Promise<LabelledTexts> {
	return parseLabelledTexts(await readBounded(path, MAX_TEXTS_BYTES, "reference texts"), path, opts);
}

export interface LabelledTextOptions {
	textField?: string;
	labelField?: string;
	numClasses?: number;
	labelNames?: readonly string[];
}

/** Labelled texts from the JSON lines in `raw` (`source` names them in errors). */
export function parseLabelledTexts(raw: string, source: string, opts: LabelledTextOptions = {}): LabelledTexts {
	const path = source;
	if (raw.length > MAX_TEXTS_BYTES) throw invalid(path, `reference texts are over ${MAX_TEXTS_BYTES} bytes`);
	const textField = opts.textField ?? "text";
	const labelField = opts.labelField ?? "label";
	const texts: string[] = [];
	const labels: number[] = [];
	const lines = raw.split("\n");
	for (const [i, line] of lines.entries()) {
		if (line.trim() === "") continue;
		const at = `line ${i + 1}`;
		let row: unknown;
		try {
			row = JSON.parse(line);
		} catch {
			throw invalid(path, `${at}: not JSON`);
		}
		if (row === null || typeof row !== "object" || Array.isArray(row)) throw invalid(path, `${at}: not an object`);
		const text = (row as Record<string, unknown>)[textField];
		const label = (row as Record<string, unknown>)[labelField];
		if (typeof text !== "string") throw invalid(path, `${at}: no string field "${textField}"`);
		let y: number;
		if (typeof label === "number" && Number.isInteger(label) && label >= 0) y = label;
		else if (typeof label === "string" && opts.labelNames?.includes(label)) y = opts.labelNames.indexOf(label);
		else throw invalid(path, `${at}: field "${labelField}" is not a class index${opts.labelNames ? " or name" : ""}`);
		if (opts.numClasses !== undefined && y >= opts.numClasses)
			throw invalid(path, `${at}: label ${y} but the model has ${opts.numClasses} classes`);
		texts.push(text);
		labels.push(y);
	}
	if (texts.length === 0) throw invalid(path, "no texts");
	return { texts, labels };
}
