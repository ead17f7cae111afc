/// Keras's GroupNormalization, which is also ONNX's InstanceNormalization (one group per channel)
/// and GroupNormalization: the channels along `axis` are split into `groups` consecutive groups; each
/// sample's group is normalized over its channels and every other non-batch axis, then scaled and
/// shifted per channel: `(x - mean) / sqrt(variance + epsilon) * gamma + beta`.
///
/// Parameters, each `[channels]`, in this order when present: `gamma` (when `scale`), `beta` (when
/// `center`), as Keras creates them.
public struct GroupNormalizationAttributes: Equatable, Sendable {
    /// Number of groups; -1 (Keras's spelling) is one group per channel: instance normalization.
    public var groups: Int
    /// The channel axis: -1 for Keras's channels-last default, 1 once channels-first.
    public var axis: Int
    /// Added to the variance before its square root.
    public var epsilon: Float
    /// Whether a learned `beta` is added (Keras's `center`).
    public var center: Bool
    /// Whether a learned `gamma` multiplies (Keras's `scale`).
    public var scale: Bool

    /// Attributes with these values.
    public init(groups: Int, axis: Int, epsilon: Float, center: Bool = true, scale: Bool = true) {
        self.groups = groups; self.axis = axis; self.epsilon = epsilon; self.center = center; self.scale = scale
    }

    /// Groups for `channels` channels: -1 resolved to one per channel; nil when the channels do not
    /// split evenly (Keras refuses such a layer when it builds it).
    public func groupCount(channels: Int) -> Int? {
        let count = groups == -1 ? channels : groups
        guard count > 0, channels > 0, channels % count == 0 else { return nil }
        return count
    }
}
