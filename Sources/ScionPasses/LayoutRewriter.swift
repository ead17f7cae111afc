import ScionIR

/// One run of a layout conversion, in either `LayoutDirection`: walks the source graph in
/// topological order and writes the converted graph node by node, inserting a Transpose (a Keras
/// `Permute` going channels-last) only where a value is needed in a form it does not have yet.
///
/// ```
///  source (channels-last)            converted (toChannelsFirst)
///
///  image [N,32,32,3]                 image ── image/to_channels_first  Transpose [0,3,1,2]
///  conv  Conv2D                      conv  Conv2D channelsFirst        (spatial: converted form)
///  relu                              relu                              (flexible: follows its input)
///  flat  Flatten                     flat  Flatten channelsFirst       (Dense rows permuted instead)
///  fc    Dense                       fc    Dense
/// ```
///
/// Each value of the source graph is available under up to two names, one per `Form`. A node's
/// `Rule` (`rule(for:)`, one exhaustive switch over `Op`) says which form it needs its inputs in;
/// flexible nodes pick the form that costs the fewest new Transposes, and on a tie the form their
/// output's consumers want (`demand`, computed backwards before the walk). Transposes are cached per
/// value and form, so a value goes back to the original order once however many consumers need it.
struct LayoutRewriter {
    /// How a value's elements are ordered in memory.
    enum Form: Equatable, Sendable {
        /// As in the source graph.
        case original
        /// Channels moved to where the direction's target layout has them.
        case converted
    }

    /// Names under which one source value exists in the new graph. Values of rank 2 or less are the
    /// same in both forms and have both names set to one value.
    struct Availability {
        var original: String?
        var converted: String?

        func name(in form: Form) -> String? { form == .original ? original : converted }
    }

    /// Spatial and channel lengths of a value flattened in converted form before a Dense, and where
    /// its features start among the Dense's inputs (after a Concatenate, past the features before
    /// them).
    struct FlattenedFeatures: Equatable {
        var spatial: [Int]
        var channels: Int
        var firstRow: Int
    }

    let direction: LayoutDirection
    let passName: String
    /// The graph being converted, with every shape inferred.
    let source: Graph
    /// Image-like graph inputs are declared in converted form instead of getting a Transpose at entry
    /// (`KerasLayersPass.channelsLastInputs`).
    let convertsInputs: Bool
    let graphOutputs: Set<String>
    /// The converted graph's inputs (their shapes change only with `convertsInputs`).
    var inputs: [ValueInfo]
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
    /// The source node writing each value.
    var producers: [String: Int] = [:]
    /// Number of nodes using each parameter: a shared one may only change in ways every user agrees on.
    var parameterUses: [String: Int] = [:]
    /// What was done to each parameter already, so a shared layer's kernel is permuted once.
    var parameterChanges: [String: String] = [:]
    /// Dense nodes (by source index) that must permute some of their kernel rows, because a Flatten
    /// before them now flattens converted data (one entry per such Flatten).
    var pendingRowPermutations: [Int: [FlattenedFeatures]] = [:]
    /// Inserted names follow the originals as `name_2`, `name_3`...
    var takenValueNames: UniqueNames
    var takenNodeNames: UniqueNames
    /// Names of the Transpose nodes this pass inserted.
    var insertedTransposes: Set<String> = []
    /// Rank of every source value whose rank is known (`computeRanks`).
    var ranks: [String: Int] = [:]

    init(direction: LayoutDirection, passName: String, source: Graph, convertsInputs: Bool = false) {
        self.direction = direction
        self.passName = passName
        self.source = source
        self.convertsInputs = convertsInputs
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

    /// Rank of a source value; nil when unknown.
    func rank(of value: String) -> Int? { ranks[value] }

    func shape(of value: String) -> Shape? { source.values[value]?.shape }

    /// The source graph's parameter playing `role` in a source node (before any change: a shared
    /// layer's second call must see the same kernel as its first).
    func sourceParameter(of node: Node, role: ParameterRole) -> Parameter? {
        source.parameter(of: node, role: role)
    }

    // MARK: - The walk

    mutating func rewrite() throws {
        let order = try source.topologicalOrder()
        computeRanks(order: order)
        // Constants last: a constant Keras cannot take is only a problem because of the node
        // reading it, and when that node has no Keras layer anyway, the message should name it for that.
        for index in order where !isConstant(index) { rules[index] = try rule(for: index) }
        for index in order where isConstant(index) { rules[index] = try rule(for: index) }
        computeDemand(order: order)
        // Image-like inputs that feed spatial ops get their Transpose first, right after the input
        // (or, with `convertsInputs`, are declared converted).
        for (position, input) in source.inputs.enumerated() {
            guard let shape = input.shape, shape.rank >= 3, demand[input.name] == .converted else {
                record(input.name, as: input.name, form: .original)
                continue
            }
            if convertsInputs {
                inputs[position].shape = Shape(direction.toConverted(rank: shape.rank).map { shape.dimensions[$0] })
                record(input.name, as: input.name, form: .converted)
            } else {
                record(input.name, as: input.name, form: .original)
                _ = try materialize(input.name, in: .converted)
            }
        }
        for index in order { try rewriteNode(at: index) }
        for output in source.outputs {
            let name = try materialize(output, in: .original)
            if name != output {
                // The value is another one's converted form (a layout Transpose was the last node):
                // an Identity gives the output its own name back.
                nodes.append(Node(name: uniqueNodeName(output), op: .identity, inputs: [name], outputs: [output]))
            }
        }
        removeUnusedTransposes()
    }

    func isConstant(_ index: Int) -> Bool {
        if case .onnx(.constant) = source.nodes[index].op { return true }
        return false
    }

    mutating func rewriteNode(at index: Int) throws {
        let node = source.nodes[index]
        switch rules[index] ?? .original {
        case .spatial: try rewriteSpatial(node)
        case .original: try emit(node, form: .original, op: node.op)
        case .flexible: try rewriteFlexible(node, index: index, form: chooseForm(node))
        case .convertedOnly: try rewriteFlexible(node, index: index, form: .converted)
        case .originalOnly: try rewriteFlexible(node, index: index, form: .original)
        case .reshape(let readsConverted, let writesConverted):
            try rewriteReshape(node, readsConverted: readsConverted, writesConverted: writesConverted)
        case .flatten(let plan): try rewriteFlatten(node, plan: plan)
        case .layoutTranspose(let readsConverted):
            // No node: the output is the input's other form.
            guard let input = node.inputs.first, let output = node.outputs.first else { return }
            if readsConverted {
                record(output, as: try materialize(input, in: .converted), form: .original)
            } else {
                record(output, as: try materialize(input, in: .original), form: .converted)
            }
        }
    }

    /// Emits `node` with `op`, reading `inputs` (default: its own, in `form`), its outputs recorded
    /// in `form`.
    mutating func emit(_ node: Node, form: Form, op: Op, inputs: [String]? = nil) throws {
        var copy = node
        copy.op = op
        copy.inputs = try inputs ?? node.inputs.map { try materialize($0, in: form) }
        copy.outputs = node.outputs.map { outputName($0, form: form) }
        nodes.append(copy)
        for (sourceName, name) in zip(node.outputs, copy.outputs) { record(sourceName, as: name, form: form) }
    }

    /// Notes that source value `value` is now available as `name` in `form`. Values of rank 2 or less
    /// are the same in both forms; values of unknown rank only count in the form they were made in.
    mutating func record(_ value: String, as name: String, form: Form) {
        if let rank = rank(of: value), rank <= 2 {
            available[value] = Availability(original: name, converted: name)
            return
        }
        var entry = available[value] ?? Availability()
        switch form {
        case .original: entry.original = name
        case .converted: entry.converted = name
        }
        available[value] = entry
    }

    /// Name for a node output holding source value `value` in `form`. Graph outputs must keep their
    /// names for the original-order array, so a converted graph output is written under
    /// `value/channels_first` (or `value/channels_last`) and the final Transpose writes `value`.
    mutating func outputName(_ value: String, form: Form) -> String {
        guard form == .converted, graphOutputs.contains(value), (rank(of: value) ?? 3) >= 3 else { return value }
        return uniqueValueName("\(value)/\(direction.targetName)")
    }

    /// The name of `value` in `form`, inserting the Transpose that makes it when it does not exist
    /// yet. `rank` is used when the value's shape is unknown (an opaque layer's output read by a
    /// convolution, whose rank the convolution knows).
    mutating func materialize(_ value: String, in form: Form, rank knownRank: Int? = nil) throws -> String {
        guard let entry = available[value] else { throw failure(value, "is read before any node produces it") }
        if let name = entry.name(in: form) { return name }
        let layoutName = form == .converted ? direction.targetName : direction.sourceName
        guard let rank = rank(of: value) ?? knownRank else {
            let layout = form == .converted ? direction.targetLayout : direction.sourceLayout
            let target = layout == .channelsFirst ? "channels-first" : "channels-last"
            throw failure(value, "has an unknown shape, so it cannot be transposed to \(target)")
        }
        guard let from = form == .converted ? entry.original : entry.converted else {
            throw failure(value, "is not available in any form")
        }
        let base = "\(value)/to_\(layoutName)"
        // A graph output's original-order array is the one users see: it keeps the name.
        let target = form == .original && graphOutputs.contains(value) ? value : uniqueValueName(base)
        let permutation = form == .converted ? direction.toConverted(rank: rank) : direction.toOriginal(rank: rank)
        let scope = producers[value].map { source.nodes[$0].scope } ?? ""
        let transpose = Node(name: uniqueNodeName(base), op: .transpose(TransposeAttributes(permutation: permutation)),
                             inputs: [from], outputs: [target], scope: scope)
        nodes.append(transpose)
        insertedTransposes.insert(transpose.name)
        record(value, as: target, form: form)
        return target
    }

    mutating func uniqueValueName(_ base: String) -> String { takenValueNames.claim(base) }

    mutating func uniqueNodeName(_ base: String) -> String { takenNodeNames.claim(base) }

    /// Drops inserted Transposes nobody reads: an input transposed up front whose consumers all ended
    /// up reading the original order.
    mutating func removeUnusedTransposes() {
        var read = Set(source.outputs)
        for node in nodes { read.formUnion(node.inputs) }
        nodes.removeAll { insertedTransposes.contains($0.name) && !$0.outputs.contains { read.contains($0) } }
    }
}
