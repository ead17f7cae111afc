/// Keras's `Masking(mask_value)`: a step (all axes but the last) is kept where any of its features
/// differs from `maskValue` and zeroed where every feature equals it (keras/src/layers/core/masking.py:
/// `where(any(x != mask_value, axis=-1, keepdims=True), x, 0)`). The layer's Keras mask, read by the
/// recurrent layers after it, is that same test on its input (`RecurrentAttributes.maskValue`).
public struct MaskingAttributes: Equatable, Sendable {
    /// The value that marks a padded step (Keras's `mask_value`, 0 by default). A NaN feature differs
    /// from every value, so a step holding one is kept, as Keras's `not_equal` has it.
    public var maskValue: Float
    /// Attributes with this value.
    public init(maskValue: Float = 0) { self.maskValue = maskValue }
}
