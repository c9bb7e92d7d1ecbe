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

/** Synthesizes an FtguardStack; `extend` may add constructs (e.g. consumer roles) before the template is taken. */
export function synthFtguard(
	props: FtguardStackProps = {},
	extend?: (stack: FtguardStack) => void,
): { stack: FtguardStack; template: Template } {
	const stack = new FtguardStack(newApp(), "Ftguard", props);
	extend?.(stack);
	return { stack, template: Template.fromStack(stack) };
}

/** The logical id of a construct's default CloudFormation resource. */
export function logicalId(construct: { node: { defaultChild?: unknown } }): string {
	const child = construct.node.defaultChild as { logicalId: string; stack: Stack } | undefined;
	if (!child) throw new Error("construct has no default child");
	return child.stack.resolve(child.logicalId) as string;
}
