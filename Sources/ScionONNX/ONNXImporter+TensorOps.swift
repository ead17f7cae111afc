import ScionIR

/// ONNX node to IR op for the tensor-manipulation and arithmetic ops: merges with broadcasting (and
/// opset 6's `broadcast`/`axis`), reshaping, slicing, padding, resizing, reductions.
extension ONNXImportSession {
    mutating func mapTensorOp(_ node: ONNXNode, _ x: String) throws -> MappedNode? {
        let single = { (op: Op) in MappedNode(op: op, inputs: [x]) }
        let values = node.inputs.filter { !$0.isEmpty }
        switch node.opType {
        case "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean":
            let operations: [String: ElementwiseOperation] = [
                "Add": .add, "Sub": .subtract, "Mul": .multiply, "Div": .divide, "Pow": .power,
                "Max": .maximum, "Min": .minimum, "Sum": .add, "Mean": .average,
            ]
            guard let operation = operations[node.opType], let inputs = try legacyBroadcast(node, values) else { return nil }
            // The variadic ones of a single input return it (onnx's test_max_one_input).
            if inputs.count == 1, ["Max", "Min", "Sum", "Mean"].contains(node.opType) { return single(.identity) }
            return MappedNode(op: .elementwise(operation), inputs: inputs)
        case "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "And", "Or", "Xor":
            guard let operation = ComparisonOperation.allCases.first(where: { $0.typeName == node.opType }),
                  let inputs = try legacyBroadcast(node, values) else { return nil }
            return MappedNode(op: .onnx(.comparison(operation)), inputs: inputs)
        case "Where":
            guard values.count == 3 else { return nil }
            return MappedNode(op: .onnx(.select), inputs: values)
        case "Neg", "Abs", "Sqrt", "Reciprocal", "Log", "Erf", "Floor", "Ceil", "Round", "Sign", "Not", "Sin", "Cos",
             "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh":
            guard let operation = UnaryOperation.allCases.first(where: { $0.typeName == node.opType }) else { return nil }
            return single(.onnx(.unary(operation)))
        case "Clip":
            guard let (minimum, maximum) = try clipBounds(node) else { return nil }
            return single(.onnx(.clip(ClipAttributes(minimum: minimum, maximum: maximum))))
        case "Softmax", "LogSoftmax":
            let axis = intAttribute(node, "axis", 1)
            guard axis >= 0 || rank(x) != nil else { return nil }
            let resolved = axis < 0 ? axis + (rank(x) ?? 0) : axis
            return single(.onnx(.coercedSoftmax(CoercedSoftmaxAttributes(axis: resolved, logarithm: node.opType == "LogSoftmax"))))
        case "Flatten":
            let axis = intAttribute(node, "axis", 1)
            guard axis >= 0 || rank(x) != nil else { return nil }
            return single(.flatten(FlattenAttributes(layout: .channelsFirst, axis: axis < 0 ? axis + (rank(x) ?? 0) : axis)))
        case "Reshape":
            let target: [Int]?
            if opset < 5 { target = intsAttribute(node, "shape") } else {
                target = try input(node, 1).flatMap { try numbers($0)?.integers.map { Int(truncatingIfNeeded: $0) } }
                    ?? input(node, 1).flatMap { reportedShapes[$0] }.map { $0.dimensions.map { $0 ?? -1 } }
            }
            guard let target else {
                // Lengths computed at run time (a dynamic batch, a sequence length).
                guard opset >= 5, let shape = input(node, 1) else { return nil }
                return MappedNode(op: .onnx(.computedReshape(ComputedReshapeAttributes(allowZero: intAttribute(node, "allowzero", 0) == 1))),
                                  inputs: [x, shape])
            }
            return single(.reshape(ReshapeAttributes(targetShape: target, includesBatch: true,
                                                     allowZero: intAttribute(node, "allowzero", 0) == 1)))
        case "Shape":
            // Shape of a value with an unknown length (folded otherwise, ONNXImporter+Folding).
            let end: Int? = node.attribute("end") == nil ? nil : intAttribute(node, "end", 0)
            return single(.onnx(.shape(ShapeOfAttributes(start: intAttribute(node, "start", 0), end: end))))
        case "Expand":
            guard let shape = input(node, 1) else { return nil }
            return MappedNode(op: .onnx(.expand), inputs: [x, shape])
        case "Tile":
            guard let repeats = input(node, 1) else { return nil }
            return MappedNode(op: .onnx(.tile), inputs: [x, repeats])
        case "Transpose":
            if let permutation = intsAttribute(node, "perm") { return single(.transpose(TransposeAttributes(permutation: permutation))) }
            guard let rank = rank(x) else { return nil }
            return single(.transpose(TransposeAttributes(permutation: Array((0..<rank).reversed()))))
        case "Concat":
            let axis = intAttribute(node, "axis", 1)
            let resolved = axis < 0 ? rank(x).map { axis + $0 } ?? axis : axis
            return MappedNode(op: .concatenate(ConcatenateAttributes(axis: resolved)), inputs: values)
        case "Squeeze":
            if let axes = try axesOperand(node) { return single(.onnx(.squeeze(AxesAttributes(axes: axes)))) }
            guard let shape = shape(x), shape.dimensions.allSatisfy({ $0 != nil }) else { return nil }
            return single(.onnx(.squeeze(AxesAttributes(axes: shape.dimensions.indices.filter { shape[$0] == 1 }))))
        case "Unsqueeze":
            guard let axes = try axesOperand(node) else { return nil }
            return single(.onnx(.unsqueeze(AxesAttributes(axes: axes))))
        case "Cast":
            guard let target = castTarget(node) else { return nil }
            return single(.onnx(.cast(CastAttributes(to: target))))
        case "Slice":
            guard let bounds = try sliceBounds(node) else { return try computedSlice(node, x) }
            return single(.onnx(.slice(SliceAttributes(starts: bounds.starts, ends: bounds.ends, axes: bounds.axes, steps: bounds.steps))))
        case "Split": return try split(node, x)
        case "Pad": return try pad(node, x)
        case "Upsample", "Resize": return try resize(node, x)
        case "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
             "ReduceLogSumExp", "ReduceSumSquare":
            guard let kind = ReduceKind.allCases.first(where: { $0.typeName == node.opType }) else { return nil }
            let axes = try axesOperand(node)
            if axes == nil, let axesInput = input(node, 1), !axesInput.isEmpty { return nil }
            if axes == nil || axes == [], intAttribute(node, "noop_with_empty_axes", 0) == 1 { return nil }
            return single(.onnx(.reduce(ReduceAttributes(kind: kind, axes: axes == [] ? nil : axes,
                                                   keepDimensions: intAttribute(node, "keepdims", 1) == 1))))
        default:
            return try mapIndexingOp(node, x)
        }
    }

    /// Opset 6's Add/Mul/... with `broadcast=1` align the second operand at `axis` instead of at the
    /// end: trailing ones appended to it (a reshaped constant, or an Unsqueeze) give numpy the same result.
    mutating func legacyBroadcast(_ node: ONNXNode, _ inputs: [String]) throws -> [String]? {
        guard opset < 7, intAttribute(node, "broadcast", 0) == 1, inputs.count == 2 else { return inputs }
        guard let leftRank = rank(inputs[0]), let rightRank = rank(inputs[1]) else { return nil }
        let axis = node.attribute("axis") == nil ? leftRank - rightRank : intAttribute(node, "axis", 0)
        let resolved = axis < 0 ? axis + leftRank : axis
        let trailing = leftRank - resolved - rightRank
        guard trailing >= 0 else { return nil }
        if trailing == 0 { return inputs }
        if let constant = constants[inputs[1]] {
            let name = "\(inputs[1])/aligned_\(node.outputs.first ?? "")"
            constants[name] = ImportedConstant(dtype: constant.dtype, shape: constant.shape + Array(repeating: 1, count: trailing),
                                               storage: constant.storage, fromInitializer: constant.fromInitializer)
            return [inputs[0], name]
        }
        let aligned = "\(inputs[1])/aligned_\(node.outputs.first ?? "")"
        add(Node(name: uniqueNodeName(aligned), op: .onnx(.unsqueeze(AxesAttributes(axes: Array(rightRank..<(rightRank + trailing))))),
                 inputs: [try value(inputs[1])], outputs: [aligned]))
        return [inputs[0], aligned]
    }

    func split(_ node: ONNXNode, _ x: String) throws -> MappedNode? {
        let outputs = node.outputs.count
        let axis = intAttribute(node, "axis", 0)
        var sizes = intsAttribute(node, "split")
        if sizes == nil, let operand = input(node, 1) {
            guard let values = try numbers(operand)?.integers else { return nil }
            sizes = values.map { Int(truncatingIfNeeded: $0) }
        }
        guard outputs > 0, !node.outputs.contains("") else { return nil }
        var attributes = SplitAttributes(axis: axis, equalParts: outputs)
        if let sizes {
            guard sizes.count == outputs else { return nil }
            attributes = SplitAttributes(axis: axis, sizes: sizes)
        } else if let shape = shape(x), let resolved = shape.normalizedAxis(axis), let length = shape[resolved] {
            // Before opset 18 (no `num_outputs`) the parts must be equal.
            if node.attribute("num_outputs") == nil, length % outputs != 0 { return nil }
            attributes = SplitAttributes(axis: axis, sizes: attributes.sizes(alongLength: length))
        }
        var mapped = MappedNode(op: .onnx(.split(attributes)), inputs: [x])
        mapped.outputCount = outputs
        return mapped
    }

    func pad(_ node: ONNXNode, _ x: String) throws -> MappedNode? {
        guard let mode = PadMode(rawValue: stringAttribute(node, "mode", "constant")) else { return nil }
        if opset < 11 {
            guard let pads = intsAttribute(node, "pads") ?? intsAttribute(node, "paddings") else { return nil }
            return MappedNode(op: .onnx(.pad(PadAttributes(pads: pads, mode: mode, value: floatAttribute(node, "value", 0)))), inputs: [x])
        }
        guard let padsInput = input(node, 1) else { return nil }
        guard var pads = try numbers(padsInput)?.integers.map({ Int(truncatingIfNeeded: $0) }) else {
            return try computedPad(node, x, mode: mode)
        }
        var value: Float = 0
        if let constantValue = input(node, 2) {
            guard let number = try numbers(constantValue)?.reals.first else { return nil }
            value = Float(number)
        }
        if let axesInput = input(node, 3) {
            guard let axes = try numbers(axesInput)?.integers, let rank = rank(x) else { return nil }
            var full = [Int](repeating: 0, count: 2 * rank)
            for (index, axis) in axes.enumerated() {
                let resolved = Int(axis < 0 ? axis + Int64(rank) : axis)
                guard (0..<rank).contains(resolved) else { return nil }
                full[resolved] = pads[index]
                full[resolved + rank] = pads[index + axes.count]
            }
            pads = full
        }
        return MappedNode(op: .onnx(.pad(PadAttributes(pads: pads, mode: mode, value: value))), inputs: [x])
    }

    /// Upsample and Resize before opset 11 map coordinates asymmetrically and take the floor of the
    /// source index when enlarging (onnxruntime's behaviour for them); later Resize says it all.
    func resize(_ node: ONNXNode, _ x: String) throws -> MappedNode? {
        var mode = stringAttribute(node, "mode", "nearest")
        if mode == "bilinear" { mode = "linear" }
        if node.opType == "Upsample" || opset < 11 {
            var scales = node.attribute("scales").flatMap { value -> [Float]? in
                if case .floats(let values) = value { return values }
                return nil
            }
            if scales == nil, let operand = input(node, 1) { scales = try numbers(operand)?.reals.map { Float($0) } }
            guard let scales, scales.allSatisfy({ $0 >= 1 }) else { return nil }
            return MappedNode(op: .onnx(.resize(ResizeAttributes(mode: mode, coordinateTransformation: "asymmetric", nearestMode: "floor",
                                                           scales: scales, sizes: nil))), inputs: [x])
        }
        let transformation = stringAttribute(node, "coordinate_transformation_mode", "half_pixel")
        guard transformation != "tf_crop_and_resize", intAttribute(node, "antialias", 0) == 0, node.attribute("axes") == nil,
              stringAttribute(node, "keep_aspect_ratio_policy", "stretch") == "stretch" else { return nil }
        var scales: [Float]? = nil
        var sizes: [Int]? = nil
        if let operand = input(node, 2), let values = try numbers(operand)?.reals, !values.isEmpty { scales = values.map { Float($0) } }
        if let operand = input(node, 3), let values = try numbers(operand)?.integers, !values.isEmpty {
            sizes = values.map { Int(truncatingIfNeeded: $0) }
        }
        guard (scales == nil) != (sizes == nil) else { return nil }
        return MappedNode(op: .onnx(.resize(ResizeAttributes(
            mode: mode, coordinateTransformation: transformation,
            nearestMode: stringAttribute(node, "nearest_mode", "round_prefer_floor"),
            cubicCoefficient: floatAttribute(node, "cubic_coeff_a", -0.75), excludeOutside: intAttribute(node, "exclude_outside", 0) == 1,
            extrapolationValue: floatAttribute(node, "extrapolation_value", 0), scales: scales, sizes: sizes))), inputs: [x])
    }
}
