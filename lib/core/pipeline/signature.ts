/**
 * The signature stage: the marker bundle verified offline under the policy's
 * signers, then its signed resources compared with the manifest computed from
 * the stored objects — the verify sequence of `ftguard verify`
 * (lib/core/integrity/verify-signed.ts). Unsigned, missing and changed files
 * fail. Every failure is a result with a stable code (lib/core/errors), never a
 * thrown error: "the signature does not verify" is a finding the verdict records.
 */
import { FtguardError, toFtguardError } from "../errors";
import type { SignerInfo, TrustPolicy } from "../integrity";
import type { ResourceDescriptor, Serialization } from "../integrity/types";
import { verifySignedResources } from "../integrity/verify-signed";

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

/**
 * The signature state's outcome for the marker's bundle (undefined: the marker is not among the marked objects)
 * against the manifest the manifest state computed.
 */
export async function verifyManifestSignature(
	bundleBytes: Uint8Array | undefined,
	source: string,
	policies: readonly TrustPolicy[],
	manifest: {
		resources: readonly ResourceDescriptor[];
		/** `sha256:<hex>`, as the manifest state wrote it */
		rootDigest: string;
		serialization?: Pick<Serialization, "method" | "shard_size">;
	},
): Promise<SignatureOutcome> {
	if (bundleBytes === undefined) {
		return { verified: false, code: "NOT_FOUND", reason: "the marker is not among the marked objects" };
	}
	let identity: string | undefined;
	let mismatch: SignatureOutcome | undefined;
	try {
		const { signer } = await verifySignedResources(bundleBytes, {
			source,
			policies,
			content: "artefact",
			onSigner: (signer) => {
				identity = identityOf(signer);
			},
			compute: (statement) => {
				// The manifest state chose how to hash from this statement before it was verified: it must be what
				// the verified statement says (same method, same shard size), or the comparison would be meaningless.
				const signed = statement.serialization;
				const hashed = manifest.serialization ?? { method: "files" };
				if (
					signed.method !== hashed.method ||
					(signed.method === "shards" && signed.shard_size !== hashed.shard_size)
				) {
					const show = (s: Pick<Serialization, "method" | "shard_size">) =>
						s.method === "shards" ? `shards of ${s.shard_size} bytes` : s.method;
					const reason = `signed as ${show(signed)}, but the artefact was hashed as ${show(hashed)}`;
					const who = identity !== undefined ? { identity } : {};
					mismatch = { verified: false, ...who, code: "MANIFEST_MISMATCH", reason };
					throw new FtguardError("MANIFEST_MISMATCH", reason);
				}
				return { resources: manifest.resources, root: manifest.rootDigest.slice("sha256:".length) };
			},
		});
		return { verified: true, identity: identityOf(signer) };
	} catch (e) {
		// the mismatch outcome as built above (signer first), as the state has always carried it
		return mismatch ?? failed(e, identity);
	}
}
