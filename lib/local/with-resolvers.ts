/**
 * aws-local-stepfunctions declares Node ≥ 22; on Node 20 it needs only
 * Promise.withResolvers (added in Node 22). Imported for its effect, before the
 * library runs; a no-op where Node has it.
 */
const promiseStatics = Promise as unknown as { withResolvers?: () => unknown };
promiseStatics.withResolvers ??= () => {
	let resolve: unknown;
	let reject: unknown;
	const promise = new Promise((res, rej) => {
		resolve = res;
		reject = rej;
	});
	return { promise, resolve, reject };
};
