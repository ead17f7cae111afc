import ScionIR

/// Phase two of `KerasLayersPass`: walks a channels-first graph (read from ONNX, patterns already
/// folded by `KerasPatternRewriter`) in topological order and writes the channels-last graph Keras
/// layers express, inserting a Transpose (a Keras `Permute`) only where a value is needed in a form
/// it does not have yet.
///
/// The mirror of `ChannelsFirstRewriter`: each source value exists under up to two names, one per
/// `Form`; spatial ops need channels-last, ops that depend on memory order need the original order,
/// flexible ops follow their inputs, and a backward `demand` pass breaks ties. An explicit Transpose
/// between the two layouts (tf2onnx's `[0, 3, 1, 2]` after an NHWC input) costs nothing: its result
/// is the other form of its input.
struct ChannelsLastRewriter {
    enum Form: Equatable {
        /// As in the source graph: channels at axis 1 for image-like values.
        case original
        /// Channels moved from axis 1 to the end: `[N, spatial..., C]`.
        case channelsLast
    }

    struct Availability {
        var original: String?
        var channelsLast: String?
        func name(in form: Form) -> String? { form == .original ? original : channelsLast }
    }

    enum Rule: Equatable {
        /// Convolution, pooling, padding...: reads and writes channels-last.
        case spatial
        /// Depends on memory order (Reshape, Dense on rank > 2, Embedding, LayerNormalization,
        /// Transposes that are not a layout change): reads and writes the original order.
        case original
        /// Runs on either form, axes rewritten; writes the form it read.
        case flexible
        /// Per-channel work Keras can only express on the last axis (a per-channel Rescaling).
        case channelsLastOnly
        /// Work over the last axis of the original order (a log-softmax over it): reads and writes
        /// the original order, its axis written as -1.
        case originalOnly
        /// A Flatten: `channelsLast` when it may flatten channels-last data (only the channels are
        /// longer than 1, or the Dense reading it permutes its kernel rows).
        case flatten(channelsLast: Bool, dense: Int?)
        /// A Keras Reshape: reads channels-last when both forms have the same memory order.
        case reshape(readsEither: Bool)
        /// A Transpose between the layouts: `toChannelsFirst` reads the original order and its
        /// result is the input's channels-last form; the reverse reads channels-last.
        case layoutTranspose(toChannelsFirst: Bool)
    }

    let passName: String
    let source: Graph
    /// Image-like graph inputs become channels-last instead of getting a Permute at entry.
    let channelsLastInputs: Bool
    let graphOutputs: Set<String>
    var nodes: [Node] = []
    var parameters: ParameterTable
    var parameterChanges: [String: String] = [:]
    var inputs: [ValueInfo]
    var available: [String: Availability] = [:]
    var rules: [Int: Rule] = [:]
    var demand: [String: Form] = [:]
    var consumers: [String: [Int]] = [:]
    var producers: [String: Int] = [:]
    var parameterUses: [String: Int] = [:]
    /// Dense nodes (by source index) whose kernel rows follow a Flatten of channels-last data.
    var pendingRowPermutations: [Int: (spatial: [Int], channels: Int)] = [:]
    var takenValueNames: UniqueNames
    var takenNodeNames: UniqueNames
    var insertedTransposes: Set<String> = []

    init(passName: String, source: Graph, channelsLastInputs: Bool) {
        self.passName = passName
        self.source = source
        self.channelsLastInputs = channelsLastInputs
        self.graphOutputs = Set(source.outputs)
        self.parameters = source.parameters
        self.inputs = source.inputs
        var values = Set(source.inputs.map(\.name))
        for (index, node) in source.nodes.enumerated() {
            values.formUnion(node.outputs)
            for input in node.inputs { consumers[input, default: []].append(index) }
            for output in node.outputs { producers[output] = index }
            for parameter in Set(node.parameters) { parameterUses[parameter, default: 0] += 1 }
        }
        self.takenValueNames = UniqueNames(taken: values, firstSuffix: 2)
        self.takenNodeNames = UniqueNames(taken: source.nodes.map(\.name), firstSuffix: 2)
    }

    func failure(_ subject: String, _ reason: String) -> PassError {
        PassError(pass: passName, subject: subject, reason)
    }

    func shape(of value: String) -> Shape? { source.values[value]?.shape }
    func rank(of value: String) -> Int? { shape(of: value)?.rank }

    // MARK: - The walk

    mutating func rewrite() throws {
        let order = try source.topologicalOrder()
        // Constants last: a constant left over is only a problem because of the node reading it,
        // and when that node has no Keras layer anyway, the message should name it for that.
        for index in order where !isConstant(index) { rules[index] = try rule(for: index) }
        for index in order where isConstant(index) { rules[index] = try rule(for: index) }
        computeDemand(order: order)
        for (position, input) in source.inputs.enumerated() {
            guard let shape = input.shape, shape.rank >= 3, demand[input.name] == .channelsLast else {
                record(input.name, as: input.name, form: .original)
                continue
            }
            if channelsLastInputs {
                inputs[position].shape = Shape(ChannelsFirstAxes.toChannelsLast(rank: shape.rank).map { shape.dimensions[$0] })
                record(input.name, as: input.name, form: .channelsLast)
            } else {
                record(input.name, as: input.name, form: .original)
                _ = try materialize(input.name, in: .channelsLast)
            }
        }
        for index in order { try rewriteNode(at: index) }
        for output in source.outputs {
            let name = try materialize(output, in: .original)
            if name != output {
                // The value is another one's channels-last form (a layout Transpose was the last
                // node): an Identity gives the output its own name back.
                nodes.append(Node(name: uniqueNodeName(output), op: .identity, inputs: [name], outputs: [output]))
            }
        }
        removeUnusedTransposes()
    }

    func isConstant(_ index: Int) -> Bool {
        if case .constant = source.nodes[index].op { return true }
        return false
    }

    mutating func rewriteNode(at index: Int) throws {
        let node = source.nodes[index]
        switch rules[index] ?? .original {
        case .spatial: try rewriteSpatial(node)
        case .original: try emit(node, form: .original, op: node.op)
        case .flexible: try rewriteFlexible(node, index: index, form: chooseForm(node))
        case .channelsLastOnly: try rewriteFlexible(node, index: index, form: .channelsLast)
        case .originalOnly: try rewriteFlexible(node, index: index, form: .original)
        case .flatten(let channelsLast, let dense): try rewriteFlatten(node, channelsLast: channelsLast, dense: dense)
        case .reshape(let readsEither): try rewriteReshape(node, readsEither: readsEither)
        case .layoutTranspose(let toChannelsFirst):
            guard let input = node.inputs.first, let output = node.outputs.first else { return }
            if toChannelsFirst {
                record(output, as: try materialize(input, in: .original), form: .channelsLast)
            } else {
                record(output, as: try materialize(input, in: .channelsLast), form: .original)
            }
        }
    }

    /// Emits `node` with `op`, reading its inputs in `form`, its outputs recorded in `form`.
    mutating func emit(_ node: Node, form: Form, op: Op, inputs: [String]? = nil) throws {
        var copy = node
        copy.op = op
        copy.inputs = try inputs ?? node.inputs.map { try materialize($0, in: form) }
        copy.outputs = node.outputs.map { outputName($0, form: form) }
        nodes.append(copy)
        for (sourceName, name) in zip(node.outputs, copy.outputs) { record(sourceName, as: name, form: form) }
    }

    /// Notes that `value` is available as `name` in `form`; values of rank 2 or less are the same in
    /// both forms.
    mutating func record(_ value: String, as name: String, form: Form) {
        if let rank = rank(of: value), rank <= 2 {
            available[value] = Availability(original: name, channelsLast: name)
            return
        }
        var entry = available[value] ?? Availability()
        if form == .original { entry.original = name } else { entry.channelsLast = name }
        available[value] = entry
    }

    /// A graph output keeps its name for the original-order array: a channels-last one is written
    /// under `value/channels_last` and the final Transpose writes `value`.
    mutating func outputName(_ value: String, form: Form) -> String {
        guard form == .channelsLast, graphOutputs.contains(value), (rank(of: value) ?? 3) >= 3 else { return value }
        return takenValueNames.claim("\(value)/channels_last")
    }

    mutating func materialize(_ value: String, in form: Form, rank knownRank: Int? = nil) throws -> String {
        guard let entry = available[value] else { throw failure(value, "is read before any node produces it") }
        if let name = entry.name(in: form) { return name }
        guard let rank = rank(of: value) ?? knownRank else {
            throw failure(value, "has an unknown shape, so its layout cannot be changed")
        }
        let toChannelsLast = form == .channelsLast
        guard let from = toChannelsLast ? entry.original : entry.channelsLast else {
            throw failure(value, "is not available in any form")
        }
        let base = toChannelsLast ? "\(value)/to_channels_last" : "\(value)/to_channels_first"
        let target = !toChannelsLast && graphOutputs.contains(value) ? value : takenValueNames.claim(base)
        let permutation = toChannelsLast ? ChannelsFirstAxes.toChannelsLast(rank: rank) : ChannelsFirstAxes.toChannelsFirst(rank: rank)
        let scope = producers[value].map { source.nodes[$0].scope } ?? ""
        let transpose = Node(name: uniqueNodeName(base), op: .transpose(TransposeAttributes(permutation: permutation)),
                             inputs: [from], outputs: [target], scope: scope)
        nodes.append(transpose)
        insertedTransposes.insert(transpose.name)
        record(value, as: target, form: form)
        return target
    }

    mutating func uniqueNodeName(_ base: String) -> String { takenNodeNames.claim(base) }
    mutating func uniqueValueName(_ base: String) -> String { takenValueNames.claim(base) }

    /// Drops inserted Transposes nobody reads.
    mutating func removeUnusedTransposes() {
        var read = Set(source.outputs)
        for node in nodes { read.formUnion(node.inputs) }
        nodes.removeAll { insertedTransposes.contains($0.name) && !$0.outputs.contains { read.contains($0) } }
    }

    // MARK: - Demand

    /// The form each value's readers want, walking backwards; a graph output wants the original.
    mutating func computeDemand(order: [Int]) {
        for index in order.reversed() {
            for output in source.nodes[index].outputs { demand[output] = tally(output) }
        }
        for input in source.inputs { demand[input.name] = tally(input.name) }
    }

    func tally(_ value: String) -> Form? {
        var votes = graphOutputs.contains(value) ? -1 : 0
        for reader in consumers[value] ?? [] {
            switch wish(of: reader) {
            case .channelsLast: votes += 1
            case .original: votes -= 1
            case nil: break
            }
        }
        return votes == 0 ? nil : votes > 0 ? .channelsLast : .original
    }

    func wish(of index: Int) -> Form? {
        let node = source.nodes[index]
        switch rules[index] ?? .original {
        case .spatial, .channelsLastOnly: return .channelsLast
        case .original, .originalOnly: return .original
        case .flexible:
            return node.outputs.first.flatMap { (rank(of: $0) ?? 3) <= 2 ? nil : demand[$0] }
        case .flatten(let channelsLast, _): return channelsLast ? nil : .original
        case .reshape(let readsEither): return readsEither ? nil : .original
        case .layoutTranspose(let toChannelsFirst): return toChannelsFirst ? .original : .channelsLast
        }
    }

    /// The form a flexible node reads: the one needing fewer new Transposes; on a tie, the one its
    /// readers want; else channels-last (what the Keras layers around it use).
    func chooseForm(_ node: Node) -> Form {
        let layered = node.inputs.filter { (rank(of: $0) ?? 3) >= 3 }
        if layered.isEmpty { return .original }
        let missingLast = layered.filter { available[$0]?.channelsLast == nil }.count
        let missingOriginal = layered.filter { available[$0]?.original == nil }.count
        if missingLast != missingOriginal { return missingLast < missingOriginal ? .channelsLast : .original }
        return node.outputs.first.flatMap { demand[$0] } ?? .channelsLast
    }
}
