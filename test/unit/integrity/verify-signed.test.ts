/**
 * The verify sequence `ftguard verify` and the pipeline's signature state share (lib/core/integrity/verify-signed.ts):
 * signature before content, the first trusted signer's error, the diff and the root digest compared one way.
 */
import { describe, expect, it } from "vitest";
import { FtguardError } from "../../../lib/core/errors";
import type { ModelSigningStatement } from "../../../lib/core/integrity/statement";
import type { TrustPolicy } from "../../../lib/core/integrity/trust-policy";
import { verifySignedResources } from "../../../lib/core/integrity/verify-signed";
import {
	generateEcKeyPair,
	makeModelSigningStatement,
	referenceRootDigest,
	signStatementKeyed,
} from "../../helpers/sign";

const signer = generateEcKeyPair("P-256");
const stranger = generateEcKeyPair("P-256");
const other = generateEcKeyPair("P-384");
const policyOf = (k: { publicKeyPem: string }): TrustPolicy => ({ kind: "public-key", pem: k.publicKeyPem });

const resources = [
	{ name: "config.json", algorithm: "sha256" as const, digest: "a".repeat(64) },
	{ name: "w.bin", algorithm: "sha256" as const, digest: "b".repeat(64) },
];
const root = referenceRootDigest(resources);
const statement = makeModelSigningStatement({
	modelName: "m",
	resources,
	serialization: { ignore_paths: ["notes"] },
});
const bundle = Buffer.from(JSON.stringify(signStatementKeyed(statement, { keyPair: signer }).bundle));

async function codeOf(p: Promise<unknown>): Promise<string> {
	try {
		await p;
	} catch (e) {
		if (e instanceof FtguardError) return e.code;
		throw e;
	}
	throw new Error("expected a failure");
}

describe("verifySignedResources", () => {
	it("verifies the signature before the caller computes anything, then compares", async () => {
		const calls: string[] = [];
		const r = await verifySignedResources(bundle, {
			source: "m/model.sig",
			policies: [policyOf(signer)],
			content: "model",
			onSigner: (s) => calls.push(`signer ${s.kind}`),
			compute: (st: ModelSigningStatement) => {
				calls.push(`compute ${st.serialization.method}`);
				return { resources, root, extra: 1 };
			},
		});
		expect(calls).toEqual(["signer public-key", "compute files"]);
		expect(r.signer.kind).toBe("public-key");
		expect(r.statement.rootDigest).toBe(root);
		expect(r.computed.extra).toBe(1);
	});

	it("refuses an empty signer list before reading the bundle", async () => {
		const p = verifySignedResources(Buffer.from("not a bundle"), {
			source: "x",
			policies: [],
			content: "artefact",
			compute: () => ({ resources, root }),
		});
		await expect(p).rejects.toThrow("the policy lists no trusted signers");
		expect(await codeOf(p)).toBe("USAGE");
	});

	it("tries every trusted signer, reports the first one's error, and computes nothing when none accepts", async () => {
		let computed = false;
		const compute = () => {
			computed = true;
			return { resources, root };
		};
		const alone = await verifySignedResources(bundle, {
			source: "m/model.sig",
			policies: [policyOf(stranger)],
			content: "model",
			compute,
		}).catch((e: FtguardError) => e);
		const both = await verifySignedResources(bundle, {
			source: "m/model.sig",
			policies: [policyOf(stranger), policyOf(other)],
			content: "model",
			compute,
		}).catch((e: FtguardError) => e);
		expect(alone).toBeInstanceOf(FtguardError);
		expect(both).toMatchObject({ code: (alone as FtguardError).code, message: (alone as FtguardError).message });
		expect(computed).toBe(false);
		const second = await verifySignedResources(bundle, {
			source: "m/model.sig",
			policies: [policyOf(stranger), policyOf(signer)],
			content: "model",
			compute,
		});
		expect(second.signer.kind).toBe("public-key");
		expect(computed).toBe(true);
	});

	it("names unsigned files with the caller's hint, and asks for no hint otherwise", async () => {
		const hinted: string[][] = [];
		const unsignedHint = (unsigned: readonly string[]) => {
			hinted.push([...unsigned]);
			return "accept it with a flag";
		};
		const extra = [...resources, { name: "notes", algorithm: "sha256" as const, digest: "c".repeat(64) }];
		const p = verifySignedResources(bundle, {
			source: "m/model.sig",
			policies: [policyOf(signer)],
			content: "model",
			compute: () => ({ resources: extra, root: referenceRootDigest(extra) }),
			unsignedHint,
		});
		await expect(p).rejects.toThrow("unsigned: notes (accept it with a flag)");
		expect(await codeOf(p)).toBe("UNSIGNED_FILE");
		expect(hinted[0]).toEqual(["notes"]);

		hinted.length = 0;
		const changed = [resources[0], { ...resources[1], digest: "d".repeat(64) }] as typeof resources;
		const q = verifySignedResources(bundle, {
			source: "m/model.sig",
			policies: [policyOf(signer)],
			content: "model",
			compute: () => ({ resources: changed, root: referenceRootDigest(changed) }),
			unsignedHint,
		});
		expect(await codeOf(q)).toBe("DIGEST_MISMATCH");
		expect(hinted).toEqual([]);
	});

	it.each(["model", "artefact"] as const)("compares the %s's root digest with the signed one", async (content) => {
		const err = await verifySignedResources(bundle, {
			source: "m/model.sig",
			policies: [policyOf(signer)],
			content,
			compute: () => ({ resources, root: "0".repeat(64) }),
		}).catch((e: FtguardError) => e);
		expect(err).toMatchObject({
			code: "ROOT_DIGEST_MISMATCH",
			message: `the ${content}'s root digest differs from the signed subject digest`,
			details: { expected: root, actual: "0".repeat(64) },
		});
	});
});
