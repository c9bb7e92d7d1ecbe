/** `ftguard base-model check|entry`: the signed registry of approved base models. */
import type { Command } from "commander";
import { commaList, type Io, printJson, processIo, progressLine, runCommand } from "./io";
import { addTrustOptions, type TrustFlags, trustPolicyFromFlags } from "./trust-options";
import { describeSigner } from "./verify";

interface CheckFlags extends TrustFlags {
	id: string;
	registry: string;
	registryBundle: string;
	ignorePaths: string[];
	json?: boolean;
	metrics?: boolean;
}

interface EntryFlags {
	id: string;
	ignorePaths: string[];
	json?: boolean;
}

export function registerBaseModel(program: Command, setExit: (code: number) => void): void {
	const group = program
		.command("base-model")
		.description("check a base model against the signed registry of approved base models");

	const check = group
		.command("check")
		.description("verify the registry's signature, then every file of <dir> against the entry for --id")
		.argument("<dir>", "base-model directory")
		.requiredOption("--id <org/name@revision>", "registry id of the base model")
		.requiredOption("--registry <file>", "registry JSON")
		.requiredOption("--registry-bundle <bundle>", "Sigstore bundle over the registry file (cosign sign-blob --bundle)")
		.option("--ignore-paths <a,b>", "paths relative to <dir> to leave out (e.g. .cache)", commaList, []);
	addTrustOptions(check)
		.option("--json", "machine-readable output")
		.option(
			"--metrics",
			"also write base_model_verification_result (1 approved, 0 otherwise) as one CloudWatch EMF line on stderr",
		)
		.addHelpText(
			"after",
			"\nThe identity/key options name who must have signed the registry.\nExit codes: 0 approved, 1 not approved, 2 could not check (including an unsigned or tampered registry).\nWith --metrics the EMF line is written whatever the outcome (0 when not approved or not checked), on stderr so that\nstdout stays the result (--json): for a training container's entrypoint whose log driver ships EMF to CloudWatch.",
		)
		.action(async (dir: string, flags: CheckFlags) => {
			const io = processIo(Boolean(flags.json));
			const code = await runCommand(io, () => runCheck(io, dir, flags));
			if (flags.metrics) {
				// the document the base-model gate Lambda emits (lib/core/pipeline/base-model.ts): one definition
				const { baseModelMetricDocument } = await import("../core/pipeline/base-model");
				io.err(JSON.stringify(baseModelMetricDocument(flags.id, code === 0)));
			}
			setExit(code);
		});

	group
		.command("entry")
		.description("print the registry entry for <dir>, for the reviewed change that adds it")
		.argument("<dir>", "base-model directory")
		.requiredOption("--id <org/name@revision>", "registry id to record")
		.option("--ignore-paths <a,b>", "paths relative to <dir> to leave out", commaList, [])
		.option("--json", "machine-readable output (the entry alone)")
		.action(async (dir: string, flags: EntryFlags) => {
			const io = processIo(Boolean(flags.json));
			setExit(
				await runCommand(io, async () => {
					const { registryEntry } = await import("../core/integrity/registry");
					const progress = progressLine(io, "hashing");
					const entry = await registryEntry(dir, flags.id, {
						ignorePaths: flags.ignorePaths,
						onProgress: progress.update,
					}).finally(progress.done);
					// The entry is JSON either way: it is meant to be pasted into the registry.
					printJson(io, entry);
					return 0;
				}),
			);
		});
}

async function runCheck(io: Io, dir: string, flags: CheckFlags): Promise<0 | 1> {
	const { checkBaseModel, loadSignedRegistry } = await import("../core/integrity/registry");
	const policy = await trustPolicyFromFlags(flags);
	const { registry, signer } = await loadSignedRegistry(flags.registry, flags.registryBundle, policy);
	const progress = progressLine(io, "hashing");
	const result = await checkBaseModel(dir, flags.id, registry, {
		ignorePaths: flags.ignorePaths,
		onProgress: progress.update,
	}).finally(progress.done);
	if (io.json) {
		printJson(io, { ok: true, ...result, registrySigner: signer });
	} else {
		io.out(
			`${result.approved ? "APPROVED" : "NOT APPROVED"}  ${flags.id}  (registry signed by ${describeSigner(signer)})`,
		);
		for (const f of result.files) io.out(`  ${f.status.padEnd(7)} ${f.path}${f.pickle ? `  [${f.pickle}]` : ""}`);
		for (const r of result.reasons) io.out(`  reason: ${r}`);
	}
	return result.approved ? 0 : 1;
}
