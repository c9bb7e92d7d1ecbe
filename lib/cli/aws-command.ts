/**
 * `ftguard aws preflight|smoke`: the AWS deployment's checks before and after `cdk deploy` (docs/deploy.md). The
 * implementations (and the AWS SDK clients) load only when one of them runs.
 */
import { type Command, InvalidArgumentError } from "commander";
import type { PreflightFlags } from "./aws-preflight";
import type { SmokeFlags } from "./aws-smoke";
import { processIo, runCommand } from "./io";

const seconds =
	(flag: string) =>
	(v: string): number => {
		const n = Number(v);
		if (!/^[0-9]+(\.[0-9]+)?$/.test(v) || n <= 0)
			throw new InvalidArgumentError(`${flag} must be a number of seconds > 0`);
		return n;
	};

export function registerAws(program: Command, setExit: (code: number) => void): void {
	const group = program
		.command("aws")
		.description("checks of the AWS deployment: preflight before cdk deploy, smoke after it (docs/deploy.md)");

	group
		.command("preflight")
		.description(
			"with your AWS credentials: are the G/VT vCPU quota, Lambda concurrency and the GPU instance families there for the deployment?",
		)
		.option("--config <file>", "deployment config (ftguard.config.json): its gpu.maxVcpus and gpu.instanceClasses")
		.option("--region <region>", "region to check (default: the config's, else AWS_REGION / the profile's)")
		.option("--json", "print one JSON document on stdout")
		.addHelpText(
			"after",
			"\nChecks: EC2 quota L-DB2E81BA (Running On-Demand G and VT instances, vCPUs) >= max vCPUs;\nLambda concurrent executions >= what ftguard reserves + 100; each GPU family offered in an availability zone.\nExit codes: 0 all there, 1 something missing (each printed), 2 could not check (AWS_CREDENTIALS, AWS_API_ERROR, USAGE).",
		)
		.action(async (flags: PreflightFlags) => {
			const io = processIo(Boolean(flags.json));
			setExit(
				await runCommand(io, async () => {
					const { runPreflight } = await import("./aws-preflight");
					return runPreflight(io, flags);
				}),
			);
		});

	group
		.command("smoke")
		.description(
			"commit a signed copy and a tampered copy of the example checkpoint to the checkpoint bucket; wait for PROMOTABLE and QUARANTINED",
		)
		.requiredOption("--endpoint <url>", "S3 endpoint, e.g. https://s3.eu-west-1.amazonaws.com or the local pipeline's")
		.requiredOption("--bucket <name>", "the checkpoint bucket (stack output CheckpointBucketName)")
		.requiredOption(
			"--key <file>",
			"the smoke-test private key (EC, PEM) whose public key the config's smokeTest names",
		)
		.option(
			"--report-bucket <name>",
			"read the verdict records there instead of the status tags (needed on AWS unless you run as a role that may read tags)",
		)
		.option(
			"--prefix <prefix>",
			"key prefix of the uploads, ending in / (a run id is added below it)",
			"ftguard-smoke/",
		)
		.option("--region <region>", "signing region (default: from the endpoint's host name, else AWS_REGION)")
		.option("--timeout <s>", "seconds to wait for both verdicts", seconds("--timeout"), 900)
		.option("--interval <s>", "seconds between looks at a verdict", seconds("--interval"), 5)
		.option("--json", "print one JSON document on stdout")
		.addHelpText(
			"after",
			"\nUploads every file, then model.sig last (the commit marker), under <prefix><run id>/signed/ and …/tampered/.\nCredentials: the AWS SDK's default chain (AWS_PROFILE, …); for ftguard pipeline, AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER.\nExit codes: 0 PROMOTABLE and QUARANTINED as expected, 1 another verdict or none in time, 2 could not run.",
		)
		.action(async (flags: SmokeFlags) => {
			const io = processIo(Boolean(flags.json));
			setExit(
				await runCommand(io, async () => {
					const { runSmoke } = await import("./aws-smoke");
					return runSmoke(io, flags);
				}),
			);
		});
}
