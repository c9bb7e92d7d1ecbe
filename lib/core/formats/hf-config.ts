/**
 * Hugging Face and sentence-transformers repository layout: the files through which loading a
 * model imports Python, and the chat templates a repository carries.
 *
 * - `config.json` and the other `*config.json` files transformers and sentence-transformers read
 *   (`AutoConfig`, `AutoProcessor`, `preprocessor_config.json`, `processor_config.json`,
 *   `config_sentence_transformers.json`, a Dense module's `config.json`, …):
 *   - `auto_map` makes `from_pretrained` import Python from the repository (it only needs
 *     `trust_remote_code=True`, often passed by habit); `trust_remote_code: true` is the same intent
 *     written down; `custom_pipelines` names a pipeline class in the repository's Python
 *     → `remote-code` (high), at any depth (sub-configs carry them too).
 *   - PEFT's `auto_mapping.parent_library` is imported by AutoPeftModel: anything but transformers'
 *     own modules → `remote-code`.
 *   - `sbert_ce_default_activation_function`, `activation_fn` (CrossEncoder) and
 *     `activation_function` (Dense) are dotted paths sentence-transformers imports and calls at load;
 *     anything but a `torch.nn.modules.*` class → `remote-code`.
 *   - a top-level `chat_template` (processor and preprocessor configs carry one) is checked as
 *     a template.
 * - `tokenizer_config.json`, `chat_template.json`: the same, and `chat_template` as a string or a
 *   list of `{name, template}`. Any `*.jinja` file (`chat_template.jinja`,
 *   `additional_chat_templates/<name>.jinja`) is a template.
 * - sentence-transformers `modules.json`: each module's `type` is imported; a class outside the
 *   library's own modules is remote code, and a `path` that leaves the repository loads files
 *   from elsewhere.
 * - Any `*.py` file: it exists to be imported by `trust_remote_code` → `remote-code`.
 *
 * These files are claimed by name: the name is exactly what the loader uses to find them, so a
 * renamed file is not loaded either (the content of a JSON file says nothing about which role it plays).
 */
import { checkChatTemplate } from "./chat-template";
import type { ByteSource, Finding, Scanner, ScanResult } from "./types";

/** JSON configs larger than this are not configs: reported malformed instead of parsed. */
const MAX_JSON = 64 * 1024 * 1024;
/** Depth bound for walking parsed JSON (JSON.parse itself handles deep nesting, we must not recurse without end). */
const MAX_WALK_DEPTH = 256;
/** Findings of one kind per file: enough to name the problem, bounded for output. */
const MAX_FINDINGS = 100;

const base = (name: string) => name.slice(name.lastIndexOf("/") + 1);

async function readAll(source: ByteSource): Promise<Buffer | undefined> {
	if (source.size > MAX_JSON) return undefined;
	return source.read(0, source.size);
}

/** Decodes UTF-8 strictly (Python's loaders refuse invalid bytes too: nothing is loaded from them). */
function utf8(buf: Buffer): string | undefined {
	try {
		return new TextDecoder("utf-8", { fatal: true }).decode(buf);
	} catch {
		return undefined;
	}
}

/** Parses JSON text; returns the failure as a `malformed` rule. */
function parseJson(buf: Buffer, what: string): { value: unknown } | { malformed: string } {
	const text = utf8(buf);
	if (text === undefined) return { malformed: `${what}: not UTF-8` };
	try {
		return { value: JSON.parse(text) as unknown };
	} catch (e) {
		return { malformed: `${what}: invalid JSON (${e instanceof Error ? e.message.split("\n")[0] : "parse error"})` };
	}
}

const pathKey = (p: string, k: string) =>
	/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? `${p}.${k}` : `${p}[${JSON.stringify(k)}]`;

/** Keys whose dotted-path value sentence-transformers imports and instantiates while loading. */
const IMPORTED_CLASS_KEYS = new Set(["sbert_ce_default_activation_function", "activation_fn", "activation_function"]);
/** What those keys may name: torch's own layer classes (what sentence-transformers writes; vLLM allows no more). */
const TORCH_MODULE_CLASS = /^torch\.nn\.modules\.[a-z_]+\.[A-Z][A-Za-z0-9]*$/;

const remote = (message: string, location: string): Finding => ({
	id: "remote-code",
	severity: "high",
	message,
	location,
});

/** Finds every `auto_map`, `trust_remote_code: true`, `custom_pipelines` and imported class path, at any depth. */
function remoteCodeFindings(root: unknown): Finding[] {
	const out: Finding[] = [];
	const walk = (v: unknown, path: string, depth: number) => {
		if (out.length >= MAX_FINDINGS || v === null || typeof v !== "object") return;
		if (depth > MAX_WALK_DEPTH) {
			// deeper than we look: whatever is there is unchecked
			out.push(remote(`nested deeper than ${MAX_WALK_DEPTH}: not checked for remote code`, path));
			return;
		}
		if (Array.isArray(v)) {
			v.forEach((x, i) => {
				walk(x, `${path}[${i}]`, depth + 1);
			});
			return;
		}
		for (const [k, x] of Object.entries(v)) {
			const p = pathKey(path, k);
			if (k === "auto_map") {
				const targets =
					x !== null && typeof x === "object"
						? Object.values(x)
								.flat()
								.filter((t): t is string => typeof t === "string")
								.slice(0, 3)
						: typeof x === "string"
							? [x]
							: [];
				out.push(
					remote(
						`auto_map${targets.length > 0 ? ` (${targets.join(", ")})` : ""}: loading needs trust_remote_code=True and runs Python from the repository`,
						p,
					),
				);
			} else if (k === "trust_remote_code" && x === true) {
				out.push(remote("trust_remote_code: true: the config asks loaders to run Python from the repository", p));
			} else if (k === "custom_pipelines" && x !== null && (typeof x !== "object" || Object.keys(x).length > 0)) {
				const impls =
					x !== null && typeof x === "object"
						? Object.values(x)
								.map((e) => (e !== null && typeof e === "object" ? (e as Record<string, unknown>).impl : undefined))
								.filter((t): t is string => typeof t === "string")
								.slice(0, 3)
						: [];
				out.push(
					remote(
						`custom_pipelines${impls.length > 0 ? ` (${impls.join(", ")})` : ""}: pipeline() imports the pipeline class from the repository's Python`,
						p,
					),
				);
			} else if (k === "auto_mapping" && x !== null && typeof x === "object" && !Array.isArray(x)) {
				// PEFT's AutoPeftModel imports parent_library and takes base_model_class from it
				const lib = (x as Record<string, unknown>).parent_library;
				if (!(typeof lib === "string" && /^transformers(\.[A-Za-z0-9_]+)*$/.test(lib)))
					out.push(
						remote(
							`auto_mapping.parent_library ${JSON.stringify(lib ?? null).slice(0, 120)}: AutoPeftModel imports it at load (only transformers' own modules are expected)`,
							p,
						),
					);
			} else if (IMPORTED_CLASS_KEYS.has(k) && x !== null && !(typeof x === "string" && TORCH_MODULE_CLASS.test(x))) {
				out.push(
					remote(
						`${k}: ${JSON.stringify(x).slice(0, 120)}: sentence-transformers imports and instantiates this at load; only torch.nn.modules.* classes are inert`,
						p,
					),
				);
			}
			walk(x, p, depth + 1);
		}
	};
	walk(root, "$", 0);
	return out;
}

/** Checks a `chat_template` value: a string, or a list of `{name, template}`; null means none. */
function chatTemplateFindings(root: unknown): Finding[] {
	if (root === null || typeof root !== "object" || Array.isArray(root)) return [];
	if (!Object.hasOwn(root, "chat_template")) return [];
	const ct = (root as Record<string, unknown>).chat_template;
	if (ct === null) return [];
	if (typeof ct === "string") return checkChatTemplate(ct, "$.chat_template");
	if (Array.isArray(ct)) {
		return ct.flatMap((e, i) => {
			const t = e !== null && typeof e === "object" ? (e as Record<string, unknown>).template : undefined;
			if (typeof t === "string") return checkChatTemplate(t, `$.chat_template[${i}].template`);
			return [unknownTemplate(`$.chat_template[${i}]`)];
		});
	}
	return [unknownTemplate("$.chat_template")];
}

/** A template in a shape the loaders may still accept in some version: not understood, so not safe. */
const unknownTemplate = (location: string): Finding => ({
	id: "template-unparsable",
	severity: "high",
	message: "chat_template in an unknown shape (not a string or a list of {name, template}): not checked, so not safe",
	location,
});

async function scanJson(source: ByteSource, what: string): Promise<ScanResult> {
	const buf = await readAll(source);
	if (buf === undefined) return { findings: [], malformed: `${what}: larger than ${MAX_JSON} bytes` };
	const parsed = parseJson(buf, what);
	if ("malformed" in parsed) return { findings: [], malformed: parsed.malformed };
	const findings = [...remoteCodeFindings(parsed.value), ...chatTemplateFindings(parsed.value)];
	if (parsed.value === null || typeof parsed.value !== "object" || Array.isArray(parsed.value))
		return { findings, malformed: `${what}: top level is not a JSON object` };
	return { findings };
}

const isTokenizerConfig = (name: string) =>
	base(name) === "tokenizer_config.json" || base(name) === "chat_template.json";

/** `config.json` and sibling `*config.json` files read by transformers' and sentence-transformers' loaders. */
export const hfConfigScanner: Scanner = {
	format: "hf-config",
	detect(_head: Buffer, name: string): boolean {
		const b = base(name);
		// config_sentence_transformers.json is the one config whose name does not end in config.json
		return (b.endsWith("config.json") || b === "config_sentence_transformers.json") && !isTokenizerConfig(name);
	},
	scan({ source, name }): Promise<ScanResult> {
		return scanJson(source, base(name));
	},
};

/** `tokenizer_config.json`, `chat_template.json` and `*.jinja` chat templates. */
export const tokenizerConfigScanner: Scanner = {
	format: "hf-tokenizer-config",
	detect(_head: Buffer, name: string): boolean {
		return isTokenizerConfig(name) || base(name).endsWith(".jinja");
	},
	async scan({ source, name }): Promise<ScanResult> {
		if (base(name).endsWith(".jinja")) {
			const buf = await readAll(source);
			if (buf === undefined) return { findings: [], malformed: `${base(name)}: larger than ${MAX_JSON} bytes` };
			const text = utf8(buf);
			if (text === undefined) return { findings: [], malformed: `${base(name)}: not UTF-8` };
			const findings = checkChatTemplate(text, name);
			const unparsable = findings.find((f) => f.id === "template-unparsable");
			return unparsable === undefined ? { findings } : { findings, malformed: unparsable.message };
		}
		return scanJson(source, base(name));
	},
};

/**
 * sentence-transformers' own module classes: `modules.json` types the library ships. Its loader
 * imports `type` with importlib (falling back to the repository's Python), so any other module
 * path runs code that is not the library's.
 */
const ST_MODULE_TYPE =
	/^sentence_transformers\.(?:models|sparse_encoder\.models|cross_encoder\.models)\.[A-Z][A-Za-z0-9]*$/;

/** A module `path` that leaves the model directory (absolute, a drive, `..`): its files are loaded from elsewhere. */
function escapes(path: string): boolean {
	if (path.startsWith("/") || path.startsWith("\\") || /^[A-Za-z]:/.test(path) || path.includes("\0")) return true;
	return path.split(/[\\/]/).some((seg) => seg === "..");
}

/** sentence-transformers `modules.json`: the modules `SentenceTransformer(path)` imports and loads. */
export const sentenceTransformersModulesScanner: Scanner = {
	format: "hf-config",
	detect(_head: Buffer, name: string): boolean {
		return base(name) === "modules.json";
	},
	async scan({ source, name }): Promise<ScanResult> {
		const what = base(name);
		const buf = await readAll(source);
		if (buf === undefined) return { findings: [], malformed: `${what}: larger than ${MAX_JSON} bytes` };
		const parsed = parseJson(buf, what);
		if ("malformed" in parsed) return { findings: [], malformed: parsed.malformed };
		const findings: Finding[] = [];
		if (!Array.isArray(parsed.value)) return { findings, malformed: `${what}: top level is not a JSON array` };
		parsed.value.slice(0, 10_000).forEach((m, i) => {
			if (findings.length >= MAX_FINDINGS) return;
			const at = `$[${i}]`;
			if (m === null || typeof m !== "object" || Array.isArray(m)) {
				findings.push(remote("module entry is not an object: what it loads cannot be told", at));
				return;
			}
			const { type, path } = m as Record<string, unknown>;
			if (typeof type !== "string")
				findings.push(remote("module without a string type: what it imports cannot be told", `${at}.type`));
			else if (!ST_MODULE_TYPE.test(type))
				findings.push(
					remote(
						`module type ${JSON.stringify(type).slice(0, 120)} is not a sentence-transformers module: loading imports it (trust_remote_code or an installed package runs its code)`,
						`${at}.type`,
					),
				);
			if (path !== undefined && typeof path !== "string")
				findings.push(remote("module path is not a string: where it loads from cannot be told", `${at}.path`));
			else if (typeof path === "string" && escapes(path))
				findings.push({
					id: "module-path-escape",
					severity: "high",
					message: `module path ${JSON.stringify(path).slice(0, 120)} leaves the model directory: its files are loaded from elsewhere`,
					location: `${at}.path`,
				});
		});
		return { findings };
	},
};

/** Any `*.py` in a model repository: only there to be imported by `trust_remote_code=True`. */
export const pythonFileScanner: Scanner = {
	format: "python",
	detect(_head: Buffer, name: string): boolean {
		// By name: transformers imports `<module>.py` named in auto_map, whatever it contains.
		return name.endsWith(".py");
	},
	async scan({ name }): Promise<ScanResult> {
		return {
			findings: [
				{
					id: "remote-code",
					severity: "high",
					message: "Python file in the model: loading needs trust_remote_code=True: arbitrary code",
					location: name,
				},
			],
		};
	},
};
