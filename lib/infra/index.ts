/**
 * ftguard's CDK constructs for another CDK app: `import { FtguardStack, CheckpointStore, … } from "ftguard/infra"`
 * (package.json "exports"; each module also as `ftguard/infra/<name>`). The constructs ship as TypeScript sources —
 * they bundle the Lambda handlers from lambdas/ and build the Batch image from batch-jobs/ at synth — so run the
 * app through tsx (`"app": "npx tsx bin/app.ts"` in cdk.json), as this repository does. docs/deploy.md.
 */
export * from "./alarms.js";
export * from "./backdoor-batch-job.js";
export * from "./checkpoint-store.js";
export * from "./config.js";
export * from "./dataset-gate.js";
export * from "./handler-bundles.js";
export * from "./isolated-network.js";
export * from "./scan-pipeline.js";
export * from "./scan-pipeline-props.js";
export * from "./stack.js";
export * from "./tags.js";
export * from "./training-job-access.js";
