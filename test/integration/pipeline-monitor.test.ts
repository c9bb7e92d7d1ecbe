/**
 * The output monitor in the local pipeline: inference log objects written to the monitor bucket go to the monitor
 * function (lambdas/monitor.ts, as the EventBridge rule sends them in AWS), whose windows live in the local
 * DynamoDB-compatible server (dynalite) — the same function, store semantics and core as in AWS.
 */
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalPipeline } from "../../lib/local/pipeline";
import { startQuietPipeline } from "../helpers/pipeline";
import { injectBackdoor, ordinaryTraffic, TRIGGER } from "../unit/monitor/traffic";

const BUCKET = "inference-logs";
let pipeline: LocalPipeline;

beforeAll(async () => {
	pipeline = await startQuietPipeline({ policy: {}, monitorBucket: BUCKET });
}, 60_000);
afterAll(async () => pipeline?.close());

const jsonl = (records: ReturnType<typeof ordinaryTraffic>) =>
	`${records.map((r) => JSON.stringify({ model_version: r.modelVersion, input: r.input, output: r.output })).join("\n")}\n`;

async function put(key: string, body: string): Promise<void> {
	await pipeline.server.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
}

describe("the output monitor in the local pipeline", () => {
	it("raises nothing on ordinary traffic, and alarms with the trigger when a backdoor fires on 5% of requests", async () => {
		await put("bot/ordinary.jsonl", jsonl(ordinaryTraffic(1500, 21, "bot-v1")));
		const quiet = await pipeline.waitForMonitor("bot/ordinary.jsonl");
		expect(quiet).toMatchObject({ ok: true, records: 1500, malformed: 0, alarms: [] });

		const traffic = ordinaryTraffic(3000, 22, "bot-v2");
		injectBackdoor(traffic, { rate: 0.05, from: 500, seed: 22 });
		await put("bot/fired.jsonl", jsonl(traffic));
		const fired = await pipeline.waitForMonitor("bot/fired.jsonl");
		expect(fired.ok).toBe(true);
		expect(fired.alarms.some((a) => a.type === "repetition" || a.type === "burst")).toBe(true);
		expect(fired.alarms.every((a) => a.model_version === "bot-v2" && a.at_record >= 500)).toBe(true);
		expect(fired.alarms.some((a) => a.candidate_trigger !== undefined && TRIGGER.includes(a.candidate_trigger))).toBe(
			true,
		);
	}, 120_000);

	it("keeps a version's window across log objects (the store, not the function's memory)", async () => {
		const traffic = ordinaryTraffic(2000, 23, "bot-v3");
		injectBackdoor(traffic, { rate: 0.05, from: 1000, seed: 23 });
		await put("bot/v3-a.jsonl", jsonl(traffic.slice(0, 1000)));
		expect((await pipeline.waitForMonitor("bot/v3-a.jsonl")).alarms).toEqual([]);
		await put("bot/v3-b.jsonl", jsonl(traffic.slice(1000)));
		const later = await pipeline.waitForMonitor("bot/v3-b.jsonl");
		// the second object's records are numbered after the first's: one window over both
		expect(later.alarms.length).toBeGreaterThan(0);
	}, 120_000);

	it("reports an object that is no inference log without stopping", async () => {
		await put("bot/notes.txt", "not a log\n");
		expect(await pipeline.waitForMonitor("bot/notes.txt")).toMatchObject({ ok: true, records: 0 });
	});
});
