/**
 * ftguard's policy file: one JSON document that configures every check. Today
 * it holds the backdoor scan's section; the pipeline's sections (signer
 * identities, pickle policy, reference data and registry locations) join it.
 * Unknown keys are rejected so that a misspelt threshold cannot silently fall
 * back to its default.
 */
import { z } from "zod";
import { FtguardError } from "../errors";
import { zodMessage } from "../schema";
import { backdoorPolicySchema } from "./backdoor";

export const policySchema = z
	.object({
		version: z.literal(1).default(1),
		backdoor: backdoorPolicySchema.default(backdoorPolicySchema.parse({})),
	})
	.strict();

export type Policy = z.infer<typeof policySchema>;

/** Parses a policy document; any problem is a USAGE error naming the field. */
export function parsePolicy(text: string, source = "policy"): Policy {
	let json: unknown;
	try {
		json = JSON.parse(text);
	} catch (e) {
		throw new FtguardError("USAGE", `${source}: not JSON (${(e as Error).message})`, { cause: e });
	}
	const r = policySchema.safeParse(json);
	if (!r.success) throw new FtguardError("USAGE", `${source}: ${zodMessage(r.error)}`);
	return r.data;
}

export function defaultPolicy(): Policy {
	return policySchema.parse({});
}
