import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { provenanceSignerFromEnv, publicKeyPem } from "../../../lib/aws/kms-signer";
import { localProvenanceKey, publicKeyFileOf } from "../../../lib/local/provenance-key";

describe("localProvenanceKey", () => {
	it("creates a private key (0600) and its public key, then reuses it on the next run", async () => {
		const keyFile = join(mkdtempSync(join(tmpdir(), "ftguard-lpk-")), "state", "ftguard-provenance.key.pem");
		const first = localProvenanceKey(keyFile);
		expect(first).toEqual({ keyFile, publicKeyFile: publicKeyFileOf(keyFile), created: true });
		expect(first.publicKeyFile.endsWith("ftguard-provenance.pub.pem")).toBe(true);
		expect(statSync(keyFile).mode & 0o777).toBe(0o600);
		const pub = readFileSync(first.publicKeyFile, "utf8");
		expect(localProvenanceKey(keyFile).created).toBe(false);
		expect(readFileSync(first.publicKeyFile, "utf8")).toBe(pub);
		// what the record handler will sign with is the key whose public half was printed
		const signer = await provenanceSignerFromEnv({ FTGUARD_PROVENANCE_KEY_FILE: keyFile });
		expect(signer && publicKeyPem(signer)).toBe(pub);
	});

	it("refuses a file that is not an EC private key", () => {
		const keyFile = join(mkdtempSync(join(tmpdir(), "ftguard-lpk-")), "k.pem");
		writeFileSync(keyFile, "hello");
		expect(() => localProvenanceKey(keyFile)).toThrow(expect.objectContaining({ code: "KEY_INVALID" }));
	});
});
