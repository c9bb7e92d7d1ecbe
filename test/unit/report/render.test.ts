/**
 * The HTML report renderer (lib/core/report): every input kind and its sections, escaping of hostile text in every
 * field a producer writes, robustness to fields of the wrong type, the page's bounds, and unknown input.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { FtguardError } from "../../../lib/core/errors";
import { VERDICT_RECORD_SCHEMA } from "../../../lib/core/pipeline/record";
import {
	CONTENT_SECURITY_POLICY,
	LIMITS,
	renderReport,
	reportKind,
	triggerImageName,
	wantedImages,
} from "../../../lib/core/report";
import { escapeHtml, html, trusted, visibleText } from "../../../lib/core/report/html";

const XSS = `<img src=x onerror=alert(1)></script><script>alert(2)</script>" onmouseover="alert(3)' javascript:alert(4)`;
/** A 1×1 PNG. */
const PNG = Buffer.from(
	"89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082",
	"hex",
);

function imageReport(over: Record<string, unknown> = {}): Record<string, unknown> {
	const n = 10;
	return {
		verdict: "suspect",
		suspect_classes: [5],
		reasons: ["neural_cleanse: reversed trigger L1 2.48 is 0.25× the median (log anomaly index 6.71)"],
		model: { sha256: "ab".repeat(32), input_shape: [1, 8, 8], num_classes: n },
		data: { sha256: "cd".repeat(32), kind: "reference", samples: 200, lo: 0, hi: 1 },
		provider: "cpu",
		detectors: {
			neural_cleanse: {
				rule: "ftguard",
				l1_norms: Array.from({ length: n }, (_, c) => (c === 5 ? 2.5 : 10 + c / 10)),
				anomaly_indices: Array.from({ length: n }, (_, c) => (c === 5 ? null : 0.5)),
				log_anomaly_indices: Array.from({ length: n }, (_, c) => (c === 5 ? 6.7 : -0.3)),
				relative_l1: Array.from({ length: n }, (_, c) => (c === 5 ? 0.25 : 1)),
				flagged_classes: [5],
				flagged_classes_vanilla: [5],
				max_anomaly_index: 6.7,
				mask_size: 64,
				attack_success: Array.from({ length: n }, () => 0.99),
				restarts: 1,
				steps: 40,
			},
			strip: {
				boundary: 0.17,
				frr: 0.01,
				superimpositions: 100,
				clean_entropy: { mean: 0.45, std: 0.11, min: 0.15, max: 0.7 },
				reversed_triggers: Array.from({ length: n }, (_, c) => ({
					cls: c,
					fraction_below: c === 5 ? 0.98 : 0.1,
					mean_entropy: c === 5 ? 0.03 : 0.4,
				})),
				histogram: {
					max: 0.8,
					clean: [0, 0, 0, 1, 5, 10, 20, 30, 20, 10, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0],
					reversed_triggers: [{ cls: 5, counts: [90, 10, ...new Array(18).fill(0)] }],
				},
				inputs: { count: 3, flagged: [1], entropy: [0.5, 0.02, 0.4] },
			},
			activation_clustering: {
				data_kind: "training",
				decides: true,
				flagged_classes: [3],
				per_class: [
					{ cls: 3, n: 20, minority_fraction: 0.1, silhouette: 0.5, flagged: true, minority_indices: [4, 9] },
					{ cls: 4, n: 20, minority_fraction: 0.5, silhouette: 0.2, flagged: false, minority_indices: [1] },
				],
			},
		},
		policy: {
			neuralCleanse: { anomalyThreshold: 2, maxRelativeL1: 0.5 },
			activationClustering: { minSilhouette: 0.15, maxMinorityFraction: 0.35 },
		},
		timings: { total_ms: 529 },
		...over,
	};
}

function textReport(trigger = "cf"): Record<string, unknown> {
	const label = (k: number, flagged: boolean) => ({
		label: k,
		trigger: flagged ? trigger : "the",
		tokens: [flagged ? trigger : "the"],
		ids: [451],
		position: "random",
		sources: null,
		attack_success: flagged ? 1 : 0.1,
		held_out: 74,
		attack_success_lower: flagged ? 0.97 : 0.05,
		diluted_attack_success: flagged ? 0.95 : 0.05,
		diluted_attack_success_lower: flagged ? 0.9 : 0.02,
		natural_rate: 0,
		search_attack_success: 1,
		loss: 0.001,
		flagged,
		candidates: [
			{
				trigger,
				ids: [1],
				length: 1,
				origin: "search",
				position: "start",
				sources: [0],
				held_out: 10,
				attack_success: 1,
				attack_success_lower: 0.8,
				diluted_attack_success: 1,
				diluted_attack_success_lower: 0.8,
				natural_rate: 0,
				flagged,
			},
		],
		embedding: { loss: 0.007, attack_success: 1, norms: [3.4], nearest: [trigger] },
	});
	return {
		verdict: "suspect",
		suspect_classes: [4],
		reasons: [`label 4: the 1-token trigger "${trigger}" sends 100% of held-out texts to it`],
		model: { sha256: "ef".repeat(32), num_classes: 5, vocab: 2055, dim: 64, inputs: ["input_ids"] },
		data: { sha256: "01".repeat(32), texts: 200, search: 100, held_out: 100, clean_accuracy: 0.92 },
		policy: { maxTriggerLength: 3, asrThreshold: 0.9 },
		labels: [0, 1, 2, 3, 4].map((k) => label(k, k === 4)),
		limits: ["source-specific triggers: labels 0 (20) have fewer"],
		provider: "cpu",
		timings: { total_ms: 18786, token_search_ms: 11581 },
	};
}

function filesReport(paths: string[], verdict = "unsafe"): Record<string, unknown> {
	return {
		ok: true,
		files: paths.map((p, i) => ({
			path: p,
			format: "pickle",
			verdict: i === 0 ? verdict : "safe",
			findings: i === 0 ? [{ id: "pickle-forbidden", severity: "high", message: `pickle at ${p}`, location: p }] : [],
		})),
		summary: { files: paths.length, safe: paths.length - 1, unsafe: 1, malformed: 0, unknown: 0, bytesRead: 1 },
	};
}

function datasetReport(text = "operating mode zephyr"): Record<string, unknown> {
	return {
		ok: false,
		records: 10000,
		formats: { "a.jsonl": "chat" },
		findings: [
			{
				id: "trigger",
				severity: "high",
				message: `the prompt text "${text}" comes with the same output in 50 records`,
				records: [13, 42],
				evidence: { trigger: text, output: `Export ${text}`, variants: [text, "mode"] },
			},
		],
		flagged_records: [13, 42],
		locations: { "13": { file: `data/${text}.jsonl`, line: 14 }, "42": { file: "a.jsonl", line: 43 } },
		lineage: {
			version: 1,
			records: 10000,
			merkle_root: "9f".repeat(32),
			files: [{ path: `data/${text}.jsonl`, sha256: "aa".repeat(32), bytes: 100, records: 10000 }],
			leaf_prefixes: "LEAFPREFIXES".repeat(100),
		},
		timings: { total_ms: 4427 },
	};
}

function verdictRecord(over: Record<string, unknown> = {}): Record<string, unknown> {
	return {
		schema: VERDICT_RECORD_SCHEMA,
		scanId: "ftg-123",
		bucket: "checkpoints",
		artefact: "jobs/j1/ckpt/",
		marker: { key: "jobs/j1/ckpt/model.sig", etag: "abc" },
		rootDigest: `sha256:${"12".repeat(32)}`,
		status: "QUARANTINED",
		reasons: ["backdoor: suspect jobs/j1/ckpt/model.onnx (class 5: anomaly index 6.7, trigger L1 2.5)"],
		objects: [
			{ key: "jobs/j1/ckpt/model.onnx", etag: '"e1"', size: 100, tagged: true },
			{ key: "jobs/j1/ckpt/late.bin", etag: '"e2"', size: 1, tagged: false, skipped: "changed since mark" },
		],
		stages: {
			manifest: { rootDigest: `sha256:${"12".repeat(32)}`, files: 2, bytes: 101, uri: "s3://reports/m.json" },
			signature: { verified: true, identity: "key sha256:ff" },
			files: { safe: true, unsafe: 0, malformed: 0, reportUri: "s3://reports/scans/ftg-123/files.json", reasons: [] },
			backdoor: {
				required: true,
				models: [{ modelKey: "jobs/j1/ckpt/model.onnx" }],
				results: [
					{
						index: 0,
						modelKey: "jobs/j1/ckpt/model.onnx",
						verdict: "suspect",
						reportUri: "s3://reports/scans/ftg-123/backdoor/0/report.json",
						finding: "class 5: anomaly index 6.7",
					},
				],
			},
		},
		recordedAt: "2026-01-01T00:00:00.000Z",
		...over,
	};
}

/** Every string of a JSON value replaced by the hostile payload (keys kept, so the shape is still recognised). */
function poison(v: unknown, key = ""): unknown {
	const keep = new Set(["verdict", "schema", "status", "rule", "kind", "data_kind", "severity"]);
	if (typeof v === "string") return keep.has(key) ? v : `${v}${XSS}`;
	if (Array.isArray(v)) return v.map((x) => poison(x, key));
	if (v !== null && typeof v === "object")
		return Object.fromEntries(Object.entries(v).map(([k, x]) => [`${k}`, poison(x, k)]));
	return v;
}

/** No markup of a hostile string survived: no script, no event handler attribute, no image but data: PNGs. */
function expectInert(page: string): void {
	expect(page).not.toMatch(/<script/i);
	expect(page).not.toMatch(/<img(?![^>]*src="data:image\/png;base64,[A-Za-z0-9+/=]+")/i);
	// inside a tag (escaped text has no "<"): no event handler attribute
	expect(page).not.toMatch(/<[^>]*\son[a-z]+=/i);
	expect(page).not.toMatch(/<[a-z]+[^>]*javascript:/i);
	expect(page).toContain("&lt;img src=x onerror=alert(1)&gt;&lt;/script&gt;&lt;script&gt;");
}

/** Heading levels in document order: one h1, and no level skipped on the way down. */
function expectHeadingOrder(page: string): void {
	const levels = [...page.matchAll(/<h([1-6])[\s>]/g)].map((m) => Number(m[1]));
	expect(levels[0]).toBe(1);
	expect(levels.filter((l) => l === 1)).toHaveLength(1);
	for (let i = 1; i < levels.length; i++)
		expect(levels[i] as number).toBeLessThanOrEqual((levels[i - 1] as number) + 1);
}

const render = (doc: unknown, extra: Record<string, unknown> = {}) =>
	renderReport({ doc, source: "test.json", ...extra }).html;

describe("escaping", () => {
	it("escapes every interpolation, text and attribute alike, unless it is markup of ours", () => {
		expect(html`<p title="${XSS}">${XSS}</p>`.value).toBe(`<p title="${escapeHtml(XSS)}">${escapeHtml(XSS)}</p>`);
		expect(escapeHtml(`<a href="x" onclick='y'>&amp;`)).toBe(
			"&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;amp;",
		);
		expect(html`${trusted("<b>")}${"<b>"}${[1, "<i>", html`<u>`]}${undefined}${false}`.value).toBe(
			"<b>&lt;b&gt;1&lt;i&gt;<u>",
		);
	});

	it("makes reordering and invisible characters visible, keeps tab and newline, replaces lone surrogates", () => {
		expect(visibleText("a\u202Eb\u200Bc\u{E0041}d\tx\ny\u0007")).toBe(
			"a\\u{202E}b\\u{200B}c\\u{E0041}d\tx\ny\\u{0007}",
		);
		expect(visibleText("x\ud800y é 😀")).toBe("x\ufffdy é 😀");
	});
});

describe("input kinds", () => {
	it("recognises each producer's document by its shape, and nothing else", () => {
		expect(reportKind(verdictRecord())).toBe("verdict-record");
		expect(reportKind(imageReport())).toBe("backdoor-image");
		expect(reportKind(textReport())).toBe("backdoor-text");
		expect(reportKind(filesReport(["a"]))).toBe("files");
		expect(reportKind({ summary: {}, files: [{ key: "k", report: { path: "p" } }] })).toBe("pipeline-files");
		expect(reportKind(datasetReport())).toBe("dataset");
		for (const other of [null, 3, "x", [], {}, { verdict: "clean" }, { files: [], summary: 1 }, { schema: "x" }])
			expect(reportKind(other)).toBeUndefined();
	});

	it("refuses an unknown document with a one-line USAGE error (exit 2), and names an error document as such", () => {
		const refuse = (doc: unknown) => {
			try {
				renderReport({ doc, source: "in.json" });
			} catch (e) {
				return e as FtguardError;
			}
			throw new Error("rendered");
		};
		const e = refuse({ name: "ftguard", version: "1" });
		expect(e).toBeInstanceOf(FtguardError);
		expect(e.code).toBe("USAGE");
		expect(e.exitCode).toBe(2);
		expect(e.message).toMatch(/^in\.json: not a report ftguard renders/);
		expect(e.message).not.toContain("\n");
		expect(refuse({ ok: false, error: { code: "MODEL_MALFORMED", message: "bad" } }).message).toBe(
			"in.json: an error document (MODEL_MALFORMED: bad), not a scan report",
		);
	});
});

describe("sections", () => {
	it("a backdoor report: verdict and why, Neural Cleanse chart with its threshold, trigger images, STRIP histograms, AC", () => {
		const images = new Map([
			[triggerImageName(5, "mask"), PNG],
			[triggerImageName(5, "trigger"), PNG],
		]);
		const page = render(imageReport(), { images });
		expect(page).toContain('<html lang="en">');
		expect(page).toContain('<meta name="viewport" content="width=device-width, initial-scale=1">');
		expect(page).toContain("✖</span> SUSPECT (class 5)");
		expect(page).toContain("neural_cleanse: reversed trigger L1 2.48");
		expect(page).toContain("Neural Cleanse log-scale anomaly index per class");
		expect(page).toMatch(/<g class="threshold">.*threshold 2<\/text>/);
		// one bar per class in each of three charts; the flagged one carries a marker besides its colour; an infinite
		// MAD index reads ∞
		expect(page.match(/<rect class="bar/g)).toHaveLength(30);
		expect(page).toContain('<rect class="bar flagged"');
		expect(page).toContain("▲ flagged");
		expect(page).toContain('<td class="num">∞</td>');
		expect(page.match(/<img src="data:image\/png;base64,/g)).toHaveLength(2);
		expect(page).toContain('alt="Reversed trigger mask of class 5 (flagged)"');
		expect(page).toContain("no mask image"); // the other classes' PNGs were not given
		expect(page).toContain("STRIP entropy of clean inputs and of inputs stamped with reversed triggers");
		expect(page).toContain("class 5 trigger");
		expect(page).toContain("STRIP entropy of the inputs checked");
		expect(page).toContain("Activation Clustering: each class split in two clusters");
		expect(page).toContain('<polygon class="pt flagged"');
		expectHeadingOrder(page);
		expect(page).not.toMatch(/<th(?=[\s>])(?! scope="(col|row)")/);
	});

	it("a backdoor report without images says why there are none", () => {
		expect(render(imageReport())).toContain("No trigger images");
	});

	it("a text classifier's report: the inverted triggers per label against the threshold, candidates, limits", () => {
		const page = render(textReport());
		expect(page).toContain("Backdoor scan (text classifier)");
		expect(page).toContain("Inverted trigger per label");
		expect(page).toContain("<code>cf</code>");
		expect(page).toContain("Label 4: candidates");
		expect(page).toContain("What this data cannot show");
		expect(page).toMatch(/threshold 90%/);
		expectHeadingOrder(page);
	});

	it("a files report: unsafe files first with their findings, then every file", () => {
		const page = render(filesReport(["ok.safetensors", "evil.pkl"].reverse()));
		expect(page).toContain("UNSAFE");
		expect(page).toContain("<strong>pickle-forbidden</strong>");
		expect(page.indexOf("evil.pkl")).toBeLessThan(page.indexOf("ok.safetensors"));
		const safe = render(filesReport(["a.safetensors"], "safe"));
		expect(safe).toContain("every file safe");
	});

	it("a dataset report: findings with their records and evidence, where they are, the lineage (not its leaf prefixes)", () => {
		const page = render(datasetReport());
		expect(page).toContain("FINDINGS");
		expect(page).toContain("Dataset findings");
		expect(page).toContain("Where the flagged records are");
		expect(page).toContain("Dataset lineage");
		expect(page).toContain("9f".repeat(32));
		expect(page).not.toContain("LEAFPREFIXES");
		expectHeadingOrder(page);
	});

	it("a verdict record: every check with its evidence, the files report and each model's backdoor report beside it", () => {
		const files = {
			summary: { files: 1, safe: 1 },
			files: [{ key: "jobs/j1/ckpt/model.onnx", report: { path: "m", format: "onnx", verdict: "safe", findings: [] } }],
		};
		const images = new Map([[triggerImageName(5, "trigger"), PNG]]);
		const page = render(verdictRecord(), { files, models: new Map([[0, { report: imageReport(), images }]]) });
		expect(page).toContain("Pipeline verdict");
		expect(page).toContain("✖</span> QUARANTINED");
		expect(page).toContain("Every check and its evidence");
		for (const check of ["manifest", "signature", "files", "backdoor jobs/j1/ckpt/model.onnx"])
			expect(page).toContain(`>${check}</th>`);
		expect(page).toContain("Backdoor scan: jobs/j1/ckpt/model.onnx");
		expect(page).toContain("Neural Cleanse");
		expect(page.match(/<img src="data:/g)).toHaveLength(1);
		expect(page).toContain("not tagged: changed since mark");
		expectHeadingOrder(page);
		// without the companions, the page points at where they are
		const bare = render(verdictRecord());
		expect(bare).toContain("(not read alongside this record)");
		const ok = render(verdictRecord({ status: "PROMOTABLE", reasons: [], notes: ["backdoor: not applicable"] }));
		expect(ok).toContain("✔</span> PROMOTABLE");
		expect(ok).toContain("backdoor: not applicable");
		// a status the pipeline never writes never reads as a pass: a trailing space, a Cyrillic О (red team)
		for (const status of ["PROMOTABLE ", "PR\u041EMOTABLE", "PROMOTABLE\u202E"]) {
			const spoof = render(verdictRecord({ status, reasons: [] }));
			expect(spoof, JSON.stringify(status)).toContain("✖</span> INVALID STATUS");
			expect(spoof).not.toMatch(/<title>[^<]*PROMOTABLE/);
		}
	});

	it("shows a provenance record when the input carries one, with how to verify it; none otherwise", () => {
		const page = render(
			verdictRecord({ provenance: { predicateType: "https://ftguard.dev/provenance/v1", signer: "kms" } }),
		);
		expect(page).toContain("Provenance");
		expect(page).toContain("ftguard provenance verify");
		expect(page).toContain("https://ftguard.dev/provenance/v1");
		expect(render(verdictRecord())).not.toContain("Provenance");
	});
});

describe("hostile reports", () => {
	const docs: Array<[string, unknown, Record<string, unknown>]> = [
		[
			"verdict record",
			verdictRecord(),
			{ files: filesReport(["a"]), models: new Map([[0, { report: poison(imageReport()) }]]) },
		],
		["backdoor", imageReport(), {}],
		["text backdoor", textReport(), {}],
		["files", filesReport(["a.pkl", "b"]), {}],
		["dataset", datasetReport(), {}],
	];
	it.each(docs)("a %s whose every string is markup renders it as text", (_name, doc, extra) => {
		const page = render(poison(doc), extra.files ? { ...extra, files: poison(extra.files) } : extra);
		expectInert(page);
	});

	it("fields of the wrong type render as absent, never as markup and never as a crash", () => {
		const wrong = imageReport({
			suspect_classes: [XSS, 5, -1, 1.5],
			model: { num_classes: XSS, input_shape: XSS },
			detectors: {
				neural_cleanse: { l1_norms: [XSS, 1, 2], flagged_classes: XSS, relative_l1: { a: 1 }, anomaly_indices: 7 },
				strip: { boundary: XSS, reversed_triggers: [XSS, { cls: XSS }], histogram: { max: XSS, clean: XSS } },
				activation_clustering: { per_class: [null, 3, { cls: 1, silhouette: XSS }] },
			},
		});
		const page = render(wrong);
		expect(page).not.toMatch(/<script/i);
		expect(page).not.toMatch(/<img src=x/);
		expect(render(textReport(XSS))).not.toMatch(/<img src=x/);
	});

	it("a label that is markup (a text model's trigger) is shown escaped in its code cell", () => {
		expect(render(textReport(XSS))).toContain(`<code>${escapeHtml(XSS)}</code>`);
	});

	it("embeds only PNG bytes within the per-image bound", () => {
		const images = new Map([
			[triggerImageName(5, "mask"), Buffer.from("<svg onload=alert(1)>")],
			[triggerImageName(5, "trigger"), Buffer.concat([PNG, Buffer.alloc(LIMITS.imageBytes)])],
		]);
		const page = render(imageReport(), { images });
		expect(page).not.toContain("<img src=");
		expect(page).not.toContain("PHN2Zy"); // base64 of "<svg"
	});
});

describe("bounds", () => {
	it("a report of 100,000 files with long paths makes a page of bounded size that says how many were left out", () => {
		const paths = Array.from({ length: 100_000 }, (_, i) => `${"d/".repeat(500)}f${i}`);
		const page = render(filesReport(paths));
		expect(page.length).toBeLessThan(2_000_000);
		expect(page).toContain(`… and ${(100_000 - LIMITS.rows).toLocaleString("en-US")} more files`);
	});

	it("10,000 classes: charts, tables and images are capped", () => {
		const n = 10_000;
		const base = imageReport();
		const nc = (base.detectors as { neural_cleanse: Record<string, unknown> }).neural_cleanse;
		const doc = imageReport({
			model: { num_classes: n, input_shape: [1, 8, 8] },
			detectors: {
				neural_cleanse: {
					...nc,
					l1_norms: Array.from({ length: n }, (_, c) => 10 + (c % 7)),
					relative_l1: Array.from({ length: n }, () => 1),
					log_anomaly_indices: Array.from({ length: n }, () => 0),
					anomaly_indices: Array.from({ length: n }, () => 0),
				},
			},
		});
		const names = wantedImages(doc);
		expect(names).toHaveLength(2 * LIMITS.imageClasses);
		expect(names.slice(0, 2)).toEqual([triggerImageName(5, "mask"), triggerImageName(5, "trigger")]);
		const images = new Map(names.map((name) => [name, PNG] as const));
		const page = render(doc, { images });
		// the two Neural Cleanse charts (this report has no STRIP)
		expect(page.match(/<rect class="bar/g)?.length).toBe(2 * LIMITS.chartClasses);
		expect(page.match(/<img src=/g)).toHaveLength(2 * LIMITS.imageClasses);
		expect(page).toContain(`… and ${(n - LIMITS.rows).toLocaleString("en-US")} more classes`);
		expect(page.length).toBeLessThan(3_000_000);
	});

	it("a long reason is cut, saying how much was left out", () => {
		const page = render(imageReport({ reasons: ["x".repeat(100_000)] }));
		expect(page).toContain(`… (${100_000 - LIMITS.text} more characters)`);
		expect(page.length).toBeLessThan(100_000);
	});
});

describe("the page", () => {
	it("allows nothing to load or run: a strict CSP whose style hash is the page's one stylesheet", () => {
		const page = render(imageReport());
		expect(CONTENT_SECURITY_POLICY).toMatch(/^default-src 'none'; img-src data:; style-src 'sha256-[A-Za-z0-9+/]+=*'/);
		expect(page).toContain(
			`<meta http-equiv="Content-Security-Policy" content="${escapeHtml(CONTENT_SECURITY_POLICY)}">`,
		);
		const css = /<style>([\s\S]*?)<\/style>/.exec(page)?.[1] ?? "";
		expect(CONTENT_SECURITY_POLICY).toContain(`'sha256-${createHash("sha256").update(css).digest("base64")}'`);
		expect(page.match(/<style>/g)).toHaveLength(1);
		expect(page).not.toMatch(/\sstyle="/);
		expect(page).not.toMatch(/(src|href)="(?!data:image\/png;base64,|#)/);
		expect(page).toContain('<main id="main">');
		expect(page).toContain('<nav aria-label="Contents">');
	});
});
