import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type TrustFlags, trustPolicyFromFlags } from "../../../lib/cli/trust-options";

async function code(flags: TrustFlags): Promise<string> {
	try {
		await trustPolicyFromFlags(flags);
	} catch (e) {
		return (e as { code: string }).code;
	}
	return "no error";
}

describe("trustPolicyFromFlags", () => {
	const dir = mkdtempSync(join(tmpdir(), "ftguard-trust-"));
	const pem = join(dir, "k.pem");
	writeFileSync(pem, "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n");

	it("refuses no trust mode and refuses two at once", async () => {
		expect(await code({})).toBe("USAGE");
		expect(await code({ identity: "a@b", identityProvider: "https://x", publicKey: pem })).toBe("USAGE");
		expect(await code({ publicKey: pem, certificateChain: pem })).toBe("USAGE");
	});

	it("needs an issuer for keyless and refuses identity with identity-regexp", async () => {
		expect(await code({ identity: "a@b" })).toBe("USAGE");
		expect(await code({ identity: "a@b", identityRegexp: ".*", identityProvider: "https://x" })).toBe("USAGE");
		expect(await code({ identityRegexp: "(", identityProvider: "https://x" })).toBe("USAGE");
	});

	it("refuses keyless-only flags in keyed modes", async () => {
		expect(await code({ publicKey: pem, identityProvider: "https://x" })).toBe("USAGE");
		expect(await code({ publicKey: pem, trustedRoot: pem })).toBe("USAGE");
	});

	it("reports an unreadable key file and a non-JSON trusted root", async () => {
		expect(await code({ publicKey: join(dir, "absent.pem") })).toBe("NOT_FOUND");
		expect(await code({ identity: "a@b", identityProvider: "https://x", trustedRoot: pem })).toBe("TRUST_ROOT_INVALID");
	});

	it("builds each policy kind", async () => {
		await expect(trustPolicyFromFlags({ identity: "a@b", identityProvider: "https://x" })).resolves.toEqual({
			kind: "keyless",
			identity: { exact: "a@b" },
			issuer: "https://x",
		});
		await expect(
			trustPolicyFromFlags({ identityRegexp: ".*@b", identityProvider: "https://x" }),
		).resolves.toMatchObject({
			identity: { regexp: ".*@b" },
		});
		await expect(trustPolicyFromFlags({ publicKey: pem })).resolves.toMatchObject({ kind: "public-key" });
		await expect(trustPolicyFromFlags({ certificateChain: pem })).resolves.toMatchObject({ kind: "certificate-chain" });
	});
});
