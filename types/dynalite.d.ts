/** The part of dynalite 4's API ftguard's tests use (the package ships no types): an http.Server speaking DynamoDB. */
declare module "dynalite" {
	import type { Server } from "node:http";

	export interface DynaliteOptions {
		/** a LevelDB directory; absent: in memory */
		path?: string;
		createTableMs?: number;
		deleteTableMs?: number;
		updateTableMs?: number;
		maxItemSizeKb?: number;
	}

	export default function dynalite(options?: DynaliteOptions): Server;
}
