/**
 * The signature stage: the marker bundle verified offline under the policy's
 * signers, then its signed resources compared with the manifest computed from
 * the stored objects. Unsigned, missing and changed files fail. Every failure is
 * a result with a stable code (lib/core/errors), never a thrown error: "the
 * signature does not verify" is a finding the verdict records.
 */
import { isFtguardError, toFtguardError } from "../errors";
import { assertNoDiff, diffResources } from "../integrity/compare";
import {
	checkRootDigest,
	parseBundle,
	parseModelSigningStatement,
	type SignerInfo,
	type TrustPolicy,
	verifyDsseBundle,
} from "../integrity/sigstore";
import type { ResourceDescriptor, Serialization } from "../integrity/types";

export interface SignatureOutcome {
	verified: boolean;
	identity?: string;
	code?: string;
	reason?: string;
}

/** Who signed, in one string: the SAN for keyless, the key or certificate fingerprint otherwise. */
export function identityOf(s: SignerInfo): string {
	if (s.identity !== undefined) return s.issuer !== undefined ? `${s.identity} (${s.issuer})` : s.identity;
	if (s.certificateSubject !== undefined) return s.certificateSubject;
	if (s.keyFingerprint !== undefined) return `key sha256:${s.keyFingerprint}`;
	return s.kind;
}

function failed(e: unknown, identity?: string): SignatureOutcome {
	const err = toFtguardError(e);
	return { verified: false, code: err.code, reason: err.message, ...(identity !== undefined ? { identity } : {}) };
}

export function verifyManifestSignature(
	bundleBytes: Uint8Array,
	source: string,
	policies: readonly TrustPolicy[],
	manifest: {
		resources: readonly ResourceDescriptor[];
		rootDigest: string;
		serialization?: Pick<Serialization, "method" | "shard_size">;
	},
): SignatureOutcome {
	if (policies.length === 0) {
		return { verified: false, code: "USAGE", reason: "the policy lists no trusted signers" };
	}
	let verification: ReturnType<typeof verifyDsseBundle> | undefined;
	let firstError: unknown;
	try {
		const bundle = parseBundle(bundleBytes, source);
		for (const policy of policies) {
			try {
				verification = verifyDsseBundle(bundle, policy);
				break;
			} catch (e) {
				// The first trusted signer's error explains best; later ones are tried, not reported.
				firstError ??= e;
				if (!isFtguardError(e)) break;
			}
		}
	} catch (e) {
		return failed(e);
	}
	if (verification === undefined) return failed(firstError);
	const identity = identityOf(verification.signer);
	try {
		const statement = parseModelSigningStatement(verification.payload);
		checkRootDigest(statement);
		// The manifest state chose how to hash from this statement before it was verified: it must be what the
		// verified statement says (same method, same shard size), or the comparison below would be meaningless.
		const signed = statement.serialization;
		const hashed = manifest.serialization ?? { method: "files" };
		if (signed.method !== hashed.method || (signed.method === "shards" && signed.shard_size !== hashed.shard_size)) {
			const show = (s: Pick<Serialization, "method" | "shard_size">) =>
				s.method === "shards" ? `shards of ${s.shard_size} bytes` : s.method;
			return {
				verified: false,
				identity,
				code: "MANIFEST_MISMATCH",
				reason: `signed as ${show(signed)}, but the artefact was hashed as ${show(hashed)}`,
			};
		}
		assertNoDiff(diffResources(statement.resources, [...manifest.resources], signed.method));
		if (`sha256:${statement.rootDigest}` !== manifest.rootDigest) {
			return {
				verified: false,
				identity,
				code: "ROOT_DIGEST_MISMATCH",
				reason: "the artefact's root digest differs from the signed subject digest",
			};
		}
	} catch (e) {
		return failed(e, identity);
	}
	return { verified: true, identity };
}
