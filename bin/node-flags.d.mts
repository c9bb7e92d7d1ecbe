/** Types of bin/node-flags.mjs (plain JavaScript: bin/ftguard.mjs loads it before any TypeScript loader). */
export declare const PIPELINE_NODE_FLAGS: readonly string[];
export declare function startedWith(flags: readonly string[]): boolean;
export declare function rerunWith(flags: readonly string[]): void;
