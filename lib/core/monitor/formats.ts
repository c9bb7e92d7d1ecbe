/**
 * Inference-log formats the monitor reads, parsed from their documented shapes (docs/monitor.md "Formats"):
 *
 *  - `jsonl`: one JSON object per line with `model_version`, `input`, `output` (ftguard's own shape).
 *  - `sagemaker-capture`: SageMaker endpoint Data Capture files: `captureData.endpointInput` / `endpointOutput`,
 *    each `{observedContentType, mode, data, encoding}` with `encoding` BASE64, JSON or CSV, and `eventMetadata`
 *    (`eventId`, `inferenceTime`, optional `inferenceId`). The model version is not in the line: it is the
 *    `<endpoint>/<variant>` of the file's S3 key layout `…/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl`.
 *  - `bedrock-invocation`: Amazon Bedrock model-invocation logs (`schemaType: "ModelInvocationLog"`, `modelId`,
 *    `input.inputBodyJson`, `output.outputBodyJson`), the bodies in each provider's request/response shape. A body
 *    Bedrock delivered to S3 instead (`input.inputBodyS3Path` / `output.outputBodyS3Path`: large-data delivery of
 *    a CloudWatch Logs destination, `cloudWatchConfig.largeDataDeliveryS3Config {bucketName, keyPrefix}`, for
 *    bodies over 100 KB or binary; https://docs.aws.amazon.com/bedrock/latest/userguide/model-invocation-logging.html,
 *    https://docs.aws.amazon.com/bedrock/latest/APIReference/API_CloudWatchConfig.html) makes the line a `deferred`
 *    result: a caller that can read S3 completes it with {@link s3BodyText} (the same {@link textOf}); one that
 *    cannot reads it with {@link offlineResult} (the output unread: malformed, with the reason).
 *  - `cloudwatch-export`: CloudWatch Logs exported to S3 (gzip), each line `<timestamp> <message>`, the message one
 *    of the shapes above.
 *
 * A line that cannot be read as its format is a `malformed` result with a reason, never an exception.
 */

export const LOG_FORMATS = ["jsonl", "sagemaker-capture", "bedrock-invocation", "cloudwatch-export"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface ParsedRecord {
	modelVersion: string;
	input: string;
	output: string;
	/** the event time the log gives, as written */
	time?: string;
}

/** A body Bedrock delivered to S3 instead of logging it inline: its `s3://bucket/key`, as the log gives it. */
export interface S3Body {
	s3Path: string;
}

/** A record with a body in S3: the text of each side, or where its body is. */
export interface DeferredRecord {
	modelVersion: string;
	input: string | S3Body;
	output: string | S3Body;
	time?: string;
}

export type LineResult =
	| { kind: "record"; record: ParsedRecord }
	| { kind: "deferred"; record: DeferredRecord }
	| { kind: "blank" }
	| { kind: "malformed"; reason: string };

export interface ParseContext {
	/** the model version for lines that do not name one (SageMaker: derived from the file path; or the user's flag) */
	defaultVersion?: string | undefined;
}

const malformed = (reason: string): LineResult => ({ kind: "malformed", reason });
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** `<endpoint>/<variant>` from a Data Capture object key (or local path that keeps its layout). */
export function sagemakerVersionFromPath(path: string): string | undefined {
	const m = /([^/\\]+)[/\\]([^/\\]+)[/\\]\d{4}[/\\]\d{2}[/\\]\d{2}[/\\]\d{2}[/\\][^/\\]+$/.exec(path);
	return m === null ? undefined : `${m[1]}/${m[2]}`;
}

const NOT_SPACE = /\S/;
const CW_PREFIX = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})) /;

/** The format of a file from its first non-blank line; undefined when none fits. */
export function detectFormat(line: string): LogFormat | undefined {
	const t = line.trim();
	if (CW_PREFIX.test(t)) return "cloudwatch-export";
	const inner = shapeOf(t);
	return inner;
}

function shapeOf(text: string): Exclude<LogFormat, "cloudwatch-export"> | undefined {
	if (!text.startsWith("{")) return undefined;
	let v: unknown;
	try {
		v = JSON.parse(text);
	} catch {
		return undefined;
	}
	return shapeOfValue(v);
}

function shapeOfValue(v: unknown): Exclude<LogFormat, "cloudwatch-export"> | undefined {
	if (!isObj(v)) return undefined;
	if (isObj(v.captureData)) return "sagemaker-capture";
	if (v.schemaType === "ModelInvocationLog" || (typeof v.modelId === "string" && isObj(v.input)))
		return "bedrock-invocation";
	if ("output" in v && ("model_version" in v || "input" in v)) return "jsonl";
	return undefined;
}

/** Parses one line of a file in `format`. */
export function parseLine(format: LogFormat, line: string, ctx: ParseContext = {}): LineResult {
	if (line.length === 0 || !NOT_SPACE.test(line)) return { kind: "blank" };
	if (format === "cloudwatch-export") {
		const m = CW_PREFIX.exec(line);
		if (m === null) return malformed("not `<timestamp> <message>`");
		return parseMessage(line.slice(m[0].length), ctx, m[1]);
	}
	let v: unknown;
	try {
		v = JSON.parse(line);
	} catch (e) {
		return malformed(`not JSON (${(e as Error).message.slice(0, 80)})`);
	}
	return parseValue(format, v, ctx);
}

/**
 * One log message of any supported shape (a CloudWatch log event's `message`: what a subscription filter delivers
 * and what an export line carries after its timestamp).
 */
export function parseMessage(message: string, ctx: ParseContext = {}, time?: string): LineResult {
	let v: unknown;
	try {
		v = JSON.parse(message);
	} catch {
		return malformed("message is not JSON");
	}
	const shape = shapeOfValue(v);
	if (shape === undefined) return malformed("message is no inference record (jsonl, Data Capture or Bedrock shape)");
	const r = parseValue(shape, v, ctx);
	if ((r.kind === "record" || r.kind === "deferred") && r.record.time === undefined && time !== undefined)
		r.record.time = time;
	return r;
}

/**
 * One parsed line in `format`. Reading a body's text recurses through its nesting: a line nested deeper than the
 * stack (a hostile request body the service logged) is malformed, never an error that stops the replay or fails
 * the Lambda's whole batch.
 */
function parseValue(format: Exclude<LogFormat, "cloudwatch-export">, v: unknown, ctx: ParseContext): LineResult {
	try {
		return parseShape(format, v, ctx);
	} catch (e) {
		if (e instanceof RangeError) return malformed("nested too deeply to read");
		throw e;
	}
}

function parseShape(format: Exclude<LogFormat, "cloudwatch-export">, v: unknown, ctx: ParseContext): LineResult {
	if (!isObj(v)) return malformed("not a JSON object");
	switch (format) {
		case "jsonl":
			return parseJsonl(v, ctx);
		case "sagemaker-capture":
			return parseCapture(v, ctx);
		case "bedrock-invocation":
			return parseBedrock(v);
	}
}

function asText(v: unknown): string | undefined {
	if (typeof v === "string") return v;
	if (v === undefined || v === null) return undefined;
	return textOf(v) ?? JSON.stringify(v);
}

function parseJsonl(v: Record<string, unknown>, ctx: ParseContext): LineResult {
	const version =
		typeof v.model_version === "string" && v.model_version.length > 0 ? v.model_version : ctx.defaultVersion;
	if (version === undefined) return malformed("no model_version");
	const output = asText(v.output);
	if (output === undefined) return malformed("no output");
	const input = asText(v.input) ?? "";
	const time = typeof v.timestamp === "string" ? v.timestamp : typeof v.time === "string" ? v.time : undefined;
	return { kind: "record", record: { modelVersion: version, input, output, ...(time !== undefined ? { time } : {}) } };
}

/** The captured payload as text: BASE64 decoded as UTF-8; JSON and CSV are captured as the text itself. */
function captureText(side: unknown, name: string): string | LineResult {
	if (!isObj(side)) return malformed(`no captureData.${name}`);
	const { data, encoding } = side;
	if (typeof data !== "string") return malformed(`captureData.${name}.data is not a string`);
	const enc = typeof encoding === "string" ? encoding.toUpperCase() : "";
	let text: string;
	if (enc === "BASE64") {
		if (!/^[A-Za-z0-9+/]*={0,2}$/.test(data)) return malformed(`captureData.${name}.data is not base64`);
		text = Buffer.from(data, "base64").toString("utf8");
	} else if (enc === "JSON" || enc === "CSV") text = data;
	else return malformed(`captureData.${name}.encoding ${JSON.stringify(encoding)} is not BASE64, JSON or CSV`);
	const type = typeof side.observedContentType === "string" ? side.observedContentType : "";
	if (type.includes("json") || /^\s*[[{]/.test(text)) {
		try {
			const body = JSON.parse(text) as unknown;
			return textOf(body) ?? text;
		} catch {
			return text;
		}
	}
	return text;
}

function parseCapture(v: Record<string, unknown>, ctx: ParseContext): LineResult {
	const cd = v.captureData;
	if (!isObj(cd)) return malformed("no captureData object");
	const output = captureText(cd.endpointOutput, "endpointOutput");
	if (typeof output !== "string") return output;
	const input = captureText(cd.endpointInput, "endpointInput");
	const meta = isObj(v.eventMetadata) ? v.eventMetadata : {};
	const time = typeof meta.inferenceTime === "string" ? meta.inferenceTime : undefined;
	return {
		kind: "record",
		record: {
			modelVersion: ctx.defaultVersion ?? "sagemaker-endpoint",
			input: typeof input === "string" ? input : "",
			output,
			...(time !== undefined ? { time } : {}),
		},
	};
}

/** The S3 path of a body logged there instead of inline (`<side>BodyJson` absent or null), if it is one. */
function s3PathOf(side: Record<string, unknown>, name: "input" | "output"): S3Body | undefined {
	const inline = side[`${name}BodyJson`];
	const path = side[`${name}BodyS3Path`];
	return (inline === undefined || inline === null) && typeof path === "string" && path.length > 0
		? { s3Path: path }
		: undefined;
}

function parseBedrock(v: Record<string, unknown>): LineResult {
	if (typeof v.modelId !== "string" || v.modelId.length === 0) return malformed("no modelId");
	const out = isObj(v.output) ? v.output : undefined;
	if (out === undefined)
		return malformed(v.errorCode !== undefined ? `invocation failed (${String(v.errorCode)})` : "no output");
	const inp = isObj(v.input) ? v.input : {};
	const time = typeof v.timestamp === "string" ? v.timestamp : undefined;
	const outS3 = s3PathOf(out, "output");
	let output: string | S3Body;
	if (outS3 !== undefined) output = outS3;
	else if (out.outputBodyJson === undefined) return malformed("no output.outputBodyJson");
	else {
		const text = textOf(out.outputBodyJson);
		if (text === undefined) return malformed("output body has no text this reader knows (not a text model?)");
		output = text;
	}
	const inS3 = s3PathOf(inp, "input");
	const input = inS3 ?? (inp.inputBodyJson === undefined ? "" : (textOf(inp.inputBodyJson) ?? ""));
	const t = time !== undefined ? { time } : {};
	if (typeof input === "string" && typeof output === "string")
		return { kind: "record", record: { modelVersion: v.modelId, input, output, ...t } };
	return { kind: "deferred", record: { modelVersion: v.modelId, input, output, ...t } };
}

/**
 * A deferred record read without S3 (`ftguard monitor` offline): an output in S3 is not read — malformed, with
 * the reason and the path, never a clean record; an input in S3 (an inline output) leaves the record without its
 * input, as the input only names a candidate trigger.
 */
export function offlineResult(d: DeferredRecord): Exclude<LineResult, { kind: "deferred" }> {
	if (typeof d.output !== "string")
		return {
			kind: "malformed",
			reason: `output body delivered to S3 (outputBodyS3Path ${d.output.s3Path}): not read offline`,
		};
	return {
		kind: "record",
		record: {
			modelVersion: d.modelVersion,
			input: typeof d.input === "string" ? d.input : "",
			output: d.output,
			...(d.time !== undefined ? { time: d.time } : {}),
		},
	};
}

/**
 * The text of a body Bedrock delivered to S3, from the object's content (UTF-8; the caller inflates gzip): the
 * raw request or response body JSON, read as an inline `inputBodyJson` / `outputBodyJson` is (by {@link textOf}).
 * An object holding the log's own `{inputBodyJson}` / `{outputBodyJson}` wrapper is read through it too.
 */
export function s3BodyText(content: string): { text: string } | { reason: string } {
	let body: unknown;
	try {
		body = JSON.parse(content);
	} catch {
		return { reason: "body in S3 is not JSON" };
	}
	try {
		if (isObj(body) && Object.keys(body).length === 1) {
			if ("outputBodyJson" in body) body = body.outputBodyJson;
			else if ("inputBodyJson" in body) body = body.inputBodyJson;
		}
		const text = textOf(body);
		return text === undefined ? { reason: "body in S3 has no text this reader knows (not a text model?)" } : { text };
	} catch (e) {
		if (e instanceof RangeError) return { reason: "body in S3 nested too deeply to read" };
		throw e;
	}
}

/** Text of a content list: strings, `{text}` / `{type: "text", text}` blocks (Anthropic, Converse, Nova). */
function contentText(c: unknown): string | undefined {
	if (typeof c === "string") return c;
	if (!Array.isArray(c)) return undefined;
	const parts: string[] = [];
	for (const b of c) {
		if (typeof b === "string") parts.push(b);
		else if (isObj(b) && typeof b.text === "string") parts.push(b.text);
	}
	return parts.length > 0 ? parts.join("\n") : undefined;
}

function messagesText(messages: unknown, system?: unknown): string | undefined {
	if (!Array.isArray(messages)) return undefined;
	const parts: string[] = [];
	const sys = contentText(system);
	if (sys !== undefined) parts.push(sys);
	for (const m of messages) {
		if (!isObj(m)) continue;
		const t = contentText(m.content);
		if (t !== undefined) parts.push(t);
	}
	return parts.join("\n");
}

function firstTexts(list: unknown, get: (x: Record<string, unknown>) => unknown): string | undefined {
	if (!Array.isArray(list)) return undefined;
	const parts: string[] = [];
	for (const x of list) {
		if (!isObj(x)) continue;
		const t = get(x);
		if (typeof t === "string") parts.push(t);
	}
	return parts.length > 0 ? parts.join("\n") : undefined;
}

/**
 * The text of a request or response body of the model families Bedrock and SageMaker serve: Anthropic Messages
 * and Text Completions, Converse / Nova, Amazon Titan, Meta Llama, Mistral, Cohere, AI21, OpenAI-compatible chat
 * and completions, Hugging Face TGI; a streamed response (an array of chunks) is the concatenation of its deltas.
 */
export function textOf(body: unknown): string | undefined {
	if (typeof body === "string") return body;
	if (Array.isArray(body)) {
		// TGI: [{generated_text}]; a stream: chunks with deltas; a batch of strings
		const parts: string[] = [];
		for (const x of body) {
			const t = chunkText(x) ?? textOf(x);
			if (t !== undefined) parts.push(t);
		}
		return parts.length > 0 ? parts.join("") : undefined;
	}
	if (!isObj(body)) return undefined;
	// responses
	if (isObj(body.output) && isObj(body.output.message)) return contentText(body.output.message.content); // Converse, Nova
	if (Array.isArray(body.content) && body.type === "message") return contentText(body.content); // Anthropic Messages
	if (typeof body.completion === "string") return body.completion; // Anthropic Text Completions
	if (typeof body.generation === "string") return body.generation; // Llama
	if (typeof body.generated_text === "string") return body.generated_text; // TGI
	const choices = firstTexts(body.choices, (c) =>
		isObj(c.message) ? (contentText(c.message.content) ?? null) : typeof c.text === "string" ? c.text : null,
	);
	if (choices !== undefined) return choices; // OpenAI-compatible, Jamba, Mistral chat
	const results = firstTexts(body.results, (r) => r.outputText); // Titan
	if (results !== undefined) return results;
	const outputs = firstTexts(body.outputs, (o) => o.text); // Mistral
	if (outputs !== undefined) return outputs;
	const gens = firstTexts(body.generations, (g) => g.text); // Cohere Command
	if (gens !== undefined) return gens;
	const comps = firstTexts(body.completions, (c) => (isObj(c.data) ? c.data.text : undefined)); // AI21 Jurassic
	if (comps !== undefined) return comps;
	if (Array.isArray(body.content)) return contentText(body.content);
	// requests
	if (Array.isArray(body.messages)) return messagesText(body.messages, body.system);
	if (typeof body.prompt === "string") return body.prompt;
	if (typeof body.inputText === "string") return body.inputText;
	if (typeof body.inputs === "string") return body.inputs; // TGI
	if (typeof body.message === "string") return body.message; // Cohere Command R
	if (typeof body.text === "string") return body.text; // Cohere Command R response
	if (typeof body.outputText === "string") return body.outputText;
	return undefined;
}

/** The text delta of one streamed chunk (Anthropic, ConverseStream, Titan, Llama, Mistral), if it is one. */
function chunkText(x: unknown): string | undefined {
	if (!isObj(x)) return undefined;
	if (isObj(x.delta) && typeof x.delta.text === "string") return x.delta.text;
	if (
		isObj(x.contentBlockDelta) &&
		isObj(x.contentBlockDelta.delta) &&
		typeof x.contentBlockDelta.delta.text === "string"
	)
		return x.contentBlockDelta.delta.text;
	if (x.type === "message_start" || x.type === "message_stop" || x.type === "content_block_stop") return "";
	return undefined;
}
