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
	type ParsedRecord,
	parseLine,
	parseMessage,
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
		const r = parseLine(format as LogFormat, line, ctx);
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
	it("counts a body delivered to S3 as malformed (not read)", () => {
		expect(r.malformed).toEqual([[21, "output body delivered to S3 (outputBodyS3Path): not read"]]);
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
	it("is a record, blank or malformed: parsing never throws", () => {
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
					expect(["record", "blank", "malformed"]).toContain(r.kind);
				},
			),
			{ numRuns: 2000 },
		);
	});
});
