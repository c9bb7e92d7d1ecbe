/**
 * The backdoor-scan job's parameters: from the job's environment (what the Step
 * Functions task sets through containerOverrides) and its command-line arguments
 * (`--model-uri s3://…`, overriding the environment), validated in one place.
 * A bad parameter is a USAGE error (exit 2) naming the field — never a default
 * that silently scans something else.
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { FtguardError } from "../../lib/core/errors";
import { DETECTORS, NC_RULES } from "../../lib/core/policy/backdoor";
import { zodMessage } from "../../lib/core/schema";

/** Every detector the policy names, comma-separated. */
const DETECTOR_LIST = new RegExp(`^(${DETECTORS.join("|")})(,(${DETECTORS.join("|")}))*$`);

const s3UriSchema = z.string().regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/.+$/, "must be s3://bucket/key");
const optionalVersion = z.string().min(1).max(1024).optional();
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

export const jobParamsSchema = z
	.object({
		/** scan: everything; shard: Neural Cleanse for this array index's classes; merge: shards → report */
		mode: z.enum(["scan", "shard", "merge"]).default("scan"),
		modelUri: s3UriSchema,
		modelVersion: optionalVersion,
		dataUri: s3UriSchema,
		dataVersion: optionalVersion,
		/** image data: int64 .npy of the labels of `dataUri`'s inputs */
		labelsUri: s3UriSchema.optional(),
		labelsVersion: optionalVersion,
		/** text data: `dataUri` is labelled JSONL, tokenized with this Hugging Face tokenizer.json */
		tokenizerUri: s3UriSchema.optional(),
		tokenizerVersion: optionalVersion,
		textField: z.string().min(1).max(256).optional(),
		labelsField: z.string().min(1).max(256).optional(),
		/** the deployed policy file (lib/core/policy); its backdoor section is the base the settings below override */
		policyUri: s3UriSchema.optional(),
		/** reference: clean trusted data; training: a sample of the training set (Activation Clustering's use) */
		dataKind: z.enum(["reference", "training"]).default("reference"),
		/** where report.json, the trigger images and the shards go: s3://bucket/prefix (no trailing slash needed) */
		outputPrefix: z.string().regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/, "must be s3://bucket/prefix"),
		detectors: z
			.string()
			.regex(DETECTOR_LIST, `comma-separated ${DETECTORS.join(", ")}`)
			.optional(),
		/** the verdict rule (policy backdoor.neuralCleanse.rule) */
		rule: z.enum(NC_RULES).optional(),
		steps: int(1, 100_000).optional(),
		batch: int(1, 4096).optional(),
		restarts: int(1, 16).optional(),
		seed: int(0, 2 ** 31 - 1).optional(),
		device: z.enum(["cpu", "cuda", "webgpu"]).default("cpu"),
		/** size of the array job; with mode shard, AWS_BATCH_JOB_ARRAY_INDEX picks the slice */
		shards: int(1, 10_000).default(1),
		arrayIndex: int(0, 9_999).default(0),
		maxModelBytes: int(1, 2 ** 31 - 1).default(512 * 1024 * 1024),
		maxDataBytes: int(1, 2 ** 31 - 1).default(1024 * 1024 * 1024),
	})
	.strict()
	.refine((p) => p.arrayIndex < p.shards, { message: "arrayIndex must be below shards", path: ["arrayIndex"] })
	.refine((p) => (p.labelsUri === undefined) !== (p.tokenizerUri === undefined), {
		message: "give labelsUri (image data) or tokenizerUri (text data), not both",
		path: ["labelsUri"],
	})
	.refine((p) => p.tokenizerUri === undefined || p.mode === "scan", {
		message: "a text model is scanned in mode scan (no shards)",
		path: ["mode"],
	});

export type JobParams = z.infer<typeof jobParamsSchema>;

/** FTGUARD_MODEL_URI ↔ modelUri ↔ --model-uri */
const FIELDS = Object.keys(jobParamsSchema.shape) as Array<keyof JobParams>;
const envName = (f: string) => `FTGUARD_${f.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
const argName = (f: string) => f.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

export function readJobParams(argv: readonly string[], env: NodeJS.ProcessEnv): JobParams {
	const raw: Record<string, string> = {};
	for (const f of FIELDS) {
		const v = env[envName(f)];
		if (v !== undefined && v !== "") raw[f] = v;
	}
	// AWS Batch sets the array index itself for array jobs.
	if (env.AWS_BATCH_JOB_ARRAY_INDEX !== undefined && raw.arrayIndex === undefined)
		raw.arrayIndex = env.AWS_BATCH_JOB_ARRAY_INDEX;
	if (env.AWS_BATCH_JOB_ARRAY_SIZE !== undefined && raw.shards === undefined) raw.shards = env.AWS_BATCH_JOB_ARRAY_SIZE;
	let values: Record<string, string | boolean | undefined>;
	try {
		({ values } = parseArgs({
			args: [...argv],
			options: Object.fromEntries(FIELDS.map((f) => [argName(f), { type: "string" as const }])),
			strict: true,
			allowPositionals: false,
		}));
	} catch (e) {
		throw new FtguardError("USAGE", (e as Error).message.split("\n", 1)[0] ?? "bad arguments", { cause: e });
	}
	for (const f of FIELDS) {
		const v = values[argName(f)];
		if (typeof v === "string") raw[f] = v;
	}
	const parsed = jobParamsSchema.safeParse(raw);
	if (!parsed.success) throw new FtguardError("USAGE", `job parameters: ${zodMessage(parsed.error)}`);
	return parsed.data;
}

export { envName as jobEnvName };
