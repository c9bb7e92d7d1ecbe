/** `ftguard verify`: a model (OMS signature) or a single artefact (cosign blob bundle). */
import type { Command } from "commander";
import { FtguardError } from "../core/errors";
import type { SignerInfo } from "../core/integrity";
import { commaList, formatBytes, type Io, printJson, processIo, progressLine, runCommand } from "./io";
import { addTrustOptions, type TrustFlags, trustPolicyFromFlags } from "./trust-options";

interface VerifyFlags extends TrustFlags {
	signature?: string;
	bundle?: string;
	ignorePaths: string[];
	json?: boolean;
}

export function registerVerify(program: Command, setExit: (code: number) => void): void {
	const cmd = program
		.command("verify")
		.description(
			"verify a model directory against its OpenSSF Model Signing signature (--signature), or a single file against a cosign sign-blob bundle (--bundle)",
		)
		.argument("<path>", "model directory, model file, or artefact")
		.option("--signature <model.sig>", "OMS signature bundle of the model")
		.option("--bundle <x.sigstore.json>", "Sigstore bundle of a single artefact (cosign sign-blob --bundle)")
		.option(
			"--ignore-paths <a,b>",
			"paths relative to the model directory to accept unsigned (the signature file is always ignored)",
			commaList,
			[],
		);
	addTrustOptions(cmd)
		.option("--json", "machine-readable output")
		.addHelpText(
			"after",
			`
Exactly one trust mode:
  --identity <id> --identity-provider <issuer>   keyless Sigstore (public-good root, offline)
  --public-key <pem>                              EC key
  --certificate-chain <pem>                       private CA

Examples:
  ftguard verify ./model --signature ./model/model.sig --identity ci@example.com --identity-provider https://accounts.google.com
  ftguard verify ./model --signature ./model/model.sig --public-key signer.pub.pem
  ftguard verify weights.safetensors --bundle weights.safetensors.sigstore.json --public-key signer.pub.pem

Exit codes: 0 verified, 1 verification failed, 2 could not verify.`,
		)
		.action(async (path: string, flags: VerifyFlags) => {
			const io = processIo(Boolean(flags.json));
			setExit(await runCommand(io, () => verify(io, path, flags)));
		});
}

export function describeSigner(s: SignerInfo): string {
	if (s.identity) return `${s.identity}${s.issuer ? ` (issuer ${s.issuer})` : ""}`;
	if (s.certificateSubject) return `certificate ${s.certificateSubject}`;
	if (s.keyFingerprint) return `key sha256:${s.keyFingerprint}`;
	return s.kind;
}

async function verify(io: Io, path: string, flags: VerifyFlags): Promise<0> {
	if ((flags.signature === undefined) === (flags.bundle === undefined)) {
		throw new FtguardError("USAGE", "give exactly one of --signature (model) or --bundle (single artefact)");
	}
	if (flags.bundle !== undefined && flags.ignorePaths.length > 0) {
		throw new FtguardError("USAGE", "--ignore-paths applies to model directories (--signature), not --bundle");
	}
	const policy = await trustPolicyFromFlags(flags);
	const [{ parseBundle, verifyBlobBundle }, { readSignatureFile, verifyModel }] = await Promise.all([
		import("../core/integrity"),
		import("../core/integrity/verify-model"),
	]);

	if (flags.bundle !== undefined) {
		const bundle = parseBundle(await readSignatureFile(flags.bundle), flags.bundle);
		const result = await verifyBlobBundle(bundle, policy, path);
		if (io.json) printJson(io, { ok: true, verified: true, path, kind: "artefact", ...result });
		else io.out(`verified ${path}\n  signer  ${describeSigner(result.signer)}\n  sha256  ${result.digest}`);
		return 0;
	}

	const progress = progressLine(io, "verifying");
	const result = await verifyModel(path, flags.signature as string, {
		policy,
		ignorePaths: flags.ignorePaths,
		onProgress: progress.update,
	}).finally(progress.done);
	if (io.json) {
		printJson(io, { ok: true, path, kind: "model", ...result });
	} else {
		io.out(
			[
				`verified ${path}`,
				`  signer     ${describeSigner(result.signer)}`,
				`  subject    ${result.subject} sha256:${result.root}`,
				`  content    ${result.files} files, ${formatBytes(result.bytes)} (method ${result.serialization.method})`,
			].join("\n"),
		);
	}
	return 0;
}
