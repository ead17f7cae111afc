/// Keras's image-size preprocessing layers, one op: Resizing, CenterCrop and RandomCrop all compute
/// "take a window of the image (crop or pad), then resample it to height x width".
public enum ResizingKind: String, CaseIterable, Equatable, Sendable {
    case resizing = "Resizing"
    case centerCrop = "CenterCrop"
    case randomCrop = "RandomCrop"
}

/// How the resampling reads the input, in Keras's words. Keras 3 (JAX) and Keras 2 (TensorFlow) agree
/// on these: half-pixel centres; nearest takes `floor((i + 0.5) * in / out)`; the others weigh the
/// input with a kernel whose weights are renormalised over the samples inside the image.
public enum ResizeInterpolation: String, CaseIterable, Equatable, Sendable {
    case bilinear, nearest, bicubic, lanczos3, lanczos5
    /// tf.keras only (Keras 3 has no area resize): each output pixel the mean of the input box it
    /// covers, partly covered pixels weighted by the part covered (TensorFlow's `resize_area`).
    case area
}

/// What RandomCrop computes outside training, which differs between the Keras versions: Keras 3
/// passes the image through unchanged (its `transform_images` crops only when training); Keras 2
/// (tf.keras) center-crops to the target's aspect ratio and resizes (`smart_resize`).
public enum RandomCropInference: String, Equatable, Sendable {
    case passThrough, centerCropAndResize
}

/// One Resizing, CenterCrop or RandomCrop layer.
public struct ResizingAttributes: Equatable, Sendable {
    /// Which Keras layer.
    public var kind: ResizingKind
    /// The output's height.
    public var height: Int
    /// The output's width.
    public var width: Int
    /// The resampling kernel (CenterCrop and RandomCrop resample bilinearly when they must).
    public var interpolation: ResizeInterpolation
    /// Resizing: take the largest centered window with the target's aspect ratio first.
    public var cropToAspectRatio: Bool
    /// Resizing (Keras 3): pad the short side evenly with `fillValue` to the target's aspect ratio first.
    public var padToAspectRatio: Bool
    /// The padding value for `padToAspectRatio`.
    public var fillValue: Float
    /// Resizing (Keras 3): widen the kernel when downscaling (bilinear, bicubic, lanczos).
    public var antialias: Bool
    /// tf.keras's bicubic (TensorFlow's `resize_bicubic`): Keys' weights read from a table of 1024
    /// steps, the sample's fraction rounded to the nearest step (differences up to ~2e-3 from the
    /// exact kernel Keras 3 uses).
    public var tabulatedCubic: Bool
    /// RandomCrop outside training.
    public var randomCropInference: RandomCropInference
    /// Where the channel axis is: channels-last from Keras, channels-first after the layout pass.
    public var layout: Layout
    /// The layer's Keras config, serialized as JSON, written back unchanged (its seed, its name...).
    public var configuration: String

    /// Attributes with these values.
    public init(kind: ResizingKind, height: Int, width: Int, interpolation: ResizeInterpolation = .bilinear,
                cropToAspectRatio: Bool = false, padToAspectRatio: Bool = false, fillValue: Float = 0,
                antialias: Bool = false, tabulatedCubic: Bool = false, randomCropInference: RandomCropInference = .passThrough,
                layout: Layout = .channelsLast, configuration: String = "{}") {
        self.kind = kind; self.height = height; self.width = width; self.interpolation = interpolation
        self.cropToAspectRatio = cropToAspectRatio; self.padToAspectRatio = padToAspectRatio
        self.fillValue = fillValue; self.antialias = antialias; self.tabulatedCubic = tabulatedCubic
        self.randomCropInference = randomCropInference
        self.layout = layout; self.configuration = configuration
    }

    /// True when inference passes the input through unchanged whatever its size.
    public var isPassThrough: Bool { kind == .randomCrop && randomCropInference == .passThrough }

    /// The layer Keras 3 names for what this one computes at inference: tf.keras's RandomCrop is
    /// Resizing(crop_to_aspect_ratio=True) there (how the Keras writer spells it, and how `diff`
    /// compares it); every other layer is itself.
    public var inferenceForm: ResizingAttributes {
        guard kind == .randomCrop && randomCropInference == .centerCropAndResize else { return self }
        return ResizingAttributes(kind: .resizing, height: height, width: width, interpolation: .bilinear, cropToAspectRatio: true,
                                  layout: layout)
    }
}

/// The deterministic (inference) plan of a Resizing, CenterCrop or RandomCrop on an image of a given
/// size: a window of the input (which may reach outside it, padded with `fillValue`), then a
/// resampling of that window to `outputHeight x outputWidth` (none when the sizes already agree).
public struct ResizingPlan: Equatable, Sendable {
    /// The window's first row (negative: padding above).
    public var top: Int
    /// The window's first column (negative: padding on the left).
    public var left: Int
    /// The window's height.
    public var windowHeight: Int
    /// The window's width.
    public var windowWidth: Int
    /// The output's height.
    public var outputHeight: Int
    /// The output's width.
    public var outputWidth: Int

    /// The window is resampled (rather than copied).
    public var resamples: Bool { windowHeight != outputHeight || windowWidth != outputWidth }
    /// The window reaches outside the input, so padding is needed.
    public func pads(inputHeight: Int, inputWidth: Int) -> Bool {
        top < 0 || left < 0 || top + windowHeight > inputHeight || left + windowWidth > inputWidth
    }
}

extension ResizingAttributes {
    /// Keras's arithmetic for each layer, line for line (keras/src/backend/jax/image.py `resize`,
    /// center_crop.py, random_crop.py, and tf.keras's `smart_resize`).
    public func plan(inputHeight: Int, inputWidth: Int) -> ResizingPlan {
        let whole = ResizingPlan(top: 0, left: 0, windowHeight: inputHeight, windowWidth: inputWidth,
                                 outputHeight: height, outputWidth: width)
        switch kind {
        case .resizing:
            if cropToAspectRatio { return aspectCrop(inputHeight, inputWidth) }
            if padToAspectRatio {
                let paddedHeight = max(inputHeight, Int(Double(inputWidth * height) / Double(width)))
                let paddedWidth = max(inputWidth, Int(Double(inputHeight * width) / Double(height)))
                let top = Int(Double(paddedHeight - inputHeight) / 2), left = Int(Double(paddedWidth - inputWidth) / 2)
                // Keras pads one side only (rows when both would be needed), by the same amount on both ends.
                if top > 0 {
                    return ResizingPlan(top: -top, left: 0, windowHeight: inputHeight + 2 * top, windowWidth: inputWidth,
                                        outputHeight: height, outputWidth: width)
                }
                if left > 0 {
                    return ResizingPlan(top: 0, left: -left, windowHeight: inputHeight, windowWidth: inputWidth + 2 * left,
                                        outputHeight: height, outputWidth: width)
                }
            }
            return whole
        case .centerCrop:
            if inputHeight >= height && inputWidth >= width {
                return ResizingPlan(top: (inputHeight - height) / 2, left: (inputWidth - width) / 2,
                                    windowHeight: height, windowWidth: width, outputHeight: height, outputWidth: width)
            }
            return aspectCrop(inputHeight, inputWidth)
        case .randomCrop:
            switch randomCropInference {
            case .passThrough:
                return ResizingPlan(top: 0, left: 0, windowHeight: inputHeight, windowWidth: inputWidth,
                                    outputHeight: inputHeight, outputWidth: inputWidth)
            case .centerCropAndResize: return aspectCrop(inputHeight, inputWidth)
            }
        }
    }

    /// The largest centered window with the target's aspect ratio (`crop_to_aspect_ratio`, `smart_resize`).
    private func aspectCrop(_ inputHeight: Int, _ inputWidth: Int) -> ResizingPlan {
        let cropHeight = max(min(inputHeight, Int(Double(inputWidth * height) / Double(width))), 1)
        let cropWidth = max(min(inputWidth, Int(Double(inputHeight * width) / Double(height))), 1)
        return ResizingPlan(top: Int(Double(inputHeight - cropHeight) / 2), left: Int(Double(inputWidth - cropWidth) / 2),
                            windowHeight: cropHeight, windowWidth: cropWidth, outputHeight: height, outputWidth: width)
    }
}
