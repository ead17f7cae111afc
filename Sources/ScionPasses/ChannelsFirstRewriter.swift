import ScionIR

/// One run of `ChannelsFirstLayoutPass`: walks the source graph in topological order and writes the
/// channels-first graph node by node, inserting a Transpose only where a value is needed in a form
/// it does not have yet.
///
/// Each value of the source graph is available under up to two names, one per `Form`. A node's
/// `Rule` says which form it needs its inputs in; flexible nodes pick the form that costs the fewest
/// new Transposes, and on a tie the form their output's consumers want (`demand`, computed backwards
/// before the walk). Transposes are cached per value and form, so a value goes back to channels-last
/// once however many consumers need it that way.
struct ChannelsFirstRewriter {
    /// How a value's elements are ordered in memory.
    enum Form: Equatable, Sendable {
        /// As in the source graph (channels last for image-like values).
        case original
        /// Channels moved from the last axis to axis 1: `[N, C, spatial...]`.
        case channelsFirst
    }

    /// Names under which one source value exists in the new graph. Values of rank 2 or less are the
    /// same in both forms and have both names set to one value.
    struct Availability {
        var original: String?
        var channelsFirst: String?

        func name(in form: Form) -> String? { form == .original ? original : channelsFirst }
    }

    let passName: String
    /// The graph being converted, with every shape inferred.
    let source: Graph
    let graphOutputs: Set<String>
    /// The converted graph's nodes, in a topological order.
    var nodes: [Node] = []
    var parameters: ParameterTable
    var available: [String: Availability] = [:]
    /// Form each value's consumers would like it in (nil: no preference), from `computeDemand()`.
    var demand: [String: Form] = [:]
    /// Each source node's rule (by index), decided once before the walk.
    var rules: [Int: Rule] = [:]
    /// Node indices reading each value (a node reading a value twice is listed twice).
    var consumers: [String: [Int]] = [:]
    /// Number of nodes using each parameter: a shared one may only change in ways every user agrees on.
    var parameterUses: [String: Int] = [:]
    /// What was done to each parameter already, so a shared layer's kernel is permuted once.
    var parameterChanges: [String: String] = [:]
    /// Dense nodes (by source index) that must permute some of their kernel rows, because a Flatten
    /// before them now flattens channels-first data (one entry per such Flatten).
    var pendingRowPermutations: [Int: [FlattenedFeatures]] = [:]
    /// Inserted names follow the originals as `name_2`, `name_3`...
    var takenValueNames: UniqueNames
    var takenNodeNames: UniqueNames
    /// Names of the Transpose nodes this pass inserted.
    var insertedTransposes: Set<String> = []
    /// Rank of every source value whose rank is known: from its inferred shape, or, after an opaque
    /// layer, from the op producing it (a convolution's output has the convolution's rank even when
    /// its lengths are unknown).
    var ranks: [String: Int] = [:]
    let producerScope: [String: String]

    /// Spatial and channel lengths of a value flattened channels-first before a Dense, and where its
    /// features start among the Dense's inputs (after a Concatenate, past the features before them).
    struct FlattenedFeatures: Equatable {
        var spatial: [Int]
        var channels: Int
        var firstRow: Int
    }

    init(passName: String, source: Graph) {
        self.passName = passName
        self.source = source
        self.graphOutputs = Set(source.outputs)
        self.parameters = source.parameters
        var values = Set(source.inputs.map(\.name))
        var scopes: [String: String] = [:]
        for (index, node) in source.nodes.enumerated() {
            for output in node.outputs { values.insert(output); scopes[output] = node.scope }
            for input in node.inputs { consumers[input, default: []].append(index) }
            for parameter in Set(node.parameters) { parameterUses[parameter, default: 0] += 1 }
        }
        self.takenValueNames = UniqueNames(taken: values, firstSuffix: 2)
        self.takenNodeNames = UniqueNames(taken: source.nodes.map(\.name), firstSuffix: 2)
        self.producerScope = scopes
    }

    func failure(_ subject: String, _ reason: String) -> PassError {
        PassError(pass: passName, subject: subject, reason)
    }

    /// Rank of a source value; nil when unknown (after an opaque layer).
    func rank(of value: String) -> Int? { ranks[value] }

    func shape(of value: String) -> Shape? { source.values[value]?.shape }

    // MARK: - The walk

    mutating func rewrite() throws {
        let order = try source.topologicalOrder()
        computeRanks(order: order)
        for index in order { rules[index] = rule(for: index) }
        computeDemand(order: order)
        for input in source.inputs {
            record(input.name, as: input.name, form: .original)
        }
        // Image-like inputs that feed spatial ops get their Transpose first, right after the input.
        for input in source.inputs where (rank(of: input.name) ?? 0) >= 3 && demand[input.name] == .channelsFirst {
            _ = try materialize(input.name, in: .channelsFirst)
        }
        for index in order {
            try rewriteNode(at: index)
        }
        for output in source.outputs {
            _ = try materialize(output, in: .original)
        }
        removeUnusedTransposes()
    }

    mutating func rewriteNode(at index: Int) throws {
        let node = source.nodes[index]
        switch rules[index] ?? rule(for: index) {
        case .spatial:
            try rewriteSpatial(node)
        case .original:
            try emitUnchanged(node, form: .original)
        case .flexible:
            try rewriteFlexible(node, index: index)
        case .channelsFirstOnly:
            try rewriteFlexible(node, index: index, form: .channelsFirst)
        case .reshape(let readsChannelsFirst, let writesChannelsFirst):
            try rewriteReshape(node, readsChannelsFirst: readsChannelsFirst, writesChannelsFirst: writesChannelsFirst)
        case .flatten(let plan):
            try rewriteFlatten(node, plan: plan)
        }
    }

    /// Emits `node` reading its inputs in `form`, attributes untouched, outputs recorded in `form`.
    mutating func emitUnchanged(_ node: Node, form: Form) throws {
        var copy = node
        copy.inputs = try node.inputs.map { try materialize($0, in: form) }
        copy.outputs = node.outputs.map { outputName($0, form: form) }
        emit(copy, sourceOutputs: node.outputs, form: form)
    }

    /// Appends a rewritten node and records its outputs (`node.outputs[i]` holds source value
    /// `sourceOutputs[i]` in `form`).
    mutating func emit(_ node: Node, sourceOutputs: [String], form: Form) {
        nodes.append(node)
        for (sourceName, name) in zip(sourceOutputs, node.outputs) {
            record(sourceName, as: name, form: form)
        }
    }

    /// Notes that source value `value` is now available as `name` in `form`. Values of rank 2 or less
    /// are the same in both forms; values of unknown rank only count in the form they were made in.
    mutating func record(_ value: String, as name: String, form: Form) {
        if let rank = rank(of: value), rank <= 2 {
            available[value] = Availability(original: name, channelsFirst: name)
            return
        }
        var entry = available[value] ?? Availability()
        switch form {
        case .original: entry.original = name
        case .channelsFirst: entry.channelsFirst = name
        }
        available[value] = entry
    }

    /// Name for a node output holding source value `value` in `form`. Graph outputs must keep their
    /// names for the original-order array, so a channels-first graph output is written under
    /// `value/channels_first` and the final Transpose writes `value`.
    mutating func outputName(_ value: String, form: Form) -> String {
        guard form == .channelsFirst, graphOutputs.contains(value), (rank(of: value) ?? 3) >= 3 else { return value }
        return uniqueValueName("\(value)/channels_first")
    }

    /// The name of `value` in `form`, inserting the Transpose that makes it when it does not exist
    /// yet. `rank` is used when the value's shape is unknown (an opaque layer's output read by a
    /// convolution, whose rank the convolution knows).
    mutating func materialize(_ value: String, in form: Form, rank knownRank: Int? = nil) throws -> String {
        guard let entry = available[value] else {
            throw failure(value, "is read before any node produces it")
        }
        if let name = entry.name(in: form) { return name }
        guard let rank = rank(of: value) ?? knownRank else {
            let target = form == .original ? "channels-last" : "channels-first"
            throw failure(value, "has an unknown shape, so it cannot be transposed to \(target)")
        }
        let sourceName: String?
        let target: String
        let permutation: [Int]
        switch form {
        case .channelsFirst:
            sourceName = entry.original
            target = uniqueValueName("\(value)/to_channels_first")
            permutation = ChannelsFirstAxes.toChannelsFirst(rank: rank)
        case .original:
            sourceName = entry.channelsFirst
            // A graph output's original-order array is the one users see: it keeps the name.
            target = graphOutputs.contains(value) ? value : uniqueValueName("\(value)/to_channels_last")
            permutation = ChannelsFirstAxes.toChannelsLast(rank: rank)
        }
        guard let sourceName else { throw failure(value, "is not available in any form") }
        let nodeName = uniqueNodeName(form == .channelsFirst ? "\(value)/to_channels_first" : "\(value)/to_channels_last")
        let transpose = Node(name: nodeName, op: .transpose(TransposeAttributes(permutation: permutation)),
                             inputs: [sourceName], outputs: [target], scope: producerScope[value] ?? "")
        nodes.append(transpose)
        insertedTransposes.insert(nodeName)
        var updated = entry
        if form == .original { updated.original = target } else { updated.channelsFirst = target }
        available[value] = updated
        return target
    }

    mutating func uniqueValueName(_ base: String) -> String { takenValueNames.claim(base) }

    mutating func uniqueNodeName(_ base: String) -> String { takenNodeNames.claim(base) }

    /// Drops inserted Transposes nobody reads: an input transposed up front whose consumers all ended
    /// up reading the original order.
    mutating func removeUnusedTransposes() {
        var read = Set(source.outputs)
        for node in nodes { read.formUnion(node.inputs) }
        nodes.removeAll { node in
            insertedTransposes.contains(node.name) && !node.outputs.contains { read.contains($0) }
        }
    }
}
