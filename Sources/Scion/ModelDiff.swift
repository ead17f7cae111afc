import ScionIR

/// What changed between two models: the report `scion diff` prints.
///
/// It compares what the models compute, not how a format spells it: both are brought to one normal
/// form (`ComparableGraph`: Keras layers and layout, fused activations, explicit pads...), their
/// layers matched by name, then by structure where names differ (`LayerMatching`), and each matched
/// pair compared setting by setting in Keras's words (`LayerFields`) and weight by weight (by role,
/// one tensor pair at a time). So a Keras model and its ONNX export, or an ONNX model and its Keras
/// conversion, diff empty; a changed activation, an edited weight, a removed layer do not.
public struct ModelDiff: Encodable, Sendable {
    /// A layer only one model has.
    public struct Layer: Encodable, Sendable, Equatable {
        /// The layer's name in the model that has it.
        public var name: String
        /// Its type in Keras's words (`Conv2D`, `Dense`...).
        public var type: String
    }

    /// One setting of one layer: `{"layer": "predictions", "field": "activation", "before":
    /// "softmax", "after": "linear"}`. `field` is Keras's name for the setting, or `type`, `name`
    /// (a layer matched by structure under another name), `inputs` (what the layer reads), `input
    /// shape` (a model input).
    public struct Change: Encodable, Sendable, Equatable {
        /// The layer's name in the first model.
        public var layer: String
        /// The setting, in Keras's words.
        public var field: String
        /// The setting's value in the first model, as Keras writes it.
        public var before: String
        /// The setting's value in the second model.
        public var after: String
    }

    /// A weight of a matched layer whose values differ.
    public struct WeightChange: Encodable, Sendable, Equatable {
        /// The weight's name in the first model.
        public var name: String
        /// The layer it belongs to, in the first model.
        public var layer: String
        /// What the weight is to its layer (`kernel`, `gamma`...), by which the pair was matched.
        public var role: String
        /// Largest absolute difference of the elements (float tensors); nil when only the bytes
        /// could be compared, or the shapes differ.
        public var maxAbsDelta: Double?
        /// The weight's shape in the first model.
        public var shapeBefore: [Int]
        /// Its shape in the second model.
        public var shapeAfter: [Int]
    }

    /// A layer frozen in one model and trainable in the other.
    public struct TrainabilityChange: Encodable, Sendable, Equatable {
        /// The layer's name in the first model.
        public var name: String
        /// Whether it trains in the first model.
        public var before: Bool
        /// Whether it trains in the second.
        public var after: Bool
    }

    /// Layers of the first model the second lacks.
    public var removed: [Layer] = []
    /// Layers of the second model the first lacks.
    public var added: [Layer] = []
    /// Settings of matched layers that differ, one per setting.
    public var changed: [Change] = []
    /// Weights of matched layers (same role) whose values differ.
    public var weightsChanged: [WeightChange] = []
    /// Weights of matched layers compared, and how many of those are equal.
    public var weightsCompared = 0
    /// Of `weightsCompared`, how many are equal.
    public var weightsUnchanged = 0
    /// Matched layers whose trainable flag differs.
    public var trainabilityChanged: [TrainabilityChange] = []
    /// Weights of matched layers (or, against a weights-only file, tensors by name) only the first
    /// or only the second model has.
    public var weightsRemoved: [String] = []
    /// Weights only the second model has (see `weightsRemoved`).
    public var weightsAdded: [String] = []
    /// Layers paired between the models, and how.
    public var layersMatched = 0
    /// Of `layersMatched`, the pairs with the same name.
    public var matchedByName = 0
    /// Of `layersMatched`, the pairs found by position and computation where names differ.
    public var matchedByStructure = 0
    /// What was not compared, and why (a model that could not be read as Keras layers, Dropout
    /// against ONNX).
    public var notes: [String] = []
    /// One model is ONNX: only what inference computes is compared.
    var inferenceOnly = false
    /// One file holds weights only: there are no layers to compare.
    public var weightsOnly = false

    enum CodingKeys: String, CodingKey {
        case removed, added, changed, weightsChanged, weightsCompared, weightsUnchanged, trainabilityChanged
        case weightsRemoved, weightsAdded, weightsOnly, layersMatched, matchedByName, matchedByStructure, notes
    }

    /// True when nothing differs: no layer, setting, weight or trainable flag.
    public var isEmpty: Bool {
        removed.isEmpty && added.isEmpty && changed.isEmpty && weightsChanged.isEmpty && trainabilityChanged.isEmpty
            && weightsRemoved.isEmpty && weightsAdded.isEmpty
    }

    /// Compares `before` with `after`; throws when a model cannot be brought to the normal form.
    public init(_ before: Model, _ after: Model) throws {
        guard before.graph.hasArchitecture, after.graph.hasArchitecture else {
            try compareWeightsByName(before.graph, after.graph)
            weightsOnly = true
            notes.append("a weights-only file has no layers: weights compared by name")
            return
        }
        // ONNX keeps no training-only layers: against an ONNX model a Dropout is what it is at
        // inference, nothing.
        var options = ComparableGraph.Options()
        options.inferenceOnly = before.format == .onnx || after.format == .onnx
        let a = ComparableGraph(before, options: options), b = ComparableGraph(after, options: options)
        for (model, graph) in [(before, a), (after, b)] {
            let note = graph.unmapped.map { "\(model.path) is compared as ONNX ops, not Keras layers (\($0))" }
            if let note, !notes.contains(note) { notes.append(note) }
        }
        if options.inferenceOnly, [before.graph, after.graph].contains(where: { $0.nodes.contains { $0.op.isTrainingOnly } }) {
            notes.append("Dropout layers are not compared: ONNX keeps no training-only layers")
        }
        inferenceOnly = options.inferenceOnly
        let matching = LayerMatching(a, b, kind: .type)
        layersMatched = matching.pairs.count
        matchedByName = matching.byName
        matchedByStructure = matching.byStructure
        removed = a.layers.indices.filter { matching.pairOfA[$0] == nil }.map { Layer(name: a.layers[$0].name, type: a.layers[$0].op.typeName) }
        added = b.layers.indices.filter { matching.pairOfB[$0] == nil }.map { Layer(name: b.layers[$0].name, type: b.layers[$0].op.typeName) }
        compareInterfaces(a, b)
        for pair in matching.pairs {
            try compare(a.layers[pair.a], in: a, with: b.layers[pair.b], in: b, matching: matching)
        }
    }

    /// The graph in Keras's layers and layout (ONNX graphs mapped back when they map), shapes
    /// inferred: the view whose parameter names `weightsChanged` uses.
    public static func comparable(_ model: Model) throws -> Graph {
        ComparableGraph.kerasView(model.graph).0
    }

    /// Model inputs and outputs: how many, and the inputs' shapes (a channels-last conversion
    /// changes what arrays the model takes).
    mutating func compareInterfaces(_ a: ComparableGraph, _ b: ComparableGraph) {
        if a.inputs.count != b.inputs.count {
            changed.append(Change(layer: "(model)", field: "inputs", before: "\(a.inputs.count)", after: "\(b.inputs.count)"))
        }
        if a.outputs.count != b.outputs.count {
            changed.append(Change(layer: "(model)", field: "outputs", before: "\(a.outputs.count)", after: "\(b.outputs.count)"))
        }
        for (x, y) in zip(a.inputs, b.inputs) where x.shape != y.shape || x.dtype != y.dtype {
            changed.append(Change(layer: x.name, field: "input shape", before: Self.describe(x), after: Self.describe(y)))
        }
    }

    static func describe(_ value: ValueInfo) -> String {
        (value.shape?.description ?? "unknown") + (value.dtype == .float32 ? "" : " \(value.dtype.rawValue)")
    }

    mutating func compare(_ x: ComparableGraph.Layer, in a: ComparableGraph, with y: ComparableGraph.Layer, in b: ComparableGraph,
                          matching: LayerMatching) throws {
        if !Self.sameName(x, y, derivedNamesAllowed: inferenceOnly) {
            changed.append(Change(layer: x.name, field: "name", before: x.layer, after: y.layer))
        }
        if x.op.typeName != y.op.typeName {
            changed.append(Change(layer: x.name, field: "type", before: x.op.typeName, after: y.op.typeName))
        } else {
            let before = LayerFields.fields(x.op, input: x.inputs.first.flatMap { a.shape($0) })
            let after = LayerFields.fields(y.op, input: y.inputs.first.flatMap { b.shape($0) })
            for field in before {
                guard let other = after.first(where: { $0.name == field.name }) else { continue }
                if field != other { changed.append(Change(layer: x.name, field: field.name, before: field.text, after: other.text)) }
            }
        }
        let mapped = x.inputs.map { matching.values[$0] }
        let readsTheSame = mapped == y.inputs.map { Optional($0) }
            || LayerMatching.isCommutative(x.op) && mapped.compactMap { $0 }.sorted() == y.inputs.sorted() && !mapped.contains(nil)
        if !readsTheSame {
            changed.append(Change(layer: x.name, field: "inputs", before: Self.producers(x.inputs, in: a),
                                  after: Self.producers(y.inputs, in: b)))
        }
        // A weightless layer's flag changes nothing it computes or trains.
        if x.trainable != y.trainable, !x.parameters.isEmpty {
            trainabilityChanged.append(TrainabilityChange(name: x.name, before: x.trainable, after: y.trainable))
        }
        // A weight one side has and the other lacks (a bias dropped with use_bias) is a difference
        // of its own: nothing is skipped silently.
        // A layer Scion does not interpret has no known roles: a `.keras` archive numbers its
        // variables (`var0`), an `.h5` names them (`scale`). Such layers pair their weights by position.
        var positional = false
        if case .opaque = x.op, case .opaque = y.op { positional = x.parameters.count == y.parameters.count }
        func counterpart(_ index: Int) -> Parameter? {
            positional ? y.parameters[index] : y.parameter(x.parameters[index].role)
        }
        if !positional {
            weightsAdded += y.parameters.filter { x.parameter($0.role) == nil && !y.weightsInSettings.contains($0.role) }.map(\.name)
        }
        for (index, parameter) in x.parameters.enumerated() {
            guard let other = counterpart(index) else {
                if !x.weightsInSettings.contains(parameter.role) { weightsRemoved.append(parameter.name) }
                continue
            }
            weightsCompared += 1
            if var change = try Self.compare(parameter, other) {
                change.layer = x.name
                weightsChanged.append(change)
            } else {
                weightsUnchanged += 1
            }
        }
    }

    /// Two layers have one name when their Keras layer names are spelled alike (`base/conv1`,
    /// `base_conv1`). Against ONNX, which spells one Keras layer as several nodes, a name derived
    /// from the other (`embed_1`, `permute/to_channels_first`) is the same name too.
    static func sameName(_ x: ComparableGraph.Layer, _ y: ComparableGraph.Layer, derivedNamesAllowed: Bool) -> Bool {
        let kerasName = LayerMatching.kerasName
        if kerasName(x.layer) == kerasName(y.layer) || kerasName(x.name) == kerasName(y.name) { return true }
        guard derivedNamesAllowed else { return false }
        return [(x.name, y.name), (x.layer, y.layer)].contains { a, b in
            isDerived(a, b) || isDerived(kerasName(a), kerasName(b))
        }
    }

    /// `b` is `a` with `/part`, `_2` or `#1` after it, or the other way round.
    static func isDerived(_ a: String, _ b: String) -> Bool {
        let (short, long) = a.count <= b.count ? (a, b) : (b, a)
        guard long.count > short.count, long.hasPrefix(short) else { return false }
        let rest = long.dropFirst(short.count)
        if rest.hasPrefix("/") { return true }
        return (rest.hasPrefix("_") || rest.hasPrefix("#")) && rest.count > 1 && rest.dropFirst().allSatisfy(\.isNumber)
    }

    /// The layers (or model inputs) producing `values`, for a person: `[conv1, image]`.
    static func producers(_ values: [String], in graph: ComparableGraph) -> String {
        "[" + values.map { value in graph.producer(of: value).map { graph.layers[$0].name } ?? value }.joined(separator: ", ") + "]"
    }

    /// Weights-only files: tensors paired by name; those in one file only are listed.
    mutating func compareWeightsByName(_ a: Graph, _ b: Graph) throws {
        weightsAdded = b.parameters.names.filter { a.parameters[$0] == nil }
        for parameter in a.parameters.all {
            guard let other = b.parameters[parameter.name] else {
                weightsRemoved.append(parameter.name)
                continue
            }
            weightsCompared += 1
            if let change = try Self.compare(parameter, other) { weightsChanged.append(change) } else { weightsUnchanged += 1 }
        }
    }

    /// Nil when equal; the largest absolute element difference for float tensors of one shape.
    /// Shapes that differ only by axes of length 1 (a bias `[5]` or `[1, 5]`) are one shape.
    static func compare(_ a: Parameter, _ b: Parameter) throws -> WeightChange? {
        var change = WeightChange(name: a.name, layer: "", role: a.role.rawValue, maxAbsDelta: nil, shapeBefore: a.shape, shapeAfter: b.shape)
        guard a.shape.filter({ $0 != 1 }) == b.shape.filter({ $0 != 1 }), a.dtype == b.dtype else { return change }
        let bytesA = try a.storage.bytes(keep: false), bytesB = try b.storage.bytes(keep: false)
        if bytesA == bytesB { return nil }
        if a.dtype == .float32, bytesA.count == bytesB.count {
            let delta = bytesA.withUnsafeBytes { left in
                bytesB.withUnsafeBytes { right in
                    zip(left.bindMemory(to: Float.self), right.bindMemory(to: Float.self)).reduce(0.0) { worst, pair in
                        // NaN against a number is a change (max would skip it).
                        pair.0.isNaN != pair.1.isNaN ? .infinity : max(worst, abs(Double(pair.0) - Double(pair.1)))
                    }
                }
            }
            // +0 and -0, or NaNs with different payloads, differ in bytes only.
            if delta == 0 { return nil }
            change.maxAbsDelta = delta
        }
        return change
    }

    /// A few lines a person reads: how layers were paired, each section with its count, one line per
    /// changed setting, long lists shortened.
    public func text(maximum: Int = 12) -> String {
        func list<T>(_ items: [T], _ line: (T) -> String) -> [String] {
            var lines = items.prefix(maximum).map { "  " + line($0) }
            if items.count > maximum { lines.append("  ... and \(items.count - maximum) more") }
            return lines
        }
        var lines = notes.map { "note: \($0)" }
        if !weightsOnly {
            lines.append("Layers matched: \(layersMatched) (\(matchedByName) by name, \(matchedByStructure) by structure)")
            lines.append("Removed layers: \(removed.count)")
            lines += list(removed) { "- \($0.name) (\($0.type))" }
            lines.append("Added layers: \(added.count)")
            lines += list(added) { "+ \($0.name) (\($0.type))" }
            lines.append("Changed layers: \(Set(changed.map(\.layer)).count)")
            lines += list(changed) { "~ \($0.layer): \($0.field) \($0.before) -> \($0.after)" }
        }
        if !weightsRemoved.isEmpty || !weightsAdded.isEmpty {
            lines.append("Weights only in the first: \(weightsRemoved.count)")
            lines += list(weightsRemoved) { "- \($0)" }
            lines.append("Weights only in the second: \(weightsAdded.count)")
            lines += list(weightsAdded) { "+ \($0)" }
        }
        lines.append("Weights in both: \(weightsCompared), unchanged: \(weightsUnchanged), changed: \(weightsChanged.count)")
        lines += list(weightsChanged) { change in
            change.shapeBefore.filter({ $0 != 1 }) != change.shapeAfter.filter({ $0 != 1 })
                ? "~ \(change.name): shape \(change.shapeBefore) -> \(change.shapeAfter)"
                : "~ \(change.name): max |delta| \(change.maxAbsDelta.map { Readable.number($0) } ?? "(bytes differ)")"
        }
        if !weightsOnly {
            lines.append("Trainability changed: \(trainabilityChanged.count) layers")
            lines += list(trainabilityChanged) { "~ \($0.name): \($0.before ? "trainable" : "frozen") -> \($0.after ? "trainable" : "frozen")" }
        }
        lines.append(isEmpty ? "No differences." : "The models differ.")
        return lines.joined(separator: "\n")
    }
}
