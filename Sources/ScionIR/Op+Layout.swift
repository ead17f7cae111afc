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
