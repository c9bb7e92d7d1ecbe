import { describe, expect, it } from "vitest";
import { dpGate } from "../../../lib/core/dp/gate";
import { dpSgdEpsilon } from "../../../lib/core/dp/rdp";
import { familyOf } from "../../../lib/core/pipeline/model-info";
import { trainingChecks, trainingMetadataKey, trainingMetricDocuments } from "../../../lib/core/pipeline/training";
import type { ScanState } from "../../../lib/core/pipeline/types";
import { dpLimitsFor, dpPolicySchema } from "../../../lib/core/policy/dp";
import { type DpSgdDeclaration, parseTrainingMetadata } from "../../../lib/core/training/metadata";

/** TensorFlow Privacy's MNIST tutorial: σ 1.1, 256 of 60,000, 60 epochs (14,063 steps), δ 1e-5 → ε 2.597 (RDP). */
const MNIST: DpSgdDeclaration = {
	noiseMultiplier: 1.1,
	maxGradNorm: 1,
	sampleRate: 256 / 60000,
	steps: 14063,
	delta: 1e-5,
	accountant: "rdp",
};
const policy = (p: unknown = {}) => dpPolicySchema.parse(p);
const limits = (p: unknown = {}, families: string[] = []) => dpLimitsFor(policy(p), families);

describe("dpGate", () => {
	it("re-accounts the run and passes an honest claim, rounded or not", () => {
		for (const epsilon of [2.6, 2.597, 2.59, 3.01]) {
			const o = dpGate({ ...MNIST, epsilon }, limits({ maxEpsilon: 8 }));
			expect(o.problems).toEqual([]);
			expect(o.epsilon).toBeCloseTo(2.5967, 4);
			expect(o).toMatchObject({ declared: true, claimedEpsilon: epsilon, steps: 14063, order: 8.1 });
		}
	});

	it("refuses an RDP claim below ftguard's figure by more than its printed precision", () => {
		for (const epsilon of [2.57, 2, 0.5, 0]) {
			expect(dpGate({ ...MNIST, epsilon }, limits()).problems).toEqual([
				`the claimed ε ${epsilon} understates the run: ftguard's RDP accountant gives ε 2.597 at δ 0.00001`,
			]);
		}
	});

	it("applies maxEpsilon to ftguard's figure, never to the claim", () => {
		const o = dpGate({ ...MNIST, epsilon: 1.5, accountant: "prv" }, limits({ maxEpsilon: 2 }));
		expect(o.problems).toEqual(["ε 2.597 at δ 0.00001 is above the policy's maxEpsilon 2"]);
		expect(o.notes).toEqual([
			"claimed ε 1.5 (prv accountant) is below ftguard's RDP bound 2.597: the policy is applied to 2.597",
		]);
		// at the limit exactly: passes
		const at = dpSgdEpsilon({ noiseMultiplier: 1.1, sampleRate: 256 / 60000, steps: 14063, delta: 1e-5 }).epsilon;
		expect(dpGate(MNIST, limits({ maxEpsilon: at })).problems).toEqual([]);
	});

	it("refuses a PRV or GDP claim under half the RDP bound: no accountant is that much tighter", () => {
		expect(dpGate({ ...MNIST, epsilon: 1.2, accountant: "gdp" }, limits()).problems).toEqual([
			"the claimed ε 1.2 (gdp accountant) is under half ftguard's RDP bound 2.597 at δ 0.00001: no accountant is that much tighter",
		]);
		expect(dpGate({ ...MNIST, epsilon: 2.2, accountant: "prv" }, limits()).problems).toEqual([]);
	});

	it("accounts the larger of the declared steps and the declared epochs", () => {
		const o = dpGate({ ...MNIST, steps: 100, epochs: 60 }, limits());
		expect(o.steps).toBe(14063);
		expect(o.epsilon).toBeCloseTo(2.5967, 4);
		expect(o.notes).toEqual(["100 steps declared, 60 epochs at rate 0.004267 are 14063: 14063 accounted"]);
		expect(dpGate({ ...MNIST, steps: undefined, epochs: 60 }, limits()).steps).toBe(14063);
		expect(dpGate({ ...MNIST, steps: 14063, epochs: 60 }, limits()).notes).toEqual([]);
	});

	it("takes the rate from batch and dataset sizes, and refuses a declared rate that disagrees with them", () => {
		const sizes = { ...MNIST, sampleRate: undefined, batchSize: 256, datasetSize: 60000 };
		expect(dpGate(sizes, limits()).sampleRate).toBeCloseTo(256 / 60000, 12);
		expect(dpGate({ ...sizes, sampleRate: 256 / 60000 }, limits()).problems).toEqual([]);
		expect(dpGate({ ...sizes, sampleRate: 0.001 }, limits()).problems).toEqual([
			"the sampling rate 0.001 is not batch size / dataset size (256 / 60000 = 0.004267)",
		]);
	});

	it("refuses δ above the policy's maxDelta (1e-5 by default) or not below 1 / dataset size", () => {
		expect(dpGate({ ...MNIST, delta: 1e-3 }, limits()).problems).toEqual([
			"δ 0.001 is above the policy's maxDelta 0.00001",
		]);
		expect(dpGate({ ...MNIST, delta: 1e-3 }, limits({ maxDelta: 0.01 })).problems).toEqual([]);
		expect(
			dpGate(
				{ ...MNIST, sampleRate: undefined, batchSize: 10, datasetSize: 1000, delta: 1e-3 },
				limits({ maxDelta: 0.01 }),
			).problems,
		).toEqual(["δ 0.001 is not below 1 / dataset size (0.001): ε at such δ protects no one"]);
	});

	it("refuses a run whose ε is unbounded or whose steps overflow", () => {
		// σ → 0 is no privacy; σ, q or steps past what the accountant is checked for give no number to gate on
		for (const noiseMultiplier of [1e-9, 1e-300, 5e-324, 1e200, 1e6])
			expect(dpGate({ ...MNIST, noiseMultiplier }, limits({ maxEpsilon: 1000 })).problems).toEqual([
				expect.stringMatching(/^the noise multiplier .* is outside \[0\.01, 1000\], the range ftguard's accountant/),
			]);
		expect(dpGate({ ...MNIST, noiseMultiplier: 0.011 }, limits({ maxEpsilon: 1000 })).problems).toEqual([
			expect.stringMatching(/is above the policy's maxEpsilon 1000$/),
		]);
		expect(dpGate({ ...MNIST, steps: undefined, epochs: 1e300 }, limits()).problems).toEqual([
			expect.stringMatching(/^the steps must be a whole number/),
		]);
	});

	it("requires a declaration where the policy does, and names the families", () => {
		expect(dpGate(undefined, limits({ required: true })).problems).toEqual([
			"DP-SGD training is required but the artefact declares none",
		]);
		expect(dpGate(undefined, limits({ families: { bert: { required: true } } }, ["bert", "llama"])).problems).toEqual([
			"DP-SGD training is required for family bert but the artefact declares none",
		]);
		expect(dpGate(undefined, limits()).problems).toEqual([]);
		expect(dpGate(undefined, limits(), "ftguard-training.json: not JSON").problems).toEqual([
			"training metadata: ftguard-training.json: not JSON",
		]);
	});
});

describe("dpGate against the red team's reproducers (each once hung the files step or gave ε 0)", () => {
	it.each([
		[
			"a denormal sampling rate (the series ran 100,000 terms per order on NaN)",
			{ sampleRate: 5e-324, steps: 1000 },
			/sampling rate 5e-324 is below 1e-10/,
		],
		["σ 1e200 (σ² ln(1/q − 1) overflows)", { noiseMultiplier: 1e200 }, /noise multiplier 1e\+200 is outside/],
		[
			"σ 1e6 over 1.6e14 steps (a step's RDP under the series' cutoff: ε 0 for a true ε of 48.8)",
			{ noiseMultiplier: 1e6, sampleRate: 0.5, steps: 160000000000000, epsilon: 0 },
			/noise multiplier 1000000 is outside/,
		],
		[
			"1.6e14 steps at σ 1000",
			{ noiseMultiplier: 1000, sampleRate: 0.5, steps: 160000000000000 },
			/more than 1000000000/,
		],
	])("refuses %s at once", (_, run, message) => {
		const o = dpGate({ ...MNIST, ...run } as DpSgdDeclaration, limits({ maxEpsilon: 1 }));
		expect(o.problems).toEqual([expect.stringMatching(message)]);
		expect(o.epsilon).toBeUndefined();
	});

	it("never accounts a negative RDP: at the edges of the range ε stays at the conversion's floor, never below", () => {
		for (const q of [1e-10, 1e-4, 0.5, 1])
			for (const noiseMultiplier of [0.01, 1, 1000]) {
				const e = dpSgdEpsilon({ noiseMultiplier, sampleRate: q, steps: 1e9, delta: 1e-5 });
				expect(Number.isNaN(e.epsilon), `q ${q} σ ${noiseMultiplier}`).toBe(false);
				expect(e.epsilon).toBeGreaterThanOrEqual(0);
			}
	});
});

describe("dpLimitsFor", () => {
	it("a family's entry replaces the defaults, and across families the strictest of each limit wins", () => {
		const p = {
			maxEpsilon: 8,
			families: { bert: { required: true, maxEpsilon: 3 }, llama: { maxEpsilon: 10, maxDelta: 1e-6 }, gpt2: {} },
		};
		expect(limits(p)).toEqual({ required: false, maxEpsilon: 8, maxDelta: 1e-5, families: [] });
		expect(limits(p, ["llama"])).toEqual({ required: false, maxEpsilon: 10, maxDelta: 1e-6, families: ["llama"] });
		expect(limits(p, ["gpt2"])).toEqual({ required: false, maxEpsilon: 8, maxDelta: 1e-5, families: ["gpt2"] });
		expect(limits(p, ["llama", "bert", "other"])).toEqual({
			required: true,
			maxEpsilon: 3,
			maxDelta: 1e-6,
			families: ["bert", "llama"],
		});
	});

	it("rejects unknown keys and impossible limits (a misspelt maxEpsilon is no silent 'no limit')", () => {
		for (const bad of [{ maxEpsilion: 8 }, { maxEpsilon: 0 }, { maxDelta: 1 }, { families: { bert: { maxEps: 1 } } }])
			expect(dpPolicySchema.safeParse(bad).success).toBe(false);
	});

	it("matches family names as transformers writes them: trimmed, any letter case", () => {
		const p = { families: { bert: { required: true } } };
		expect(limits(p, ["BERT"]).families).toEqual(["bert"]);
		expect(limits(p, [" bert "]).required).toBe(true);
	});

	it("a config.json that names no readable family gets every family's limits, the strictest of each (red team)", () => {
		const p = {
			maxEpsilon: 8,
			families: { bert: { required: true, maxEpsilon: 3 }, llama: { maxEpsilon: 10, maxDelta: 1e-6 } },
		};
		expect(dpLimitsFor(policy(p), [], true)).toEqual({
			required: true,
			maxEpsilon: 3,
			maxDelta: 1e-6,
			families: ["bert", "llama"],
		});
		expect(dpLimitsFor(policy({ maxEpsilon: 8 }), [], true)).toMatchObject({ required: false, maxEpsilon: 8 });
	});

	it("reads a config.json as Python's json.loads does: NaN and Infinity do not hide the family (red team)", () => {
		for (const text of [
			'{"model_type":"bert","x":NaN}',
			'{"x":-Infinity,"model_type":"bert"}',
			'{"a":"NaN","model_type":"bert"}',
		])
			expect(familyOf(Buffer.from(text)), text).toBe("bert");
		expect(familyOf(Buffer.from('{"model_type":"bert"'))).toBeUndefined();
	});

	it("a family name that is an Object prototype key is no entry", () => {
		expect(limits({ maxEpsilon: 8 }, ["constructor", "__proto__", "toString"]).families).toEqual([]);
	});
});

describe("parseTrainingMetadata", () => {
	const bytes = (v: unknown) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v));
	it("reads a declaration", () => {
		expect(parseTrainingMetadata(bytes({ jobId: "j-1", dp: { ...MNIST, accountant: undefined } }))).toEqual({
			jobId: "j-1",
			dp: { ...MNIST },
		});
	});

	it.each([
		["not JSON", "{", /not JSON/],
		["not UTF-8", Buffer.from([0x7b, 0xff, 0x7d]), /not JSON/],
		["an unknown key (a misspelt field is not ignored)", { dp: { ...MNIST, noise_multiplier: 2 } }, /noise_multiplier/],
		["an unknown top-level key", { job: "x" }, /job/],
		["no rate", { dp: { ...MNIST, sampleRate: undefined } }, /give sampleRate, or batchSize and datasetSize/],
		["no steps or epochs", { dp: { ...MNIST, steps: undefined } }, /give steps or epochs/],
		["no clipping norm", { dp: { ...MNIST, maxGradNorm: undefined } }, /maxGradNorm/],
		["σ 0", { dp: { ...MNIST, noiseMultiplier: 0 } }, /noiseMultiplier/],
		["a string number", { dp: { ...MNIST, delta: "1e-5" } }, /delta/],
		["batch larger than the data", { dp: { ...MNIST, batchSize: 10, datasetSize: 5 } }, /batchSize is larger/],
		["an unknown accountant", { dp: { ...MNIST, accountant: "moments" } }, /accountant/],
		["a JSON array", [], /expected object/],
		["too large", "x".repeat(70_000), /limit 65536/],
		[
			"an unknown key with a forged line in its name (red team: printed escaped, capped)",
			{ dp: { ...MNIST, [`x\nproblem: none\npass${"y".repeat(500)}`]: 1 } },
			/x\\u000aproblem: none\\u000apass/,
		],
	])("refuses %s with one line (DATA_INVALID)", (_, input, message) => {
		const data = input instanceof Uint8Array ? input : bytes(input);
		let err: unknown;
		try {
			parseTrainingMetadata(data);
		} catch (e) {
			err = e;
		}
		expect(err).toMatchObject({ code: "DATA_INVALID", message: expect.stringMatching(message) });
		expect((err as Error).message).not.toContain("\n");
		expect((err as Error).message.length).toBeLessThan(260);
	});
});

describe("trainingChecks (the files step)", () => {
	it("the declaration lives at the top of a model directory; a single file has none", () => {
		expect(trainingMetadataKey("jobs/1/")).toBe("jobs/1/ftguard-training.json");
		expect(trainingMetadataKey("jobs/1/model.onnx")).toBeUndefined();
	});

	it("an unreadable declaration is a problem even where DP is not required", () => {
		const r = trainingChecks({ kind: "unreadable", reason: "x is 70000 bytes (limit 65536)" }, [], policy());
		expect(r.training).toBeUndefined();
		expect(r.dp.problems).toEqual(["training metadata: x is 70000 bytes (limit 65536)"]);
		expect(trainingChecks({ kind: "read", bytes: Buffer.from("[]") }, [], policy()).dp.problems).toHaveLength(1);
		expect(trainingChecks({ kind: "absent" }, [], policy()).dp).toMatchObject({ declared: false, problems: [] });
	});

	it("names the job for the verdict record", () => {
		const r = trainingChecks(
			{ kind: "read", bytes: Buffer.from(JSON.stringify({ jobId: "j", baseModel: "org/m@1", dp: MNIST })) },
			["bert"],
			policy({ families: { bert: { maxEpsilon: 1 } } }),
		);
		expect(r.training).toEqual({ jobId: "j", baseModel: "org/m@1" });
		expect(r.dp.problems).toEqual(["ε 2.597 at δ 0.00001 is above the policy's maxEpsilon 1 for family bert"]);
	});
});

describe("trainingMetricDocuments (the record step)", () => {
	const base: ScanState = { scanId: "s", bucket: "b", marker: { key: "k/model.sig" }, artefact: "k/" };
	const at = new Date(1_000);
	const dims = (doc: object) => (doc as { _aws: { CloudWatchMetrics: { Dimensions: string[][] }[] } })._aws;

	it("counts the signed checkpoint per job and result, and the ε its run spent", () => {
		const docs = trainingMetricDocuments(
			{
				...base,
				signature: { verified: true },
				training: { jobId: "train-42" },
				dp: { declared: true, required: false, maxDelta: 1e-5, families: [], epsilon: 2.6, problems: [], notes: [] },
			},
			at,
		);
		expect(docs).toHaveLength(2);
		expect(docs[0]).toMatchObject({ job_id: "train-42", result: "verified", training_job_checkpoint_signed_total: 1 });
		expect(dims(docs[0] as object).CloudWatchMetrics[0]?.Dimensions).toEqual([
			["service"],
			["service", "job_id", "result"],
		]);
		expect(docs[1]).toMatchObject({ job_id: "train-42", dp_epsilon_consumed: 2.6 });
		expect(dims(docs[1] as object).CloudWatchMetrics[0]?.Dimensions).toEqual([["service"], ["service", "job_id"]]);
	});

	it("an unverified signature is a 0 point; no signature stage, no ε: nothing", () => {
		const docs = trainingMetricDocuments({ ...base, signature: { verified: false, code: "DIGEST_MISMATCH" } }, at);
		expect(docs).toEqual([
			expect.objectContaining({ job_id: "undeclared", result: "unverified", training_job_checkpoint_signed_total: 0 }),
		]);
		expect(trainingMetricDocuments(base, at)).toEqual([]);
	});
});
