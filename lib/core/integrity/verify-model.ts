/**
 * Verifies a model directory (or single file) against an OpenSSF Model Signing
 * signature: the shared verify sequence (verify-signed.ts), with the model
 * re-hashed from disk with the signature's own serialization parameters once the
 * signature has verified.
 *
 * Ignore paths: the signer's `ignore_paths` are *not* honoured on their own. A
 * file the signature does not cover is unsigned content next to the model, and
 * only the verifying user may decide to accept it (`ignorePaths`); otherwise it
 * is reported, with a hint when the signer had listed it as ignored.
 */
import { readFile } from "node:fs/promises";
import { toFtguardError } from "../errors";
import { resourceFile } from "./compare";
import { buildManifest, hashOptionsFromSerialization } from "./manifest";
import type { ModelSigningStatement } from "./statement";
import type { SignerInfo, TrustPolicy } from "./trust-policy";
import type { HashProgress, Serialization } from "./types";
import { verifySignedResources } from "./verify-signed";
import { pathInside } from "./walk";

export interface VerifyModelOptions {
	policy: TrustPolicy;
	/** Extra paths, relative to the model directory, the user accepts as unsigned. */
	ignorePaths?: string[];
	onProgress?: (p: HashProgress) => void;
}

export interface VerifyModelResult {
	verified: true;
	signer: SignerInfo;
	subject: string;
	root: string;
	predicateType: string;
	serialization: Serialization;
	files: number;
	bytes: number;
}

export async function readSignatureFile(path: string): Promise<Buffer> {
	try {
		return await readFile(path);
	} catch (e) {
		throw toFtguardError(e, `cannot read signature ${path}`);
	}
}

/** The hint for unsigned files the signer had listed in its own ignore paths: only the user may accept them. */
function signerExcludedHint(unsigned: readonly string[], statement: ModelSigningStatement): string | undefined {
	const signerIgnored = new Set(statement.serialization.ignore_paths ?? []);
	const hinted = unsigned.filter((f) => signerIgnored.has(f) || [...signerIgnored].some((p) => f.startsWith(`${p}/`)));
	return hinted.length > 0
		? `the signer excluded ${hinted.join(", ")}; pass --ignore-paths ${hinted.join(",")} to accept it unsigned`
		: undefined;
}

export async function verifyModel(
	modelPath: string,
	signaturePath: string,
	options: VerifyModelOptions,
): Promise<VerifyModelResult> {
	const userIgnores = options.ignorePaths ?? [];
	const sigRel = pathInside(modelPath, signaturePath);
	const {
		signer,
		statement,
		computed: manifest,
	} = await verifySignedResources(await readSignatureFile(signaturePath), {
		source: signaturePath,
		policies: [options.policy],
		content: "model",
		compute: (signed) =>
			buildManifest(modelPath, {
				...hashOptionsFromSerialization(signed.serialization, signed.resources),
				ignorePaths: sigRel ? [...userIgnores, sigRel] : userIgnores,
				...(options.onProgress ? { onProgress: options.onProgress } : {}),
			}),
		unsignedHint: signerExcludedHint,
	});
	// The subject name is informational in OMS (a directory may be renamed after
	// signing): content is what is verified, and the name is reported as signed.
	return {
		verified: true,
		signer,
		subject: statement.subjectName,
		root: manifest.root,
		predicateType: statement.predicateType,
		serialization: manifest.serialization,
		files: new Set(manifest.resources.map((r) => resourceFile(r.name, statement.serialization.method))).size,
		bytes: manifest.bytes,
	};
}
