import ScionIR

/// ONNX for the index arithmetic, masks, scatter and gather ops the reader brings
/// (ONNXImporter+Indexing): each written back as the one node it was, in the opset being written.
extension ONNXGraphBuilder {
    mutating func emitIndexing(_ node: Node, _ operation: ONNXOperation, output: String) throws {
        switch operation {
        case .mod(let a):
            add("Mod", name: node.name, inputs: node.inputs, output: output, attributes: [.int("fmod", a.fmod ? 1 : 0)])
        case .range:
            guard hasNative(11) else { throw unsupported(node, "Range needs opset 11 or later") }
            add("Range", name: node.name, inputs: node.inputs, output: output)
        case .constantOfShape(let a):
            guard hasNative(9) else { throw unsupported(node, "ConstantOfShape needs opset 9 or later") }
            let fill = try fillTensor(node, a)
            add("ConstantOfShape", name: node.name, inputs: node.inputs, output: output,
                attributes: [ONNXAttribute(name: "value", value: .tensor(fill))])
        case .trilu(let a):
            guard hasNative(14) else { throw unsupported(node, "Trilu needs opset 14 or later") }
            var inputs = node.inputs
            if let k = a.k, k != 0 { inputs.append(constant("\(node.name)/k", int64s: [Int64(k)], dimensions: [])) }
            add("Trilu", name: node.name, inputs: inputs, output: output, attributes: [.int("upper", a.upper ? 1 : 0)])
        case .computedSlice(let a):
            // An omitted axes input before steps is ONNX's empty name.
            var inputs = Array(node.inputs.prefix(3))
            if a.hasAxes { inputs.append(node.inputs[3]) } else if a.hasSteps { inputs.append("") }
            if a.hasSteps, let steps = node.inputs.last { inputs.append(steps) }
            add("Slice", name: node.name, inputs: inputs, output: output)
        case .computedPad(let a):
            // Inputs: data, pads, the fill value (computed, given or omitted), then the axes.
            var inputs = Array(node.inputs.prefix(2))
            if node.inputs.count > 2 {
                inputs.append(node.inputs[2])
            } else if let value = a.value, value != 0 {
                inputs.append(scalar("\(node.name)/value", value))
            }
            if let axes = a.axes {
                guard hasNative(18) else { throw unsupported(node, "Pad with axes needs opset 18 or later") }
                if inputs.count == 2 { inputs.append("") }
                inputs.append(constant("\(node.name)/axes", int64s: axes.map { Int64($0) }))
            }
            add("Pad", name: node.name, inputs: inputs, output: output, attributes: [.string("mode", a.mode.rawValue)])
        case .scatterND(let a):
            guard a.reduction == .none || hasNative(16) else {
                throw unsupported(node, "ScatterND with reduction \(a.reduction.rawValue) needs opset 16 or later")
            }
            add("ScatterND", name: node.name, inputs: node.inputs, output: output,
                attributes: a.reduction == .none ? [] : [.string("reduction", a.reduction.rawValue)])
        case .gatherND(let a):
            guard a.batchDimensions == 0 || hasNative(12) else { throw unsupported(node, "GatherND with batch_dims needs opset 12 or later") }
            add("GatherND", name: node.name, inputs: node.inputs, output: output,
                attributes: a.batchDimensions == 0 ? [] : [.int("batch_dims", a.batchDimensions)])
        case .gatherElements(let a):
            add("GatherElements", name: node.name, inputs: node.inputs, output: output, attributes: [.int("axis", a.axis)])
        case .einsum(let a):
            guard hasNative(12) else { throw unsupported(node, "Einsum needs opset 12 or later") }
            add("Einsum", name: node.name, inputs: node.inputs, output: output, attributes: [.string("equation", a.equation)])
        case .constant, .gemm, .matMul, .unary, .comparison, .select, .reduce, .gather, .cast, .squeeze, .unsqueeze, .slice,
             .split, .pad, .clip, .resize, .localResponseNormalization, .coercedSoftmax, .shape, .expand, .tile,
             .computedReshape, .computedBatchNormalization, .computedInstanceNormalization,
             .scaledDotProductAttention, .rmsNormalization, .rotaryEmbedding, .argExtreme, .cumulativeSum, .depthSpace:
            throw unsupported(node, "\(operation.typeName) is not an indexing op")
        }
    }

    /// ConstantOfShape's `value`: a one-element tensor of the fill's element type.
    private func fillTensor(_ node: Node, _ a: ConstantOfShapeAttributes) throws -> ONNXTensor {
        var bytes: [UInt8] = []
        func append<T>(_ value: T) { withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) } }
        switch a.dtype {
        case .float32: append(Float(a.value))
        case .float64: append(a.value)
        case .int64: append(Int64(exactly: a.value.rounded()) ?? 0)
        case .int32: append(Int32(exactly: a.value.rounded()) ?? 0)
        case .int8: append(Int8(exactly: a.value.rounded()) ?? 0)
        case .uint8, .bool: append(UInt8(exactly: a.value.rounded()) ?? 0)
        default: throw unsupported(node, "ConstantOfShape of \(a.dtype) is not written")
        }
        return ONNXTensor(name: "value", dimensions: [1], dataType: ONNXDataType(a.dtype).rawValue, data: .raw(bytes))
    }
}
