/**
 * What `ftguard files` runs: the scan engine and its scanners, bundled on their own
 * as CommonJS (dist/files-engine.cjs, by scripts/build.mjs) so that the CLI can load
 * them with a V8 code cache on Node 20 (lib/cli/code-cache.ts). Running from the
 * sources (tsx), lib/cli/files.ts imports this module directly.
 */
export { FtguardError } from "../core/errors";
export { defaultScanOptions } from "../core/formats";
export { toSarif } from "../core/formats/sarif";
export { scanPaths } from "../core/formats/scan";
