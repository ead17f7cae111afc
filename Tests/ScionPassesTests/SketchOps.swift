import ScionIR

/// Ops with the arguments the layout tests vary, channels-last as Keras writes them.
enum Ops {
    static func conv(_ filters: Int, kernel: [Int], strides: [Int]? = nil, padding: Padding = .same, groups: Int = 1,
                     useBias: Bool = true, activation: Activation = .linear) -> Op {
        .conv(ConvAttributes(filters: filters, kernelSize: kernel, strides: strides ?? kernel.map { _ in 1 },
                             dilations: kernel.map { _ in 1 }, padding: padding, groups: groups, useBias: useBias,
                             activation: activation, layout: .channelsLast))
    }

    static func depthwise(kernel: [Int], multiplier: Int, useBias: Bool = true, padding: Padding = .same) -> DepthwiseConvAttributes {
        DepthwiseConvAttributes(kernelSize: kernel, strides: kernel.map { _ in 1 }, dilations: kernel.map { _ in 1 },
                                padding: padding, depthMultiplier: multiplier, useBias: useBias, activation: .linear,
                                layout: .channelsLast)
    }

    static let batchNormalization = Op.batchNormalization(
        BatchNormalizationAttributes(axis: -1, epsilon: 1e-3, momentum: 0.99, center: true, scale: true))
    static func batchNormalizationRoles(_ channels: Int) -> [(String, [Int])] {
        ["gamma", "beta", "moving_mean", "moving_variance"].map { ($0, [channels]) }
    }

    static func globalAverage(rank: Int = 2, keep: Bool = false) -> Op {
        .globalPool(GlobalPoolAttributes(kind: .average, rank: rank, keepDimensions: keep, layout: .channelsLast))
    }

    static func dense(_ units: Int, activation: Activation = .linear) -> Op {
        .dense(DenseAttributes(units: units, activation: activation))
    }
}
