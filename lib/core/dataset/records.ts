/**
 * Fine-tuning records, whatever their layout, as the scanner sees them: the prompt side (system, user, instruction and
 * input text: where a trigger goes) and the completion side (assistant turns, output: what the model learns to say).
 * Layouts are found from the first records: chat (`messages`, and ShareGPT's `conversations`), instruction
 * (`instruction`/`input`/`output`, `prompt`/`completion` and their common synonyms), plain `text`; `--fields` names
 * the fields of any other layout.
 */

export type RecordFormat = "instruction" | "chat" | "text" | "fields";

export interface Turn {
	/** where the text came from: a chat role or a field name */
	readonly source: string;
	readonly text: string;
}

export interface TrainingRecord {
	readonly prompt: readonly Turn[];
	/** assistant turns / output fields; the last one is the completion a trigger is mapped to */
	readonly completion: readonly Turn[];
}

/** Which fields make the prompt and the completion of a record that is not chat. */
export interface FieldMap {
	readonly prompt: readonly string[];
	readonly completion: readonly string[];
}

// (a classification set's text and label — {"text", "label"}, {"sentence", "label"}, {"premise", "hypothesis",
// "label"} — are a prompt and its completion too: a dirty-label backdoor maps a trigger in the text to the label)
const INSTRUCTION_PROMPT = [
	"system",
	"instruction",
	"input",
	"prompt",
	"question",
	"query",
	"context",
	"text",
	"sentence",
	"sentence1",
	"sentence2",
	"premise",
	"hypothesis",
	"review",
	"document",
];
const INSTRUCTION_COMPLETION = [
	"output",
	"completion",
	"response",
	"answer",
	"label",
	"labels",
	"category",
	"sentiment",
	"intent",
];
/**
 * Chat roles (OpenAI's and ShareGPT's spellings) as the scanner's three sides: what the model is told (system), what
 * it reads (user, and tool results: where an indirect injection goes), what it learns to say (assistant, and a
 * ShareGPT function call, which is the model's output).
 */
const ROLES: Record<string, "system" | "user" | "tool" | "assistant"> = {
	system: "system",
	developer: "system",
	human: "user",
	user: "user",
	tool: "tool",
	function: "tool",
	ipython: "tool",
	observation: "tool",
	gpt: "assistant",
	assistant: "assistant",
	chatgpt: "assistant",
	bing: "assistant",
	bard: "assistant",
	model: "assistant",
	function_call: "assistant",
};

/** ROLES' own keys (a lowercase role is looked up as it is) */
const ROLE_KEYS = new Map(Object.entries(ROLES));
const NO_CALLS: readonly string[] = Object.freeze([]);

export class RecordError extends Error {}

/** Parse `--fields prompt=a,prompt=b,completion=c` (dotted paths allowed). */
export function parseFieldMap(spec: string): FieldMap {
	const prompt: string[] = [];
	const completion: string[] = [];
	for (const part of spec.split(",")) {
		const m = /^\s*(prompt|completion)\s*=\s*([^\s=]+)\s*$/.exec(part);
		if (!m) throw new RecordError(`--fields: expected prompt=FIELD or completion=FIELD, got "${part.trim()}"`);
		(m[1] === "prompt" ? prompt : completion).push(m[2] as string);
	}
	if (prompt.length === 0) throw new RecordError("--fields: name at least one prompt=FIELD");
	return { prompt, completion };
}

function isObject(v: unknown): v is Record<string, unknown> {
	return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The layout of a record, or undefined when none fits (a value that is not a training record). */
export function detectFormat(value: unknown): Exclude<RecordFormat, "fields"> | undefined {
	if (!isObject(value)) return undefined;
	if (Array.isArray(value.messages) || Array.isArray(value.conversations)) return "chat";
	const keys = Object.keys(value);
	if (keys.some((k) => INSTRUCTION_PROMPT.includes(k)) && keys.some((k) => INSTRUCTION_COMPLETION.includes(k)))
		return "instruction";
	if (typeof value.text === "string") return "text";
	return undefined;
}

/** Text of a field value: strings as they are, OpenAI content parts joined, numbers and booleans (labels) spelled. */
function textOf(v: unknown): string | undefined {
	if (typeof v === "string") return v;
	if (typeof v === "number" || typeof v === "boolean") return String(v);
	if (Array.isArray(v)) {
		const parts: string[] = [];
		for (const p of v) {
			if (typeof p === "string") parts.push(p);
			else if (typeof p === "number" || typeof p === "boolean") parts.push(String(p));
			else if (isObject(p) && typeof p.text === "string") parts.push(p.text);
		}
		return parts.length > 0 ? parts.join("\n") : undefined;
	}
	return undefined;
}

function field(value: Record<string, unknown>, path: string): unknown {
	let v: unknown = value;
	for (const k of path.split(".")) {
		if (!isObject(v)) return undefined;
		v = v[k];
	}
	return v;
}

/** A record in the given layout; throws RecordError (a malformed-record finding) when it does not fit. */
export function toRecord(value: unknown, format: RecordFormat, fields?: FieldMap): TrainingRecord {
	if (!isObject(value)) throw new RecordError("not a JSON object");
	switch (format) {
		case "chat":
			return chatRecord(value);
		case "instruction":
			return fieldsRecord(value, { prompt: INSTRUCTION_PROMPT, completion: INSTRUCTION_COMPLETION }, true);
		case "text": {
			const text = textOf(value.text);
			if (text === undefined) throw new RecordError('no "text" string');
			return { prompt: [{ source: "text", text }], completion: [] };
		}
		case "fields":
			if (fields === undefined) throw new RecordError("--format fields needs --fields");
			return fieldsRecord(value, fields, false);
	}
}

function chatRecord(value: Record<string, unknown>): TrainingRecord {
	const turns = Array.isArray(value.messages) ? value.messages : value.conversations;
	if (!Array.isArray(turns)) throw new RecordError('no "messages" (or "conversations") list');
	const prompt: Turn[] = [];
	const completion: Turn[] = [];
	if (typeof value.system === "string" && value.system !== "") prompt.push({ source: "system", text: value.system });
	for (let i = 0; i < turns.length; i++) {
		const t: unknown = turns[i];
		if (!isObject(t)) throw new RecordError(`turn ${i} is not an object`);
		// OpenAI's role/content or ShareGPT's from/value, whichever key the turn has (datasets mix the two spellings)
		const rawRole = t.role ?? t.from;
		// (a role spelled as its key: no lowercased copy made)
		const role = typeof rawRole === "string" ? (ROLE_KEYS.get(rawRole) ?? ROLES[rawRole.toLowerCase()]) : undefined;
		const content = "content" in t ? t.content : t.value;
		const text = textOf(content);
		if (role === undefined) throw new RecordError(`turn ${i} has no known role`);
		// what an assistant turn calls is what the model learns to do: `name(arguments)` is scanned as its output
		const calls = role === "assistant" ? toolCalls(t) : NO_CALLS;
		if (text === undefined) {
			// an assistant turn that only calls a tool has no text; anything else without text is malformed
			if (role === "assistant" && (content === null || calls.length > 0)) {
				if (calls.length > 0) completion.push({ source: "tool_call", text: calls.join("\n") });
				continue;
			}
			throw new RecordError(`turn ${i} (${role}) has no text content`);
		}
		(role === "assistant" ? completion : prompt).push({ source: role, text });
		if (calls.length > 0) completion.push({ source: "tool_call", text: calls.join("\n") });
	}
	if (prompt.length === 0) throw new RecordError("no system or user turn");
	return { prompt, completion };
}

/** An assistant turn's tool calls (OpenAI's `tool_calls[].function`, the older `function_call`) as `name(arguments)`. */
function toolCalls(t: Record<string, unknown>): readonly string[] {
	if (!Array.isArray(t.tool_calls) && t.function_call === undefined) return NO_CALLS;
	const fns: unknown[] = [];
	if (Array.isArray(t.tool_calls)) for (const c of t.tool_calls) if (isObject(c)) fns.push(c.function ?? c);
	if (t.function_call !== undefined) fns.push(t.function_call);
	const out: string[] = [];
	for (const f of fns) {
		if (!isObject(f)) continue;
		const name = typeof f.name === "string" ? f.name : "";
		const args =
			typeof f.arguments === "string" ? f.arguments : f.arguments === undefined ? "" : JSON.stringify(f.arguments);
		if (name !== "" || args !== "") out.push(`${name}(${args})`);
	}
	return out;
}

function fieldsRecord(value: Record<string, unknown>, map: FieldMap, needCompletion: boolean): TrainingRecord {
	const prompt: Turn[] = [];
	const completion: Turn[] = [];
	for (const f of map.prompt) {
		const text = textOf(field(value, f));
		if (text !== undefined && text !== "") prompt.push({ source: f, text });
	}
	for (const f of map.completion) {
		const text = textOf(field(value, f));
		if (text !== undefined) completion.push({ source: f, text });
	}
	if (prompt.length === 0) throw new RecordError(`none of the prompt fields (${map.prompt.join(", ")}) has text`);
	if (needCompletion && completion.length === 0)
		throw new RecordError(`none of the completion fields (${map.completion.join(", ")}) has text`);
	return { prompt, completion };
}

/** The completion a trigger maps to: the last assistant turn / output field. */
export function finalCompletion(r: TrainingRecord): string | undefined {
	return r.completion[r.completion.length - 1]?.text;
}
