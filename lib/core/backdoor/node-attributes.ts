/**
 * ONNX node attributes as the graph builders use them: constructors for the
 * attributes they emit, typed readers with the ONNX default for the ones they
 * read, and a node's name for error messages.
 */
import type { OnnxAttribute, OnnxNode } from "./onnx-model";

export const attrInt = (name: string, value: number): OnnxAttribute => ({ name, type: "int", value });
export const attrFloat = (name: string, value: number): OnnxAttribute => ({ name, type: "float", value });
export const attrInts = (name: string, value: number[]): OnnxAttribute => ({ name, type: "ints", value });
export const attrString = (name: string, value: string): OnnxAttribute => ({ name, type: "string", value });

export function getAttr(node: OnnxNode, name: string): OnnxAttribute | undefined {
	return node.attributes.find((a) => a.name === name);
}
export function getInt(node: OnnxNode, name: string, def: number): number {
	const a = getAttr(node, name);
	return a?.type === "int" ? a.value : def;
}
export function getFloat(node: OnnxNode, name: string, def: number): number {
	const a = getAttr(node, name);
	return a?.type === "float" ? a.value : def;
}
export function getInts(node: OnnxNode, name: string): number[] | undefined {
	const a = getAttr(node, name);
	return a?.type === "ints" ? a.value : undefined;
}
export function getString(node: OnnxNode, name: string, def: string): string {
	const a = getAttr(node, name);
	return a?.type === "string" ? a.value : def;
}

export function describeNode(node: OnnxNode): string {
	const op = node.domain === "" || node.domain === "ai.onnx" ? node.opType : `${node.domain}:${node.opType}`;
	return `${op} node "${node.name || node.outputs[0] || "?"}"`;
}
