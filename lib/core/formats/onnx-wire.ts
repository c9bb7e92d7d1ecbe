/**
 * The ONNX schema (onnx.proto) as wire numbers: the field number of every
 * message field ftguard reads or writes, and the enum values it compares. The
 * one table behind the safety scanner (formats/onnx.ts), the backdoor engine's
 * model reader/writer and the pipeline's input-shape probe; names are the
 * proto's own, so each line can be checked against onnx.proto.
 */

export const ModelProto = {
	ir_version: 1,
	producer_name: 2,
	producer_version: 3,
	domain: 4,
	model_version: 5,
	doc_string: 6,
	graph: 7,
	opset_import: 8,
	metadata_props: 14,
	training_info: 20,
	functions: 25,
} as const;

export const OperatorSetIdProto = { domain: 1, version: 2 } as const;

export const GraphProto = {
	node: 1,
	name: 2,
	initializer: 5,
	doc_string: 10,
	input: 11,
	output: 12,
	value_info: 13,
	sparse_initializer: 15,
} as const;

export const NodeProto = {
	input: 1,
	output: 2,
	name: 3,
	op_type: 4,
	attribute: 5,
	doc_string: 6,
	domain: 7,
} as const;

export const AttributeProto = {
	name: 1,
	f: 2,
	i: 3,
	s: 4,
	t: 5,
	g: 6,
	floats: 7,
	ints: 8,
	strings: 9,
	tensors: 10,
	graphs: 11,
	doc_string: 13,
	tp: 14,
	type_protos: 15,
	type: 20,
	ref_attr_name: 21,
	sparse_tensor: 22,
	sparse_tensors: 23,
} as const;

/** AttributeProto.AttributeType: which of the value fields an attribute uses. */
export const AttributeType = {
	FLOAT: 1,
	INT: 2,
	STRING: 3,
	TENSOR: 4,
	GRAPH: 5,
	FLOATS: 6,
	INTS: 7,
	STRINGS: 8,
	TENSORS: 9,
	GRAPHS: 10,
	SPARSE_TENSOR: 11,
	SPARSE_TENSORS: 12,
	TYPE_PROTO: 13,
	TYPE_PROTOS: 14,
} as const;

export const TensorProto = {
	dims: 1,
	data_type: 2,
	segment: 3,
	float_data: 4,
	int32_data: 5,
	string_data: 6,
	int64_data: 7,
	name: 8,
	raw_data: 9,
	double_data: 10,
	uint64_data: 11,
	doc_string: 12,
	external_data: 13,
	data_location: 14,
} as const;

/** TensorProto.DataType: a tensor's element type. */
export const DataType = {
	UNDEFINED: 0,
	FLOAT: 1,
	UINT8: 2,
	INT8: 3,
	UINT16: 4,
	INT16: 5,
	INT32: 6,
	INT64: 7,
	STRING: 8,
	BOOL: 9,
	FLOAT16: 10,
	DOUBLE: 11,
	UINT32: 12,
	UINT64: 13,
	COMPLEX64: 14,
	COMPLEX128: 15,
	BFLOAT16: 16,
	FLOAT8E4M3FN: 17,
	FLOAT8E4M3FNUZ: 18,
	FLOAT8E5M2: 19,
	FLOAT8E5M2FNUZ: 20,
	UINT4: 21,
	INT4: 22,
	FLOAT4E2M1: 23,
} as const;

/** TensorProto.DataLocation: where a tensor's bytes are. */
export const DataLocation = { DEFAULT: 0, EXTERNAL: 1 } as const;

export const StringStringEntryProto = { key: 1, value: 2 } as const;

export const SparseTensorProto = { values: 1, indices: 2, dims: 3 } as const;

export const ValueInfoProto = { name: 1, type: 2, doc_string: 3 } as const;

export const TypeProto = { tensor_type: 1, sequence_type: 4, map_type: 5, sparse_tensor_type: 8 } as const;

/** TypeProto.Tensor. */
export const TypeProtoTensor = { elem_type: 1, shape: 2 } as const;

export const TensorShapeProto = { dim: 1 } as const;

/** TensorShapeProto.Dimension. */
export const Dimension = { dim_value: 1, dim_param: 2, denotation: 3 } as const;

export const TrainingInfoProto = { initialization: 1, algorithm: 2 } as const;

export const FunctionProto = {
	name: 1,
	input: 4,
	output: 5,
	attribute: 6,
	node: 7,
	opset_import: 9,
	domain: 10,
} as const;
