/**
 * The contract between the gradient driver (gradient.ts) and the rule tables
 * (gradient-rules-*.ts): what a rule is given for one forward node, what it
 * returns, and the helpers every op family uses.
 */
import { FtguardError } from "../errors";
import type { Emitter } from "./graph-emitter";
import { attrInt, describeNode } from "./node-attributes";
import type { OnnxNode, OnnxTensor } from "./onnx-model";

export interface RuleContext {
	e: Emitter;
	node: OnnxNode;
	/**
	 * Gradient of output 0; zeros when only other outputs of the node receive one
	 * (emitted on first read).
	 */
	readonly dy: string;
	/**
	 * Gradient of output i, undefined when none reaches it. A rule that reads only
	 * `dy` covers output 0 alone: the driver refuses a node whose other outputs
	 * carry a gradient its rule did not read.
	 */
	dyAt(i: number): string | undefined;
	shape(name: string): readonly number[];
	/** Whether input i needs a gradient. */
	needs(i: number): boolean;
	/** A constant input's values (initializer or Constant node), for axes given as inputs. */
	constInts(name: string): number[] | undefined;
	/** A constant input as a tensor (initializer or Constant node). */
	constTensor(name: string): OnnxTensor | undefined;
	opset: number;
}

/** Emits the vector-Jacobian product of one node: the gradient of each input (undefined: none needed). */
export type Rule = (c: RuleContext) => (string | undefined)[];

/** The rules of one op family, by op type (default domain). */
export type RuleTable = Readonly<Record<string, Rule>>;

export const unsupported = (node: OnnxNode, what: string) =>
	new FtguardError("MODEL_UNSUPPORTED", `cannot differentiate ${describeNode(node)}: ${what}`, {
		details: { opType: node.opType, domain: node.domain, node: node.name },
	});

export const input = (c: RuleContext, i: number) => c.node.inputs[i] as string;
export const output = (c: RuleContext) => c.node.outputs[0] as string;

export const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const sameShape = (a: readonly number[], b: readonly number[]) =>
	a.length === b.length && a.every((v, i) => v === b[i]);

/** A float32 zero tensor of a static shape (ConstantOfShape's default value). */
export const zeros = (e: Emitter, shape: readonly number[]) => e.op1("ConstantOfShape", [e.i64([...shape])]);

/** Sums a gradient of the broadcast shape `from` down to the operand shape `to`. */
export function unbroadcast(e: Emitter, g: string, from: readonly number[], to: readonly number[]): string {
	if (sameShape(from, to)) return g;
	const lead = from.length - to.length;
	const axes: number[] = [];
	for (let i = 0; i < from.length; i++) if (i < lead || (to[i - lead] === 1 && from[i] !== 1)) axes.push(i);
	const summed = axes.length === 0 ? g : e.op1("ReduceSum", [g, e.i64(axes)], [attrInt("keepdims", 1)]);
	return lead === 0 ? summed : e.op1("Reshape", [summed, e.i64([...to])]);
}
