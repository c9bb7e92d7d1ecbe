import { readFileSync } from "node:fs";
import { App, Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { FtguardStack, type FtguardStackProps } from "../../../lib/infra/stack.js";

/** The feature flags of cdk.json, so tests synthesize what `npx cdk synth` does. */
export function cdkJsonContext(): Record<string, unknown> {
	const cdkJson = JSON.parse(readFileSync(new URL("../../../cdk.json", import.meta.url), "utf8")) as {
		context?: Record<string, unknown>;
	};
	return cdkJson.context ?? {};
}

export function newApp(): App {
	return new App({ context: cdkJsonContext() });
}

/** A bare stack (with cdk.json's flags) for testing one construct. */
export function newStack(): Stack {
	return new Stack(newApp(), "Test");
}

type Synthesized = { stack: FtguardStack; template: Template };

/** Synthesizes an FtguardStack; `extend` may add constructs (e.g. consumer roles) before the template is taken. */
export function synthFtguard(props: FtguardStackProps = {}, extend?: (stack: FtguardStack) => void): Synthesized {
	const stack = new FtguardStack(newApp(), "Ftguard", props);
	extend?.(stack);
	return { stack, template: Template.fromStack(stack) };
}

/** Stacks shared by the test files of a vitest worker (test/infra runs unisolated), by their props' JSON. */
const shared = new Map<string, Synthesized & { constructs: number }>();

/**
 * The FtguardStack for `props` (plain data: they are keyed by their JSON), synthesized once per vitest worker and
 * shared by every test that only reads it, instead of a synthesis per test file. Never add constructs to it (it
 * throws when it finds one added): a test that extends the stack uses {@link synthFtguard}.
 */
export function sharedFtguard(props: FtguardStackProps = {}): Synthesized {
	const key = JSON.stringify(props);
	let entry = shared.get(key);
	if (!entry) {
		const synthesized = synthFtguard(props);
		entry = { ...synthesized, constructs: synthesized.stack.node.findAll().length };
		shared.set(key, entry);
	} else if (entry.stack.node.findAll().length !== entry.constructs) {
		throw new Error(`a test added constructs to the shared FtguardStack (${key}): use synthFtguard for its own stack`);
	}
	return { stack: entry.stack, template: entry.template };
}

/** The logical id of a construct's default CloudFormation resource. */
export function logicalId(construct: { node: { defaultChild?: unknown } }): string {
	const child = construct.node.defaultChild as { logicalId: string; stack: Stack } | undefined;
	if (!child) throw new Error("construct has no default child");
	return child.stack.resolve(child.logicalId) as string;
}
