/**
 * A small RGB classifier written with the model writer, covering what the torch
 * fixtures lack: three input channels (the mask is shared across them),
 * BatchNormalization, AveragePool and a MatMul + Add last layer.
 */
import type { OnnxModel } from "../../../lib/core/backdoor/onnx-model";
import { DataType } from "../../../lib/core/formats/onnx-wire";
import { f32, node, uniform } from "./grad-check";

export function rgbClassifier(): OnnxModel {
	const ints = (name: string, value: number[]) => ({ name, type: "ints" as const, value });
	return {
		irVersion: 7,
		opsetImports: [{ domain: "", version: 13 }],
		producerName: "test",
		graph: {
			name: "rgb",
			nodes: [
				node("Conv", ["input", "w1", "b1"], ["c"], [ints("kernel_shape", [3, 3]), ints("pads", [1, 1, 1, 1])]),
				node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["bn"]),
				node("Relu", ["bn"], ["r"]),
				node("AveragePool", ["r"], ["p"], [ints("kernel_shape", [2, 2]), ints("strides", [2, 2])]),
				node("Flatten", ["p"], ["f"]),
				node("MatMul", ["f", "w2"], ["mm"]),
				node("Add", ["mm", "b2"], ["z"]),
				node("Softmax", ["z"], ["probs"], [{ name: "axis", type: "int", value: 1 }]),
			],
			initializers: [
				f32("w1", [4, 3, 3, 3], uniform(108, 201, -0.5, 0.5)),
				f32("b1", [4], uniform(4, 202, -0.1, 0.1)),
				f32("scale", [4], uniform(4, 203, 0.5, 1.5)),
				f32("shift", [4], uniform(4, 204, -0.2, 0.2)),
				f32("mean", [4], uniform(4, 205, -0.1, 0.1)),
				f32("var", [4], uniform(4, 206, 0.5, 1.5)),
				f32("w2", [36, 5], uniform(180, 207, -1, 1)),
				f32("b2", [5], uniform(5, 208, -0.1, 0.1)),
			],
			inputs: [{ name: "input", elemType: DataType.FLOAT, shape: ["N", 3, 6, 6] }],
			outputs: [{ name: "probs", elemType: DataType.FLOAT, shape: ["N", 5] }],
		},
	};
}
