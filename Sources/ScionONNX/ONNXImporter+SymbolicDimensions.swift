import ScionIR

/// The lengths of tensors as expressions, and what a symbolic shape vector becomes when a node needs it:
/// a static operand (a Reshape target with -1 or 0 where the batch is), or, at run time, the lengths
/// read with Shape from the tensor they belong to.
extension ONNXImportSession {
    /// Symbol values that tell lengths apart in `recordSymbolicDimensions`: primes, so that a length
    /// computed from them matches one expression only (three sets, so a coincidence would need three).
    private static let probeValues: [[Int64]] = [
        [1009, 1013, 1019, 1021, 1031, 1033, 1039, 1049],
        [2003, 2011, 2017, 2027, 2029, 2039, 2053, 2063],
        [3001, 3011, 3019, 3023, 3037, 3041, 3049, 3061],
    ]

    /// A tensor's lengths as expressions; an unknown length no rule explained is a symbol of its own,
    /// named after the tensor and axis (a graph input's `dim_param` when it has one).
    mutating func symbolicDimensions(of name: String) -> [SymbolicLength]? {
        if let dimensions = symbolic.dimensions[name] { return dimensions }
        if let constant = constants[name] { return constant.shape.map { SymbolicLength(Int64($0)) } }
        if let vector = symbolic.values[name] { return vector.shape.map { SymbolicLength(Int64($0)) } }
        guard let shape = known[name]?.shape else { return nil }
        let declared = model.graph.inputs.first { $0.name == name }?.shape
        let dimensions = shape.dimensions.enumerated().map { axis, length -> SymbolicLength in
            if let length { return SymbolicLength(Int64(length)) }
            var symbol = "\(name)[\(axis)]"
            if let declared, axis < declared.count, case .parameter(let parameter) = declared[axis], !parameter.isEmpty { symbol = parameter }
            if symbolic.sources[symbol] == nil { symbolic.sources[symbol] = (name, axis) }
            return SymbolicLength(symbol: symbol)
        }
        symbolic.dimensions[name] = dimensions
        return dimensions
    }

    /// The unknown lengths of a new node's outputs, as expressions of its inputs' lengths where shape
    /// inference passes them on: inference runs again with the symbols set to primes, and a length that
    /// one expression explains under every setting is that expression (`batch`, `batch*4`, `seq + 1`).
    mutating func recordSymbolicDimensions(_ node: Node, inputs: [ValueInfo], parameterShapes: [ParameterRole: [Int]]) {
        let outputs = node.outputs.filter { known[$0]?.shape?.dimensions.contains(nil) == true }
        guard !outputs.isEmpty else { return }
        let inputDimensions = node.inputs.map { symbolicDimensions(of: $0) }
        let symbols = Set(inputDimensions.compactMap { $0 }.flatMap { $0.flatMap(\.symbols) }).sorted()
        guard !symbols.isEmpty, symbols.count <= Self.probeValues[0].count else { return }
        let assignments = Self.probeValues.map { Dictionary(uniqueKeysWithValues: zip(symbols, $0)) }
        var probes: [[ValueInfo]] = []
        for assignment in assignments {
            let probeInputs = zip(inputs, inputDimensions).map { info, dimensions -> ValueInfo in
                guard let dimensions else { return info }
                let lengths = dimensions.map { $0.evaluated(assignment).flatMap { $0 > 0 && $0 < Int64(Int32.max) ? Int($0) : nil } }
                return ValueInfo(name: info.name, shape: Shape(lengths), dtype: info.dtype)
            }
            guard let results = try? ShapeInference.outputs(of: node, inputs: probeInputs, parameterShapes: parameterShapes) else { return }
            probes.append(results)
        }
        let candidates = Array(Set(inputDimensions.compactMap { $0 }.flatMap { $0 }.filter { $0.constant == nil }))
        for (offset, output) in node.outputs.enumerated() where outputs.contains(output) {
            guard let shape = known[output]?.shape else { continue }
            let dimensions = shape.dimensions.enumerated().map { axis, length -> SymbolicLength in
                if let length { return SymbolicLength(Int64(length)) }
                let observed = probes.map { offset < $0.count && axis < ($0[offset].shape?.rank ?? 0) ? $0[offset].shape?[axis] : nil }
                let values = observed.compactMap { $0 }
                if values.count == observed.count, let fitted = Self.fit(values.map { Int64($0) }, assignments, candidates, symbols) {
                    return fitted
                }
                let symbol = "\(output)[\(axis)]"
                symbolic.sources[symbol] = (output, axis)
                return SymbolicLength(symbol: symbol)
            }
            symbolic.dimensions[output] = dimensions
        }
    }

    /// An expression giving `values` under `assignments`: an input's length plus a constant (not below
    /// -1, which slicing could clamp), or a constant times a product of at most two symbols.
    private static func fit(_ values: [Int64], _ assignments: [[String: Int64]], _ candidates: [SymbolicLength],
                            _ symbols: [String]) -> SymbolicLength? {
        func matches(_ expression: SymbolicLength) -> Bool {
            expression.constant == nil && zip(values, assignments).allSatisfy { expression.evaluated($1) == $0 }
        }
        for candidate in candidates {
            guard let base = candidate.evaluated(assignments[0]) else { continue }
            let offset = values[0] - base
            let expression = candidate + SymbolicLength(offset)
            if offset >= -1, matches(expression) { return expression }
        }
        var monomials: [SymbolicLength] = symbols.map { SymbolicLength(symbol: $0) }
        for (i, a) in symbols.enumerated() {
            for b in symbols[i...] { monomials.append(SymbolicLength(symbol: a) * SymbolicLength(symbol: b)) }
        }
        for monomial in monomials {
            guard let unit = monomial.evaluated(assignments[0]), unit != 0, values[0] % unit == 0 else { continue }
            let expression = monomial.scaled(by: values[0] / unit)
            if matches(expression) { return expression }
        }
        return nil
    }

    /// Imports the deferred values among `names`: as Shape reads of the tensors their symbols are lengths
    /// of when every entry is a constant or one symbol, else by importing the file's own nodes.
    mutating func materializeDeferred(_ names: [String]) throws {
        for name in names where !name.isEmpty && known[name] == nil {
            guard let (node, index) = symbolic.deferred.removeValue(forKey: name) else { continue }
            if try materializeFromSources(name) { continue }
            symbolic.forced.insert(name)
            try importNode(node, index: index)
        }
    }

    /// `[batch, 1, 96]` as Concat(Shape(x)[0:1], [1, 96]): the shortest run-time form, with only the
    /// ops every reader runs (not the Equal/Where/ConstantOfShape the exporter spelled it with).
    private mutating func materializeFromSources(_ name: String) throws -> Bool {
        guard let tensor = symbolic.values[name], tensor.dtype == .int64, tensor.shape.count <= 1,
              tensor.elements.allSatisfy({ $0.constant != nil || $0.singleSymbol.flatMap { symbolic.sources[$0] }.map { known[$0.value] != nil } == true })
        else { return false }
        var pieces: [String] = []
        var pendingConstants: [Int64] = []
        func flushConstants() {
            guard !pendingConstants.isEmpty else { return }
            let piece = "\(name)#lengths\(pieces.count)"
            constants[piece] = make(.integers(pendingConstants), dtype: .int64, shape: [pendingConstants.count])
            pieces.append(piece)
            pendingConstants = []
        }
        for element in tensor.elements {
            if let value = element.constant { pendingConstants.append(value); continue }
            flushConstants()
            guard let symbol = element.singleSymbol, let source = symbolic.sources[symbol] else { return false }
            let piece = tensor.elements.count == 1 && tensor.shape.count == 1 ? name : "\(name)#length\(pieces.count)"
            addImported(Node(name: uniqueNodeName(piece), op: .onnx(.shape(ShapeOfAttributes(start: source.axis, end: source.axis + 1))),
                             inputs: [source.value], outputs: [piece]), type: "Shape")
            pieces.append(piece)
        }
        flushConstants()
        if tensor.shape.isEmpty {
            addImported(Node(name: uniqueNodeName(name), op: .onnx(.squeeze(AxesAttributes(axes: [0]))), inputs: [try value(pieces[0])],
                             outputs: [name]), type: "Squeeze")
        } else if pieces != [name] {
            let inputs = try pieces.map { try value($0) }
            addImported(Node(name: uniqueNodeName(name), op: .concatenate(ConcatenateAttributes(axis: 0)), inputs: inputs, outputs: [name]),
                        type: "Concat")
        }
        return true
    }

    private mutating func addImported(_ node: Node, type: String) {
        graph.info.nodeTypes[node.name] = type
        add(node)
    }

    /// The node with its symbolic operands replaced by constants where its meaning allows: a Reshape
    /// target's batch entry becomes -1 (or 0, "copy the input's length"), an Expand length equal to the
    /// input's becomes 1, a Slice end equal to the length becomes "to the end".
    mutating func withStaticOperands(_ node: ONNXNode) throws -> ONNXNode? {
        guard let data = input(node, 0), opset >= 10 || node.opType == "Expand" else { return nil }
        let dimensions = symbolicDimensions(of: data)
        var replacements: [Int: [Int64]] = [:]
        switch node.opType {
        case "Reshape":
            guard let targetName = input(node, 1), let target = symbolic.values[targetName], target.shape.count == 1 else { return nil }
            var entries = target.elements.map(\.constant)
            let allowZero = intAttribute(node, "allowzero", 0) == 1
            if entries.count(where: { $0 == nil }) > 1 || entries.contains(-1), !allowZero, let dimensions {
                for (axis, entry) in target.elements.enumerated() where entries[axis] == nil && axis < dimensions.count
                    && entry.isEqual(to: dimensions[axis]) == true {
                    entries[axis] = 0
                }
            }
            let open = entries.indices.filter { entries[$0] == nil }
            if open.count == 1, !entries.contains(-1) { entries[open[0]] = -1 }
            guard entries.allSatisfy({ $0 != nil }) else { return nil }
            replacements[1] = entries.compactMap { $0 }
        case "Expand":
            guard let shapeName = input(node, 1), let shape = symbolic.values[shapeName], shape.shape.count == 1, let dimensions else { return nil }
            let leading = shape.elements.count - dimensions.count
            let entries = shape.elements.enumerated().map { position, entry -> Int64? in
                if let value = entry.constant { return value }
                let axis = position - leading
                return axis >= 0 && entry.isEqual(to: dimensions[axis]) == true ? 1 : nil
            }
            guard entries.allSatisfy({ $0 != nil }) else { return nil }
            replacements[1] = entries.compactMap { $0 }
        case "Slice":
            guard let dimensions else { return nil }
            let axesValues: [Int]? = try input(node, 3).map { name in try numbers(name)?.integers.map { Int($0) } ?? [] }
            for position in [1, 2] {
                guard let name = input(node, position), let bounds = symbolic.values[name] else { continue }
                let entries = bounds.elements.enumerated().map { index, entry -> Int64? in
                    if let value = entry.constant { return value }
                    let axis = axesValues.map { index < $0.count ? $0[index] : -1_000 } ?? index
                    let resolved = axis < 0 ? axis + dimensions.count : axis
                    // A bound equal to the axis's length is the end whichever way it is spelled.
                    return (0..<dimensions.count).contains(resolved) && entry.isEqual(to: dimensions[resolved]) == true ? Int64.max : nil
                }
                guard bounds.shape.count == 1, entries.allSatisfy({ $0 != nil }) else { return nil }
                replacements[position] = entries.compactMap { $0 }
            }
            guard !replacements.isEmpty, (3..<node.inputs.count).allSatisfy({ symbolic.values[node.inputs[$0]] == nil }) else { return nil }
        default:
            return nil
        }
        var rewritten = node
        for (position, values) in replacements {
            let name = "\(node.inputs[position])#static_\(node.outputs.first ?? "")"
            constants[name] = make(.integers(values), dtype: .int64, shape: [values.count])
            rewritten.inputs[position] = name
        }
        return rewritten
    }
}

extension ONNXImportSession {
    /// The output lengths of a node that takes its shape from a symbolic vector (Expand, ConstantOfShape,
    /// Tile, a Reshape computed at run time): shape inference cannot read the vector, the reader can.
    mutating func symbolicOutputLengths(_ node: ONNXNode) -> [SymbolicLength]? {
        guard let operandName = input(node, node.opType == "ConstantOfShape" ? 0 : 1), let operand = symbolic.values[operandName],
              operand.shape.count == 1 else { return nil }
        let entries = operand.elements
        if node.opType == "ConstantOfShape" { return entries }
        guard let data = input(node, 0), let dimensions = symbolicDimensions(of: data) else { return nil }
        switch node.opType {
        case "Expand":
            let rank = max(entries.count, dimensions.count)
            let aligned = Array(repeating: SymbolicLength(1), count: rank - dimensions.count) + dimensions
            let wanted = Array(repeating: SymbolicLength(1), count: rank - entries.count) + entries
            let lengths = zip(aligned, wanted).map { have, want -> SymbolicLength? in
                if have.constant == 1 { return want }
                if want.constant == 1 || have.isEqual(to: want) == true { return have }
                return nil
            }
            guard lengths.allSatisfy({ $0 != nil }) else { return nil }
            return lengths.compactMap { $0 }
        case "Tile":
            guard entries.count == dimensions.count else { return nil }
            return zip(dimensions, entries).map { $0 * $1 }
        case "Reshape":
            let allowZero = intAttribute(node, "allowzero", 0) == 1
            var lengths = entries.enumerated().map { axis, entry -> SymbolicLength? in
                if entry.constant == 0, !allowZero { return axis < dimensions.count ? dimensions[axis] : nil }
                return entry.constant == -1 ? nil : entry
            }
            let open = lengths.indices.filter { lengths[$0] == nil }
            if open.count == 1 {
                let total = dimensions.reduce(SymbolicLength(1), *)
                let others = lengths.compactMap { $0 }.reduce(SymbolicLength(1), *)
                guard let quotient = total.divided(by: others), quotient * others == total else { return nil }
                lengths[open[0]] = quotient
            }
            guard lengths.allSatisfy({ $0 != nil }) else { return nil }
            return lengths.compactMap { $0 }
        default:
            return nil
        }
    }
}
