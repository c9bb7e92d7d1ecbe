/**
 * `ftguard provenance verify | show`: a verdict's signed provenance record (docs/provenance.md), checked against the
 * artefact a deployment is about to use — so it verifies the promotion instead of trusting a tag.
 */
import type { Command } from "commander";
import { FtguardError } from "../core/errors";
import type { SignerInfo } from "../core/integrity/trust-policy";
import type { ArtefactRoot } from "../core/provenance/artefact";
import {
	type ExitCode,
	formatBytes,
	type Io,
	printJson,
	processIo,
	progressLine,
	readArgFile,
	readArgText,
	runCommand,
} from "./io";

interface VerifyFlags {
	artefact: string;
	publicKey: string;
	json?: boolean;
}

export function registerProvenance(program: Command, setExit: (code: number) => void): void {
	const provenance = program
		.command("provenance")
		.description("check a verdict's signed provenance record (in-toto statement in a Sigstore bundle)");
	provenance
		.command("verify")
		.description(
			"verify a provenance record's signature, that it describes exactly the artefact's bytes, and its verdict",
		)
		.argument("<record>", "the record (provenance.sigstore.json the pipeline wrote beside the verdict)")
		.requiredOption("--artefact <dir|s3-uri>", "the artefact: a directory or file, or s3://bucket/prefix/ (or key)")
		.requiredOption("--public-key <pem>", "the provenance key's public key (SPKI PEM; in AWS: KMS GetPublicKey)")
		.option("--json", "machine-readable output")
		.addHelpText(
			"after",
			`
The artefact is hashed as the scan pipeline hashed it: every file but the commit marker (model.sig). For
s3:// the current version of every object is read (AWS credentials and region from the environment;
FTGUARD_S3_ENDPOINT for an S3-compatible server such as the local pipeline's).

Examples:
  ftguard provenance verify provenance.sigstore.json --artefact ./model --public-key provenance.pub.pem
  ftguard provenance verify provenance.sigstore.json --artefact s3://acme-checkpoints/jobs/j1/ --public-key provenance.pub.pem

Exit codes: 0 signature verified, bytes match and the verdict is PROMOTABLE; 1 a mismatch, a bad signature
or a QUARANTINED verdict; 2 could not check.`,
		)
		.action(async (record: string, flags: VerifyFlags) => {
			const io = processIo(Boolean(flags.json));
			setExit(await runCommand(io, () => verify(io, record, flags)));
		});
	provenance
		.command("show")
		.description("print a provenance record's statement WITHOUT verifying it (nothing in it is trusted)")
		.argument("<record>", "the record (a Sigstore bundle)")
		.action(async (record: string) => {
			const io = processIo(true);
			setExit(
				await runCommand(io, async () => {
					const { readProvenanceUnverified } = await import("../core/provenance/verify");
					const statement = readProvenanceUnverified(await readArgFile(record, `record ${record}`), record);
					io.out(JSON.stringify(statement, null, 2));
					return 0;
				}),
			);
		});
}

function describeSigner(s: SignerInfo): string {
	return s.keyFingerprint ? `key sha256:${s.keyFingerprint}` : s.kind;
}

async function verify(io: Io, record: string, flags: VerifyFlags): Promise<ExitCode> {
	const pem = await readArgText(flags.publicKey, `public key ${flags.publicKey}`);
	const bundle = await readArgFile(record, `record ${record}`);
	const { verifyProvenanceBundle, checkArtefactRoot, checkArtefactShape, recordedHashPlan } = await import(
		"../core/provenance/verify"
	);
	// the signature first: a forged record fails before a single artefact byte is read
	const verified = verifyProvenanceBundle(bundle, pem, record);
	const predicate = verified.statement.predicate;
	const plan = recordedHashPlan(predicate);
	let computed: ArtefactRoot;
	if (flags.artefact.startsWith("s3://")) {
		const { artefactRootAtUri } = await import("../aws/provenance-artefact");
		computed = await artefactRootAtUri(flags.artefact, plan, predicate.checkpoint.artefact.endsWith("/"));
	} else {
		const { artefactRootOnDisk } = await import("../core/provenance/artefact");
		const progress = progressLine(io, "hashing");
		computed = await artefactRootOnDisk(flags.artefact, plan, progress.update).finally(progress.done);
	}
	checkArtefactShape(predicate, computed, flags.artefact);
	checkArtefactRoot(verified, computed.root, flags.artefact);
	if (flags.artefact.startsWith("s3://")) {
		// a record of the same bytes elsewhere (a sandbox copy, another bucket) is not a verdict on this location
		const subject = verified.statement.subject[0].name;
		const here = (u: string) => (predicate.checkpoint.artefact.endsWith("/") && !u.endsWith("/") ? `${u}/` : u);
		if (here(flags.artefact) !== subject)
			throw new FtguardError("SUBJECT_INVALID", `the record is of ${subject}, not of ${flags.artefact}`);
	}

	const v = predicate.verdict;
	const promotable = v.status === "PROMOTABLE";
	if (io.json) {
		printJson(io, {
			ok: promotable,
			verified: true,
			matches: true,
			record,
			subject: verified.statement.subject[0],
			signer: verified.signer,
			artefact: { path: flags.artefact, kind: computed.kind, files: computed.files, bytes: computed.bytes },
			scanId: predicate.scanId,
			recordedAt: predicate.recordedAt,
			verdict: v,
		});
	} else {
		const why = [...v.reasons, ...(v.notes ?? []).map((n) => `note: ${n}`)];
		io.out(
			[
				`provenance verified: ${record}`,
				`  signer     ${describeSigner(verified.signer)}`,
				`  subject    ${verified.statement.subject[0].name} sha256:${verified.root}`,
				`  artefact   ${flags.artefact}: ${computed.files} files, ${formatBytes(computed.bytes)}, same root digest`,
				`  scan       ${predicate.scanId} recorded ${predicate.recordedAt}`,
				`  verdict    ${v.status}${why.length ? ` (${why.join("; ")})` : ""}`,
			].join("\n"),
		);
	}
	if (!promotable) io.err(`ftguard: the record's verdict is ${v.status}: ${v.reasons.join("; ") || "no reason given"}`);
	return promotable ? 0 : 1;
}
