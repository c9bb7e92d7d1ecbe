/**
 * The training job's declaration, `ftguard-training.json` at the top of a checkpoint artefact: which job made it,
 * from which code, base model and dataset version, and — when it trained with DP-SGD — the parameters of that run
 * and the ε it claims. It is one of the artefact's signed files, so the claim is the signer's word; ftguard checks
 * the arithmetic (lib/core/dp/gate.ts) and records the rest in the verdict (docs/dp.md).
 */
import { z } from "zod";
import { FtguardError } from "../errors";
import { zodMessage } from "../schema";

/** The file's name at the top of the artefact (a single-file artefact has none). */
export const TRAINING_METADATA = "ftguard-training.json";
/** Far above any real declaration; a larger file is refused unread. */
export const MAX_TRAINING_METADATA_BYTES = 64 * 1024;

const id = z
	.string()
	.min(1)
	.max(256)
	.regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces");
const positive = z.number().gt(0);

/**
 * One DP-SGD run. The sampling rate is given directly, or as batch size / dataset size (Poisson sampling); when
 * all three are given they must agree, so a rate cannot be understated beside the sizes it came from.
 */
export const dpSgdDeclarationSchema = z
	.object({
		/** noise standard deviation / clipping norm */
		noiseMultiplier: positive,
		/** per-example gradient clipping norm: without one, the noise bounds nothing */
		maxGradNorm: positive,
		sampleRate: z.number().gt(0).max(1).optional(),
		batchSize: z.number().int().min(1).optional(),
		datasetSize: z.number().int().min(1).optional(),
		steps: z.number().int().min(1).optional(),
		epochs: positive.optional(),
		delta: z.number().gt(0).lt(1),
		/** the ε the job reports (what its accountant printed) */
		epsilon: z.number().min(0).optional(),
		/** the accountant behind `epsilon`: Opacus's and TensorFlow Privacy's RDP (default), Opacus's PRV or GDP */
		accountant: z.enum(["rdp", "prv", "gdp"]).default("rdp"),
	})
	.strict()
	.refine((d) => d.sampleRate !== undefined || (d.batchSize !== undefined && d.datasetSize !== undefined), {
		message: "give sampleRate, or batchSize and datasetSize",
	})
	.refine((d) => d.batchSize === undefined || d.datasetSize === undefined || d.batchSize <= d.datasetSize, {
		message: "batchSize is larger than datasetSize",
	})
	.refine((d) => d.steps !== undefined || d.epochs !== undefined, { message: "give steps or epochs (or both)" });
export type DpSgdDeclaration = z.infer<typeof dpSgdDeclarationSchema>;

export const trainingMetadataSchema = z
	.object({
		/** the training job (SageMaker training job name, Batch job id, CI run id) */
		jobId: id.optional(),
		/** the commit of the training code */
		codeCommit: z
			.string()
			.regex(/^[0-9a-f]{7,64}$/, "a hex commit id")
			.optional(),
		/** the base model as the signed registry names it (org/name@revision) */
		baseModel: id.optional(),
		/** the dataset version's lineage root (ftguard dataset --lineage-out: sha256 hex) */
		datasetLineageRoot: z
			.string()
			.regex(/^(sha256:)?[0-9a-f]{64}$/, "a SHA-256 digest in hex")
			.optional(),
		dp: dpSgdDeclarationSchema.optional(),
	})
	.strict();
export type TrainingMetadata = z.infer<typeof trainingMetadataSchema>;

/** Parses the file's bytes; anything that is not exactly a declaration is DATA_INVALID with one line naming why. */
export function parseTrainingMetadata(bytes: Uint8Array, source: string = TRAINING_METADATA): TrainingMetadata {
	if (bytes.length > MAX_TRAINING_METADATA_BYTES)
		throw new FtguardError("DATA_INVALID", `${source} is ${bytes.length} bytes (limit ${MAX_TRAINING_METADATA_BYTES})`);
	let json: unknown;
	try {
		json = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes));
	} catch (e) {
		throw new FtguardError("DATA_INVALID", `${source}: not JSON (${(e as Error).message})`, { cause: e });
	}
	const r = trainingMetadataSchema.safeParse(json);
	if (!r.success) throw new FtguardError("DATA_INVALID", `${source}: ${printable(zodMessage(r.error))}`);
	return r.data;
}

/** The most of an attacker's text (an unknown key's name) a reason carries: it goes into logs, tags' records, pages. */
const MAX_MESSAGE_CHARS = 200;

/** One printable line: control characters escaped (no forged lines in a log or a terminal), at most 200 characters. */
function printable(text: string): string {
	const escaped = text.replace(
		// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
		/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g,
		(c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
	);
	return escaped.length > MAX_MESSAGE_CHARS ? `${escaped.slice(0, MAX_MESSAGE_CHARS)}…` : escaped;
}
