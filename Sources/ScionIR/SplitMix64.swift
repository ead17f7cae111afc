/// A small, fast, seedable generator (Steele, Lea and Flood's SplitMix64): the same seed gives the
/// same numbers on every machine, so grafted weights, shuffles and Dropout masks are reproducible.
package struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    package init(seed: UInt64) { state = seed }

    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var value = state
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        return value ^ (value >> 31)
    }

    /// Uniform in [0, 1), from the top 24 bits (a float's precision).
    package mutating func unit() -> Float { Float(next() >> 40) / Float(1 << 24) }

    /// Uniform in [low, high), from the top 24 bits.
    package mutating func uniform(_ low: Float, _ high: Float) -> Float {
        low + (high - low) * Float(next() >> 40) / Float(1 << 24)
    }
}
