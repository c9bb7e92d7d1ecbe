/** ftguard's version, from package.json (inlined by the bundler; no environment lookup). */
import pkg from "../../package.json" with { type: "json" };

export const VERSION: string = pkg.version;
