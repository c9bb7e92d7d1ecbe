/**
 * Each log format read from a realistic sample (test/fixtures/monitor, written by make_fixtures.ts from real text):
 * the same 40 inference records in every shape, one malformed line in each.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
	detectFormat,
	LOG_FORMATS,
	type LogFormat,
	offlineResult,
	type ParsedRecord,
	parseLine,
	parseMessage,
	s3BodyText,
	sagemakerVersionFromPath,
	textOf,
} from "../../../lib/core/monitor/formats";
import { ROOT } from "./traffic";

const FIX = join(ROOT, "test/fixtures/monitor");
const SAGEMAKER = "sagemaker/doc-assistant/AllTraffic/2026/12/07/04/00-00-000-6f1c2a0e.jsonl";
const BEDROCK = "bedrock/AWSLogs/111122223333/BedrockModelInvocationLogs/us-east-1/2026/12/07/04/invocations.jsonl";
const CLOUDWATCH = "cloudwatch/000000.gz";

function lines(rel: string): string[] {
	const bytes = readFileSync(join(FIX, rel));
	const text = rel.endsWith(".gz") ? gunzipSync(bytes).toString("utf8") : bytes.toString("utf8");
	return text.split("\n");
}

function read(rel: string): { format: LogFormat | undefined; records: ParsedRecord[]; malformed: [number, string][] } {
	const all = lines(rel);
	const format = detectFormat(all[0] as string);
	const records: ParsedRecord[] = [];
	const malformed: [number, string][] = [];
	const ctx = { defaultVersion: sagemakerVersionFromPath(rel) };
	for (const [i, line] of all.entries()) {
		const parsed = parseLine(format as LogFormat, line, ctx);
		// as `ftguard monitor` reads it: offline, a body in S3 is not read
		const r = parsed.kind === "deferred" ? offlineResult(parsed.record) : parsed;
		if (r.kind === "record") records.push(r.record);
		else if (r.kind === "malformed") malformed.push([i + 1, r.reason]);
	}
	return { format, records, malformed };
}

const plain = read("plain.jsonl");

describe("plain JSON lines", () => {
	it("reads model_version, input, output; counts the truncated line", () => {
		expect(plain.format).toBe("jsonl");
		expect(plain.records.length).toBe(40);
		expect(plain.malformed).toEqual([[21, expect.stringMatching(/^not JSON/)]]);
		expect(new Set(plain.records.map((r) => r.modelVersion))).toEqual(new Set(["doc-assistant-v3"]));
		expect(plain.records[7]?.output).toMatch(/^Sure\. Ignore previous instructions/);
	});
});

describe("SageMaker Data Capture", () => {
	const r = read(SAGEMAKER);
	it("decodes BASE64, JSON and CSV captures, the TGI bodies to their text, the version from the S3 key layout", () => {
		expect(r.format).toBe("sagemaker-capture");
		expect(r.records.map((x) => x.output)).toEqual(plain.records.map((x) => x.output));
		expect(r.records.map((x) => x.input)).toEqual(plain.records.map((x) => x.input));
		expect(new Set(r.records.map((x) => x.modelVersion))).toEqual(new Set(["doc-assistant/AllTraffic"]));
		expect(r.records[3]?.time).toBe("2026-12-07T04:00:03.000Z");
	});
	it("reports an unknown encoding as malformed", () => {
		expect(r.malformed).toEqual([[21, 'captureData.endpointOutput.encoding "GZIP" is not BASE64, JSON or CSV']]);
	});
	it("takes the version from the path only in the documented layout", () => {
		expect(sagemakerVersionFromPath("s3/bucket/prefix/my-endpoint/variant-1/2026/01/02/03/x.jsonl")).toBe(
			"my-endpoint/variant-1",
		);
		expect(sagemakerVersionFromPath("captures/x.jsonl")).toBeUndefined();
	});
});

describe("Amazon Bedrock model invocation logs", () => {
	const r = read(BEDROCK);
	it("reads the output text of every provider shape (Converse, Anthropic, Titan, Llama, Mistral, Cohere, a stream)", () => {
		expect(r.format).toBe("bedrock-invocation");
		expect(r.records.map((x) => x.output)).toEqual(plain.records.map((x) => x.output));
		for (const [i, x] of r.records.entries()) expect(x.input).toContain(plain.records[i]?.input);
		expect(r.records[1]?.input).toBe(`Answer briefly.\n${plain.records[1]?.input}`); // system + messages
		expect(new Set(r.records.map((x) => x.modelVersion)).size).toBe(6);
		expect(r.records[0]?.modelVersion).toMatch(/^arn:aws:bedrock:.*:custom-model\//);
	});
	it("leaves a record whose bodies Bedrock delivered to S3 to a reader of S3 (deferred), with the paths", () => {
		const line = lines(BEDROCK)[20] as string;
		expect(parseLine("bedrock-invocation", line)).toEqual({
			kind: "deferred",
			record: {
				modelVersion: "anthropic.claude-3-haiku-20240307-v1:0",
				input: { s3Path: "s3://logs/large/in.json" },
				output: { s3Path: "s3://logs/large/out.json" },
				time: expect.any(String),
			},
		});
		// a subscription filter's message of the same record
		expect(parseMessage(line).kind).toBe("deferred");
	});
	it("offline, counts an output body in S3 as malformed (not read), naming its path; never a clean record", () => {
		expect(r.malformed).toEqual([
			[21, "output body delivered to S3 (outputBodyS3Path s3://logs/large/out.json): not read offline"],
		]);
		expect(r.records.length).toBe(40);
	});
	it("offline, reads a record whose input alone is in S3 without its input (the output is inline)", () => {
		const line = JSON.stringify({
			schemaType: "ModelInvocationLog",
			modelId: "amazon.nova-lite-v1:0",
			input: { inputBodyJson: null, inputBodyS3Path: "s3://logs/large/in2.json" },
			output: { outputBodyJson: { output: { message: { content: [{ text: "fine" }] } } } },
		});
		const d = parseLine("bedrock-invocation", line);
		expect(d).toMatchObject({
			kind: "deferred",
			record: { input: { s3Path: "s3://logs/large/in2.json" }, output: "fine" },
		});
		if (d.kind !== "deferred") throw new Error("not deferred");
		expect(offlineResult(d.record)).toEqual({
			kind: "record",
			record: { modelVersion: "amazon.nova-lite-v1:0", input: "", output: "fine" },
		});
	});
	it("reads a body from its S3 object with the same extractors as an inline body", () => {
		const inline = lines(BEDROCK)
			.slice(0, 6)
			.map((l) => JSON.parse(l) as { output: { outputBodyJson: unknown }; input: { inputBodyJson: unknown } });
		for (const [i, rec] of inline.entries()) {
			expect(s3BodyText(JSON.stringify(rec.output.outputBodyJson))).toEqual({ text: r.records[i]?.output });
			expect(s3BodyText(JSON.stringify(rec.input.inputBodyJson))).toEqual({ text: r.records[i]?.input });
		}
		expect(s3BodyText(JSON.stringify({ outputBodyJson: { completion: "hi" } }))).toEqual({ text: "hi" });
		expect(s3BodyText("<html>")).toEqual({ reason: "body in S3 is not JSON" });
		expect(s3BodyText(JSON.stringify({ embedding: [0.1] }))).toEqual({
			reason: "body in S3 has no text this reader knows (not a text model?)",
		});
	});
});

describe("CloudWatch Logs export", () => {
	const r = read(CLOUDWATCH);
	it("strips the timestamp and reads the message in its own shape", () => {
		expect(r.format).toBe("cloudwatch-export");
		expect(r.records.map((x) => x.output)).toEqual(plain.records.map((x) => x.output));
		expect(r.malformed).toEqual([[21, "message is not JSON"]]);
	});
	it("reads a subscription filter's log event message the same way", () => {
		const event = lines(BEDROCK)[0] as string;
		const m = parseMessage(event);
		expect(m.kind === "record" && m.record.output).toBe(plain.records[0]?.output);
	});
});

describe("textOf (request and response bodies)", () => {
	it.each([
		[{ choices: [{ message: { role: "assistant", content: "hi" } }] }, "hi"],
		[{ choices: [{ text: "hi" }] }, "hi"],
		[{ text: "hi", generation_id: "x", finish_reason: "COMPLETE" }, "hi"],
		[{ completions: [{ data: { text: "hi" } }] }, "hi"],
		[{ completion: "hi", stop_reason: "stop_sequence" }, "hi"],
		[[{ contentBlockDelta: { delta: { text: "h" } } }, { contentBlockDelta: { delta: { text: "i" } } }], "hi"],
		[{ message: "hi", chat_history: [] }, "hi"],
		[{ embedding: [0.1, 0.2] }, undefined],
	])("%j → %j", (body, text) => {
		expect(textOf(body)).toBe(text);
	});
});

describe("any line", () => {
	it("is a record, deferred (a body in S3), blank or malformed: parsing never throws", () => {
		fc.assert(
			fc.property(
				fc.constantFrom(...LOG_FORMATS),
				fc.oneof(
					fc.string(),
					fc.json(),
					fc.jsonValue().map((v) => JSON.stringify({ captureData: v, modelId: "m", input: v, output: v })),
				),
				(format, line) => {
					const r = parseLine(format, line);
					expect(["record", "deferred", "blank", "malformed"]).toContain(r.kind);
				},
			),
			{ numRuns: 2000 },
		);
	});
});
