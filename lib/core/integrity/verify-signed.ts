/**
 * The verify sequence `ftguard verify` (verify-model.ts: a directory) and the scan pipeline's signature state
 * (lib/core/pipeline/signature.ts: objects in S3) share, in the order that fails fastest and trusts least:
 *
 *   1. the bundle parses and verifies under the first trust policy that accepts it (cheap: no model bytes read
 *      yet, so a forged signature on a 100 GB model is rejected in milliseconds);
 *   2. the signed statement is well formed (predicate type, one subject) and its root digest really is the
 *      digest of its resources;
 *   3. the caller computes the model's resources the way the verified statement says (only now may it read them);
 *   4. signed vs. computed resources: unsigned, missing and changed files are named;
 *   5. the computed root digest vs. the signed one.
 *
 * Every failure is thrown as an FtguardError with its stable code; callers decide whether that is an exit code
 * or a result.
 */
import { FtguardError, isFtguardError } from "../errors";
import { parseBundle } from "./bundle";
import { assertNoDiff, diffResources } from "./compare";
import { verifyDsseBundle } from "./sigstore-dsse";
import { checkRootDigest, type ModelSigningStatement, parseModelSigningStatement } from "./statement";
import type { SignerInfo, TrustPolicy } from "./trust-policy";
import type { ResourceDescriptor } from "./types";

/** The resources the caller computed from the content, and their root digest (lower-case hex, as in Manifest). */
export interface ComputedResources {
	resources: readonly ResourceDescriptor[];
	root: string;
}

export interface SignedResourcesOptions<M extends ComputedResources> {
	/** where the bundle came from, for error messages */
	source: string;
	/** tried in order; when none accepts the bundle, the first one's error is reported */
	policies: readonly TrustPolicy[];
	/** what the root digest error calls the content: "model" (a directory) or "artefact" (objects in a bucket) */
	content: "model" | "artefact";
	/** called as soon as the signature verified, before the statement is read */
	onSigner?: (signer: SignerInfo) => void;
	/** step 3: the resources to compare, computed the way the verified statement says */
	compute: (statement: ModelSigningStatement) => M | Promise<M>;
	/** an extra line for the error that names unsigned files */
	unsignedHint?: (unsigned: readonly string[], statement: ModelSigningStatement) => string | undefined;
}

export interface SignedResources<M extends ComputedResources> {
	signer: SignerInfo;
	statement: ModelSigningStatement;
	computed: M;
}

export async function verifySignedResources<M extends ComputedResources>(
	bundleBytes: Uint8Array,
	o: SignedResourcesOptions<M>,
): Promise<SignedResources<M>> {
	if (o.policies.length === 0) throw new FtguardError("USAGE", "the policy lists no trusted signers");
	const bundle = parseBundle(bundleBytes, o.source);
	let verified: ReturnType<typeof verifyDsseBundle> | undefined;
	let firstError: unknown;
	for (const policy of o.policies) {
		try {
			verified = verifyDsseBundle(bundle, policy);
			break;
		} catch (e) {
			// The first trusted signer's error explains best; later ones are tried, not reported.
			firstError ??= e;
			if (!isFtguardError(e)) break;
		}
	}
	if (verified === undefined) throw firstError;
	const { payload, signer } = verified;
	o.onSigner?.(signer);

	const statement = parseModelSigningStatement(payload);
	checkRootDigest(statement);
	const computed = await o.compute(statement);

	const diff = diffResources(statement.resources, [...computed.resources], statement.serialization.method);
	assertNoDiff(diff, diff.unsigned.length > 0 ? o.unsignedHint?.(diff.unsigned, statement) : undefined);
	// Same files and digests imply the same root; checked anyway, because a verdict should rest on the one value
	// the signature actually covers.
	if (computed.root !== statement.rootDigest) {
		throw new FtguardError(
			"ROOT_DIGEST_MISMATCH",
			`the ${o.content}'s root digest differs from the signed subject digest`,
			{ details: { expected: statement.rootDigest, actual: computed.root } },
		);
	}
	return { signer, statement, computed };
}
