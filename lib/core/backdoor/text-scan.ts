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
	search_attack_success: number;
	loss: number;
	flagged: boolean;
	/** Every trigger length's best, for the record. */
	by_length: Array<{ length: number; trigger: string; attack_success: number; loss: number }>;
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
	timings: { total_ms: number };
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

/** Per label, alternate texts go to the search and the held-out half (deterministic, stratified). */
function split(t: TokenizedTexts): { search: TokenizedTexts; held: TokenizedTexts } {
	const search: TokenizedTexts = { seqs: [], labels: [] };
	const held: TokenizedTexts = { seqs: [], labels: [] };
	const seen = new Map<number, number>();
	for (const [i, y] of t.labels.entries()) {
		const n = seen.get(y) ?? 0;
		seen.set(y, n + 1);
		const to = n % 2 === 0 ? search : held;
		to.seqs.push(t.seqs[i] as number[]);
		to.labels.push(y);
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
		const pred = await classifier.predict(seqs);
		const numClasses = Math.max(...data.labels) + 1;
		const cleanAccuracy = data.labels.filter((y, i) => pred[i] === y).length / data.labels.length;
		const { search, held } = split(all);
		const searchPools = await sourcePools(search, classifier, Math.max(numClasses, 2));
		const heldPools = await sourcePools(held, classifier, Math.max(numClasses, 2));
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
			if (k < K && (p.length === 0 || (heldPools[k]?.length ?? 0) === 0))
				throw new FtguardError(
					"DATA_INVALID",
					`no correctly classified reference text outside label ${k}: the scan needs texts of other labels to stamp triggers into`,
				);
		const total = policy.maxTriggerLength * policy.steps + policy.steps;
		let done = 0;
		const byLabel: TextTriggerReport["by_length"][] = Array.from({ length: K }, () => []);
		const best: Array<{ ids: number[]; held: number; search: number; loss: number; length: number } | undefined> = [];
		for (let T = 1; T <= policy.maxTriggerLength; T++) {
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
			for (const f of found) {
				const heldAsr = await attackSuccess(
					classifier,
					held,
					heldPools[f.target] as number[],
					f.tokens,
					f.target,
					maxLength,
					new Rng(policy.seed, 31, f.target),
				);
				byLabel[f.target]?.push({
					length: T,
					trigger: visible(tokenizer.decode(f.tokens)),
					attack_success: heldAsr,
					loss: f.loss,
				});
				const b = best[f.target];
				// a longer trigger must do clearly better to replace a shorter one
				if (b === undefined || heldAsr > b.held + 0.02)
					best[f.target] = { ids: f.tokens, held: heldAsr, search: f.asr, loss: f.loss, length: T };
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
			const b = best[k] as NonNullable<(typeof best)[number]>;
			const e = emb[k] as (typeof emb)[number];
			return {
				label: k,
				trigger: visible(tokenizer.decode(b.ids)),
				tokens: b.ids.map((id) => visible(tokenizer.token(id))),
				ids: b.ids,
				attack_success: b.held,
				search_attack_success: b.search,
				loss: b.loss,
				flagged: b.held >= policy.asrThreshold,
				by_length: byLabel[k] ?? [],
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
						`label ${l.label}: the ${l.ids.length}-token trigger "${l.trigger}" sends ${(l.attack_success * 100).toFixed(0)}% of held-out texts of other labels to it (threshold ${(policy.asrThreshold * 100).toFixed(0)}%)`,
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
			timings: { total_ms: Date.now() - started },
		};
	} finally {
		for (const r of runners) await r.dispose();
		await classifier.dispose();
	}
}
