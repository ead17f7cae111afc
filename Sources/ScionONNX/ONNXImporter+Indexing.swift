import ScionIR

/// ONNX node to IR op for the index arithmetic, masks, scatter and gather torch's exporters write
/// when lengths are only known at run time: Mod, Range, ConstantOfShape, Trilu, Slice with computed
/// bounds, ScatterND, GatherElements, Einsum. Constant cases are folded before this
/// (ONNXImporter+Folding); nil keeps a form the IR cannot say opaque.
extension ONNXImportSession {
    mutating func mapIndexingOp(_ node: ONNXNode, _ x: String) throws -> MappedNode? {
        let values = node.inputs.filter { !$0.isEmpty }
        switch node.opType {
        case "Mod":
            guard values.count == 2 else { return nil }
            return MappedNode(op: .onnx(.mod(ModAttributes(fmod: intAttribute(node, "fmod", 0) == 1))), inputs: values)
        case "Range":
            guard values.count == 3, node.inputs.count == 3 else { return nil }
            return MappedNode(op: .onnx(.range), inputs: values)
        case "ConstantOfShape":
            guard let fill = try constantOfShapeFill(node) else { return nil }
            return MappedNode(op: .onnx(.constantOfShape(fill)), inputs: [x])
        case "Trilu":
            let upper = intAttribute(node, "upper", 1) == 1
            guard let k = input(node, 1) else { return MappedNode(op: .onnx(.trilu(TriluAttributes(upper: upper, k: 0))), inputs: [x]) }
            if let constant = try numbers(k)?.integers, constant.count == 1 {
                return MappedNode(op: .onnx(.trilu(TriluAttributes(upper: upper, k: Int(truncatingIfNeeded: constant[0])))), inputs: [x])
            }
            return MappedNode(op: .onnx(.trilu(TriluAttributes(upper: upper, k: nil))), inputs: [x, k])
        case "Slice":
            return try computedSlice(node, x)
        case "ScatterND":
            guard values.count == 3, let reduction = ScatterReduction(rawValue: stringAttribute(node, "reduction", "none")) else { return nil }
            return MappedNode(op: .onnx(.scatterND(ScatterNDAttributes(reduction: reduction))), inputs: values)
        case "GatherND":
            guard values.count == 2 else { return nil }
            return MappedNode(op: .onnx(.gatherND(GatherNDAttributes(batchDimensions: intAttribute(node, "batch_dims", 0)))), inputs: values)
        case "GatherElements":
            guard values.count == 2 else { return nil }
            return MappedNode(op: .onnx(.gatherElements(GatherAttributes(axis: intAttribute(node, "axis", 0)))), inputs: values)
        case "Einsum":
            // Equations the executor cannot run stay opaque: the file still round-trips.
            let attributes = EinsumAttributes(equation: stringAttribute(node, "equation", ""))
            guard attributes.terms?.operands.count == values.count else { return nil }
            return MappedNode(op: .onnx(.einsum(attributes)), inputs: values)
        default:
            return try mapTransformerOp(node, x)
        }
    }

    /// ConstantOfShape's fill: its one-element `value` tensor, or float32 zero when absent.
    func constantOfShapeFill(_ node: ONNXNode) throws -> ConstantOfShapeAttributes? {
        guard case .tensor(let tensor)? = node.attribute("value") else { return ConstantOfShapeAttributes() }
        let value = try constant(from: tensor, fromInitializer: false)
        guard value.elementCount == 1, let size = value.dtype.byteSize else { return nil }
        let bytes = try value.storage.bytes(keep: true)
        guard bytes.count == size else { return nil }
        let number: Double? = bytes.withUnsafeBytes { raw in
            switch value.dtype {
            case .float32: Double(raw.loadUnaligned(as: Float.self))
            case .float64: raw.loadUnaligned(as: Double.self)
            case .int64: Double(raw.loadUnaligned(as: Int64.self))
            case .int32: Double(raw.loadUnaligned(as: Int32.self))
            case .int8: Double(raw.loadUnaligned(as: Int8.self))
            case .uint8, .bool: Double(raw.loadUnaligned(as: UInt8.self))
            default: nil
            }
        }
        guard let number else { return nil }
        return ConstantOfShapeAttributes(value: number, dtype: value.dtype)
    }

    /// A Pad (opset 11+) whose pads are computed: they stay an input, as does a computed fill
    /// value; constant axes (opset 18) are kept as attributes, computed ones are not supported.
    func computedPad(_ node: ONNXNode, _ x: String, mode: PadMode) throws -> MappedNode? {
        guard let pads = input(node, 1) else { return nil }
        var inputs = [x, pads]
        var value: Float? = 0
        if let fill = input(node, 2) {
            if let number = try numbers(fill)?.reals.first { value = Float(number) } else { value = nil; inputs.append(fill) }
        }
        var axes: [Int]? = nil
        if let axesInput = input(node, 3) {
            guard let values = try numbers(axesInput)?.integers else { return nil }
            axes = values.map { Int(truncatingIfNeeded: $0) }
        }
        return MappedNode(op: .onnx(.computedPad(ComputedPadAttributes(mode: mode, value: value, axes: axes))), inputs: inputs)
    }

    /// A Slice (opset 10+) whose bounds are not all constant: they stay inputs. Constant axes are
    /// recorded so shape inference keeps the other axes' lengths.
    func computedSlice(_ node: ONNXNode, _ x: String) throws -> MappedNode? {
        guard opset >= 10, let starts = input(node, 1), let ends = input(node, 2) else { return nil }
        let axes = input(node, 3), steps = input(node, 4)
        var knownAxes: [Int]? = nil
        if let axes, let values = try numbers(axes)?.integers, let rank = rank(x) {
            knownAxes = values.map { let axis = Int(truncatingIfNeeded: $0); return axis < 0 ? axis + rank : axis }
        } else if axes == nil, let count = shape(starts)?.dimensions.first ?? nil {
            knownAxes = Array(0..<count)
        }
        let attributes = ComputedSliceAttributes(hasAxes: axes != nil, hasSteps: steps != nil, knownAxes: knownAxes)
        return MappedNode(op: .onnx(.computedSlice(attributes)), inputs: [x, starts, ends] + [axes, steps].compactMap { $0 })
    }
}
