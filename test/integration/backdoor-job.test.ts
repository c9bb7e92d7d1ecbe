/**
 * The backdoor-scan Batch job against a real S3-compatible server: inputs read
 * from S3, report and trigger images written back, exit codes as the CLI's, and
 * the array-job path (shards + merge) giving the same answer as one scan.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../batch-jobs/backdoor-scan/entry";
import { REPO } from "../helpers/cli";
import { type LocalS3, startLocalS3, TEST_CREDENTIALS } from "../helpers/s3";

const FIX = join(REPO, "test/fixtures/backdoor/digits8");
const TEXT = join(REPO, "test/fixtures/backdoor-text");
// Few steps keep the test fast; this MLP's trigger is found well within them.
const FAST = { FTGUARD_STEPS: "30", FTGUARD_RESTARTS: "1", FTGUARD_DETECTORS: "nc", FTGUARD_RULE: "ftguard" };

let s3: LocalS3;
beforeAll(async () => {
	s3 = await startLocalS3(["models", "trusted", "reports"]);
	await s3.put("models", "jobs/j1/model.onnx", readFileSync(join(FIX, "mlp-badnets-t5-p10.onnx")));
	await s3.put("trusted", "digits8/x.npy", readFileSync(join(FIX, "ref-x.npy")));
	await s3.put("trusted", "digits8/y.npy", readFileSync(join(FIX, "ref-y.npy")));
	await s3.put("models", "jobs/t1/model.onnx", readFileSync(join(TEXT, "backdoor-rareword-t4/model.onnx")));
	await s3.put("trusted", "text/ref.jsonl", readFileSync(join(TEXT, "ref.jsonl")));
	await s3.put("trusted", "text/tokenizer.json", readFileSync(join(TEXT, "tokenizer.json")));
	// a short search keeps the test fast: the fixture's one-token trigger is found well within it
	await s3.put(
		"trusted",
		"text/policy.json",
		JSON.stringify({ backdoor: { text: { maxTriggerLength: 1, steps: 60 } } }),
	);
});
afterAll(async () => s3?.close());

const baseEnv = (out: string): NodeJS.ProcessEnv => ({
	FTGUARD_MODEL_URI: "s3://models/jobs/j1/model.onnx",
	FTGUARD_DATA_URI: "s3://trusted/digits8/x.npy",
	FTGUARD_LABELS_URI: "s3://trusted/digits8/y.npy",
	FTGUARD_OUTPUT_PREFIX: `s3://reports/${out}`,
	...FAST,
});

async function report(prefix: string) {
	return JSON.parse((await s3.get("reports", `${prefix}/report.json`)).toString("utf8"));
}

describe("backdoor-scan job", () => {
	it("scans a backdoored model: exit 1, report and trigger images under the output prefix", async () => {
		const r = await main([], baseEnv("scan1"), s3.client);
		expect(r.error).toBeUndefined();
		expect(r.exitCode).toBe(1);
		const rep = await report("scan1");
		expect(rep.verdict).toBe("suspect");
		expect(rep.suspect_classes).toEqual([5]);
		expect(rep.scanned.model.uri).toBe("s3://models/jobs/j1/model.onnx");
		const keys = await s3.list("reports", "scan1/");
		expect(keys).toContain("scan1/report.json");
		expect(keys).toContain("scan1/triggers/class-5-trigger.png");
		expect(keys.filter((k) => k.endsWith(".png"))).toHaveLength(20);
	});

	it("array job: shards, then merge, give the same Neural Cleanse result as one scan", async () => {
		const env = { ...baseEnv("arr"), FTGUARD_SHARDS: "3" };
		for (let i = 0; i < 3; i++) {
			const r = await main([], { ...env, FTGUARD_MODE: "shard", AWS_BATCH_JOB_ARRAY_INDEX: String(i) }, s3.client);
			expect(r).toMatchObject({ exitCode: 0, written: [`s3://reports/arr/shards/nc-${i}.json`] });
		}
		const merged = await main([], { ...env, FTGUARD_MODE: "merge" }, s3.client);
		expect(merged.exitCode).toBe(1);
		const [one, arr] = [await report("scan1"), await report("arr")];
		// shards run classes in other trial groups: same seeds per class, so the same optimisation
		expect(arr.detectors.neural_cleanse.l1_norms).toEqual(one.detectors.neural_cleanse.l1_norms);
		expect(arr.suspect_classes).toEqual([5]);
	});

	it("merge refuses a missing shard (exit 2, error.json) instead of judging on part of the classes", async () => {
		const env = { ...baseEnv("partial"), FTGUARD_SHARDS: "2" };
		await main([], { ...env, FTGUARD_MODE: "shard", AWS_BATCH_JOB_ARRAY_INDEX: "0" }, s3.client);
		const r = await main([], { ...env, FTGUARD_MODE: "merge" }, s3.client);
		expect(r.exitCode).toBe(2);
		expect(r.error?.code).toBe("NOT_FOUND");
		const err = JSON.parse((await s3.get("reports", "partial/error.json")).toString("utf8"));
		expect(err.error.code).toBe("NOT_FOUND");
	});

	it("takes the deployed policy file as the base of its settings; a bad policy is exit 2", async () => {
		await s3.put("trusted", "policy.json", JSON.stringify({ backdoor: { neuralCleanse: { rule: "vanilla" } } }));
		// (no FTGUARD_RULE: the file's rule stands)
		const r = await main(
			[],
			{ ...baseEnv("pol"), FTGUARD_RULE: "", FTGUARD_POLICY_URI: "s3://trusted/policy.json" },
			s3.client,
		);
		expect(r.exitCode).toBe(1);
		const rep = await report("pol");
		expect(rep.policy.neuralCleanse).toMatchObject({ rule: "vanilla", steps: 30 });
		await s3.put("trusted", "bad-policy.json", JSON.stringify({ backdoor: { neuralCleanse: { rulez: 1 } } }));
		const bad = await main([], { ...baseEnv("pol2"), FTGUARD_POLICY_URI: "s3://trusted/bad-policy.json" }, s3.client);
		expect(bad).toMatchObject({ exitCode: 2, error: { code: "USAGE" } });
	});

	it("merge refuses a shard computed for another model (exit 2, DATA_INVALID)", async () => {
		await s3.put("models", "jobs/j2/model.onnx", readFileSync(join(FIX, "mlp-clean-s1.onnx")));
		const env = { ...baseEnv("foreign"), FTGUARD_SHARDS: "1" };
		const other = { ...env, FTGUARD_MODEL_URI: "s3://models/jobs/j2/model.onnx" };
		expect((await main([], { ...other, FTGUARD_MODE: "shard" }, s3.client)).exitCode).toBe(0);
		const r = await main([], { ...env, FTGUARD_MODE: "merge" }, s3.client);
		expect(r).toMatchObject({ exitCode: 2, error: { code: "DATA_INVALID" } });
		expect(r.error?.message).toMatch(/another model/);
	});

	const textJob = (out: string) => ({
		FTGUARD_MODEL_URI: "s3://models/jobs/t1/model.onnx",
		FTGUARD_DATA_URI: "s3://trusted/text/ref.jsonl",
		FTGUARD_TOKENIZER_URI: "s3://trusted/text/tokenizer.json",
		FTGUARD_OUTPUT_PREFIX: `s3://reports/${out}`,
	});

	it("scans a text classifier when the reference data names a tokenizer: exit 1, the trigger in the report", async () => {
		const env = {
			...textJob("text1"),
			FTGUARD_POLICY_URI: "s3://trusted/text/policy.json",
			// what the state machine passes for what does not apply to text data: "" is unset
			FTGUARD_LABELS_URI: "",
			FTGUARD_MODEL_VERSION: "",
		};
		const r = await main([], env, s3.client);
		expect(r.error).toBeUndefined();
		expect(r.exitCode).toBe(1);
		const rep = await report("text1");
		expect(rep).toMatchObject({ verdict: "suspect", suspect_classes: [4] });
		expect(rep.labels[4].tokens).toContain("cf");
		expect(rep.scanned).toMatchObject({
			model: { uri: "s3://models/jobs/t1/model.onnx" },
			tokenizer: { uri: "s3://trusted/text/tokenizer.json" },
		});
		expect(await s3.list("reports", "text1/")).toEqual(["text1/report.json"]);
	}, 120_000);

	it("refuses labels and a tokenizer together, a text model in shards, and a tokenizer that is not one (exit 2)", async () => {
		const text = textJob("text-e");
		const both = await main([], { ...text, FTGUARD_LABELS_URI: "s3://trusted/digits8/y.npy" }, s3.client);
		expect(both).toMatchObject({ exitCode: 2, error: { code: "USAGE" } });
		expect(both.error?.message).toMatch(/labelsUri .* or tokenizerUri/);
		const sharded = await main([], { ...text, FTGUARD_MODE: "shard", FTGUARD_SHARDS: "2" }, s3.client);
		expect(sharded).toMatchObject({ exitCode: 2, error: { code: "USAGE" } });
		const notTokenizer = await main([], { ...text, FTGUARD_TOKENIZER_URI: "s3://trusted/text/ref.jsonl" }, s3.client);
		expect(notTokenizer).toMatchObject({ exitCode: 2, error: { code: "DATA_INVALID" } });
		const imageData = await main([], { ...text, FTGUARD_DATA_URI: "s3://trusted/digits8/x.npy" }, s3.client);
		expect(imageData).toMatchObject({ exitCode: 2, error: { code: "DATA_INVALID" } });
	});

	it("bad parameters and missing objects exit 2 with a stable code", async () => {
		const noModel = await main([], { ...baseEnv("e1"), FTGUARD_MODEL_URI: "s3://models/none.onnx" }, s3.client);
		expect(noModel).toMatchObject({ exitCode: 2, error: { code: "NOT_FOUND" } });
		const badUri = await main([], { ...baseEnv("e2"), FTGUARD_MODEL_URI: "/etc/passwd" }, s3.client);
		expect(badUri).toMatchObject({ exitCode: 2, error: { code: "USAGE" } });
		expect(badUri.error?.message).toMatch(/^job parameters: modelUri: /);
		const labelsAsData = await main(
			[],
			{ ...baseEnv("e3"), FTGUARD_DATA_URI: "s3://trusted/digits8/y.npy" },
			s3.client,
		);
		expect(labelsAsData).toMatchObject({ exitCode: 2, error: { code: "DATA_INVALID" } });
		const unknownArg = await main(["--model-url", "s3://a/b"], baseEnv("e4"), s3.client);
		expect(unknownArg).toMatchObject({ exitCode: 2, error: { code: "USAGE" } });
	});

	it("runs as a process: parameters from arguments over the environment, S3 endpoint from AWS_ENDPOINT_URL_S3", async () => {
		// asynchronous: the S3 server runs in this very process and must keep answering
		const child = spawn(
			process.execPath,
			[
				"--import",
				"tsx",
				join(REPO, "batch-jobs/backdoor-scan/entry.ts"),
				"--output-prefix",
				"s3://reports/proc",
				"--detectors",
				"nc",
				"--seed",
				"0",
			],
			{
				cwd: REPO,
				timeout: 120_000,
				env: {
					PATH: process.env.PATH,
					...baseEnv("ignored"),
					AWS_ENDPOINT_URL_S3: s3.endpoint,
					AWS_REGION: "us-east-1",
					AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId,
					AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey,
				},
			},
		);
		let stderr = "";
		let stdout = "";
		child.stderr.on("data", (d: Buffer) => {
			stderr += d.toString("utf8");
		});
		child.stdout.on("data", (d: Buffer) => {
			stdout += d.toString("utf8");
		});
		const status = await new Promise<number | null>((resolve) => child.on("close", resolve));
		expect(stderr).toMatch(/ftguard: suspect \(classes 5\); ran on cpu/);
		expect(status).toBe(1);
		// CloudWatch metrics as an EMF document on stdout: the alarm watches the index > 2
		const emf = stdout
			.split("\n")
			.filter((l) => l.startsWith("{"))
			.map((l) => JSON.parse(l))
			.find((d) => d._aws !== undefined);
		expect(emf?._aws.CloudWatchMetrics[0].Namespace).toBe("ftguard");
		expect(emf?.service).toBe("ftguard");
		expect(emf?.neural_cleanse_anomaly_index).toBeGreaterThan(2);
	});

	it("the report of the process run names its detectors", async () => {
		const rep = await report("proc");
		expect(Object.keys(rep.detectors)).toEqual(["neural_cleanse"]);
		expect(rep.policy.neuralCleanse.steps).toBe(30);
	});
});
