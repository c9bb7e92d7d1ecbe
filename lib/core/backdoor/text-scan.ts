/**
 * The backdoor scan of a text classifier: ONNX model + tokenizer + labelled reference texts → per label the best
 * real-token trigger the token-level search finds (trigger lengths 1..N), its attack success on held-out texts,
 * the continuous search's figures, and the verdict (docs/backdoor.md, "Text classifiers").
 *
 * The reference texts are split per label into a search half and a held-out half: a trigger is found on the first
 * and judged on the second, so a trigger that merely fits the texts it was searched on does not count.
 * Fail closed: a model the scanner cannot drive, texts the model cannot classify or a label with no text is an error
 * (exit 2), never a clean verdict.
 */
import { createHash } from "node:crypto";
import { FtguardError } from "../errors";
import type { TextTriggerPolicy } from "../policy/backdoor";
import { readOnnxModel } from "./onnx-model";
import { Rng } from "./rng";
import type { Device } from "./runtime";
import type { LabelledTexts, TextTokenizer } from "./text-data";
import { textModelInfo } from "./text-graph";
import {
	attackSuccess,
	DEFAULT_INVERSION,
	type InversionOptions,
	invertEmbeddings,
	invertTokens,
	sourcePools,
	type TokenizedTexts,
} from "./text-inversion";
import { TextClassifier, TextTriggerRunner } from "./text-runtime";

export interface TextTriggerReport {
	label: number;
	/** The best trigger as text (invisible characters escaped), its tokens and ids. */
	trigger: string;
	tokens: string[];
	ids: number[];
	/** Attack success on held-out texts of the other labels, and on the search texts; relaxed loss. */
	attack_success: number;
	/** Attack success on the held-out texts each joined with two more texts of its own label. */
	diluted_attack_success: number;
	/** The largest share of this label's reference texts that contain one of the trigger's tokens. */
	natural_rate: number;
	search_attack_success: number | null;
	loss: number;
	flagged: boolean;
	/** Every candidate the search kept (all lengths), most suspicious first. */
	candidates: Array<{
		trigger: string;
		length: number;
		attack_success: number;
		diluted_attack_success: number;
		natural_rate: number;
		flagged: boolean;
	}>;
	/** The continuous search (reported, not judged on): loss, relaxed attack success, nearest tokens. */
	embedding: { loss: number; attack_success: number; norms: number[]; nearest: string[] };
}

export interface TextBackdoorReport {
	verdict: "clean" | "suspect";
	suspect_classes: number[];
	reasons: string[];
	model: { sha256: string; num_classes: number; vocab: number; dim: number; inputs: string[] };
	data: { sha256: string; texts: number; search: number; held_out: number; clean_accuracy: number };
	policy: TextTriggerPolicy;
	labels: TextTriggerReport[];
	provider: Device;
	timings: { total_ms: number; token_search_ms: number };
}

export interface TextScanOptions {
	policy: TextTriggerPolicy;
	device: Device;
	threads?: number;
	log?: (line: string) => void;
	onProgress?: (p: { stage: string; done: number; total: number }) => void;
}

const sha256 = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");

/** A token or trigger as a reader sees it: invisible and control characters written as \uXXXX. */
export function visible(s: string): string {
	return s.replace(
		/[\p{Cf}\p{Cc}\p{Zl}\p{Zp}\u00a0\u3000]/gu,
		(c) => `\\u${(c.codePointAt(0) as number).toString(16).padStart(4, "0")}`,
	);
}

interface Judged {
	ids: number[];
	length: number;
	/** null for a trigger the search did not produce itself (a repeated one's distinct tokens) */
	search: number | null;
	held: number;
	diluted: number;
	natural: number;
	loss: number;
	flagged: boolean;
}

/** Each text followed by the next two texts of its label (its [SEP] and their [CLS] dropped), cut to `length`. */
function dilute(t: TokenizedTexts, length: number): TokenizedTexts {
	const byLabel = new Map<number, number[]>();
	for (const [i, y] of t.labels.entries()) byLabel.set(y, [...(byLabel.get(y) ?? []), i]);
	const seqs = t.seqs.map((s, i) => {
		const same = byLabel.get(t.labels[i] as number) as number[];
		const at = same.indexOf(i);
		const next = (d: number) => t.seqs[same[(at + d) % same.length] as number] as number[];
		const joined = [...s.slice(0, -1), ...next(1).slice(1, -1), ...next(2).slice(1)];
		return joined.length <= length ? joined : [...joined.slice(0, length - 1), joined[joined.length - 1] as number];
	});
	return { seqs, labels: [...t.labels] };
}

/** Per label, the share of its texts that contain each token id. */
function naturalRates(t: TokenizedTexts, K: number): Map<number, number>[] {
	const rates = Array.from({ length: K }, () => new Map<number, number>());
	const counts = new Array<number>(K).fill(0);
	for (const [i, y] of t.labels.entries()) {
		counts[y] = (counts[y] ?? 0) + 1;
		for (const id of new Set(t.seqs[i])) rates[y]?.set(id, (rates[y]?.get(id) ?? 0) + 1);
	}
	for (const [y, m] of rates.entries()) for (const [id, n] of m) m.set(id, n / (counts[y] || 1));
	return rates;
}

/** Per label, alternate texts go to the search and the held-out half (deterministic, stratified). */
function split(
	t: TokenizedTexts,
	pred: Int32Array,
): { search: TokenizedTexts & { pred: number[] }; held: TokenizedTexts & { pred: number[] } } {
	const search = { seqs: [] as number[][], labels: [] as number[], pred: [] as number[] };
	const held = { seqs: [] as number[][], labels: [] as number[], pred: [] as number[] };
	const seen = new Map<number, number>();
	for (const [i, y] of t.labels.entries()) {
		const n = seen.get(y) ?? 0;
		seen.set(y, n + 1);
		const to = n % 2 === 0 ? search : held;
		to.seqs.push(t.seqs[i] as number[]);
		to.labels.push(y);
		to.pred.push(pred[i] as number);
	}
	return { search, held };
}

export async function scanTextBackdoor(
	modelBytes: Uint8Array,
	tokenizer: TextTokenizer,
	data: LabelledTexts,
	opts: TextScanOptions,
): Promise<TextBackdoorReport> {
	const started = Date.now();
	const policy = opts.policy;
	const model = await readOnnxModel(modelBytes);
	const info = textModelInfo(model);
	if (tokenizer.vocabSize > info.vocab)
		throw new FtguardError(
			"DATA_INVALID",
			`the tokenizer has ${tokenizer.vocabSize} tokens but the model's embedding table ${info.vocab}: not this model's tokenizer`,
		);
	const maxLength = Math.min(policy.maxLength, info.maxLength ?? policy.maxLength);
	const session = { device: opts.device, ...(opts.threads !== undefined ? { threads: opts.threads } : {}) };
	const classifier = await TextClassifier.create(modelBytes, info, { ...session, padId: tokenizer.padId });
	const runners: TextTriggerRunner[] = [];
	try {
		const seqs = data.texts.map((t) => {
			const ids = tokenizer.encode(t);
			return ids.length <= maxLength ? ids : [...ids.slice(0, maxLength - 1), ids[ids.length - 1] as number];
		});
		const all: TokenizedTexts = { seqs, labels: data.labels };
		// every class the model answers in is a candidate target, whether or not the reference texts hold one of its
		const { pred, classes: numClasses } = await classifier.classify(seqs);
		const outside = data.labels.findIndex((y) => y >= numClasses);
		if (outside >= 0)
			throw new FtguardError(
				"DATA_INVALID",
				`reference text ${outside + 1} has label ${data.labels[outside]} but the model has ${numClasses} classes`,
			);
		const cleanAccuracy = data.labels.filter((y, i) => pred[i] === y).length / data.labels.length;
		const { search, held } = split(all, pred);
		const searchPools = sourcePools(search, search.pred, numClasses);
		const heldPools = sourcePools(held, held.pred, numClasses);
		const banned = new Set<number>(tokenizer.specialIds);
		for (let v = 0; v < info.vocab; v++) {
			const tok = tokenizer.token(v);
			if (v >= tokenizer.vocabSize || tok.startsWith("##") || tok === "" || tok.startsWith("[unused")) banned.add(v);
		}
		banned.add(tokenizer.padId);
		const inv: InversionOptions = {
			...DEFAULT_INVERSION,
			steps: policy.steps,
			seed: policy.seed,
			banned,
			padId: tokenizer.padId,
		};
		const K = numClasses;
		for (const [k, p] of searchPools.entries())
			if (p.length === 0 || (heldPools[k]?.length ?? 0) === 0)
				throw new FtguardError(
					"DATA_INVALID",
					`no correctly classified reference text outside label ${k}: the scan needs texts of other labels to stamp triggers into`,
				);
		const total = policy.maxTriggerLength * policy.steps + policy.steps;
		let done = 0;
		// held-out texts made longer with two more texts of their own label: more evidence against the target
		const diluted = dilute(held, maxLength);
		const dilutedPools = sourcePools(diluted, await classifier.predict(diluted.seqs), numClasses);
		const natural = naturalRates(all, K);
		const judged: Judged[][] = Array.from({ length: K }, () => []);
		let searchMs = 0; // the token search alone (graph, session, search; not the judging): bench:backdoor --text
		for (let T = 1; T <= policy.maxTriggerLength; T++) {
			const searchStarted = Date.now();
			const r = await TextTriggerRunner.create(model, {
				trials: K,
				batch: policy.batch,
				length: maxLength,
				triggerLength: T,
				mode: "token",
				...session,
			});
			runners.push(r);
			const found = await invertTokens(r, classifier, search, searchPools, inv, () =>
				opts.onProgress?.({ stage: "token search", done: ++done, total }),
			);
			searchMs += Date.now() - searchStarted;
			for (const candidates of found)
				for (const f of candidates) {
					const k = f.target;
					const distinct = [...new Set(f.tokens)];
					// a repeated token is one word's evidence counted again (clean models give way to "alien alien
					// alien"): such a trigger is judged by its distinct tokens, each once
					for (const ids of distinct.length === f.tokens.length ? [f.tokens] : [f.tokens, distinct]) {
						if (judged[k]?.some((j) => j.ids.join() === ids.join())) continue;
						const asr = (t: TokenizedTexts, pool: readonly number[]) =>
							attackSuccess(classifier, t, pool, ids, k, maxLength, new Rng(policy.seed, 31, k));
						const heldAsr = await asr(held, heldPools[k] as number[]);
						const dilutedAsr = await asr(diluted, dilutedPools[k] as number[]);
						const nat = Math.max(...ids.map((id) => natural[k]?.get(id) ?? 0));
						judged[k]?.push({
							ids,
							length: ids.length,
							search: ids === f.tokens ? f.asr : null,
							held: heldAsr,
							diluted: dilutedAsr,
							natural: nat,
							loss: f.loss,
							flagged:
								new Set(ids).size === ids.length &&
								heldAsr >= policy.asrThreshold &&
								dilutedAsr >= policy.dilutedThreshold &&
								nat < policy.maxNaturalRate,
						});
					}
				}
			await r.dispose();
			runners.pop();
		}
		const er = await TextTriggerRunner.create(model, {
			trials: K,
			batch: policy.batch,
			length: maxLength,
			triggerLength: 1,
			mode: "embedding",
			...session,
		});
		runners.push(er);
		const table = model.graph.initializers.find((t) => `model/${t.name}` === info.embedding)?.data;
		if (!(table instanceof Float32Array))
			throw new FtguardError("MODEL_UNSUPPORTED", "the word-embedding table is not float32 data");
		const emb = await invertEmbeddings(er, search, searchPools, table, inv);
		done += policy.steps;
		opts.onProgress?.({ stage: "embedding search", done, total });
		const labels: TextTriggerReport[] = Array.from({ length: K }, (_, k) => {
			// the most suspicious candidate: a flagged one first, then by how well it survives dilution
			const cands = [...(judged[k] ?? [])].sort(
				(x, y) => Number(y.flagged) - Number(x.flagged) || y.diluted - x.diluted || x.length - y.length,
			);
			const b = cands[0] as Judged;
			const e = emb[k] as (typeof emb)[number];
			const show = (ids: readonly number[]) => visible(tokenizer.decode([...ids]));
			return {
				label: k,
				trigger: show(b.ids),
				tokens: b.ids.map((id) => visible(tokenizer.token(id))),
				ids: b.ids,
				attack_success: b.held,
				diluted_attack_success: b.diluted,
				natural_rate: b.natural,
				search_attack_success: b.search,
				loss: b.loss,
				flagged: b.flagged,
				candidates: cands.map((c) => ({
					trigger: show(c.ids),
					length: c.length,
					attack_success: c.held,
					diluted_attack_success: c.diluted,
					natural_rate: c.natural,
					flagged: c.flagged,
				})),
				embedding: {
					loss: e.loss,
					attack_success: e.asr,
					norms: e.norms,
					nearest: e.nearest.map((id) => visible(tokenizer.token(id))),
				},
			};
		});
		const suspects = labels.filter((l) => l.flagged).map((l) => l.label);
		return {
			verdict: suspects.length > 0 ? "suspect" : "clean",
			suspect_classes: suspects,
			reasons: labels
				.filter((l) => l.flagged)
				.map(
					(l) =>
						`label ${l.label}: the ${l.ids.length}-token trigger "${l.trigger}" sends ${(l.attack_success * 100).toFixed(0)}% of held-out texts of other labels to it, ${(l.diluted_attack_success * 100).toFixed(0)}% of them made three times longer, and is in ${(l.natural_rate * 100).toFixed(0)}% of the label's own texts`,
				),
			model: { sha256: sha256(modelBytes), num_classes: K, vocab: info.vocab, dim: info.dim, inputs: info.inputs },
			data: {
				sha256: sha256(JSON.stringify(data)),
				texts: data.texts.length,
				search: search.seqs.length,
				held_out: held.seqs.length,
				clean_accuracy: cleanAccuracy,
			},
			policy,
			labels,
			provider: er.provider,
			timings: { total_ms: Date.now() - started, token_search_ms: searchMs },
		};
	} finally {
		for (const r of runners) await r.dispose();
		await classifier.dispose();
	}
}
