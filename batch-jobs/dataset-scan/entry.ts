/**
 * The dataset gate's Batch job: scans a dataset version too large for the gate function (lambdas/dataset.ts submits
 * it with FTGUARD_DATASET_TARGET, the version's marker as JSON), with the same code (lib/aws/dataset.ts) — report and
 * lineage beside the data, tags, metrics on stdout (EMF). Exit 0: the verdict is written (PROMOTABLE or
 * QUARANTINED); 2: the scan could not run (what could be tagged is QUARANTINED; the objects it could not tag stay
 * untagged, which training roles cannot read).
 */
import { realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { S3Client } from "@aws-sdk/client-s3";
import { runDatasetGate } from "../../lib/aws/dataset";
import { loadPolicy } from "../../lib/aws/runtime";
import { toFtguardError } from "../../lib/core/errors";
import { parseGateTarget } from "../../lib/core/pipeline/input-gate";
import { DATASET_ENV } from "../../lib/core/pipeline/names";

export async function main(env: NodeJS.ProcessEnv, s3?: S3Client): Promise<0 | 2> {
	// a local S3-compatible endpoint (the local pipeline) is addressed path-style; S3 itself is not given one
	const client = s3 ?? new S3Client(env.AWS_ENDPOINT_URL_S3 ? { forcePathStyle: true } : {});
	try {
		const target = parseGateTarget(env[DATASET_ENV.TARGET], DATASET_ENV.TARGET);
		const out = await runDatasetGate(client, target, loadPolicy, { where: "batch" });
		process.stderr.write(`${JSON.stringify({ message: "dataset scanned", ...out })}\n`);
		return 0;
	} catch (e) {
		const err = toFtguardError(e);
		process.stderr.write(`ftguard dataset job: ${err.code}: ${err.message.split("\n")[0]}\n`);
		return 2;
	}
}

// Run when executed (tsx entry.ts), not when imported by tests.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
	process.exitCode = await main(process.env);
}
