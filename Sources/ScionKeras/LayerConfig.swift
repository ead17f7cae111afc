import ScionIR

/// Typed reads of one layer's `config` dictionary, throwing `KerasLayerTable.Unsupported` with the
/// key's name when a value is missing or has the wrong form.
struct LayerConfig {
    let json: JSON
    let className: String

    func missing(_ key: String) -> KerasLayerTable.Unsupported {
        KerasLayerTable.Unsupported(reason: "\(className) config has no usable '\(key)'")
    }

    func int(_ key: String) throws -> Int {
        guard let value = json[key]?.int else { throw missing(key) }
        return value
    }

    func optionalInt(_ key: String) -> Int? { json[key]?.int }

    func bool(_ key: String, _ fallback: Bool) -> Bool { json[key]?.bool ?? fallback }

    func float(_ key: String, _ fallback: Float) -> Float { json[key]?.float ?? fallback }

    /// A size given as one integer or one per spatial axis.
    func tuple(_ key: String, _ rank: Int, default fallback: Int? = nil) throws -> [Int] {
        guard let value = json[key], !value.isNull else {
            if let fallback { return Array(repeating: fallback, count: rank) }
            throw missing(key)
        }
        guard let values = value.intArray else { throw missing(key) }
        if values.count == 1 { return Array(repeating: values[0], count: rank) }
        guard values.count == rank else { throw missing(key) }
        return values
    }

    /// Padding or cropping: `1`, `(1, 2)` (symmetric per axis, or before/after for 1-D) or
    /// `((1, 2), (3, 4))`.
    func pairs(_ key: String, rank: Int) throws -> [[Int]] {
        guard let value = json[key] else { throw missing(key) }
        if let single = value.int { return Array(repeating: [single, single], count: rank) }
        guard let array = value.array else { throw missing(key) }
        if array.allSatisfy({ $0.int != nil }) {
            let values = array.compactMap(\.int)
            if rank == 1, values.count == 2 { return [values] }
            guard values.count == rank else { throw missing(key) }
            return values.map { [$0, $0] }
        }
        let pairs = array.compactMap(\.intArray)
        guard pairs.count == rank, pairs.allSatisfy({ $0.count == 2 }) else { throw missing(key) }
        return pairs
    }

    func padding() throws -> Padding {
        switch json["padding"]?.string?.lowercased() ?? "valid" {
        case "valid": return .valid
        case "same": return .same
        case "causal": return .causal
        case let other: throw KerasLayerTable.Unsupported(reason: "padding '\(other)'")
        }
    }

    func layout() throws -> Layout {
        switch json["data_format"]?.string ?? "channels_last" {
        case "channels_last": return .channelsLast
        case "channels_first": return .channelsFirst
        case let other: throw KerasLayerTable.Unsupported(reason: "data_format '\(other)'")
        }
    }

    /// Spatial rank from the class name (`Conv2D` -> 2).
    func rankFromName() throws -> Int {
        for rank in 1...3 where className.contains("\(rank)D") { return rank }
        throw KerasLayerTable.Unsupported(reason: "cannot tell the rank of \(className)")
    }
}
