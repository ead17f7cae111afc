import Foundation
import ScionIR
import ScionRuntime

/// What Scion does with each ONNX operator, found by doing it: every path is tried on small models
/// holding the operator (the onnx wheel's backend node test cases, one or a few nodes each with
/// inputs and expected outputs), and what worked or was refused is recorded per operator type.
/// docs/onnx-coverage.md is `page(operators:...)` of the evidence gathered over all cases, so a
/// column says "yes" only when every case that reached that path worked.
///
/// The paths:
/// - **read**: the reader maps the node to an IR op it interprets (or folds it into a constant);
///   a node it keeps opaque, or a model it refuses, is a "no" with the reason.
/// - **write**: the model read writes back as ONNX (`ONNXExporter`, at its lowest opset).
/// - **run**: Scion's executor runs the case and gives its expected outputs (`closeEnough`).
/// - **train**: one SGD step reaches the node: its VJP exists (a trainable scale is put on the
///   first float input, the other inputs become constants, the loss is against the expected output).
/// - **to Keras**: the model read writes as a `.keras` file.
public struct ONNXCoverage: Sendable {
    /// The columns, in page order.
    public enum Path: String, CaseIterable, Sendable {
        case read, write, run, train, keras = "to Keras"
    }

    /// What one path did with one operator across the cases holding it.
    public struct Evidence: Sendable {
        /// Cases where the path worked.
        public var worked: Set<String> = []
        /// Reason by case, where the path refused or gave other numbers.
        public var refusals: [String: String] = [:]

        /// `yes`, `no: reason`, `partly (k of n): reason`, or `not shown`.
        public var cell: String {
            // The first case's reason, cut short, and the case it comes from.
            let reason = refusals.sorted { $0.key < $1.key }.first.map { "\(Self.short($0.value)) (\($0.key))" }
            switch (worked.isEmpty, reason) {
            case (false, nil): return "yes"
            case (false, let reason?): return "partly (\(worked.count) of \(worked.count + refusals.count)): \(reason)"
            case (true, let reason?): return "no: \(reason)"
            case (true, nil): return "not shown"
            }
        }

        static func short(_ reason: String) -> String {
            let flat = reason.replacingOccurrences(of: "|", with: "/").replacingOccurrences(of: "\n", with: " ")
            return flat.count <= 120 ? flat : String(flat.prefix(117)) + "..."
        }
    }

    /// One case: a model file, its operator types (as the file has them), its data when Scion can
    /// feed it, and the tolerance of its comparison.
    public struct Case: Sendable {
        /// The case's name (`test_conv_with_strides_padding`).
        public var name: String
        /// Its model file.
        public var path: String
        /// The op types of its default-domain nodes.
        public var operators: [String]
        /// The operators the case is about: a refusal that names no node (an opset too new, other
        /// numbers) is theirs. An `_expanded` case spells one operator out in others (its function
        /// body): a failure of the whole is the spelled-out operator's, not every helper's.
        public var subjects: [String]
        /// nil when the case's data has element types the executor does not read (`unfed` says which).
        public var inputs: [RuntimeTensor]?
        /// The outputs the case expects, in the model's output order; nil as `inputs`.
        public var expected: [RuntimeTensor]?
        /// Why the case's data cannot be fed, if it cannot.
        public var unfed: String?

        /// A case; `subjects` defaults to every operator in it.
        public init(name: String, path: String, operators: [String], subjects: [String]? = nil, inputs: [RuntimeTensor]?,
                    expected: [RuntimeTensor]?, unfed: String?) {
            self.name = name; self.path = path; self.operators = operators; self.subjects = subjects ?? operators
            self.inputs = inputs; self.expected = expected; self.unfed = unfed
        }
    }

    /// Evidence by operator type and path.
    public private(set) var evidence: [String: [Path: Evidence]] = [:]
    /// The cases holding each operator type.
    public private(set) var cases: [String: Set<String>] = [:]
    /// Comparison tolerances, as Tests/Interop/check_run.py uses (numpy's `allclose`).
    public var relativeTolerance: Float = 1e-3
    /// See `relativeTolerance`.
    public var absoluteTolerance: Float = 1e-5

    /// No evidence yet.
    public init() {}

    /// Tries every path on one case, writing scratch files into `scratch`.
    public mutating func examine(_ item: Case, scratch: URL) {
        for type in item.operators { cases[type, default: []].insert(item.name) }
        let model: Model
        do {
            model = try Model.load(item.path)
        } catch {
            // What cannot be read is not written, converted or run either.
            let paths: [Path] = item.inputs == nil ? [.read, .write, .keras] : [.read, .write, .keras, .run]
            for path in paths { for type in item.subjects { note(path, type, item.name, .failure(error)) } }
            return
        }
        let graph = model.graph
        let typeOf = { (node: Node) in graph.info.nodeTypes[node.name] ?? node.op.typeName }
        let present = Set(graph.nodes.map(typeOf))
        for node in graph.nodes {
            if case .opaque = node.op {
                note(.read, typeOf(node), item.name, .failure(CoverageRefusal("kept opaque: written back unchanged, not run")))
            } else {
                note(.read, typeOf(node), item.name, .success(()))
            }
        }
        // Operators the reader computed while reading (a Shape of a known shape, a Constant): read.
        for type in item.operators where !present.contains(type) { note(.read, type, item.name, .success(())) }
        let involved = Set(item.operators).union(present.subtracting(["Initializer", "Constant"]))
        let file = scratch.appendingPathComponent(item.name)
        func record(_ path: Path, _ outcome: Result<Void, Error>) {
            self.record(path, outcome, graph, success: involved, failure: item.subjects, item.name)
        }
        record(.write, Result { try model.write(to: file.path + ".onnx", options: .init(force: true)) })
        record(.keras, Result { try model.write(to: file.path + ".keras", options: .init(force: true)) })
        // A case whose operands became initializers feeds only its first input.
        guard let all = item.inputs, let expected = item.expected, all.count >= graph.inputs.count else { return }
        let inputs = Array(all.prefix(graph.inputs.count))
        record(.run, Result { try run(model, inputs: inputs, expected: expected) })
        if let outcome = Self.trainOneStep(graph, inputs: inputs, expected: expected) { record(.train, outcome) }
    }

    /// A path's outcome on a case: success counts for every operator in it; a refusal goes to the
    /// operator of the node it names, or to the case's subjects when it names none.
    mutating func record(_ path: Path, _ outcome: Result<Void, Error>, _ graph: Graph, success: Set<String>, failure: [String],
                         _ name: String) {
        if case .failure(let error) = outcome {
            let message = "\(error)"
            // The node the refusal names ("NAME: reason", or "node 'NAME'" from the Keras writer), an
            // operator's own node first, then the longest name (so `x` does not win over `x/y`).
            let named = graph.nodes.filter { message.contains("\($0.name): ") || message.contains("node '\($0.name)'") }
            let own = named.filter { success.contains(graph.info.nodeTypes[$0.name] ?? $0.op.typeName) }
            if let node = (own.isEmpty ? named : own).max(by: { $0.name.count < $1.name.count }) {
                let separator = message.contains("\(node.name): ") ? "\(node.name): " : "node '\(node.name)'"
                var reason = message.components(separatedBy: separator).dropFirst().joined(separator: separator)
                if separator.hasPrefix("node") { reason = "node '\(node.name)'" + reason }
                let type = graph.info.nodeTypes[node.name] ?? node.op.typeName
                // A refusal of an operand (an initializer of a type the executor does not hold) is
                // the case's operators' own.
                if success.contains(type) {
                    note(path, type, name, .failure(CoverageRefusal(reason)))
                } else {
                    for owner in failure { note(path, owner, name, .failure(CoverageRefusal("\(node.name): \(reason)"))) }
                }
                return
            }
            for type in failure { note(path, type, name, outcome) }
            return
        }
        for type in success { note(path, type, name, outcome) }
    }

    mutating func note(_ path: Path, _ type: String, _ name: String, _ outcome: Result<Void, Error>) {
        switch outcome {
        case .success: evidence[type, default: [:]][path, default: Evidence()].worked.insert(name)
        case .failure(let error):
            evidence[type, default: [:]][path, default: Evidence()].refusals[name] = (error as? CoverageRefusal)?.reason ?? Self.lastLine(error)
        }
    }

    static func lastLine(_ error: Error) -> String {
        let text = "\(error)"
        // "file: subject: reason": the reason is what the page shows; the file is the case's own.
        return text.components(separatedBy: ".onnx: ").last ?? text
    }

    /// Runs the case and compares every output with the expected one.
    func run(_ model: Model, inputs: [RuntimeTensor], expected: [RuntimeTensor]) throws {
        let executor = try model.executor()
        let got = try executor.run(Dictionary(uniqueKeysWithValues: zip(executor.graph.inputs.map(\.name), inputs)))
        for (name, want) in zip(executor.graph.outputs, expected) {
            guard let value = got[name] else { throw CoverageRefusal("output \(name) is not computed") }
            guard value.shape == want.shape else {
                throw CoverageRefusal("output \(name) has shape \(value.shape), expected \(want.shape)")
            }
            if let index = want.data.indices.first(where: { !closeEnough(value.data[$0], want.data[$0]) }) {
                throw CoverageRefusal("output \(name) differs: \(value.data[index]) where \(want.data[index]) is expected (element \(index))")
            }
        }
    }

    /// numpy's `allclose` (NaN equal to NaN, infinities equal when of the same sign).
    func closeEnough(_ a: Float, _ b: Float) -> Bool {
        if a.isNaN || b.isNaN { return a.isNaN && b.isNaN }
        if a.isInfinite || b.isInfinite { return a == b }
        return abs(a - b) <= absoluteTolerance + relativeTolerance * abs(b)
    }

    /// One training step with a trainable scale on the first float input: the backward pass must
    /// reach every node between it and the output. nil when the case cannot be trained at all
    /// (several outputs, no float input, data of other types).
    static func trainOneStep(_ source: Graph, inputs: [RuntimeTensor], expected: [RuntimeTensor]) -> Result<Void, Error>? {
        guard source.outputs.count == 1, expected.count == 1,
              let position = source.inputs.firstIndex(where: { $0.dtype == .float32 }),
              let last = inputs[position].shape.last, inputs[position].shape.count >= 2,
              inputs[position].shape.first == expected[0].shape.first else { return nil }
        var graph = source
        let x = graph.inputs[position]
        let scaled = "\(x.name)#scaled"
        for index in graph.nodes.indices {
            graph.nodes[index].inputs = graph.nodes[index].inputs.map { $0 == x.name ? scaled : $0 }
        }
        guard !graph.outputs.contains(x.name) else { return nil }
        var probes = [Node(name: "coverage_scale", op: .layerScale(LayerScaleAttributes(axis: -1)), inputs: [x.name], outputs: [scaled],
                           parameters: ["coverage_scale/gamma"])]
        _ = graph.parameters.add(Parameter(name: "coverage_scale/gamma", role: .gamma, shape: [last], dtype: .float32, trainable: true,
                                           storage: TensorStorage(bytes: bytes(Array(repeating: 1, count: last), .float32) ?? [])))
        for (offset, input) in graph.inputs.enumerated() where offset != position {
            // The other inputs are the case's own values, as constants.
            guard let data = bytes(inputs[offset].data, input.dtype) else { return nil }
            _ = graph.parameters.add(Parameter(name: "\(input.name)#value", role: .value, shape: inputs[offset].shape, dtype: input.dtype,
                                               trainable: input.dtype == .float32, storage: TensorStorage(bytes: data)))
            probes.append(Node(name: "\(input.name)#constant", op: .onnx(.constant(ConstantAttributes(dtype: input.dtype))), inputs: [],
                               outputs: [input.name], parameters: ["\(input.name)#value"]))
        }
        graph.inputs = [x]
        graph.nodes.insert(contentsOf: probes, at: 0)
        return Result {
            var trainer = try Trainer(graph: try Model.lowered(graph).0)
            let features = try trainer.features(of: inputs[position])
            var options = Trainer.Options()
            options.epochs = 1
            options.batchSize = inputs[position].shape[0]
            options.loss = .meanSquaredError
            options.optimizer = .sgd(momentum: 0, nesterov: false)
            _ = try trainer.fit(features, targets: expected[0], options: options)
        }
    }

    /// Values in the element type a parameter stores; nil for a type this probe does not build.
    static func bytes(_ values: [Float], _ dtype: DType) -> [UInt8]? {
        switch dtype {
        case .float32: return values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
        case .int64: return values.flatMap { withUnsafeBytes(of: Int64($0).littleEndian, Array.init) }
        case .int32: return values.flatMap { withUnsafeBytes(of: Int32($0).littleEndian, Array.init) }
        case .bool: return values.map { $0 != 0 ? 1 : 0 }
        default: return nil
        }
    }
}

/// A path's refusal found by the coverage run itself (wrong numbers, an opaque node).
struct CoverageRefusal: Error, CustomStringConvertible {
    var reason: String
    init(_ reason: String) { self.reason = reason }
    var description: String { reason }
}
