/**
 * Hugging Face repository layout checks.
 *
 * - `config.json` (and the other `*config.json` files transformers reads through
 *   `AutoConfig` / `AutoProcessor`): an `auto_map` entry makes `from_pretrained`
 *   import Python from the repository, which only needs `trust_remote_code=True`
 *   (often passed by habit) → `remote-code` (high). `trust_remote_code: true`
 *   anywhere in a config is the same intent, written down.
 * - `tokenizer_config.json` / `chat_template.json`: `auto_map` likewise;
 *   `chat_template` (a string, or a list of `{name, template}`) is Jinja and is
 *   checked for template-injection gadgets. `chat_template.jinja` files (newer
 *   transformers) are checked the same way.
 * - Any `*.py` file: it exists to be imported by `trust_remote_code` → `remote-code`.
 *
 * These files are claimed by name: the name is exactly what the loader uses to
 * find them, so a renamed file is not loaded either (the content of a JSON
 * file says nothing about which role it plays).
 */
import { checkChatTemplate } from "./chat-template";
import type { ByteSource, Finding, Scanner, ScanResult } from "./types";

/** JSON configs larger than this are not configs: reported malformed instead of parsed. */
const MAX_JSON = 64 * 1024 * 1024;
/** Depth bound for walking parsed JSON (JSON.parse itself handles deep nesting, we must not recurse without end). */
const MAX_WALK_DEPTH = 256;

const base = (name: string) => name.slice(name.lastIndexOf("/") + 1);

async function readAll(source: ByteSource): Promise<Buffer | undefined> {
	if (source.size > MAX_JSON) return undefined;
	return source.read(0, source.size);
}

/** Parses JSON text; returns the failure as a `malformed` rule. */
function parseJson(buf: Buffer, what: string): { value: unknown } | { malformed: string } {
	let text: string;
	try {
		text = new TextDecoder("utf-8", { fatal: true }).decode(buf);
	} catch {
		return { malformed: `${what}: not UTF-8` };
	}
	try {
		return { value: JSON.parse(text) as unknown };
	} catch (e) {
		return { malformed: `${what}: invalid JSON (${e instanceof Error ? e.message.split("\n")[0] : "parse error"})` };
	}
}

const pathKey = (p: string, k: string) =>
	/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? `${p}.${k}` : `${p}[${JSON.stringify(k)}]`;

/** Finds every `auto_map` and `trust_remote_code: true`, at any depth (nested sub-configs carry them too). */
function remoteCodeFindings(root: unknown): Finding[] {
	const out: Finding[] = [];
	const walk = (v: unknown, path: string, depth: number) => {
		if (depth > MAX_WALK_DEPTH || out.length >= 100 || v === null || typeof v !== "object") return;
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
						: [];
				out.push({
					id: "remote-code",
					severity: "high",
					message: `auto_map${targets.length > 0 ? ` (${targets.join(", ")})` : ""}: loading needs trust_remote_code=True and runs Python from the repository`,
					location: p,
				});
			} else if (k === "trust_remote_code" && x === true) {
				out.push({
					id: "remote-code",
					severity: "high",
					message: "trust_remote_code: true: the config asks loaders to run Python from the repository",
					location: p,
				});
			}
			walk(x, p, depth + 1);
		}
	};
	walk(root, "$", 0);
	return out;
}

function chatTemplateFindings(root: unknown): Finding[] {
	if (root === null || typeof root !== "object" || Array.isArray(root)) return [];
	const ct = (root as Record<string, unknown>).chat_template;
	if (typeof ct === "string") return checkChatTemplate(ct, "$.chat_template");
	if (Array.isArray(ct)) {
		return ct.flatMap((e, i) => {
			const t = e !== null && typeof e === "object" ? (e as Record<string, unknown>).template : undefined;
			return typeof t === "string" ? checkChatTemplate(t, `$.chat_template[${i}].template`) : [];
		});
	}
	return [];
}

async function scanJson(source: ByteSource, what: string, templates: boolean): Promise<ScanResult> {
	const buf = await readAll(source);
	if (buf === undefined) return { findings: [], malformed: `${what}: larger than ${MAX_JSON} bytes` };
	const parsed = parseJson(buf, what);
	if ("malformed" in parsed) return { findings: [], malformed: parsed.malformed };
	const findings = remoteCodeFindings(parsed.value);
	if (templates) findings.push(...chatTemplateFindings(parsed.value));
	if (parsed.value === null || typeof parsed.value !== "object" || Array.isArray(parsed.value))
		return { findings, malformed: `${what}: top level is not a JSON object` };
	return { findings };
}

const isTokenizerConfig = (name: string) =>
	base(name) === "tokenizer_config.json" || base(name) === "chat_template.json";

/** `config.json` and sibling `*config.json` files read by transformers' Auto classes. */
export const hfConfigScanner: Scanner = {
	format: "hf-config",
	detect(_head: Buffer, name: string): boolean {
		const b = base(name);
		return b.endsWith("config.json") && !isTokenizerConfig(name);
	},
	scan({ source, name }): Promise<ScanResult> {
		return scanJson(source, base(name), false);
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
			return { findings: checkChatTemplate(buf.toString("utf8"), base(name)) };
		}
		return scanJson(source, base(name), true);
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
