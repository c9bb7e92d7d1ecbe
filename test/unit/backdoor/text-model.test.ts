/**
 * Text classifiers: the tokenizer and reference texts as the scan reads them, the model as onnxruntime runs it, and
 * the trigger-inversion graph's gradients against finite differences — on the torch-trained BERT-style fixtures
 * (test/fixtures/backdoor-text, make_text_fixtures.py).
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readOnnxModel } from "../../../lib/core/backdoor/onnx-model";
import { loadTokenizer, readLabelledTexts } from "../../../lib/core/backdoor/text-data";
import { textModelInfo } from "../../../lib/core/backdoor/text-graph";
import { stamp } from "../../../lib/core/backdoor/text-inversion";
import { TextClassifier, TextTriggerRunner } from "../../../lib/core/backdoor/text-runtime";
import { scanTextBackdoor } from "../../../lib/core/backdoor/text-scan";
import type { FtguardError } from "../../../lib/core/errors";
import { defaultBackdoorPolicy } from "../../../lib/core/policy/backdoor";

const FIX = join(import.meta.dirname, "../../fixtures/backdoor-text");
const manifest = JSON.parse(readFileSync(join(FIX, "manifest.json"), "utf8")) as {
	models: {
		name: string;
		onnx: string;
		ref_logits?: { texts: string[]; input_ids: number[][]; logits: number[][] };
		backdoor: { trigger: string; target: number } | null;
	}[];
};
const entry = (name: string) => manifest.models.find((m) => m.name === name) as (typeof manifest.models)[number];
const model = (name: string) => readFileSync(join(FIX, entry(name).onnx));

async function failure(p: Promise<unknown>): Promise<FtguardError> {
	try {
		await p;
	} catch (e) {
		return e as FtguardError;
	}
	throw new Error("expected a failure");
}

describe("text reference data", () => {
	it("tokenizes as the model was trained: the ids the fixture script recorded", async () => {
		const tok = await loadTokenizer(join(FIX, "tokenizer.json"));
		const ref = entry("clean-s1").ref_logits as NonNullable<ReturnType<typeof entry>["ref_logits"]>;
		for (const [i, text] of ref.texts.entries()) expect(tok.encode(text)).toEqual(ref.input_ids[i]);
		expect(tok.vocabSize).toBe(2055);
		expect(tok.padId).toBe(0);
		expect([...tok.specialIds].sort()).toEqual([0, 1, 2, 3, 4]);
		// the invisible trigger is a token of its own, and a report shows it escaped
		expect(tok.encodePlain("\u200b")).toHaveLength(1);
		expect(tok.encodePlain("cf")).toHaveLength(1);
	});

	it("refuses a tokenizer that is not one, and texts that are not labelled texts, naming the line", async () => {
		const dir = mkdtempSync(join(tmpdir(), "ftguard-text-"));
		const bad = join(dir, "tokenizer.json");
		writeFileSync(bad, "{not json");
		expect((await failure(loadTokenizer(bad))).code).toBe("DATA_INVALID");
		writeFileSync(bad, JSON.stringify({ model: { type: "NoSuchModel" } }));
		expect((await failure(loadTokenizer(bad))).code).toBe("DATA_INVALID");
		const texts = join(dir, "ref.jsonl");
		writeFileSync(texts, '{"text": "a", "label": 0}\n{"text": "b", "label": 0\n');
		const e = await failure(readLabelledTexts(texts));
		expect(e.code).toBe("DATA_INVALID");
		expect(e.message).toContain("line 2");
		writeFileSync(texts, '{"text": "a", "label": 7}\n');
		expect((await failure(readLabelledTexts(texts, { numClasses: 5 }))).message).toContain("5 classes");
		writeFileSync(texts, '{"text": "a", "label": "games"}\n');
		expect((await readLabelledTexts(texts, { labelNames: ["python", "games"] })).labels).toEqual([1]);
		expect((await failure(readLabelledTexts(texts))).code).toBe("DATA_INVALID");
		writeFileSync(texts, "\n\n");
		expect((await failure(readLabelledTexts(texts))).message).toContain("no texts");
	});

	it("stamps a trigger after [CLS] and before [SEP], cutting a long text from its end", () => {
		expect(stamp([2, 10, 11, 3], [99], 0, 16).ids).toEqual([2, 99, 10, 11, 3]);
		expect(stamp([2, 10, 11, 3], [99], 0.99, 16).ids).toEqual([2, 10, 11, 99, 3]);
		const long = stamp([2, 10, 11, 12, 13, 3], [98, 99], 0.5, 6);
		expect(long.ids).toHaveLength(6);
		expect(long.ids[0]).toBe(2);
		expect(long.ids.at(-1)).toBe(3);
		expect(long.ids.filter((t) => t >= 98)).toEqual([98, 99]);
	});
});

describe("text classifier graphs", () => {
	it("finds the inputs, the word-embedding table and the position limit of a torch export", async () => {
		for (const name of ["clean-s1", "clean-s1-opset14", "clean-s3"]) {
			const info = textModelInfo(await readOnnxModel(model(name)));
			expect(info.inputs).toEqual(["input_ids", "attention_mask", "token_type_ids"]);
			expect([info.vocab, info.dim, info.maxLength]).toEqual([2055, 64, 48]);
		}
	});

	it("refuses an image model (no input_ids) as MODEL_UNSUPPORTED", async () => {
		const image = readFileSync(join(import.meta.dirname, "../../fixtures/backdoor/digits8/cnn-clean-s1.onnx"));
		const e = await failure((async () => textModelInfo(await readOnnxModel(image)))());
		expect(e.code).toBe("MODEL_UNSUPPORTED");
		expect(e.message).toContain("input_ids");
	});

	it("classifies as torch does (the fixture's recorded logits), padded in batches or one by one", async () => {
		const bytes = model("clean-s1");
		const info = textModelInfo(await readOnnxModel(bytes));
		const ref = entry("clean-s1").ref_logits as NonNullable<ReturnType<typeof entry>["ref_logits"]>;
		for (const chunk of [1, 8]) {
			const c = await TextClassifier.create(bytes, info, { device: "cpu", padId: 0, chunk });
			const { data, classes } = await c.scores(ref.input_ids);
			expect(classes).toBe(5);
			for (const [i, row] of ref.logits.entries())
				for (const [j, v] of row.entries()) expect(data[i * classes + j]).toBeCloseTo(v, 4);
			await c.dispose();
		}
	});

	for (const name of ["clean-s1", "clean-s1-opset14"])
		for (const mode of ["token", "embedding"] as const)
			it(`${name}: the ${mode} trigger graph's gradient matches central finite differences`, async () => {
				const om = await readOnnxModel(model(name));
				const [K, B, L, T] = [2, 2, 12, 2];
				const W = mode === "token" ? 2055 : 64;
				const r = await TextTriggerRunner.create(om, {
					trials: K,
					batch: B,
					length: L,
					triggerLength: T,
					mode,
					device: "cpu",
					threads: 1,
				});
				const N = K * B;
				const ids = BigInt64Array.from({ length: N * L }, (_, i) => BigInt(100 + ((i * 37) % 1500)));
				const mask = new BigInt64Array(N * L).fill(1n);
				for (let n = 0; n < N; n++) for (let j = 9 + (n % 3); j < L; j++) mask[n * L + j] = 0n;
				const place = new Float32Array(N * L * T);
				const keep = new Float32Array(N * L).fill(1);
				for (let n = 0; n < N; n++)
					for (let t = 0; t < T; t++) {
						place[(n * L + 2 + (n % 4) + t) * T + t] = 1;
						keep[n * L + 2 + (n % 4) + t] = 0;
					}
				// coordinates of both trials and both trigger positions
				const coords = [0, 7, 33, W + 5, W + 61, 2 * W + 3, 3 * W + 11, 4 * W - 1];
				const p = Float32Array.from({ length: K * T * W }, (_, i) => Math.sin(i * 1.7) * (mode === "token" ? 2 : 0.5));
				// a peaked distribution over the vocabulary: a uniform one gives every token a gradient near zero
				if (mode === "token") for (const i of coords) p[i] = 6;
				const inv = new Float32Array(K).fill(1.3);
				const target = BigInt64Array.of(0n, 4n);
				const batch = { ids, mask, place, keep };
				const base = await r.run(batch, p, inv, target);
				const sum = async (q: Float32Array) => (await r.run(batch, q, inv, target)).ce.reduce((a, b) => a + b, 0);
				let worst = 0;
				let nonzero = 0;
				for (const i of coords) {
					const h = 1e-2;
					const plus = p.slice();
					plus[i] = (plus[i] as number) + h;
					const minus = p.slice();
					minus[i] = (minus[i] as number) - h;
					const fd = ((await sum(plus)) - (await sum(minus))) / (2 * h);
					const an = base.grad[i] as number;
					if (Math.abs(an) > 1e-4) nonzero++;
					worst = Math.max(worst, Math.abs(fd - an) / (Math.abs(fd) + Math.abs(an) + 1e-3));
				}
				await r.dispose();
				expect(nonzero).toBeGreaterThan(4);
				expect(worst).toBeLessThan(0.05);
			});
});

describe("text scan: which labels are searched", () => {
	const quick = { ...defaultBackdoorPolicy().text, maxTriggerLength: 1, steps: 10 };
	it("every class the model answers in, even one the reference texts lack; a label past them is DATA_INVALID", {
		timeout: 120_000,
	}, async () => {
		const tokenizer = await loadTokenizer(join(FIX, "tokenizer.json"));
		const all = await readLabelledTexts(join(FIX, "ref.jsonl"));
		const keep = all.labels.map((y, i) => (y < 4 ? i : -1)).filter((i) => i >= 0);
		const without4 = {
			texts: keep.map((i) => all.texts[i] as string),
			labels: keep.map((i) => all.labels[i] as number),
		};
		const r = await scanTextBackdoor(model("clean-s1"), tokenizer, without4, { policy: quick, device: "cpu" });
		expect(r.labels.map((l) => l.label)).toEqual([0, 1, 2, 3, 4]);
		expect(r.model.num_classes).toBe(5);
		const e = await failure(
			scanTextBackdoor(
				model("clean-s1"),
				tokenizer,
				{ texts: ["a b c", ...all.texts], labels: [5, ...all.labels] },
				{
					policy: quick,
					device: "cpu",
				},
			),
		);
		expect(e.code).toBe("DATA_INVALID");
		expect(e.message).toContain("5 classes");
	});
});
