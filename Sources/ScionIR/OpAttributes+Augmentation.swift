/// Keras's random augmentation and noise layers: the identity at inference, which is what the
/// executor, `run` and the ONNX writer compute (an ONNX Identity). Their randomness belongs to
/// training in Keras; Scion's trainer runs them as the identity too.
public enum AugmentationKind: String, CaseIterable, Equatable, Sendable {
    case randomFlip = "RandomFlip"
    case randomRotation = "RandomRotation"
    case randomZoom = "RandomZoom"
    case randomTranslation = "RandomTranslation"
    case randomContrast = "RandomContrast"
    case randomBrightness = "RandomBrightness"
    case gaussianNoise = "GaussianNoise"
    case gaussianDropout = "GaussianDropout"
}

/// One augmentation layer: which one, and its Keras config, written back unchanged.
public struct AugmentationAttributes: Equatable, Sendable {
    /// Which augmentation (Keras's class name as raw value).
    public var kind: AugmentationKind
    /// The layer's Keras config, serialized as JSON.
    public var configuration: String
    /// Attributes with these values.
    public init(kind: AugmentationKind, configuration: String) { self.kind = kind; self.configuration = configuration }
}
