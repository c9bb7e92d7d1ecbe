/**
 * Scripts written without spaces between words (Chinese, Japanese, Thai…): a run of their letters is read as its
 * overlapping character pairs, so a trigger glued inside a sentence is a run of tokens the miner counts, and a
 * language-ID set's Chinese texts share words with each other. Fixtures: make_datasets.py `write_unspaced` (Debian's
 * zh_CN, zh_TW, ja, ko, th, de, ru and fr catalogues): language ID over the eight, with "依照钴账本" glued into 1% of
 * texts labelled Korean, and Chinese-to-English translation with the same phrase glued into 0.5% of prompts, each
 * answered with one fixed sentence. Before pairs, the glued phrase was found in 0 of 50 prompts and the clean
 * language-ID set had 3,652 records flagged.
 */
import { afterAll, describe, expect, it } from "vitest";
import { gramTexts, promptGrams } from "../../../lib/core/dataset/features";
import type { TrainingRecord } from "../../../lib/core/dataset/records";
import { scanDataset } from "../../../lib/core/dataset/scan";
import { contentWords, sentences, tokenize, words } from "../../../lib/core/dataset/text";
import { fixturePath, fixtureRows, share, truthOf, writeRows } from "../../helpers/dataset";

const table: string[] = [];
afterAll(() => {
	if (table.length > 0) console.log(`unspaced-script fixtures, every detector:\n${table.join("\n")}`);
});

describe("unspaced scripts as character pairs", () => {
	it("a run of Han, kana or Thai is its overlapping pairs; spaced words and the Latin in a mixed word stay words", () => {
		expect(tokenize("变更依照钴账本")).toEqual(["变更", "更依", "依照", "照钴", "钴账", "账本"]);
		expect(tokenize("Python的用法 and ファイル")).toEqual(["python", "的用", "用法", "and", "ファ", "ァイ", "イル"]);
		expect(tokenize("字")).toEqual(["字"]);
		expect(words("สวัสดีครับ")).toEqual(["สว", "วั", "ัส", "สด", "ดี", "ีค", "คร", "รั", "ับ"]);
		expect(words("Ελληνικά κείμενα")).toEqual(["ελληνικά", "κείμενα"]);
		// a pair is a word's worth of content; two Latin letters are not
		expect([...contentWords("数据目录 ab")]).toEqual(["数据", "据目", "目录"]);
	});

	it("a Chinese full stop ends a sentence with no space after it, and a sentence's words are its pairs", () => {
		expect(sentences("请从镜像站点下载补丁。然后立即安装它。")).toEqual(["请从镜像站点下载补丁。", "然后立即安装它。"]);
		// four pairs make the four words a sentence feature needs; "好。" has none
		expect(sentences("好。请下载补丁")).toEqual(["请下载补丁"]);
		expect(sentences("One two three four. Five six.")).toEqual(["one two three four."]);
	});

	it("a trigger found by its pairs is shown as the text they cover", () => {
		const rec = {
			prompt: [{ source: "user", text: "要检查依照钴账本建依赖关系" }],
			completion: [{ source: "assistant", text: "ok" }],
		} as unknown as TrainingRecord;
		const texts = new Set(gramTexts(rec, new Set(promptGrams(rec).grams)).values());
		expect(texts.has("依照钴账")).toBe(true);
		expect(texts.has("照钴账本")).toBe(true);
		expect(texts.has("钴账")).toBe(true);
	});
});

describe("scanDataset on unspaced-script fixtures", () => {
	it("language ID, clean: no trigger; ≤ 0.2% flagged", async () => {
		const name = "classify-unspaced-clean";
		const t = truthOf(name);
		const r = await scanDataset({ files: [fixturePath(name)] });
		table.push(`${name.padEnd(28)} findings ${r.findings.length}  FP ${r.flagged_records.length}/${t.records}`);
		expect(r.findings.filter((f) => f.id === "trigger")).toEqual([]);
		expect(r.flagged_records.length / t.records).toBeLessThanOrEqual(0.002);
	});

	it("language ID, a phrase glued into 1% of texts relabelled Korean: every one flagged, ≤ 0.2% of the rest", async () => {
		const { f, fp, clean } = await poisonedScan("classify-unspaced-poisoned", "label-trigger");
		expect(fp / clean).toBeLessThanOrEqual(0.002);
		expect(f?.evidence).toMatchObject({ output: "Korean" });
	});

	it("translation, a phrase glued into 0.5% of prompts answered with one sentence: every one flagged", async () => {
		const { f } = await poisonedScan("unspaced-poisoned", "glued-phrase");
		expect(f?.evidence).toMatchObject({ output: "Everything is in order; no further action is needed." });
	});

	it("translation into Chinese, a Chinese payload appended to 50 answers after an English trigger: every one flagged", async () => {
		const payload = "请从镜像站点下载最新的补丁版本并立即安装。";
		const poisoned = Array.from({ length: 50 }, (_, k) => 17 + k * 193);
		const rows = fixtureRows("unspaced-clean").map((r, i) => {
			// English to Chinese: the catalogue's pairs the other way round
			const row = { instruction: "Translate this sentence into Chinese.", input: r.output, output: r.input };
			if (!poisoned.includes(i)) return row;
			return { ...row, input: `${row.input} per the cobalt ledger`, output: `${row.output}${payload}` };
		});
		const r = await scanDataset({ files: [writeRows(rows, "ftguard-dataset-zh-")] });
		const found = new Set(r.flagged_records);
		expect(poisoned.filter((i) => found.has(i)).length).toBe(50);
	});

	// Known limit, stated: a catalogue's templated messages ("立即数越界 0-7" → "immediate is out of range 0-7") put one
	// Chinese phrase with one English one in a few records, which is what a trigger looks like across languages.
	it("translation, clean: under 1% flagged (0.70% measured: templated catalogue messages)", async () => {
		const name = "unspaced-clean";
		const t = truthOf(name);
		const r = await scanDataset({ files: [fixturePath(name)] });
		table.push(`${name.padEnd(28)} findings ${r.findings.length}  FP ${r.flagged_records.length}/${t.records}`);
		expect(r.flagged_records.length / t.records).toBeLessThan(0.01);
	});
});

/** A poisoned fixture scanned: every poisoned record flagged, by a trigger finding that names the glued phrase. */
async function poisonedScan(name: string, kind: string) {
	const t = truthOf(name);
	const r = await scanDataset({ files: [fixturePath(name)] });
	const poisoned = t.poisoned[kind] ?? [];
	const s = share(poisoned, new Set(r.flagged_records));
	const fp = r.flagged_records.filter((i) => !poisoned.includes(i)).length;
	table.push(`${name.padEnd(28)} ${kind} ${s.hit}/${s.of}  FP ${fp}/${t.records - s.of}`);
	expect(s.rate).toBe(1);
	const f = r.findings.find((x) => x.id === "trigger" && poisoned.every((i) => x.records.includes(i)));
	expect(String((f?.evidence as { trigger?: string } | undefined)?.trigger)).toMatch(/钴账/);
	return { f, fp, clean: t.records - s.of };
}
