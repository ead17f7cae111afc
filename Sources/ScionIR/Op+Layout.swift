extension Op {
    /// The layout a spatial op (convolution, pooling, padding, cropping, upsampling) computes in; nil
    /// for ops without one. The layout pass converts by it and the executor checks it: a kernel
    /// written for channels-first would silently misread a channels-last op's values.
    public var spatialLayout: Layout? {
        switch self {
        case .conv(let a): a.layout
        case .depthwiseConv(let a): a.layout
        case .separableConv(let a): a.depthwise.layout
        case .convTranspose(let a): a.layout
        case .pool(let a): a.layout
        case .globalPool(let a): a.layout
        case .zeroPadding(let a), .cropping(let a): a.layout
        case .upSampling(let a): a.layout
        default: nil
        }
    }
}

extension Parameter {
    /// Roles of moving statistics (BatchNormalization's moving mean and variance, Normalization's
    /// mean, variance and count): never trained by gradients, updated by a training
    /// BatchNormalization itself. Here rather than in the freeze pass because the trainer needs it too.
    public static let statisticRoles: Set<String> = ["moving_mean", "moving_variance", "mean", "variance", "count"]
}
