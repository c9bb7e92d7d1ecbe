/**
 * ftguard CLI entry. Commands live in lib/cli, one file each; this file only
 * wires them to a commander program and owns the process exit code.
 */
import { Command, CommanderError } from "commander";
import { registerAws } from "../lib/cli/aws-command";
import { registerBackdoor } from "../lib/cli/backdoor";
import { registerBaseModel } from "../lib/cli/base-model";
import { registerDataset } from "../lib/cli/dataset";
import { registerDp } from "../lib/cli/dp";
import { registerFiles } from "../lib/cli/files";
import { registerHash } from "../lib/cli/hash";
import { registerMonitor } from "../lib/cli/monitor";
import { registerPipeline } from "../lib/cli/pipeline";
import { registerVerify } from "../lib/cli/verify";
import { VERSION } from "../lib/cli/version";

const program = new Command()
	.name("ftguard")
	.description(
		"Fine-tuning guard: checkpoint integrity, file safety and backdoor checks between a fine-tuning job and production.\nExit codes: 0 passed, 1 a check failed, 2 could not check.",
	)
	.version(VERSION)
	.showHelpAfterError("(run with --help for usage)")
	// Commander exits 1 on usage errors; in ftguard 1 means "a finding", so usage
	// errors are routed through exitOverride and become 2.
	.exitOverride();

let exitCode = 0;
const setExit = (code: number) => {
	exitCode = code;
};
// A reader that stops early (`ftguard files --help | head -1`) is no error of ours: end quietly, as Unix tools do.
for (const stream of [process.stdout, process.stderr])
	stream.on("error", (e: NodeJS.ErrnoException) => {
		if (e.code !== "EPIPE") throw e;
		process.exit(exitCode);
	});
registerHash(program, setExit);
registerVerify(program, setExit);
await import("../lib/cli/sign").then(({ registerSign }) => registerSign(program, setExit));
registerBaseModel(program, setExit);
registerFiles(program, setExit);
registerBackdoor(program, setExit);
// `ftguard bind` (export binding, issue 17): one self-contained block, its module loaded here
await import("../lib/cli/bind").then(({ registerBind }) => registerBind(program, setExit));
registerDataset(program, setExit);
registerMonitor(program, setExit);
registerDp(program, setExit);
await import("../lib/cli/report").then(({ registerReport }) => registerReport(program, setExit));
await import("../lib/cli/provenance").then(({ registerProvenance }) => registerProvenance(program, setExit));
registerPipeline(program, setExit);
registerAws(program, setExit);
for (const cmd of program.commands) cmd.exitOverride();
for (const cmd of program.commands.flatMap((c) => c.commands)) cmd.exitOverride();

try {
	await program.parseAsync(process.argv);
} catch (e) {
	if (e instanceof CommanderError) {
		// --help and --version end here with exit code 0.
		exitCode = e.exitCode === 0 ? 0 : 2;
	} else {
		process.stderr.write(`ftguard: INTERNAL: ${e instanceof Error ? e.message : String(e)}\n`);
		exitCode = 2;
	}
}
process.exitCode = exitCode;
