import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
	hfConfigScanner,
	pythonFileScanner,
	sentenceTransformersModulesScanner,
	tokenizerConfigScanner,
} from "../../../lib/core/formats/hf-config";
import { verdictOf } from "../../../lib/core/formats/types";
import { fuzzScanner, scanBuffer } from "../../fixtures/formats/fuzz";

const json = (v: unknown) => Buffer.from(JSON.stringify(v, null, 2));
const llama3 = readFileSync(join(__dirname, "../../fixtures/formats/templates/llama31-tools.jinja"), "utf8");

const cleanConfig = json({
	architectures: ["LlamaForCausalLM"],
	model_type: "llama",
	hidden_size: 4096,
	torch_dtype: "bfloat16",
});
const remoteConfig = json({
	architectures: ["EvilForCausalLM"],
	auto_map: { AutoConfig: "configuration_evil.EvilConfig", AutoModelForCausalLM: "modeling_evil.EvilForCausalLM" },
});
const cleanTok = json({
	bos_token: "<|begin_of_text|>",
	chat_template: llama3,
	tokenizer_class: "PreTrainedTokenizerFast",
});
const evilTok = json({ chat_template: "{{ cycler.__init__.__globals__.os.popen('id').read() }}" });

describe("Hugging Face config files", () => {
	it("detects by the name the loader uses", () => {
		expect(hfConfigScanner.detect(Buffer.from("{}"), "m/config.json", 2)).toBe(true);
		expect(hfConfigScanner.detect(Buffer.from("{}"), "preprocessor_config.json", 2)).toBe(true);
		expect(hfConfigScanner.detect(Buffer.from("{}"), "tokenizer_config.json", 2)).toBe(false);
		expect(tokenizerConfigScanner.detect(Buffer.from("{}"), "a/tokenizer_config.json", 2)).toBe(true);
		expect(tokenizerConfigScanner.detect(Buffer.from(""), "chat_template.jinja", 0)).toBe(true);
		expect(pythonFileScanner.detect(Buffer.from(""), "modeling_evil.py", 0)).toBe(true);
		expect(pythonFileScanner.detect(Buffer.from(""), "model.pyc.bin", 0)).toBe(false);
		expect(tokenizerConfigScanner.detect(Buffer.from(""), "m/additional_chat_templates/tool_use.jinja", 0)).toBe(true);
		expect(hfConfigScanner.detect(Buffer.from("{}"), "processor_config.json", 2)).toBe(true);
		expect(hfConfigScanner.detect(Buffer.from("{}"), "config_sentence_transformers.json", 2)).toBe(true);
		expect(sentenceTransformersModulesScanner.detect(Buffer.from("[]"), "m/modules.json", 2)).toBe(true);
		expect(sentenceTransformersModulesScanner.detect(Buffer.from("[]"), "modules.json.bak", 2)).toBe(false);
	});

	it("config.json without auto_map is safe", async () => {
		expect(verdictOf(await scanBuffer(hfConfigScanner, cleanConfig, "config.json"))).toBe("safe");
	});

	it("config.json with auto_map → remote-code (high) at $.auto_map", async () => {
		const r = await scanBuffer(hfConfigScanner, remoteConfig, "config.json");
		expect(r.findings).toEqual([
			expect.objectContaining({ id: "remote-code", severity: "high", location: "$.auto_map" }),
		]);
		expect(verdictOf(r)).toBe("unsafe");
	});

	it("auto_map of any shape and trust_remote_code: true at any depth", async () => {
		const r = await scanBuffer(
			hfConfigScanner,
			json({ text_config: { auto_map: "x.Y" }, trust_remote_code: true }),
			"config.json",
		);
		expect(r.findings.map((f) => f.location).sort()).toEqual(["$.text_config.auto_map", "$.trust_remote_code"]);
		const ok = await scanBuffer(hfConfigScanner, json({ trust_remote_code: false }), "config.json");
		expect(ok.findings).toEqual([]);
	});

	it("malformed JSON → malformed", async () => {
		const r = await scanBuffer(hfConfigScanner, Buffer.from('{"a": '), "config.json");
		expect(verdictOf(r)).toBe("malformed");
		expect(r.malformed).toContain("invalid JSON");
		expect(verdictOf(await scanBuffer(hfConfigScanner, Buffer.from("[1]"), "config.json"))).toBe("malformed");
		expect(verdictOf(await scanBuffer(hfConfigScanner, Buffer.from([0xff, 0xfe]), "config.json"))).toBe("malformed");
	});

	it("tokenizer_config.json: benign chat template is safe, gadget template is unsafe", async () => {
		expect(verdictOf(await scanBuffer(tokenizerConfigScanner, cleanTok, "tokenizer_config.json"))).toBe("safe");
		const r = await scanBuffer(tokenizerConfigScanner, evilTok, "tokenizer_config.json");
		expect(verdictOf(r)).toBe("unsafe");
		expect(r.findings).toContainEqual(expect.objectContaining({ id: "template-injection", severity: "critical" }));
		expect(r.findings[0]?.location).toContain("$.chat_template");
	});

	it("tokenizer_config.json: list of named templates, and auto_map", async () => {
		const r = await scanBuffer(
			tokenizerConfigScanner,
			json({
				chat_template: [
					{ name: "default", template: llama3 },
					{ name: "tool_use", template: "{{ x.__globals__ }}" },
				],
				auto_map: { AutoTokenizer: ["tok.T", null] },
			}),
			"tokenizer_config.json",
		);
		expect(r.findings.map((f) => [f.id, f.location?.split(" @")[0]])).toEqual(
			expect.arrayContaining([
				["remote-code", "$.auto_map"],
				["template-injection", "$.chat_template[1].template"],
			]),
		);
	});

	it("chat_template.jinja is checked as a template", async () => {
		expect(verdictOf(await scanBuffer(tokenizerConfigScanner, Buffer.from(llama3), "chat_template.jinja"))).toBe(
			"safe",
		);
		expect(
			verdictOf(
				await scanBuffer(tokenizerConfigScanner, Buffer.from("{{ lipsum.__globals__ }}"), "chat_template.jinja"),
			),
		).toBe("unsafe");
	});

	it("chat templates in processor and preprocessor configs are checked", async () => {
		for (const name of ["processor_config.json", "preprocessor_config.json", "chat_template.json"]) {
			const scanner = name === "chat_template.json" ? tokenizerConfigScanner : hfConfigScanner;
			expect(verdictOf(await scanBuffer(scanner, json({ chat_template: llama3 }), name)), name).toBe("safe");
			// no known gadget string: a name built at render time, looked up by subscript
			const evil = json({ chat_template: "{{ messages[0]['con' ~ 'tent'] }}{{ (messages|first)['gi_' ~ 'frame'] }}" });
			const r = await scanBuffer(scanner, evil, name);
			expect(verdictOf(r), name).toBe("unsafe");
			expect(r.findings[0]?.location).toMatch(/^\$\.chat_template @ line 1 col \d+$/);
		}
	});

	it("a chat_template of an unknown shape is not safe; null is no template", async () => {
		const odd = await scanBuffer(
			tokenizerConfigScanner,
			json({ chat_template: { default: llama3 } }),
			"tokenizer_config.json",
		);
		expect(odd.findings).toEqual([expect.objectContaining({ id: "template-unparsable", severity: "high" })]);
		const list = await scanBuffer(
			tokenizerConfigScanner,
			json({ chat_template: [{ name: "x", template: 3 }] }),
			"tokenizer_config.json",
		);
		expect(verdictOf(list)).toBe("unsafe");
		expect(
			(await scanBuffer(tokenizerConfigScanner, json({ chat_template: null }), "tokenizer_config.json")).findings,
		).toEqual([]);
	});

	it(".jinja templates: not UTF-8 or not parsable → not safe", async () => {
		expect(
			verdictOf(
				await scanBuffer(tokenizerConfigScanner, Buffer.from([0x7b, 0x7b, 0xff, 0x7d, 0x7d]), "chat_template.jinja"),
			),
		).toBe("malformed");
		const r = await scanBuffer(
			tokenizerConfigScanner,
			Buffer.from("{% raw %}{{ x }}{% endraw %}"),
			"additional_chat_templates/rag.jinja",
		);
		expect(verdictOf(r)).toBe("unsafe");
		expect(r.malformed).toBeDefined();
		expect(r.findings[0]?.location).toContain("additional_chat_templates/rag.jinja");
	});

	it("custom_pipelines → remote-code; an empty one is nothing", async () => {
		const r = await scanBuffer(
			hfConfigScanner,
			json({
				custom_pipelines: { "pair-classification": { impl: "custom_pipeline.PairClassificationPipeline", pt: [] } },
			}),
			"config.json",
		);
		expect(r.findings).toEqual([
			expect.objectContaining({ id: "remote-code", severity: "high", location: "$.custom_pipelines" }),
		]);
		expect(r.findings[0]?.message).toContain("custom_pipeline.PairClassificationPipeline");
		expect((await scanBuffer(hfConfigScanner, json({ custom_pipelines: {} }), "config.json")).findings).toEqual([]);
	});

	it("classes sentence-transformers imports at load: torch layers only", async () => {
		const ok = json({ sbert_ce_default_activation_function: "torch.nn.modules.linear.Identity" });
		expect((await scanBuffer(hfConfigScanner, ok, "config.json")).findings).toEqual([]);
		const dense = json({
			in_features: 768,
			out_features: 256,
			activation_function: "torch.nn.modules.activation.Tanh",
		});
		expect((await scanBuffer(hfConfigScanner, dense, "2_Dense/config.json")).findings).toEqual([]);
		const peft = json({
			auto_mapping: { base_model_class: "BertModel", parent_library: "transformers.models.bert.modeling_bert" },
		});
		expect((await scanBuffer(hfConfigScanner, peft, "adapter_config.json")).findings).toEqual([]);
		for (const [k, v, where] of [
			["sbert_ce_default_activation_function", "builtins.breakpoint", "$.sbert_ce_default_activation_function"],
			["sentence_transformers", { activation_fn: "my_pkg.Evil" }, "$.sentence_transformers.activation_fn"],
			["activation_function", "torch.nn.modules.activation.Tanh.__init__", "$.activation_function"],
			["auto_mapping", { base_model_class: "Evil", parent_library: "my_pkg.models" }, "$.auto_mapping"],
		] as const) {
			const r = await scanBuffer(hfConfigScanner, json({ [k]: v }), "config.json");
			expect(r.findings, k).toEqual([
				expect.objectContaining({ id: "remote-code", severity: "high", location: where }),
			]);
		}
	});

	it("modules.json: library modules pass; other classes are remote code; paths stay inside", async () => {
		const st = json([
			{ idx: 0, name: "0", path: "", type: "sentence_transformers.models.Transformer" },
			{ idx: 1, name: "1", path: "1_Pooling", type: "sentence_transformers.models.Pooling" },
			{ idx: 2, name: "2", path: "2_Normalize", type: "sentence_transformers.models.Normalize" },
			{ idx: 3, name: "3", path: "3_Router", type: "sentence_transformers.sparse_encoder.models.SpladePooling" },
		]);
		expect(await scanBuffer(sentenceTransformersModulesScanner, st, "modules.json")).toEqual({ findings: [] });
		const evil = json([
			{ idx: 0, name: "0", path: "", type: "sentence_transformers.models.Transformer" },
			{ idx: 1, name: "1", path: "1_Evil", type: "my_pkg.Evil" },
			{ idx: 2, name: "2", path: "../other-model", type: "sentence_transformers.models.Pooling" },
			{ idx: 3, name: "3", path: "/etc", type: "sentence_transformers.util.import_from_string" },
			{ idx: 4, name: "4", path: "x" },
		]);
		const r = await scanBuffer(sentenceTransformersModulesScanner, evil, "modules.json");
		expect(verdictOf(r)).toBe("unsafe");
		expect(r.findings.map((f) => [f.id, f.location])).toEqual([
			["remote-code", "$[1].type"],
			["module-path-escape", "$[2].path"],
			["remote-code", "$[3].type"],
			["module-path-escape", "$[3].path"],
			["remote-code", "$[4].type"],
		]);
		expect(r.findings[0]?.message).toContain("my_pkg.Evil");
		expect(verdictOf(await scanBuffer(sentenceTransformersModulesScanner, json({ a: 1 }), "modules.json"))).toBe(
			"malformed",
		);
		expect(verdictOf(await scanBuffer(sentenceTransformersModulesScanner, Buffer.from("[{"), "modules.json"))).toBe(
			"malformed",
		);
	});

	it("any .py file → remote-code", async () => {
		const r = await scanBuffer(pythonFileScanner, Buffer.from("import os\n"), "modeling_evil.py");
		expect(r.findings).toEqual([expect.objectContaining({ id: "remote-code", severity: "high" })]);
		expect(r.findings[0]?.message).toContain("trust_remote_code=True");
	});

	it("fuzz: every mutant gets a result", async () => {
		await fuzzScanner(hfConfigScanner, [{ name: "config.json", bytes: remoteConfig }], { runs: 200 });
		await fuzzScanner(
			sentenceTransformersModulesScanner,
			[
				{
					name: "modules.json",
					bytes: json([{ idx: 0, name: "0", path: "", type: "sentence_transformers.models.Transformer" }]),
				},
			],
			{ runs: 200 },
		);
		await fuzzScanner(
			tokenizerConfigScanner,
			[
				{ name: "tokenizer_config.json", bytes: cleanTok },
				{ name: "tokenizer_config.json", bytes: evilTok },
			],
			{ runs: 200 },
		);
	});
});
