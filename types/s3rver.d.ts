/** The part of s3rver 3.7's API ftguard uses (the package ships no types). */
declare module "s3rver" {
	import type { EventEmitter } from "node:events";
	import type { AddressInfo } from "node:net";

	export interface S3rverOptions {
		address?: string;
		port?: number;
		silent?: boolean;
		directory?: string;
		resetOnClose?: boolean;
		allowMismatchedSignatures?: boolean;
		vhostBuckets?: boolean;
		configureBuckets?: Array<{ name: string; configs: Array<string | Buffer> }>;
	}

	export default class S3rver extends EventEmitter {
		constructor(options?: S3rverOptions);
		run(): Promise<AddressInfo>;
		close(): Promise<void>;
		reset(): void;
	}
}
