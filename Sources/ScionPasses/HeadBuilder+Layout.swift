import ScionIR

/// Where a head item finds the features of the value it reads. A Keras graph is channels-last
/// throughout; in a graph read from ONNX a value of rank 3 or more is channels-first only when the
/// layers producing it say so (a convolution chain), features-last when they are a transformer's or
/// an Embedding's (`AxisRoles`), and anything else is refused rather than guessed.
enum HeadInputLayout: Equatable {
    /// Rank ≤ 2: the features are the last axis, whatever the graph.
    case flat
    /// `(N, C, spatial...)`: ONNX's spatial ops pool the axes after the channels.
    case channelsFirst
    /// `(N, spatial..., C)` in a Keras graph: Keras's own layers.
    case channelsLast
    /// `(N, steps..., features)` in a channels-first graph (a transformer's or a batch-first
    /// recurrent output): pooled over the steps as Keras's GlobalAveragePooling1D does, with the
    /// ReduceMean torch itself writes for `x.mean(1)`.
    case featuresLast

    /// The axis holding the features in a value of `rank`.
    func featureAxis(rank: Int) -> Int { self == .channelsFirst ? 1 : rank - 1 }
}

extension HeadBuilder {
    /// The layout of `input` for a head item that depends on it (`item` names it in errors). A value
    /// whose batch is not axis 0 (torch's time-major recurrent output) is refused: pooling or a Dense
    /// would mix the samples.
    func layout(of input: String, shape: Shape, item: String) throws -> HeadInputLayout {
        if shape.rank <= 2 { return .flat }
        guard channelsFirst else { return .channelsLast }
        guard let roles = AxisRoles.of(input, in: graph) else {
            throw failure(item, "cannot tell the layout of '\(input)' \(shape): the layers producing it do not say whether it is "
                + "channels-first (N, C, ...) or features-last (N, steps, features); graft after a convolution, Dense, "
                + "LayerNormalization or attention layer (--after LAYER)")
        }
        guard roles.batch == 0 else {
            throw failure(item, "'\(input)' \(shape) is time-major: its batch is axis \(roles.batch), not 0 (torch's recurrent "
                + "layers write (steps, batch, features)); graft after the Transpose that puts the batch first (--after LAYER)")
        }
        if roles.isChannelsFirst { return .channelsFirst }
        if roles.isFeaturesLast { return .featuresLast }
        let features = roles.features.map { "its features are axis \($0)" } ?? "nothing says which axis holds its features"
        throw failure(item, "cannot tell the layout of '\(input)' \(shape): \(features), neither channels-first (N, C, ...) nor "
            + "features-last (N, steps, features); graft after a convolution, Dense, LayerNormalization or attention layer (--after LAYER)")
    }

    /// Flatten keeps the memory order, so it only needs the batch on axis 0.
    func requireBatchFirst(_ input: String, shape: Shape, item: String) throws {
        guard channelsFirst, shape.rank >= 3 else { return }
        guard let roles = AxisRoles.of(input, in: graph) else {
            throw failure(item, "cannot tell which axis of '\(input)' \(shape) is the batch from the layers producing it; "
                + "graft after a convolution, Dense, LayerNormalization or attention layer (--after LAYER)")
        }
        guard roles.batch == 0 else {
            throw failure(item, "'\(input)' \(shape) is time-major: its batch is axis \(roles.batch), not 0; "
                + "graft after the Transpose that puts the batch first (--after LAYER)")
        }
    }

    /// Global pooling over the axes between the batch and the features. On a features-last value of a
    /// channels-first graph it is a ReduceMean/ReduceMax over them: the op torch writes for it, which
    /// the ONNX writer, the runner and the Keras conversion (GlobalAveragePooling1D) all know.
    mutating func appendGlobalPooling(average: Bool, input: String, shape: Shape, layout: HeadInputLayout) -> String {
        let rank = shape.rank
        let name = average ? "global_average_pooling\(rank - 2)d" : "global_max_pooling\(rank - 2)d"
        if layout == .featuresLast {
            let reduce = ReduceAttributes(kind: average ? .mean : .maximum, axes: Array(1..<(rank - 1)), keepDimensions: false)
            return add(name, .onnx(.reduce(reduce)), input)
        }
        let op = Op.globalPool(GlobalPoolAttributes(kind: average ? .average : .max, rank: rank - 2,
                                                    layout: layout == .channelsFirst ? .channelsFirst : .channelsLast))
        return add(name, op, input)
    }
}
