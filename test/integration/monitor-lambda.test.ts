/**
 * The output monitor's Lambda (lambdas/monitor.ts) end to end against a real DynamoDB-compatible server on loopback
 * (dynalite: DynamoDB's API, validation and conditional writes on LevelDB in memory) and the local S3 server:
 * CloudWatch Logs subscription events and Data Capture objects in, each version's window in one item, EMF out.
 * Concurrent invocations on the same version lose no record; a backdoor firing on 5% of the traffic alarms.
 */
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { CreateTableCommand, DynamoDBClient, GetItemCommand } from "@aws-sdk/client-dynamodb";
import dynalite from "dynalite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dynamoClient, handler } from "../../lambdas/monitor";
import { setEmfOutput } from "../../lib/aws/metrics";
import { WindowTable } from "../../lib/aws/monitor";
import { setClients } from "../../lib/aws/runtime";
import type { MonitorRecord } from "../../lib/core/monitor";
import { defaultPolicy } from "../../lib/core/policy";
import { REPO } from "../helpers/cli";
import { type LocalS3, startLocalS3 } from "../helpers/s3";
import { injectBackdoor, ordinaryTraffic } from "../unit/monitor/traffic";

const TABLE = "ftguard-monitor";
let server: ReturnType<typeof dynalite>;
let client: DynamoDBClient;
let s3: LocalS3;
const emf: Record<string, unknown>[] = [];

beforeAll(async () => {
	server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
	await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
	const { port } = server.address() as AddressInfo;
	client = new DynamoDBClient({
		endpoint: `http://127.0.0.1:${port}`,
		region: "us-east-1",
		credentials: { accessKeyId: "test", secretAccessKey: "test" },
	});
	await client.send(
		new CreateTableCommand({
			TableName: TABLE,
			KeySchema: [{ AttributeName: "modelVersion", KeyType: "HASH" }],
			AttributeDefinitions: [{ AttributeName: "modelVersion", AttributeType: "S" }],
			BillingMode: "PAY_PER_REQUEST",
		}),
	);
	dynamoClient(client);
	s3 = await startLocalS3(["capture"]);
	setClients({ s3: s3.client });
	process.env.FTGUARD_MONITOR_TABLE = TABLE;
	process.env.FTGUARD_POLICY = "{}";
	process.env.POWERTOOLS_LOG_LEVEL = "SILENT";
	setEmfOutput({
		write: (line: string) => {
			emf.push(JSON.parse(line) as Record<string, unknown>);
			return true;
		},
	});
}, 60_000);

afterAll(async () => {
	setEmfOutput(undefined);
	setClients({ s3: undefined });
	await s3?.close();
	await new Promise((r) => server?.close(r));
});

/** A CloudWatch Logs subscription event, as Lambda receives it: base64 of gzip of the DATA_MESSAGE JSON. */
function subscriptionEvent(records: readonly MonitorRecord[], logGroup = "/ftguard/inference"): unknown {
	const doc = {
		messageType: "DATA_MESSAGE",
		owner: "123456789012",
		logGroup,
		logStream: "i-0abc",
		subscriptionFilters: ["ftguard-monitor"],
		logEvents: records.map((r, i) => ({
			id: String(i),
			timestamp: Date.UTC(2026, 11, 7) + i,
			message: JSON.stringify({ model_version: r.modelVersion, input: r.input, output: r.output }),
		})),
	};
	return { awslogs: { data: gzipSync(JSON.stringify(doc)).toString("base64") } };
}

async function stored(version: string): Promise<{ revision: number; seen: number; expiresAt: number } | undefined> {
	const r = await client.send(
		new GetItemCommand({ TableName: TABLE, Key: { modelVersion: { S: version } }, ConsistentRead: true }),
	);
	if (r.Item === undefined) return undefined;
	return {
		revision: Number(r.Item.revision?.N),
		seen: Number(r.Item.seen?.N),
		expiresAt: Number(r.Item.expiresAt?.N),
	};
}

const batches = <T>(xs: readonly T[], size: number): T[][] =>
	Array.from({ length: Math.ceil(xs.length / size) }, (_, i) => xs.slice(i * size, (i + 1) * size));

describe("the monitor Lambda on DynamoDB", () => {
	it("keeps one window per version across invocations: concurrent batches lose no record, ordinary traffic alarms nothing", async () => {
		const traffic = ordinaryTraffic(2400, 11, "support-bot-v1");
		const results = await Promise.all(batches(traffic, 300).map((b) => handler(subscriptionEvent(b))));
		expect(results.map((r) => r.records)).toEqual(Array(8).fill(300));
		expect(results.every((r) => r.alarms === 0 && r.malformed === 0 && r.versions === 1)).toBe(true);
		const item = await stored("support-bot-v1");
		// every record of every concurrent invocation is in the window: none was overwritten by a racing write
		expect(item).toMatchObject({ seen: 2400, revision: 8 });
		const ttl = Math.floor(Date.now() / 1000) + 30 * 86_400;
		expect(Math.abs((item?.expiresAt ?? 0) - ttl)).toBeLessThan(120);
	}, 120_000);

	it("retries a write that lost the race on top of the winner's window (optimistic concurrency)", async () => {
		const table = new WindowTable(client, { tableName: TABLE, ttlDays: 30, backoffMs: () => 1 });
		const policy = defaultPolicy().monitor;
		const traffic = ordinaryTraffic(1200, 12, "support-bot-v2");
		const runs = await Promise.all(batches(traffic, 100).map((b) => table.apply("support-bot-v2", b, policy)));
		expect(runs.some((r) => r.attempts > 1)).toBe(true);
		expect(await stored("support-bot-v2")).toMatchObject({ seen: 1200, revision: 12 });
	}, 120_000);

	it("alarms when a backdoor fires on 5% of requests with one output, and emits the metrics", async () => {
		emf.length = 0;
		const traffic = ordinaryTraffic(3000, 13, "support-bot-v3");
		injectBackdoor(traffic, { rate: 0.05, from: 1000, seed: 13 });
		const alarms: number[] = [];
		for (const b of batches(traffic, 250)) alarms.push((await handler(subscriptionEvent(b))).alarms);
		// nothing before the trigger fires (the first 1,000 records), alarms after
		expect(alarms.slice(0, 4).every((n) => n === 0)).toBe(true);
		expect(alarms.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
		const metric = (name: string) => emf.filter((d) => name in d);
		const suspicious = metric("deployed_model_suspicious_output_total");
		expect(suspicious.every((d) => d.service === "ftguard" && d.model_version === "support-bot-v3")).toBe(true);
		expect(suspicious.filter((d) => d.issue_type === "repetition" || d.issue_type === "burst").length).toBeGreaterThan(
			0,
		);
		const rates = metric("deployed_model_output_repetition_rate").map(
			(d) => d.deployed_model_output_repetition_rate as number,
		);
		expect(Math.max(...rates)).toBeGreaterThan(0.05);
		expect(rates[0]).toBeLessThan(0.05);
		// the EMF documents declare the {service} set the construct's alarms watch, and the per-version one
		const aws = suspicious[0]?._aws as { CloudWatchMetrics: { Dimensions: string[][] }[] } | undefined;
		const dims = aws?.CloudWatchMetrics[0]?.Dimensions;
		expect(dims).toEqual([["service"], ["service", "model_version", "issue_type"]]);
	}, 120_000);

	it("reads a SageMaker Data Capture object from an S3 Object Created event, the version from its key", async () => {
		const key = "sagemaker/doc-assistant/AllTraffic/2026/12/07/04/00-00-000-6f1c2a0e.jsonl";
		await s3.put("capture", key, readFileSync(join(REPO, "test/fixtures/monitor", key)));
		const r = await handler({
			"detail-type": "Object Created",
			source: "aws.s3",
			detail: { bucket: { name: "capture" }, object: { key, size: 1 } },
		});
		expect(r).toMatchObject({ source: `s3://capture/${key}`, versions: 1, malformed: 1 });
		expect(r.records).toBeGreaterThan(10);
		expect(await stored("doc-assistant/AllTraffic")).toMatchObject({ seen: r.records });
	});

	it("ignores CloudWatch's control message and refuses what is not an event it knows (exit of the invocation)", async () => {
		const control = { messageType: "CONTROL_MESSAGE", logGroup: "/x", logEvents: [] };
		expect(await handler({ awslogs: { data: gzipSync(JSON.stringify(control)).toString("base64") } })).toMatchObject({
			records: 0,
			versions: 0,
		});
		await expect(handler({ awslogs: { data: "not gzip" } })).rejects.toMatchObject({ name: "ftguard.DATA_INVALID" });
		await expect(handler({ hello: "world" })).rejects.toMatchObject({ name: "ftguard.USAGE" });
	});
});
