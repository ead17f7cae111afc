/// A small, fast, seedable generator (Steele, Lea and Flood's SplitMix64): the same seed gives the
/// same numbers on every machine, so grafted weights, shuffles and Dropout masks are reproducible.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var value = state
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        return value ^ (value >> 31)
    }

    /// Uniform in [0, 1), from the top 24 bits (a float's precision).
    public mutating func unit() -> Float { Float(next() >> 40) / Float(1 << 24) }

    /// Uniform in [low, high), from the top 24 bits.
    public mutating func uniform(_ low: Float, _ high: Float) -> Float {
        low + (high - low) * Float(next() >> 40) / Float(1 << 24)
    }
}
