/// Keras's random augmentation and noise layers: the identity at inference, which is what the
/// executor, `run` and the ONNX writer compute (an ONNX Identity). Their randomness belongs to
/// training: Scion's trainer draws each layer's random transform per batch from its seeded
/// generator, as Keras's `fit` does (Ops/Augmentation.swift), unless augmentation is switched off.
public enum AugmentationKind: String, CaseIterable, Equatable, Sendable {
    case randomFlip = "RandomFlip"
    case randomRotation = "RandomRotation"
    case randomZoom = "RandomZoom"
    case randomTranslation = "RandomTranslation"
    case randomContrast = "RandomContrast"
    case randomBrightness = "RandomBrightness"
    case gaussianNoise = "GaussianNoise"
    case gaussianDropout = "GaussianDropout"
    /// `scion finetune --augment crop`: Keras's Resizing (bilinear) to `scale` times the image, then a
    /// RandomCrop back to the image's size, drawn per image, as one resampling. No Keras layer is
    /// this one op, so the reader never makes it and the Keras writer refuses it; Scion adds it to
    /// the training graph only (ScionPasses' `TrainingAugmentation`).
    case resizeAndCrop = "ScionResizeAndCrop"

    /// Whether a Keras layer of this class name exists (the reader maps class names to kinds).
    public var isKerasLayer: Bool { self != .resizeAndCrop }
}

/// One augmentation layer: which one, and its Keras config, written back unchanged.
public struct AugmentationAttributes: Equatable, Sendable {
    /// Which augmentation (Keras's class name as raw value).
    public var kind: AugmentationKind
    /// The layer's Keras config, serialized as JSON.
    public var configuration: String
    /// Where an image's channel axis is in the values the layer reads: channels-last as Keras
    /// writes them, channels-first after the layout pass (set when it converts the op). Flips,
    /// rotations and contrast need it while training; inference does not.
    public var layout: Layout
    /// Attributes with these values.
    public init(kind: AugmentationKind, configuration: String, layout: Layout = .channelsLast) {
        self.kind = kind; self.configuration = configuration; self.layout = layout
    }
}
