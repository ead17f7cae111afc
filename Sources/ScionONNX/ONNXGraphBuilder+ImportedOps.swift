import Foundation
import ScionIR

/// ONNX for the ops the ONNX reader brings into the IR (OpAttributes+ONNX.swift), and for opaque ONNX
/// nodes, written back as they were read. Forms are those of opset 13+, the oldest Scion writes.
extension ONNXGraphBuilder {
    mutating func emitImported(_ node: Node, _ operation: ONNXOperation, role: [ParameterRole: String], inputShape: Shape?) throws {
        let output = node.outputs.first ?? node.name
        let input = node.inputs.first ?? ""
        /// A parameter by role, or else the node's input at `position` (an operand that is not constant).
        func operand(_ name: ParameterRole, position: Int) -> String? {
            role[name] ?? (position < node.inputs.count ? node.inputs[position] : nil)
        }
        switch operation {
        case .constant:
            guard let value = role[.value] else { throw unsupported(node, "has no 'value' weights") }
            // The value normally carries the parameter's own name: the initializer is the value.
            if value != output { add("Identity", name: node.name, inputs: [value], output: output) }
        case .gemm(let a):
            guard let b = operand(.kernel, position: 1) else { throw unsupported(node, "Gemm has no B operand") }
            var inputs = [input, b]
            if let c = role[.bias] ?? (role[.kernel] == nil ? (node.inputs.count > 2 ? node.inputs[2] : nil)
                                                              : (node.inputs.count > 1 ? node.inputs[1] : nil)) {
                inputs.append(c)
            }
            add("Gemm", name: node.name, inputs: inputs, output: output, attributes: [
                .float("alpha", a.alpha), .float("beta", a.beta),
                .int("transA", a.transposeA ? 1 : 0), .int("transB", a.transposeB ? 1 : 0),
            ])
        case .matMul:
            guard let right = operand(.kernel, position: 1) else { throw unsupported(node, "MatMul has no second operand") }
            add("MatMul", name: node.name, inputs: [input, right], output: output)
        case .unary(let operation):
            add(operation.typeName, name: node.name, inputs: [input], output: output)
        case .comparison(let operation):
            add(operation.typeName, name: node.name, inputs: node.inputs, output: output)
        case .select:
            add("Where", name: node.name, inputs: node.inputs, output: output)
        case .reduce(let a):
            var inputs = [input]
            var attributes: [ONNXAttribute] = [.int("keepdims", a.keepDimensions ? 1 : 0)]
            if let axes = a.axes {
                if opset >= 18 || (a.kind == .sum && opset >= 13) {
                    inputs.append(constant("\(node.name)/axes", int64s: axes.map { Int64($0) }))
                } else {
                    attributes.append(.ints("axes", axes))
                }
            }
            add(a.kind.typeName, name: node.name, inputs: inputs, output: output, attributes: attributes)
        case .gather(let a):
            add("Gather", name: node.name, inputs: node.inputs, output: output, attributes: [.int("axis", a.axis)])
        case .cast(let a):
            add("Cast", name: node.name, inputs: [input], output: output, attributes: [.int("to", Int(ONNXDataType(a.to).rawValue))])
        case .squeeze(let a), .unsqueeze(let a):
            let axes = constant("\(node.name)/axes", int64s: a.axes.map { Int64($0) })
            add(node.op.typeName, name: node.name, inputs: [input, axes], output: output)
        case .slice(let a):
            let inputs = [input, constant("\(node.name)/starts", int64s: a.starts.map { Int64($0) }),
                          constant("\(node.name)/ends", int64s: a.ends.map { Int64($0) }),
                          constant("\(node.name)/axes", int64s: a.axes.map { Int64($0) }),
                          constant("\(node.name)/steps", int64s: a.steps.map { Int64($0) })]
            add("Slice", name: node.name, inputs: inputs, output: output)
        case .split(let a) where a.sizes.isEmpty:
            // Equal parts of a length known at run time: `num_outputs` (opset 18) also sizes uneven
            // parts as the IR does; before it, ONNX splits into equal parts only.
            let attributes: [ONNXAttribute] = hasNative(18) ? [.int("axis", a.axis), .int("num_outputs", a.parts)] : [.int("axis", a.axis)]
            nodes.append(ONNXNode(name: uniqueNodeName(node.name), opType: "Split", inputs: [input], outputs: node.outputs,
                                  attributes: attributes))
        case .split(let a):
            let sizes = constant("\(node.name)/split", int64s: a.sizes.map { Int64($0) })
            nodes.append(ONNXNode(name: uniqueNodeName(node.name), opType: "Split", inputs: [input, sizes], outputs: node.outputs,
                                  attributes: [.int("axis", a.axis)]))
        case .pad(let a):
            var inputs = [input, constant("\(node.name)/pads", int64s: a.pads.map { Int64($0) })]
            if a.mode == .constant && a.value != 0 { inputs.append(scalar("\(node.name)/value", a.value)) }
            add("Pad", name: node.name, inputs: inputs, output: output, attributes: [.string("mode", a.mode.rawValue)])
        case .clip(let a):
            var inputs = [input, a.minimum.map { scalar("\(node.name)/min", $0) } ?? ""]
            if let maximum = a.maximum { inputs.append(scalar("\(node.name)/max", maximum)) }
            if a.maximum == nil && a.minimum == nil { inputs = [input] }
            add("Clip", name: node.name, inputs: inputs, output: output)
        case .resize(let a):
            var inputs = [input, ""]
            if let scales = a.scales {
                inputs.append(constant("\(node.name)/scales", floats: scales, dimensions: [Int64(scales.count)]))
            } else if let sizes = a.sizes {
                inputs += ["", constant("\(node.name)/sizes", int64s: sizes.map { Int64($0) })]
            } else {
                throw unsupported(node, "Resize has neither scales nor sizes")
            }
            var attributes: [ONNXAttribute] = [.string("mode", a.mode), .string("coordinate_transformation_mode", a.coordinateTransformation),
                                               .string("nearest_mode", a.nearestMode), .float("cubic_coeff_a", a.cubicCoefficient)]
            if a.excludeOutside { attributes.append(.int("exclude_outside", 1)) }
            if a.extrapolationValue != 0 { attributes.append(.float("extrapolation_value", a.extrapolationValue)) }
            add("Resize", name: node.name, inputs: inputs, output: output, attributes: attributes)
        case .localResponseNormalization(let a):
            add("LRN", name: node.name, inputs: [input], output: output, attributes: [
                .int("size", a.size), .float("alpha", a.alpha), .float("beta", a.beta), .float("bias", a.bias),
            ])
        case .coercedSoftmax(let a):
            // Before opset 13 Softmax flattened the axes from `axis` on into one; spelled out here.
            let flat = intermediate("Flatten", name: node.name, inputs: [input], attributes: [.int("axis", a.axis)])
            let normalized = intermediate(a.logarithm ? "LogSoftmax" : "Softmax", name: node.name, inputs: [flat],
                                          attributes: [.int("axis", 1)])
            let shape = intermediate("Shape", name: node.name, inputs: [input])
            add("Reshape", name: node.name, inputs: [normalized, shape], output: output)
        case .shape(let a):
            guard a.start != 0 || a.end != nil else {
                add("Shape", name: node.name, inputs: [input], output: output)
                return
            }
            if hasNative(15) {
                var attributes: [ONNXAttribute] = [.int("start", a.start)]
                if let end = a.end { attributes.append(.int("end", end)) }
                add("Shape", name: node.name, inputs: [input], output: output, attributes: attributes)
            } else {
                // Shape's start and end arrived in opset 15: before, a Slice of the whole shape.
                let whole = intermediate("Shape", name: node.name, inputs: [input])
                let end = Int64(a.end ?? Int(Int64.max))
                add("Slice", name: "\(node.name)/slice", inputs: [whole, constant("\(node.name)/start", int64s: [Int64(a.start)]),
                                                                 constant("\(node.name)/end", int64s: [end])], output: output)
            }
        case .computedBatchNormalization(let a):
            add("BatchNormalization", name: node.name, inputs: node.inputs, output: output, attributes: [.float("epsilon", a.epsilon)])
        case .computedInstanceNormalization(let a):
            add("InstanceNormalization", name: node.name, inputs: node.inputs, output: output, attributes: [.float("epsilon", a.epsilon)])
        case .expand:
            add("Expand", name: node.name, inputs: node.inputs, output: output)
        case .tile:
            add("Tile", name: node.name, inputs: node.inputs, output: output)
        case .mod, .range, .constantOfShape, .trilu, .computedSlice, .computedPad, .scatterND, .gatherND, .gatherElements, .einsum:
            try emitIndexing(node, operation, output: output)
        case .scaledDotProductAttention, .rmsNormalization, .rotaryEmbedding, .argExtreme, .cumulativeSum, .depthSpace:
            try emitTransformer(node, operation, role: role, inputShape: inputShape, output: output)
        case .computedReshape(let a):
            guard !a.allowZero || hasNative(14) else { throw unsupported(node, "Reshape with allowzero needs opset 14 or later") }
            add("Reshape", name: node.name, inputs: node.inputs, output: output, attributes: a.allowZero ? [.int("allowzero", 1)] : [])
        }
    }

    /// An ONNX node kept whole by the reader: its NodeProto is packed in the configuration. Its
    /// non-empty inputs and outputs are the IR node's, in order; empty ones (omitted optionals) stay.
    mutating func emitOpaqueONNX(_ node: Node, _ attributes: OpaqueAttributes) throws {
        var original = try ONNXNodePacking.unpack(attributes.configuration, file: file, subject: node.name)
        var inputs = node.inputs.makeIterator()
        original.inputs = original.inputs.map { $0.isEmpty ? "" : (inputs.next() ?? $0) }
        var outputs = node.outputs.makeIterator()
        original.outputs = original.outputs.map { $0.isEmpty ? "" : (outputs.next() ?? $0) }
        original.name = uniqueName(node.name)
        nodes.append(original)
    }

    /// ConvTranspose the reader brought: explicit ONNX pads, output padding and groups as they were.
    mutating func emitImportedConvTranspose(_ node: Node, _ a: ConvTransposeAttributes, role: [ParameterRole: String]) throws {
        guard case .explicit(let pads) = a.padding, let kernel = role[.kernel] else {
            throw unsupported(node, "an imported ConvTranspose needs explicit pads and a kernel")
        }
        let output = node.outputs.first ?? node.name
        let target = a.activation == .linear ? output : uniqueName("\(node.name)/linear")
        var attributes: [ONNXAttribute] = [.ints("kernel_shape", a.kernelSize), .ints("strides", a.strides),
                                           .ints("dilations", a.dilations), .ints("pads", pads), .int("group", a.groups)]
        if let outputPadding = a.outputPadding, outputPadding.contains(where: { $0 != 0 }) {
            attributes.append(.ints("output_padding", outputPadding))
        }
        var inputs = [node.inputs.first ?? "", kernel]
        if a.useBias, let bias = role[.bias] { inputs.append(bias) }
        add("ConvTranspose", name: node.name, inputs: inputs, output: target, attributes: attributes)
        if a.activation != .linear { try activation(a.activation, node: node, input: target, output: output, rank: nil) }
    }
}
