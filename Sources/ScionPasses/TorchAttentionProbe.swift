import ScionIR

/// A tensor of exact numbers standing for another: where a data value's elements came from (each
/// element holds the index it had in a labelled source), or a shape computation's integers.
struct Probe: Equatable {
    var shape: [Int]
    var values: [Double]
    /// Integer arithmetic (ONNX's int64 shape math truncates on Div).
    var integer: Bool
    /// Holds source indices (moved by layout ops, never computed with).
    var labels: Bool

    var count: Int { values.count }

    /// The values as integers, when they all are.
    var integers: [Int]? {
        guard values.allSatisfy({ $0 == $0.rounded() }) else { return nil }
        // int64's extremes (ONNX Slice's "to the end") do not survive Double exactly: clamped.
        return values.map { $0 >= 9.2e18 ? Int.max : $0 <= -9.2e18 ? Int.min : Int($0) }
    }
}

/// Evaluates the layout ops (Reshape, Transpose, Squeeze, Gather, Slice, Split...) and the shape
/// arithmetic (Shape, Concat, Mod, Sqrt...) of a region of the graph on `Probe`s with concrete
/// lengths: how `TorchAttentionPattern` proves where each element of the attention's operands
/// comes from, whatever spelling an exporter chose. Anything it cannot evaluate exactly gives nil.
struct AttentionProbeEvaluator {
    let graph: Graph
    let producers: [String: Int]
    /// Values fixed from outside: the labelled sources.
    var known: [String: Probe] = [:]
    /// Nodes that pass their data operand through (the attention's scale Mul/Div).
    var passThrough: [Int: String] = [:]
    private var visiting: Set<String> = []

    init(graph: Graph, producers: [String: Int]) {
        self.graph = graph
        self.producers = producers
    }

    /// A labelled tensor of `shape`: element i holds `label(i)`.
    static func labelled(_ shape: [Int], _ label: (Int) -> Int) -> Probe {
        Probe(shape: shape, values: (0..<shape.reduce(1, *)).map { Double(label($0)) }, integer: true, labels: true)
    }

    mutating func evaluate(_ value: String) -> Probe? {
        if let probe = known[value] { return probe }
        guard !visiting.contains(value), let position = producers[value] else { return nil }
        visiting.insert(value)
        defer { visiting.remove(value) }
        let node = graph.nodes[position]
        let result: Probe?
        if let data = passThrough[position] {
            result = evaluate(data)
        } else {
            result = compute(node, output: node.outputs.firstIndex(of: value) ?? 0)
        }
        if let result { known[value] = result }
        return result
    }

    /// The concrete lengths of `value`: its probe's, or the graph's when fully known.
    mutating func lengths(_ value: String) -> [Int]? {
        if let probe = known[value] { return probe.shape }
        if let dimensions = graph.values[value]?.shape?.dimensions, dimensions.allSatisfy({ $0 != nil }) {
            return dimensions.compactMap { $0 }
        }
        return evaluate(value)?.shape
    }

    private mutating func compute(_ node: Node, output: Int) -> Probe? {
        func input(_ index: Int) -> Probe? {
            guard index < node.inputs.count else { return nil }
            return evaluate(node.inputs[index])
        }
        switch node.op {
        case .onnx(.constant):
            return constant(node)
        case .identity:
            return input(0)
        case .reshape(let a):
            guard a.includesBatch, let x = input(0) else { return nil }
            return Self.reshape(x, a.targetShape, allowZero: a.allowZero)
        case .onnx(.computedReshape(let a)):
            guard let x = input(0), let target = input(1)?.integers else { return nil }
            return Self.reshape(x, target, allowZero: a.allowZero)
        case .flatten(let a):
            guard a.layout == .channelsFirst, let x = input(0), a.axis <= x.shape.count else { return nil }
            let outer = x.shape.prefix(a.axis).reduce(1, *)
            return Self.reshaped(x, [outer, x.count / max(outer, 1)])
        case .transpose(let a):
            guard let x = input(0) else { return nil }
            return Self.transpose(x, a.permutation)
        case .onnx(.squeeze(let a)):
            guard let x = input(0) else { return nil }
            let axes = Set(a.axes.map { $0 < 0 ? $0 + x.shape.count : $0 })
            guard axes.allSatisfy({ $0 >= 0 && $0 < x.shape.count && x.shape[$0] == 1 }) else { return nil }
            return Self.reshaped(x, x.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element))
        case .onnx(.unsqueeze(let a)):
            guard let x = input(0) else { return nil }
            let rank = x.shape.count + a.axes.count
            let axes = Set(a.axes.map { $0 < 0 ? $0 + rank : $0 })
            guard axes.count == a.axes.count, axes.allSatisfy({ $0 >= 0 && $0 < rank }) else { return nil }
            var lengths = x.shape.makeIterator()
            return Self.reshaped(x, (0..<rank).map { axes.contains($0) ? 1 : lengths.next() ?? 1 })
        case .onnx(.gather(let a)):
            guard let x = input(0), let indices = input(1), !indices.labels, let positions = indices.integers else { return nil }
            return Self.gather(x, axis: a.axis, indices: positions, indexShape: indices.shape)
        case .onnx(.slice(let a)):
            guard let x = input(0), node.inputs.count == 1 else { return nil }
            return Self.slice(x, starts: a.starts, ends: a.ends, axes: a.axes, steps: a.steps)
        case .onnx(.split(let a)):
            guard let x = input(0), output < a.parts else { return nil }
            let axis = a.axis < 0 ? a.axis + x.shape.count : a.axis
            guard x.shape.indices.contains(axis) else { return nil }
            let sizes = a.sizes(alongLength: x.shape[axis])
            let start = sizes.prefix(output).reduce(0, +)
            return Self.slice(x, starts: [start], ends: [start + sizes[output]], axes: [axis], steps: [1])
        case .onnx(.shape(let a)):
            guard let lengths = lengths(node.inputs[0]) else { return nil }
            let rank = lengths.count
            let start = min(max(a.start < 0 ? a.start + rank : a.start, 0), rank)
            let end = min(max((a.end ?? rank) < 0 ? (a.end ?? rank) + rank : (a.end ?? rank), start), rank)
            let selected = Array(lengths[start..<end])
            return Probe(shape: [selected.count], values: selected.map(Double.init), integer: true, labels: false)
        case .concatenate(let a):
            let parts = node.inputs.indices.map { input($0) }
            guard let first = parts.first ?? nil, parts.allSatisfy({ $0 != nil }) else { return nil }
            return Self.concatenate(parts.compactMap { $0 }, axis: a.axis < 0 ? a.axis + first.shape.count : a.axis)
        case .onnx(.cast(let a)):
            guard var x = input(0), !x.labels else { return nil }
            x.integer = a.to != .float32 && a.to != .float64 && a.to != .float16
            if x.integer { x.values = x.values.map { $0.rounded(.towardZero) } }
            return x
        case .onnx(.unary(.squareRoot)):
            guard var x = input(0), !x.labels else { return nil }
            x.values = x.values.map { $0.squareRoot() }
            x.integer = false
            return x
        case .elementwise(let operation):
            guard node.inputs.count == 2, let a = input(0), let b = input(1), !a.labels, !b.labels else { return nil }
            let integer = a.integer && b.integer
            let combine: (Double, Double) -> Double?
            switch operation {
            case .add: combine = { $0 + $1 }
            case .subtract: combine = { $0 - $1 }
            case .multiply: combine = { $0 * $1 }
            case .divide: combine = { $1 == 0 ? nil : integer ? ($0 / $1).rounded(.towardZero) : $0 / $1 }
            case .average, .maximum, .minimum, .power: return nil
            }
            return Self.broadcast(a, b, integer: integer, combine)
        case .opaque(let a) where a.type == "Slice" && a.domain.isEmpty && (3...5).contains(node.inputs.count):
            // Slice whose bounds are computed (torch's Shape arithmetic): evaluated here.
            let operands = (1..<node.inputs.count).map { input($0) }
            guard let x = input(0), operands.allSatisfy({ $0 != nil && !$0!.labels }) else { return nil }
            let bounds = operands.compactMap { $0?.integers }
            guard bounds.count == operands.count else { return nil }
            return Self.slice(x, starts: bounds[0], ends: bounds[1], axes: bounds.count > 2 ? bounds[2] : [],
                              steps: bounds.count > 3 ? bounds[3] : [])
        case .opaque(let a) where a.type == "Mod" && a.domain.isEmpty:
            // ONNX Mod of integers (fmod 0): the result takes the divisor's sign, as Python's %.
            guard node.inputs.count == 2, let a = input(0), let b = input(1), a.integer, b.integer, !a.labels, !b.labels else { return nil }
            return Self.broadcast(a, b, integer: true) { x, y in
                guard y != 0 else { return nil }
                let r = x.truncatingRemainder(dividingBy: y)
                return r != 0 && (r < 0) != (y < 0) ? r + y : r
            }
        default:
            return nil
        }
    }

    private func constant(_ node: Node) -> Probe? {
        guard let name = node.parameters.first, let parameter = graph.parameters[name],
              parameter.elementCount <= 1 << 12, let bytes = try? parameter.storage.bytes() else { return nil }
        let values: [Double]
        let integer: Bool
        switch parameter.dtype {
        case .float32:
            guard bytes.count == parameter.elementCount * 4 else { return nil }
            values = bytes.withUnsafeBytes { $0.bindMemory(to: Float.self).map(Double.init) }
            integer = false
        case .int64:
            guard bytes.count == parameter.elementCount * 8 else { return nil }
            values = bytes.withUnsafeBytes { $0.bindMemory(to: Int64.self).map { Double($0) } }
            integer = true
        case .int32:
            guard bytes.count == parameter.elementCount * 4 else { return nil }
            values = bytes.withUnsafeBytes { $0.bindMemory(to: Int32.self).map { Double($0) } }
            integer = true
        default:
            return nil
        }
        return Probe(shape: parameter.shape, values: values, integer: integer, labels: false)
    }

    // MARK: - Kernels on probes

    static func reshaped(_ x: Probe, _ shape: [Int]) -> Probe? {
        guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == x.count else { return nil }
        var result = x
        result.shape = shape
        return result
    }

    /// ONNX Reshape: 0 copies the input's length (unless `allowZero`), one -1 takes the rest.
    static func reshape(_ x: Probe, _ target: [Int], allowZero: Bool) -> Probe? {
        var shape = target
        for (axis, length) in target.enumerated() where length == 0 && !allowZero {
            guard axis < x.shape.count else { return nil }
            shape[axis] = x.shape[axis]
        }
        let unknown = shape.indices.filter { shape[$0] == -1 }
        guard unknown.count <= 1 else { return nil }
        if let axis = unknown.first {
            let known = shape.enumerated().filter { $0.offset != axis }.map(\.element).reduce(1, *)
            guard known > 0, x.count % known == 0 else { return nil }
            shape[axis] = x.count / known
        }
        return reshaped(x, shape)
    }

    static func strides(_ shape: [Int]) -> [Int] { Broadcasting.strides(shape) }

    /// Calls `body` with each multi-index of `shape` in row-major order and its flat position.
    static func forEachIndex(_ shape: [Int], _ body: ([Int], Int) -> Void) {
        let count = shape.reduce(1, *)
        guard count > 0 else { return }
        var index = [Int](repeating: 0, count: shape.count)
        for flat in 0..<count {
            body(index, flat)
            var axis = shape.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < shape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
    }

    static func transpose(_ x: Probe, _ permutation: [Int]) -> Probe? {
        guard permutation.sorted() == Array(0..<x.shape.count) else { return nil }
        let shape = permutation.map { x.shape[$0] }
        let sourceStrides = strides(x.shape)
        var values = [Double](repeating: 0, count: x.count)
        forEachIndex(shape) { index, flat in
            var source = 0
            for (axis, position) in index.enumerated() { source += position * sourceStrides[permutation[axis]] }
            values[flat] = x.values[source]
        }
        return Probe(shape: shape, values: values, integer: x.integer, labels: x.labels)
    }

    static func gather(_ x: Probe, axis rawAxis: Int, indices: [Int], indexShape: [Int]) -> Probe? {
        let axis = rawAxis < 0 ? rawAxis + x.shape.count : rawAxis
        guard axis >= 0, axis < x.shape.count else { return nil }
        let length = x.shape[axis]
        let resolved = indices.map { $0 < 0 ? $0 + length : $0 }
        guard resolved.allSatisfy({ $0 >= 0 && $0 < length }) else { return nil }
        let outer = x.shape.prefix(axis).reduce(1, *), inner = x.shape.suffix(from: axis + 1).reduce(1, *)
        var values: [Double] = []
        values.reserveCapacity(outer * resolved.count * inner)
        for o in 0..<outer {
            for index in resolved {
                let base = (o * length + index) * inner
                values.append(contentsOf: x.values[base..<(base + inner)])
            }
        }
        let shape = Array(x.shape.prefix(axis)) + indexShape + Array(x.shape.suffix(from: axis + 1))
        return Probe(shape: shape, values: values, integer: x.integer, labels: x.labels)
    }

    /// ONNX Slice with constant bounds (clamped as ONNX clamps them).
    static func slice(_ x: Probe, starts: [Int], ends: [Int], axes: [Int], steps: [Int]) -> Probe? {
        let rank = x.shape.count
        var ranges = x.shape.map { Array(0..<$0) }
        let axisList = axes.isEmpty ? Array(0..<starts.count) : axes
        guard starts.count == ends.count, axisList.count == starts.count else { return nil }
        for (k, rawAxis) in axisList.enumerated() {
            let axis = rawAxis < 0 ? rawAxis + rank : rawAxis
            let step = k < steps.count ? steps[k] : 1
            guard axis >= 0, axis < rank, step != 0 else { return nil }
            ranges[axis] = ElementSelection.sliceIndices(length: x.shape[axis], start: starts[k], end: ends[k], step: step)
        }
        let values = ElementSelection.positions(kept: ranges, shape: x.shape).map { x.values[$0] }
        return Probe(shape: ranges.map(\.count), values: values, integer: x.integer, labels: x.labels)
    }

    static func concatenate(_ parts: [Probe], axis: Int) -> Probe? {
        guard let first = parts.first, axis >= 0, axis < first.shape.count,
              parts.allSatisfy({ $0.shape.count == first.shape.count && $0.labels == first.labels }) else { return nil }
        for part in parts {
            for a in 0..<first.shape.count where a != axis && part.shape[a] != first.shape[a] { return nil }
        }
        let outer = first.shape.prefix(axis).reduce(1, *)
        var values: [Double] = []
        for o in 0..<outer {
            for part in parts {
                let block = part.shape.suffix(from: axis).reduce(1, *)
                values.append(contentsOf: part.values[(o * block)..<((o + 1) * block)])
            }
        }
        var shape = first.shape
        shape[axis] = parts.map { $0.shape[axis] }.reduce(0, +)
        return Probe(shape: shape, values: values, integer: parts.allSatisfy(\.integer), labels: first.labels)
    }

    /// Numpy broadcasting of two probes.
    static func broadcast(_ a: Probe, _ b: Probe, integer: Bool, _ combine: (Double, Double) -> Double?) -> Probe? {
        guard let (shape, sources) = Broadcasting.sources([a.shape, b.shape], limit: .max) else { return nil }
        var values: [Double] = []
        values.reserveCapacity(sources[0].count)
        for (i, j) in zip(sources[0], sources[1]) {
            guard let value = combine(a.values[i], b.values[j]) else { return nil }
            values.append(value)
        }
        return Probe(shape: shape, values: values, integer: integer, labels: false)
    }
}
