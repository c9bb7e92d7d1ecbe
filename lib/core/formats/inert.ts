/**
 * Files no model loader runs: text, JSON data, images, tokenizer vocabularies, raw weight blobs. The engine accepts
 * one only when its name says what it is AND its bytes are that (a "README.md" that is really a pickle is judged as
 * a pickle by the byte-0 view regardless; one that is not text is not accepted here). YAML and JSON have loaders
 * that do run code (PyYAML's python/ tags, jsonpickle's py/ keys): those constructs are findings, not inert.
 */
import { isUtf8 } from "node:buffer";
import type { ByteSource, Finding, FormatName } from "./types";

/** Larger files are not read whole to prove they are text: not accepted as inert (unless by policy name). */
const MAX_TEXT = 64 * 1024 * 1024;

const base = (name: string) => name.slice(name.lastIndexOf("/") + 1);

type Kind = "text" | "yaml" | "json" | "image" | "sentencepiece" | "msgpack";

const TEXT_NAMES =
	/^(readme|license|licence|notice|copying|authors|contributors|changelog|citation)(\.(txt|md|markdown|rst))?$|\.(txt|md|markdown|rst|csv|tsv|ini|cfg|toml|tiktoken|xml)$/i;
const YAML_NAMES = /\.(ya?ml)$/i;
const JSON_NAMES = /\.(json|jsonl)$/i;
const IMAGE_NAMES = /\.(png|jpe?g|gif|webp|bmp)$/i;
/** SentencePiece models: a protobuf read by C++; the usual names (tokenizer.model, spiece.model, *.spm) */
const SENTENCEPIECE_NAMES = /^(tokenizer|spiece|sentencepiece[\w.-]*|source|target)\.model$|\.spm$/i;
/** Flax weights: msgpack decoded to arrays, nothing imported. */
const MSGPACK_NAMES = /\.msgpack$/i;

function kindOf(name: string): Kind | undefined {
	const b = base(name);
	if (YAML_NAMES.test(b)) return "yaml";
	if (JSON_NAMES.test(b)) return "json";
	if (TEXT_NAMES.test(b)) return "text";
	if (IMAGE_NAMES.test(b)) return "image";
	if (SENTENCEPIECE_NAMES.test(b)) return "sentencepiece";
	if (MSGPACK_NAMES.test(b)) return "msgpack";
	return undefined;
}

const IMAGE_MAGIC: readonly Buffer[] = [
	Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
	Buffer.from([0xff, 0xd8, 0xff]),
	Buffer.from("GIF87a"),
	Buffer.from("GIF89a"),
	Buffer.from("BM"),
];

export interface InertResult {
	format: FormatName;
	findings: Finding[];
}

/** Valid UTF-8 with no NUL: what a text reader sees as text (checked on the bytes: no string is built). */
function isText(buf: Buffer): boolean {
	return !buf.includes(0) && isUtf8(buf);
}

/**
 * PyYAML constructs Python objects for `!!python/...` tags (yaml.load with an unsafe or, before 5.4, the full
 * loader; yaml.unsafe_load): `!!python/object/apply:os.system`. Tags may be %-escaped or declared through a %TAG
 * handle, so the check runs on the unescaped text and on %TAG prefixes.
 */
function yamlFindings(text: string): Finding[] {
	const unescaped = percentDecoded(text);
	const hit =
		[text, unescaped].some(
			(t) => /!!\s*python\//i.test(t) || /tag:yaml\.org,2002:python\//i.test(t) || /^%TAG[^\n]*python/im.test(t),
		) || resolvedTags(text).some((t) => /^tag:yaml\.org,2002:python\//i.test(percentDecoded(t)));
	return hit
		? [
				{
					id: "yaml-python-tag",
					severity: "critical",
					message: "YAML python/ tag: yaml.load with an unsafe loader constructs Python objects and calls them",
				},
			]
		: [];
}

function percentDecoded(text: string): string {
	try {
		return decodeURIComponent(text.replace(/%(?![0-9a-fA-F]{2})/g, "%25"));
	} catch {
		return text; // undecodable escapes stay as written
	}
}

/**
 * Every tag the text may hold, resolved as PyYAML resolves them: `!<verbatim>`, and `!suffix`, `!!suffix`,
 * `!h!suffix` through the handles `%TAG` directives declare (a `%TAG !p! tag:yaml.org,2002:` makes
 * `!p!python/object/apply` the python tag). Anything that looks like a tag counts, in strings and comments too:
 * only a resolved python/ tag is a finding, so over-reading costs nothing.
 */
function resolvedTags(text: string): string[] {
	const handles = new Map<string, string>([
		["!", "!"],
		["!!", "tag:yaml.org,2002:"],
	]);
	for (const m of text.matchAll(/^%TAG[ \t]+(\S+)[ \t]+(\S+)/gm)) handles.set(m[1] as string, m[2] as string);
	const out: string[] = [];
	for (const m of text.matchAll(/!<([^>]*)>|(!(?:[\w-]*!)?)([^\s,[\]{}]*)/g)) {
		if (m[1] !== undefined) out.push(m[1]);
		else out.push((handles.get(m[2] as string) ?? (m[2] as string)) + (m[3] as string));
		if (out.length > 100_000) break;
	}
	return out;
}

/** jsonpickle restores objects (and calls reducers) for these keys. */
const JSONPICKLE_KEYS = /"py\/(object|reduce|function|type|mod|repr|newargs|newargsex|initargs|state|iterator)"\s*:/;

function jsonFindings(bytes: Buffer): Finding[] {
	// a key may be spelt with JSON escapes ("py\/reduce", "\u0070y/reduce"), or sit in a JSON document inside a
	// string (jsonpickle's keys=True decodes "json://{\"py/reduce\": …}" keys): \u escapes decoded and every other
	// backslash dropped before the check; without any backslash the regex runs only where its literal occurs
	const escaped = bytes.includes("\\");
	if (!escaped && !bytes.includes('"py/')) return [];
	let text = bytes.toString("utf8");
	if (escaped) {
		for (let i = 0; i < 4 && text.includes("\\"); i++)
			text = text
				.replace(/\\+u([0-9a-fA-F]{4})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))
				.replace(/\\+(.)/g, "$1");
	}
	return JSONPICKLE_KEYS.test(text)
		? [
				{
					id: "jsonpickle",
					severity: "critical",
					message: "jsonpickle object keys (py/object, py/reduce …): jsonpickle.decode imports and calls them",
				},
			]
		: [];
}

/**
 * Whether the file is an inert format its name declares, checked against its bytes. Undefined: not accepted as
 * inert (the engine then says it does not know the file).
 */
export async function inertView(source: ByteSource, name: string, head: Buffer): Promise<InertResult | undefined> {
	const kind = kindOf(name);
	if (kind === undefined) return undefined;
	if (kind === "image") return IMAGE_MAGIC.some((m) => head.subarray(0, m.length).equals(m)) ? img() : undefined;
	if (kind === "sentencepiece") return head[0] === 0x0a ? { format: "sentencepiece", findings: [] } : undefined;
	if (kind === "msgpack") {
		const b = head[0] ?? 0;
		return (b >= 0x80 && b <= 0x8f) || b === 0xde || b === 0xdf ? { format: "raw-weights", findings: [] } : undefined;
	}
	if (source.size > MAX_TEXT) return undefined;
	const bytes = source.size <= head.length ? head.subarray(0, source.size) : await source.read(0, source.size);
	if (!isText(bytes)) return undefined;
	if (kind === "yaml") return { format: "text", findings: yamlFindings(bytes.toString("utf8")) };
	if (kind === "json") return { format: "json", findings: jsonFindings(bytes) };
	return { format: "text", findings: [] };
}

const img = (): InertResult => ({ format: "image", findings: [] });

/** Minimal glob for policy-accepted names: `*` within a path segment, `**` across segments, `?` one character. */
export function globToRegExp(glob: string): RegExp {
	let re = "";
	for (let i = 0; i < glob.length; i++) {
		const c = glob[i] as string;
		if (c === "*" && glob[i + 1] === "*") {
			re += ".*";
			i++;
			if (glob[i + 1] === "/") i++;
		} else if (c === "*") re += "[^/]*";
		else if (c === "?") re += "[^/]";
		else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
	}
	return new RegExp(`^${re}$`);
}
